"""The `ethereum` finality source: messages proven from a sync-committee light client.

`EthereumFinalitySource` drives the pure verifier in `relay.verify.ethereum` with data fetched
from untrusted nodes:

1. bootstrap from the operator's trusted beacon block root,
2. follow sync-committee periods with `light_client/updates`, then the latest finality and
   optimistic updates,
3. for each execution block up to the finalized one: prove its header by the parent-hash
   chain down from the finalized execution payload, skip it if its (proven) logs bloom rules
   out a Dispatch from the Gateway, else fetch all its receipts, check they rebuild its
   receipts root, and decode the Gateway's `Dispatch` logs.

It returns only messages it proved; a node that lies makes it raise an `InvalidProof` (never a
wrong message). It reads the clock only to know the current slot (injectable for tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from adapters.ethereum.beacon_api import (
    FINALITY_UPDATE_PATH,
    OPTIMISTIC_UPDATE_PATH,
    bootstrap_path,
    updates_path,
)
from adapters.ethereum.transport import BeaconTransport, ExecutionTransport, RpcMethodNotFound
from relay.errors import NotYetAvailable, PermanentError
from relay.verify.bls import BlsBackend, get_backend
from relay.verify.ethereum.codec import (
    parse_bootstrap,
    parse_finality_update,
    parse_optimistic_update,
    parse_updates,
)
from relay.verify.ethereum.committee_keys import SyncCommitteeKeyCache
from relay.verify.ethereum.config import NetworkConfig
from relay.verify.ethereum.containers import LightClientHeader, LightClientUpdate
from relay.verify.ethereum.dispatch import DISPATCH_TOPIC, ProvenMessage, prove_dispatches_in_receipts
from relay.verify.ethereum.errors import IrrelevantUpdate, MalformedObject
from relay.verify.ethereum.execution import parse_block_header, verify_block_hash, verify_header_chain
from relay.verify.ethereum.light_client_store import LightClientStore, UpdateOutcome
from relay.verify.ethereum.receipts import Receipt, bloom_may_contain, parse_receipt
from relay.verify.ethereum.sync_protocol import LightClient

_U = TypeVar("_U")

MAX_REQUEST_LIGHT_CLIENT_UPDATES = 128
"""The beacon API's cap on updates per request (consensus p2p spec)."""


class BlockNotFinalized(NotYetAvailable):
    """The block is beyond the light client's finalized execution block; ask again later."""


class BlockTooOld(PermanentError):
    """The block is further below the finalized block than the source walks parent hashes."""


@dataclass(frozen=True)
class ProvenBlock:
    """An execution block whose hash is proven, with what its header commits to."""

    number: int
    block_hash: bytes
    parent_hash: bytes
    receipts_root: bytes
    logs_bloom: bytes


@dataclass(frozen=True)
class PollResult:
    """Messages proven in blocks `[first_block, next_block)`, and the finalized block number then."""

    messages: list[ProvenMessage]
    first_block: int
    next_block: int
    finalized_block_number: int


@dataclass(frozen=True)
class SyncReport:
    """What one `sync` did: the outcome of every update it applied, and the finalized header."""

    outcomes: list[tuple[str, UpdateOutcome]]
    finalized_header: LightClientHeader
    optimistic_header: LightClientHeader


def bootstrap_light_client(
    beacon: BeaconTransport,
    trusted_block_root: bytes,
    network: NetworkConfig,
    backend: BlsBackend,
    keys: SyncCommitteeKeyCache,
    *,
    allow_force_update: bool = False,
) -> LightClient:
    """A light client started from the node's bootstrap of `trusted_block_root` (which it verifies)."""
    bootstrap = parse_bootstrap(beacon.get(bootstrap_path(trusted_block_root)), network.preset)
    return LightClient.from_bootstrap(
        trusted_block_root, bootstrap, network, backend, allow_force_update=allow_force_update, keys=keys
    )


def follow_sync_committee_periods(
    client: LightClient,
    beacon: BeaconTransport,
    current_slot: Callable[[], int],
    on_applied: Callable[[LightClientUpdate, UpdateOutcome], None],
) -> None:
    """Apply `light_client/updates` period by period until `client` knows the current period's
    next committee, or the node has nothing that moves it; `on_applied` sees each applied update.

    Updates that are stale but genuine-looking (`IrrelevantUpdate`) are skipped; any other failed
    check raises, and nothing after it is applied.
    """
    network = client.network
    while True:
        slot = current_slot()
        current_period = network.compute_sync_committee_period_at_slot(slot)
        store_period = client.current_period()
        if store_period > current_period or (
            store_period == current_period and client.next_sync_committee_known()
        ):
            return
        count = min(MAX_REQUEST_LIGHT_CLIENT_UPDATES, current_period - store_period + 1)
        progressed = False
        for update in parse_updates(beacon.get(updates_path(store_period, count)), network.preset):
            try:
                outcome = client.process_update(update, slot)
            except IrrelevantUpdate:
                continue
            on_applied(update, outcome)
            progressed = progressed or outcome.period_advanced or outcome.next_sync_committee_learned
        if not progressed:
            return


