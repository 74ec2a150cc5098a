"""The relayer's view of an Ethereum origin verified on-chain by light client (`verification: lightclient`).

`EthereumLightClientOrigin` implements `relay.chains.lightclient.LightClientOrigin` over a beacon
node and an execution RPC, neither trusted:

- **Updates.** It runs its own light client from the operator's trusted block root (the same
  checkpoint the destination light clients were initialised from) and keeps every update that
  light client verified: the best update of each sync-committee period and the latest finality
  update. `updates_to_reach` plans, from what a destination light client stores (period, whether
  it knows the next committee, finalized slot), the verified updates that bring it to a finalized
  block at or after the message's, in order: the committee updates period by period, then the
  finality update. Only updates with a 2/3 supermajority are planned (the contract refuses the
  others), and a beacon node whose data does not verify makes it raise `UntrustedAnswer`: nothing
  it served is ever sent.
- **Receipt proofs.** `prove_message` proves the message's block from the stored header by the
  parent-hash chain (each header's hash checked), fetches the block's receipts
  (`eth_getBlockReceipts`), checks they rebuild the proven receipts root, finds the message's
  Dispatch log, and builds the receipt's Merkle-Patricia proof, verified before it is returned.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import rlp
from eth_abi import encode as abi_encode
from eth_utils import collapse_if_tuple
from trie import HexaryTrie

from adapters.ethereum.beacon_api import FINALITY_UPDATE_PATH
from adapters.ethereum.onchain_client import encode_update, needs_committee_keys
from adapters.ethereum.source import (
    MAX_REQUEST_LIGHT_CLIENT_UPDATES,
    bootstrap_light_client,
    follow_sync_committee_periods,
)
from adapters.ethereum.transport import BeaconTransport, ExecutionTransport
from adapters.evm.build import load_artifact
from relay.chains.lightclient import HeaderUpdate, ProvenReceipt, ReceiptProof, StoredHeaders
from relay.errors import InvalidProof, MessageNotInBlock, UntrustedAnswer
from relay.verify.bls import BlsBackend, get_backend
from relay.verify.ethereum.codec import parse_finality_update
from relay.verify.ethereum.committee_keys import SyncCommitteeKeyCache
from relay.verify.ethereum.config import NetworkConfig
from relay.verify.ethereum.containers import LightClientUpdate, SyncCommittee
from relay.verify.ethereum.dispatch import ProvenMessage, prove_dispatches_in_receipts
from relay.verify.ethereum.errors import IrrelevantUpdate
from relay.verify.ethereum.execution import ExecutionBlockHeader, parse_block_header, verify_header_chain
from relay.verify.ethereum.light_client_store import UpdateOutcome, has_supermajority
from relay.verify.ethereum.receipts import (
    build_receipts_trie,
    compute_receipt_proof,
    parse_receipt,
    verify_receipt_proof,
)
from relay.verify.ethereum.sync_protocol import LightClient, convert_finality_update


@dataclass(frozen=True)
class _Verified:
    """An update the relayer's light client verified, with what the planner needs to know."""

    update: LightClientUpdate
    finalized_slot: int
    finalized_block: int
    finalized_period: int
    attested_period: int

    @property
    def carries_next_committee(self) -> bool:
        return self.update.next_sync_committee is not None


@functools.cache
def _submit_update_types() -> tuple[str, ...]:
    function = next(
        entry
        for entry in load_artifact("EthereumLightClient")["abi"]
        if entry.get("type") == "function" and entry.get("name") == "submitUpdate"
    )
    return tuple(collapse_if_tuple(dict(i)) for i in function["inputs"])


def encode_update_arguments(
    update: LightClientUpdate,
    network: NetworkConfig,
    signing_keys: Sequence[bytes] | None,
    store_period: int,
    next_known: bool,
) -> bytes:
    """The ABI-encoded arguments of `EthereumLightClient.submitUpdate` for `update` (no selector),
    for a light client at `store_period` that knows (`next_known`) the next committee or not: the
    contract's `Update` tuple by its own encoder (`adapters.ethereum.onchain_client`), with the
    signing committee's keys (`signing_keys`) and the next committee's when it will store them."""
    arguments = encode_update(
        update,
        network,
        signing_keys,
        include_next_sync_committee_keys=needs_committee_keys(update, store_period, next_known, network),
    )
    return bytes(abi_encode(list(_submit_update_types()), [arguments]))


PROVEN_BLOCKS_KEPT = 16  # blocks whose verified receipts (and header walks) are kept for reuse


