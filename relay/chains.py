"""What the relay core needs from a chain, as protocols named after roles.

Chain specifics live in `adapters/`; an adapter registry (`relay.adapters_registry`) maps a config
`kind` (e.g. "evm") to a factory. Nothing in `relay/` imports web3.

- `SourceWatcher`: reads a source gateway's Dispatch events by block range, tracks finality, keeps
  a cursor (block number + hash) in a `CursorStore`, detects reorgs before finality.
- `FinalitySource`: what an attestor believes final: the gateway's (root, index) at the finalized
  block.
- `DestinationChain`: what a submitter does to a destination gateway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from relay.verify.committee import Checkpoint, QuorumCertificate
from relay.verify.message import Message


@dataclass(frozen=True)
class Cursor:
    """The last block a watcher processed, with its hash (for reorg detection)."""

    block_number: int
    block_hash: bytes


@dataclass(frozen=True)
class ObservedMessage:
    """A Dispatch event seen on a source chain."""

    message: Message
    block_number: int
    block_hash: bytes
    transaction_hash: bytes
    log_index: int


@dataclass
class WatchUpdate:
    """What one `SourceWatcher.poll()` found.

    `observed`: new Dispatch events (not yet final unless `block_number <= finalized_block`).
    `orphaned_ids`: ids of messages previously reported whose blocks were reorganised away
    (only ever before finality). `finalized_block`/`head_block`: the chain's view at poll time.
    """

    observed: list[ObservedMessage] = field(default_factory=list)
    orphaned_ids: list[bytes] = field(default_factory=list)
    head_block: int = 0
    finalized_block: int = 0
    cursor: Cursor | None = None


class CursorStore(Protocol):
    """Durable cursors per chain (the relayer's store implements it)."""

    def load_cursor(self, domain: int) -> Cursor | None: ...

    def save_cursor(self, domain: int, cursor: Cursor) -> None: ...


class SourceWatcher(Protocol):
    """Watches one source gateway."""

    domain: int

    def poll(self) -> WatchUpdate:
        """Scan from the cursor to the head (bounded range), persist the cursor, report."""
        ...

    def block_hash(self, number: int) -> bytes | None:
        """The canonical block hash at `number` now, or None if there is no such block yet."""
        ...


class FinalitySource(Protocol):
    """An attestor's view of what is final on its source chain."""

    domain: int
    gateway: bytes

    def finalized_checkpoint_state(self) -> tuple[bytes, int] | None:
        """(root, count) of the source gateway's tree at the finalized block; None if empty."""
        ...


@dataclass(frozen=True)
class DeliveryItem:
    """One message with its Merkle branch under the batch's checkpoint root."""

    message: Message
    branch: Sequence[bytes]


@dataclass(frozen=True)
class SubmittedBatch:
    """The receipt-level outcome of one delivery transaction."""

    transaction_hash: bytes
    block_number: int
    gas_used: int
    delivered: list[bytes]
    failed: dict[bytes, str]  # id -> recipient revert reason


class DestinationChain(Protocol):
    """A submitter's hold on one destination gateway."""

    domain: int

    def delivered(self, keys: Sequence[tuple[int, int]]) -> list[bool]:
        """Whether each (origin, nonce) was delivered."""
        ...

    def submit(self, checkpoint: Checkpoint, certificate: QuorumCertificate,
               items: Sequence[DeliveryItem]) -> SubmittedBatch:
        """Send one delivery transaction, wait for the receipt, report per message."""
        ...