class EthereumFinalitySource:
    """Proves Gateway messages on Ethereum from a trusted checkpoint, trusting no RPC endpoint."""

    def __init__(
        self,
        beacon: BeaconTransport,
        execution: ExecutionTransport,
        *,
        network: NetworkConfig,
        trusted_block_root: bytes,
        gateway: bytes,
        origin_domain: int | None = None,
        backend: BlsBackend | None = None,
        clock: Callable[[], float] = time.time,
        allow_force_update: bool = False,
        max_blocks_per_poll: int = 256,
        max_ancestors: int = 8192,
    ) -> None:
        if len(trusted_block_root) != 32:
            raise ValueError("the trusted block root is 32 bytes")
        if len(gateway) != 20:
            raise ValueError("the gateway address is 20 bytes")
        self.beacon = beacon
        self.execution = execution
        self.network = network
        self.trusted_block_root = trusted_block_root
        self.gateway = gateway
        self.origin_domain = origin_domain
        self.backend = backend if backend is not None else get_backend()
        self.keys = SyncCommitteeKeyCache(self.backend)
        self.clock = clock
        self.allow_force_update = allow_force_update
        self.max_blocks_per_poll = max_blocks_per_poll
        self.max_ancestors = max_ancestors
        self._client: LightClient | None = None
        self._proven: dict[int, ProvenBlock] = {}

    # --- consensus --------------------------------------------------------------------------------------------

    @property
    def light_client(self) -> LightClient:
        """The verified light client (after the first `sync`)."""
        if self._client is None:
            raise NotYetAvailable("the light client has not synced yet")
        return self._client

    def current_slot(self) -> int:
        """The slot the clock is in."""
        return self.network.compute_slot_at_time(self.clock())

    def sync(self) -> SyncReport:
        """Bootstrap if needed, follow the periods up to now, then the latest finality and optimistic updates."""
        outcomes: list[tuple[str, UpdateOutcome]] = []
        if self._client is None:
            self._client = bootstrap_light_client(
                self.beacon,
                self.trusted_block_root,
                self.network,
                self.backend,
                self.keys,
                allow_force_update=self.allow_force_update,
            )
        client = self._client
        follow_sync_committee_periods(
            client,
            self.beacon,
            self.current_slot,
            lambda _update, outcome: outcomes.append(("update", outcome)),
        )
        slot = self.current_slot()
        finality = parse_finality_update(self.beacon.get(FINALITY_UPDATE_PATH), self.network.preset)
        self._apply(outcomes, "finality_update", client.process_finality_update, finality, slot)
        try:
            optimistic_body = self.beacon.get(OPTIMISTIC_UPDATE_PATH)
        except NotYetAvailable:
            optimistic_body = None
        if optimistic_body is not None:
            optimistic = parse_optimistic_update(optimistic_body, self.network.preset)
            self._apply(outcomes, "optimistic_update", client.process_optimistic_update, optimistic, slot)
        if self.allow_force_update:
            client.process_force_update(slot)
        self._remember_finalized(client.finalized_header)
        return SyncReport(outcomes, client.finalized_header, client.optimistic_header)

    @staticmethod
    def _apply(
        outcomes: list[tuple[str, UpdateOutcome]],
        kind: str,
        process: Callable[[_U, int], UpdateOutcome],
        update: _U,
        slot: int,
    ) -> UpdateOutcome | None:
        try:
            outcome = process(update, slot)
        except IrrelevantUpdate:
            # Stale but genuine-looking data (already applied, or older than the store): nothing to learn.
            return None
        outcomes.append((kind, outcome))
        return outcome

    # --- execution ----------------------------------------------------------------------------------------------

    @property
    def finalized_block_number(self) -> int:
        """The number of the finalized execution block."""
        return self.light_client.finalized_header.execution.block_number

    def _remember_finalized(self, header: LightClientHeader) -> None:
        execution = header.execution
        if execution.block_hash == b"\x00" * 32:
            return
        self._proven[execution.block_number] = ProvenBlock(
            number=execution.block_number,
            block_hash=execution.block_hash,
            parent_hash=execution.parent_hash,
            receipts_root=execution.receipts_root,
            logs_bloom=execution.logs_bloom,
        )
        # Keep the proven window bounded: nothing below what a poll may still ask for.
        floor = execution.block_number - self.max_ancestors
        for number in [n for n in self._proven if n < floor]:
            del self._proven[number]

    def prove_block(self, number: int) -> ProvenBlock:
        """Prove execution block `number` (at or below the finalized one) by the parent-hash chain."""
        if number in self._proven:
            return self._proven[number]
        finalized = self.finalized_block_number
        if number > finalized:
            raise BlockNotFinalized("block is not finalized yet", number=number, finalized=finalized)
        if finalized - number > self.max_ancestors:
            raise BlockTooOld(
                "block is too far below the finalized block",
                number=number,
                finalized=finalized,
                max_ancestors=self.max_ancestors,
            )
        anchor = min(n for n in self._proven if n > number)
        headers = [
            parse_block_header(self.execution.call("eth_getBlockByNumber", [hex(n), False]))
            for n in range(anchor - 1, number - 1, -1)
        ]
        verify_header_chain(self._proven[anchor].parent_hash, headers)
        for header in headers:
            bloom = header.get("logsBloom")
            if not isinstance(bloom, bytes):
                raise MalformedObject("logsBloom is not bytes")
            self._proven[header.number] = ProvenBlock(
                number=header.number,
                block_hash=verify_block_hash(header),
                parent_hash=header.parent_hash,
                receipts_root=header.receipts_root,
                logs_bloom=bloom,
            )
        return self._proven[number]

    def may_contain_dispatch(self, block: ProvenBlock) -> bool:
        """False when the block's proven logs bloom rules out a Gateway `Dispatch`."""
        return bloom_may_contain(block.logs_bloom, self.gateway) and bloom_may_contain(
            block.logs_bloom, DISPATCH_TOPIC
        )

    def fetch_receipts(self, block: ProvenBlock) -> list[Receipt]:
        """All receipts of `block`, by `eth_getBlockReceipts` or, if missing, one transaction at a time."""
        try:
            answer = self.execution.call("eth_getBlockReceipts", [hex(block.number)])
        except RpcMethodNotFound:
            answer = self._fetch_receipts_per_transaction(block)
        if not isinstance(answer, list):
            raise MalformedObject("eth_getBlockReceipts did not return a list", number=block.number)
        return [parse_receipt(receipt) for receipt in answer]

    def _fetch_receipts_per_transaction(self, block: ProvenBlock) -> list[object]:
        body = self.execution.call("eth_getBlockByNumber", [hex(block.number), False])
        # A wrong transaction list only yields receipts that then fail the receipts-root check.
        verify_block_hash(parse_block_header(body), block.block_hash)
        transactions = body.get("transactions") if isinstance(body, dict) else None
        if not isinstance(transactions, list) or not all(isinstance(tx, str) for tx in transactions):
            raise MalformedObject("block has no list of transaction hashes", number=block.number)
        return [self.execution.call("eth_getTransactionReceipt", [tx]) for tx in transactions]

    def restore(self, store: LightClientStore) -> None:
        """Resume from a light-client store saved earlier (instead of bootstrapping again)."""
        self._client = LightClient(
            store, self.network, self.backend, allow_force_update=self.allow_force_update, keys=self.keys
        )
        self._remember_finalized(store.finalized_header)

    def fetch_proven_header(self, number: int, expected_hash: bytes) -> ProvenBlock:
        """Execution block `number`, accepted only if its header hashes to `expected_hash`."""
        header = parse_block_header(self.execution.call("eth_getBlockByNumber", [hex(number), False]))
        if header.number != number:
            raise MalformedObject("node answered another block number", asked=number, got=header.number)
        block_hash = verify_block_hash(header, expected_hash)
        bloom = header.get("logsBloom")
        if not isinstance(bloom, bytes):
            raise MalformedObject("logsBloom is not bytes")
        return ProvenBlock(number, block_hash, header.parent_hash, header.receipts_root, bloom)

    def prove_block_messages(self, number: int) -> list[ProvenMessage]:
        """The Gateway messages dispatched in finalized block `number`, each proven."""
        return self.prove_messages_in(self.prove_block(number))

    def prove_messages_in(self, block: ProvenBlock) -> list[ProvenMessage]:
        """The Gateway messages dispatched in the proven `block`, each proven by its receipts."""
        if not self.may_contain_dispatch(block):
            return []
        receipts = self.fetch_receipts(block)
        return prove_dispatches_in_receipts(
            receipts,
            receipts_root=block.receipts_root,
            block_number=block.number,
            block_hash=block.block_hash,
            gateway=self.gateway,
            origin=self.origin_domain,
        )

    def poll(self, from_block: int) -> PollResult:
        """Sync, then prove the messages of finalized blocks from `from_block` on (at most a batch).

        The caller keeps the cursor: pass `next_block` of the result to the next call.
        """
        self.sync()
        finalized = self.finalized_block_number
        last = min(finalized, from_block + self.max_blocks_per_poll - 1)
        messages: list[ProvenMessage] = []
        if last >= from_block:
            # One walk down the parent hashes, from the finalized block to the oldest, proves the whole range.
            self.prove_block(from_block)
            for number in range(from_block, last + 1):
                messages.extend(self.prove_block_messages(number))
        return PollResult(
            messages=messages,
            first_block=from_block,
            next_block=max(from_block, last + 1),
            finalized_block_number=finalized,
        )