class EthereumLightClientOrigin:
    """See the module docstring. Thread-safe (one sync at a time; proofs never wait for it)."""

    def __init__(
        self,
        beacon: BeaconTransport,
        execution: ExecutionTransport,
        *,
        network: NetworkConfig,
        trusted_block_root: bytes,
        gateway: bytes,
        origin_domain: int,
        backend: BlsBackend | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(trusted_block_root) != 32 or len(gateway) != 20:
            raise ValueError("the trusted block root is 32 bytes and the gateway address 20")
        self.beacon = beacon
        self.execution = execution
        self.network = network
        self.trusted_block_root = trusted_block_root
        self.gateway = gateway
        self.origin_domain = origin_domain
        self.backend = backend if backend is not None else get_backend()
        self.keys = SyncCommitteeKeyCache(self.backend)
        self.clock = clock
        self._client: LightClient | None = None
        self._by_period: dict[int, _Verified] = {}  # the verified committee update of each attested period
        self._finality: _Verified | None = None
        self._committees: dict[int, SyncCommittee] = {}  # verified sync committees by period
        # Verified receipts and header walks of recent blocks: their next messages reuse them.
        self._blocks: OrderedDict[tuple[int, bytes], tuple[HexaryTrie, list[ProvenMessage]]] = OrderedDict()
        self._walks: OrderedDict[tuple[bytes, int], list[ExecutionBlockHeader]] = OrderedDict()
        self._lock = threading.Lock()  # the light-client sync (beacon node requests under it)
        # The receipt caches: never held across a request, so a proof (built in a delivery slot
        # every origin of the destination shares) never waits for the beacon node.
        self._cache_lock = threading.Lock()

    # --- updates -----------------------------------------------------------------------------

    def updates_to_reach(self, block_number: int, stored: StoredHeaders) -> Sequence[HeaderUpdate]:
        """See `relay.chains.lightclient.LightClientOrigin.updates_to_reach`."""
        with self._lock:
            try:
                self.sync()
            except InvalidProof as error:
                raise UntrustedAnswer(
                    "the beacon node's light-client data does not verify", cause=str(error)[:300]
                ) from error
            plan = self.plan(stored)
        reached = max([stored.latest_block] + [v.finalized_block for v, _, _ in plan])
        if reached < block_number:
            return []  # not finalized on the origin yet (as far as verified data shows)
        return [self._header_update(*step) for step in plan]

    def sync(self) -> None:
        """Bootstrap if needed, verify and keep every period's update up to now and the latest finality update."""
        if self._client is None:
            self._client = bootstrap_light_client(
                self.beacon, self.trusted_block_root, self.network, self.backend, self.keys
            )
        client = self._client
        self._remember_committees(client)

        def keep(update: LightClientUpdate, _outcome: UpdateOutcome) -> None:
            self._keep(update)
            self._remember_committees(client)

        follow_sync_committee_periods(client, self.beacon, self.current_slot, keep)
        finality = parse_finality_update(self.beacon.get(FINALITY_UPDATE_PATH), self.network.preset)
        try:
            client.process_finality_update(finality, self.current_slot())
        except IrrelevantUpdate:
            return
        verified = self._describe(convert_finality_update(finality, self.network))
        if self._finality is None or verified.finalized_slot > self._finality.finalized_slot:
            self._finality = verified

    def _remember_committees(self, client: LightClient) -> None:
        period = client.current_period()
        store = client.store
        self._committees[period] = store.current_sync_committee
        if store.next_sync_committee is not None:
            self._committees[period + 1] = store.next_sync_committee

    def current_slot(self) -> int:
        """The slot the clock is in."""
        return self.network.compute_slot_at_time(self.clock())

    def _keep(self, update: LightClientUpdate) -> None:
        verified = self._describe(update)
        if verified.carries_next_committee:
            self._by_period[verified.attested_period] = verified

    def _describe(self, update: LightClientUpdate) -> _Verified:
        period = self.network.compute_sync_committee_period_at_slot
        finalized = update.finalized_header
        return _Verified(
            update,
            finalized.beacon.slot,
            finalized.execution.block_number,
            period(finalized.beacon.slot),
            period(update.attested_header.beacon.slot),
        )

    def plan(self, stored: StoredHeaders) -> list[tuple[_Verified, int, bool]]:
        """The verified updates that move a light client in state `stored` as far as they can: the
        committee updates period by period (the spec's rules), then the newest finality update;
        each with the light client's (period, next committee known) before it."""
        size = self.network.preset.sync_committee_size
        plan: list[tuple[_Verified, int, bool]] = []
        period, has_next = stored.period, stored.has_next_committee
        finalized_slot = stored.finalized_slot
        for _ in range(MAX_REQUEST_LIGHT_CLIENT_UPDATES):
            wanted = period if not has_next else period + 1
            candidate = self._by_period.get(wanted)
            if candidate is None or not has_supermajority(
                candidate.update.sync_aggregate.participant_count(), size
            ):
                break
            before = (period, has_next)
            if not has_next and candidate.finalized_period == period:
                has_next = True  # learns the next committee in the same period
            elif has_next and candidate.finalized_period == period + 1:
                period += 1  # rotates into the next period, and learns the one after
            else:
                break  # finality lagged across the boundary: the spec would not move with it
            plan.append((candidate, *before))
            finalized_slot = max(finalized_slot, candidate.finalized_slot)
        finality = self._finality
        if (
            finality is not None
            and finality.finalized_slot > finalized_slot
            and finality.attested_period in (period, period + 1 if has_next else period)
            and finality.finalized_period == period
            and has_supermajority(finality.update.sync_aggregate.participant_count(), size)
        ):
            plan.append((finality, period, has_next))
        return plan

    def _header_update(self, verified: _Verified, store_period: int, next_known: bool) -> HeaderUpdate:
        update = verified.update
        signature_period = self.network.compute_sync_committee_period_at_slot(update.signature_slot)
        committee = self._committees.get(signature_period)
        signing_keys = list(committee.pubkeys) if committee is not None else None
        return HeaderUpdate(
            encode_update_arguments(update, self.network, signing_keys, store_period, next_known),
            verified.finalized_slot,
            verified.finalized_block,
            verified.attested_period,
            verified.carries_next_committee,
        )

    # --- receipt proofs ----------------------------------------------------------------------

    def prove_message(
        self,
        message_id: bytes,
        block_number: int,
        anchor_block: int,
        anchor_hash: bytes,
        anchor_receipts_root: bytes,
    ) -> ProvenReceipt:
        """See `relay.chains.lightclient.LightClientOrigin.prove_message`."""
        if block_number > anchor_block:
            raise ValueError("the anchor must be at or after the message's block")
        try:
            headers = self._walk(anchor_block, block_number, anchor_hash, anchor_receipts_root)
            target = headers[-1] if headers else None
            receipts_root = target.receipts_root if target is not None else anchor_receipts_root
            block_hash = anchor_hash if target is None else _hash_of(headers, anchor_hash)
            trie, proven = self._proven_block(block_number, block_hash, receipts_root)
            found = next((p for p in proven if p.id == message_id), None)
            if found is None:
                raise MessageNotInBlock(
                    "the proven receipts hold no Dispatch of this message", id=message_id, block=block_number
                )
            nodes = compute_receipt_proof(trie, found.transaction_index)
            verify_receipt_proof(receipts_root, found.transaction_index, nodes)
        except (MessageNotInBlock, UntrustedAnswer):
            raise
        except InvalidProof as error:
            raise UntrustedAnswer(
                "the execution RPC's answers do not verify against the stored header",
                block=block_number,
                anchor=anchor_block,
                cause=f"{error.reason}: {str(error)[:300]}",
            ) from error
        encoded_headers = tuple(rlp.encode([value for _, value in h.fields]) for h in headers)
        proof = ReceiptProof(anchor_block, encoded_headers, found.transaction_index, nodes)
        return ProvenReceipt(proof, found.log_index)

    def _proven_block(
        self, block_number: int, block_hash: bytes, receipts_root: bytes
    ) -> tuple[HexaryTrie, list[ProvenMessage]]:
        """The receipts trie of a block and its Gateway messages, from `eth_getBlockReceipts`
        checked against the proven `receipts_root` (kept for the next messages of the block)."""
        key = (block_number, receipts_root)
        with self._cache_lock:
            kept = self._blocks.get(key)
        if kept is not None:
            return kept
        answer = self.execution.call("eth_getBlockReceipts", [hex(block_number)])
        if not isinstance(answer, list):
            raise UntrustedAnswer("eth_getBlockReceipts did not return a list", block=block_number)
        receipts = [parse_receipt(receipt) for receipt in answer]
        proven = prove_dispatches_in_receipts(
            receipts,
            receipts_root=receipts_root,
            block_number=block_number,
            block_hash=block_hash,
            gateway=self.gateway,
            origin=self.origin_domain,
        )
        verified = (build_receipts_trie(receipts), proven)
        with self._cache_lock:
            self._blocks[key] = verified
            while len(self._blocks) > PROVEN_BLOCKS_KEPT:
                self._blocks.popitem(last=False)
        return verified

    def _walk(
        self, anchor: int, block: int, anchor_hash: bytes, anchor_root: bytes
    ) -> list[ExecutionBlockHeader]:
        """Headers anchor, anchor-1, ..., block (newest first), proven by hash from `anchor_hash`;
        empty when `block` is the anchor itself (kept for the next messages of the block)."""
        if anchor == block:
            return []
        key = (anchor_hash, block)
        with self._cache_lock:
            kept = self._walks.get(key)
        if kept is not None:
            return kept
        headers = [
            parse_block_header(self.execution.call("eth_getBlockByNumber", [hex(n), False]))
            for n in range(anchor, block - 1, -1)
        ]
        verify_header_chain(anchor_hash, headers)
        if headers[0].receipts_root != anchor_root:
            raise UntrustedAnswer("stored header's receipts root differs from its block's", block=anchor)
        if headers[-1].number != block:
            raise UntrustedAnswer("header walk ended at another block", block=block, got=headers[-1].number)
        with self._cache_lock:
            self._walks[key] = headers
            while len(self._walks) > PROVEN_BLOCKS_KEPT:
                self._walks.popitem(last=False)
        return headers


def _hash_of(headers: Sequence[ExecutionBlockHeader], anchor_hash: bytes) -> bytes:
    """The proven hash of the last header of a walk: the parent hash its child names."""
    return headers[-2].parent_hash if len(headers) > 1 else anchor_hash
