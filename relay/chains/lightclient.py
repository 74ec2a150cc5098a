"""What the relayer needs to drive a light-client origin (`verification: lightclient`), as Protocols.

A light-client origin has no committee: each destination Gateway follows the origin's sync
committee with an on-chain light client (`EthereumLightClient`) and proves each message by a
Merkle-Patricia receipt proof against a stored execution header (`EthereumInbox`). The relayer:

- reads what a destination's light client stores (`StoredHeaders`, `LightClientReader`);
- fetches light-client updates from a beacon node and verifies them with its own light client
  before any is sent (`LightClientOrigin.updates_to_reach`), so a lying beacon node cannot make a
  submitter pay for an update the contract refuses;
- builds each message's receipt proof from the execution RPC, checked against the receipts root
  the destination light client stored (through the parent-hash walk from that block when the
  message's block is older), before it is delivered (`LightClientOrigin.prove_message`).

Adapters implement these (`adapters.ethereum.lightclient_origin`, `adapters.evm.lightclient_reads`);
the stages see only these types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from relay.chains import SubmittedBatch
from relay.verify.message import Message


@dataclass(frozen=True)
class StoredHeaders:
    """What one destination's light client of an origin stores (its views, read together)."""

    latest_block: int  # latestExecutionBlockNumber(): the newest stored execution block
    finalized_slot: int  # finalizedSlot()
    period: int  # currentPeriod()
    has_next_committee: bool  # hasNextSyncCommittee()


@dataclass(frozen=True)
class HeaderUpdate:
    """A light-client update that the relayer's own light client verified, ready to submit.

    `payload` is the ABI-encoded arguments of `EthereumLightClient.submitUpdate` (no selector),
    encoded by the origin's adapter (a finality update as a full update with no next committee).
    """

    payload: bytes
    finalized_slot: int
    finalized_block: int  # the execution block number the update finalizes
    attested_period: int
    carries_next_committee: bool


@dataclass(frozen=True)
class ReceiptProof:
    """A receipt's inclusion proof as `EthereumInbox` takes it.

    `block_number`: a block the destination light client stores; `headers`: RLP execution headers
    from that block back by parent hash to the message's block (empty when the message's block is
    stored itself; the stored block's header first, the message's block's last);
    `transaction_index`: the receipt's index in its block (its trie key); `nodes`: the trie
    nodes, root first.
    """

    block_number: int
    headers: tuple[bytes, ...]
    transaction_index: int
    nodes: tuple[bytes, ...]


def share_trie_nodes(proofs: Sequence[ReceiptProof], *, headers: bool = True) -> list[ReceiptProof]:
    """`proofs` as `EthereumInbox`'s batch takes them most cheaply: a trie node or a header equal
    to the previous proof's at the same position is sent empty (the inbox reads it as that one,
    still checked), so the proofs of one block send their shared upper nodes once, and the proofs
    walking back from one stored block send the walk's shared headers once (about 600 bytes each
    on mainnet, where a message is usually 0-31 blocks below a stored epoch boundary).
    `headers=False` shares the nodes only (a measurement's comparison). Keep the order, and share
    after the batch is final, since an empty entry refers to the proof before it."""
    shared = []
    previous: ReceiptProof | None = None
    for proof in proofs:
        walk = _share(proof.headers, previous.headers) if headers and previous is not None else proof.headers
        nodes = _share(proof.nodes, previous.nodes) if previous is not None else tuple(proof.nodes)
        shared.append(ReceiptProof(proof.block_number, tuple(walk), proof.transaction_index, nodes))
        previous = proof
    return shared


def _share(parts: Sequence[bytes], previous: Sequence[bytes]) -> tuple[bytes, ...]:
    """`parts` with each entry equal to `previous`'s at the same position emptied."""
    return tuple(
        b"" if position < len(previous) and part == previous[position] else bytes(part)
        for position, part in enumerate(parts)
    )


@dataclass(frozen=True)
class ProvenReceipt:
    """A message proven by its receipt, against a stored header of the destination light client."""

    proof: ReceiptProof
    log_index: int  # the Dispatch log's position within its receipt


@dataclass(frozen=True)
class ReceiptDelivery:
    """One message of a receipt-proof batch: which proof holds it, its log, and its handle gas."""

    message: Message
    proof_index: int
    log_index: int
    gas_limit: int


class LightClientReader(Protocol):
    """A destination chain's light client of one origin, read without a key."""

    def stored_headers(self) -> StoredHeaders:
        """The light client's stored state; raises `TransientError` if the chain does not answer."""
        ...

    def execution_header(self, block_number: int) -> tuple[bytes, bytes] | None:
        """(block hash, receipts root) stored for `block_number`, None if not stored."""
        ...


class LightClientOrigin(Protocol):
    """The relayer's trust-nothing view of a light-client origin (beacon node + execution RPC)."""

    def updates_to_reach(self, block_number: int, stored: StoredHeaders) -> Sequence[HeaderUpdate]:
        """Verified updates that take a light client in state `stored` to a finalized block at or
        after `block_number`, in submission order; empty when the origin has not finalized it yet.

        Raises `TransientError` when a node does not answer, `InvalidProof` when what it served
        does not verify (nothing of it is returned)."""
        ...

    def prove_message(
        self,
        message_id: bytes,
        block_number: int,
        anchor_block: int,
        anchor_hash: bytes,
        anchor_receipts_root: bytes,
    ) -> ProvenReceipt:
        """The receipt proof of message `message_id`, dispatched in `block_number`, against the
        stored header `anchor_block` (`anchor_hash`, `anchor_receipts_root`), checked off-chain.

        Raises `TransientError` (a node away), `InvalidProof` subclasses when the node's answers
        do not verify against the anchor (an untrusted node lied: not the message's fault), and
        `MessageNotInBlock` when the proven receipts hold no such message."""
        ...


class LightClientDestination(Protocol):
    """A submitter's destination chain that serves light-client origins (`chain.light_client_origins`)."""

    def submit_light_client_update(self, origin: int, update: HeaderUpdate) -> tuple[bytes, StoredHeaders]:
        """Send `EthereumLightClient.submitUpdate` unless not needed: (transaction hash or b"", the
        light client's state afterwards). `InvalidProof` when the light client refuses it."""
        ...

    def deliver_by_receipt(
        self, origin: int, proofs: Sequence[ReceiptProof], deliveries: Sequence[ReceiptDelivery]
    ) -> SubmittedBatch:
        """One `deliverFromEthereumBatch` for the deliveries not yet delivered; report each."""
        ...


class LightClientSubmitter(Protocol):
    """A destination submitter that serves the light-client RPCs (`DestinationService`)."""

    def submit_light_client_update(
        self, origin: int, update: HeaderUpdate, timeout: float
    ) -> tuple[bytes, int]:
        """(transaction hash, or b"" when the light client did not need it; the light client's
        latest stored execution block afterwards). Raises `TransientError`, or `PermanentError`
        when the light client refuses the update."""
        ...

    def deliver_by_receipt(
        self,
        origin: int,
        proofs: Sequence[ReceiptProof],
        deliveries: Sequence[ReceiptDelivery],
        timeout: float,
    ) -> object:
        """Start one `deliverFromEthereumBatch`; returns a `relay.peers.PendingDelivery`."""
        ...
