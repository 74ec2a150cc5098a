"""The store interface: what the relayer keeps durably, independent of the database.

Every state change is one row update in one transaction, checked against the lifecycle table
(`relay.lifecycle.verify_transition`) and against the state the caller expects (`StaleState` if
another writer moved the message first). Records are plain frozen dataclasses; the back ends
(`relay.store.sqlite.SqliteStore`, later PostgreSQL) share the conformance suite in
tests/conformance/test_store.py (a back end joins it with one entry in its `STORE_BACKENDS`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from relay.chains import Cursor, ObservedMessage
from relay.lifecycle import MessageState
from relay.verify.committee import Checkpoint, QuorumCertificate
from relay.verify.message import Message

# Timestamps are unix seconds (float); 0.0 means "not reached yet".

UNCONFIRMED_STATES = frozenset({MessageState.OBSERVED, MessageState.FINAL, MessageState.ATTESTED})
"""States of a message no verified proof has used yet: only these may be dropped and re-read."""

CONFIRMED_STATES = frozenset(
    {
        MessageState.VERIFIED,
        MessageState.SUBMITTED,
        MessageState.DELIVERED,
        MessageState.RETRYING,
        MessageState.PARKED,
    }
)
"""States reached only through a Merkle branch verified under a committee root."""


@dataclass(frozen=True)
class MessageRecord:
    """One message as the relayer tracks it."""

    message: Message
    state: MessageState
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str = ""
    error_reason: str = ""  # the RelayError class name of the last failure, for counting
    source_block: int = 0
    source_block_hash: bytes = b""
    source_transaction: bytes = b""
    log_index: int = 0
    destination_transaction: bytes = b""
    checkpoint_id: int | None = None
    branch: tuple[bytes, ...] = ()  # the verified Merkle branch under the checkpoint's root
    observed_at: float = 0.0
    final_at: float = 0.0
    attested_at: float = 0.0
    verified_at: float = 0.0
    submitted_at: float = 0.0
    delivered_at: float = 0.0
    updated_at: float = 0.0
    sequence: int = 0  # insertion order; the keyset for paging
    # A leaf whose message did not decode (see `relay.chains.ObservedMessage`): why, and its id;
    # `message` is then a stand-in with the header fields that could be read and an empty body.
    malformed_reason: str = ""
    leaf_id: bytes = b""

    @property
    def id(self) -> bytes:
        """The message id (for a malformed leaf: the id its Dispatch log named)."""
        return self.leaf_id or self.message.id

    @property
    def is_malformed(self) -> bool:
        """Whether this is a leaf without a decodable message (it can only be rejected)."""
        return bool(self.malformed_reason)


@dataclass(frozen=True)
class CertifiedCheckpoint:
    """A checkpoint with the quorum certificate the relayer aggregated for it."""

    checkpoint_id: int
    checkpoint: Checkpoint
    certificate: QuorumCertificate
    created_at: float = 0.0


@dataclass(frozen=True)
class SignatureRecord:
    """One attestor's signature over a checkpoint, as received; `rejected_reason` if it failed checks."""

    checkpoint: Checkpoint
    signer_index: int
    public_key: bytes
    signature: bytes
    attestor: str = ""
    rejected_reason: str = ""
    received_at: float = 0.0


@dataclass(frozen=True)
class SubmittedTransaction:
    """One delivery transaction a submitter reported."""

    transaction_hash: bytes
    destination: int
    checkpoint_id: int | None
    message_ids: tuple[bytes, ...]
    block_number: int = 0
    gas_used: int = 0
    submitted_at: float = 0.0


@dataclass(frozen=True)
class MessageFilter:
    """Which messages a listing returns; empty/zero fields match everything."""

    states: frozenset[MessageState] = field(default_factory=frozenset)
    origin: int = 0
    destination: int = 0
    checkpoint_id: int | None = None


@dataclass(frozen=True)
class Page:
    """One page of a listing, newest first; `next_token` is "" on the last page."""

    records: list[MessageRecord]
    next_token: str = ""


@dataclass(frozen=True)
class Transition:
    """One requested state change: `id` from `old` to `new`, with column updates.

    `updates` may set: attempts, next_attempt_at, last_error, error_reason, destination_transaction,
    checkpoint_id, branch. The timestamp of the new state (e.g. `delivered_at`) and `updated_at`
    are set by the store.
    """

    id: bytes
    old: MessageState
    new: MessageState
    updates: dict[str, object] = field(default_factory=dict)


StateListener = Callable[[Sequence[bytes]], None]
"""Called after a commit with the ids whose state changed (for RelayService.WatchMessages)."""


MAX_SIGNATURES_PER_ATTESTOR = 256
"""Signatures kept per (origin, attestor address); an honest attestor needs a handful at a time."""


class Store(ABC):
    """Durable relayer state. Thread-safe; each method is one transaction."""

    max_signatures_per_attestor: int = MAX_SIGNATURES_PER_ATTESTOR

    # --- messages -------------------------------------------------------------------------

    @abstractmethod
    def insert_observed(
        self, observed: Iterable[ObservedMessage], now: float
    ) -> tuple[list[bytes], list[bytes]]:
        """Insert new messages as OBSERVED; ids already stored are left alone (idempotent).

        A malformed leaf (`ObservedMessage.malformed_reason`) is stored like any other, under its
        leaf id, with `error_reason` "MalformedMessage" and `last_error` saying why from the
        start (the prover rejects it once a checkpoint covering it verifies).

        Returns (new ids, conflicting ids): a conflicting id has the (origin, nonce) of another
        stored message, which only a reorg the watcher did not report can cause; it is not stored.
        """

    @abstractmethod
    def mark_final(self, origin: int, finalized_block: int, now: float) -> list[bytes]:
        """Move OBSERVED messages of `origin` at or below `finalized_block` to FINAL; return their ids."""

    @abstractmethod
    def remove_orphans(self, ids: Iterable[bytes]) -> tuple[list[bytes], list[bytes]]:
        """Delete orphaned messages that are still OBSERVED.

        Returns (removed, refused): ids past OBSERVED are never removed (after FINAL a reorg
        cannot happen by definition; a conflicting report is an alert for the caller to raise).
        """

    @abstractmethod
    def drop_unconfirmed(self, origin: int, from_nonce: int) -> list[bytes]:
        """Delete the messages of `origin` from `from_nonce` on that no proof used yet; return their ids.

        Only `UNCONFIRMED_STATES` (OBSERVED, FINAL, ATTESTED) are deleted: the relayer re-reads
        them from the chain when a committee checkpoint showed its tree wrong. A message past
        them was verified against a committee root and is never dropped.
        """

    @abstractmethod
    def highest_nonce(self, origin: int, states: Iterable[MessageState]) -> int | None:
        """The highest nonce of a message of `origin` in one of `states`, or None."""

    @abstractmethod
    def get(self, message_id: bytes) -> MessageRecord | None:
        """One message by id."""

    @abstractmethod
    def list_messages(self, where: MessageFilter, limit: int, page_token: str = "") -> Page:
        """Messages matching `where`, newest first, `limit` per page (keyset paging)."""

    @abstractmethod
    def messages_in_state(
        self,
        state: MessageState,
        origin: int | None = None,
        destination: int | None = None,
        limit: int = 1000,
    ) -> list[MessageRecord]:
        """Messages in `state` (optionally of one origin / destination), by origin then nonce."""

    @abstractmethod
    def due_for_retry(
        self, now: float, destination: int | None = None, limit: int = 1000
    ) -> list[MessageRecord]:
        """RETRYING messages (optionally to one destination) whose `next_attempt_at` has passed, soonest first."""

    @abstractmethod
    def message_ids_by_nonce(self, origin: int, from_nonce: int = 0) -> list[tuple[int, bytes]]:
        """(nonce, id) of the stored messages of `origin` from `from_nonce` on, nonce order (the Merkle tree)."""

    @abstractmethod
    def lowest_nonce(self, origin: int, state: MessageState) -> int | None:
        """The lowest nonce of a message of `origin` in `state`, or None."""

    @abstractmethod
    def count_by_state(self, origin: int | None = None) -> dict[MessageState, int]:
        """How many messages are in each state."""

    @abstractmethod
    def count_by_route_and_state(self) -> dict[tuple[int, int, MessageState], int]:
        """How many messages per (origin, destination, state)."""

    @abstractmethod
    def count_rejections(self) -> dict[str, int]:
        """REJECTED messages by reason."""

    @abstractmethod
    def oldest_by_route(self, states: Iterable[MessageState]) -> dict[tuple[int, int], float]:
        """Per (origin, destination): the earliest `observed_at` among messages in `states`."""

    @abstractmethod
    def oldest_pending(self) -> MessageRecord | None:
        """The pending (not DELIVERED/REJECTED/PARKED) message observed longest ago."""

    @abstractmethod
    def apply_transitions(self, transitions: Sequence[Transition], now: float) -> None:
        """Apply every transition in one transaction, or none of them.

        Raises `IllegalTransition` for a move the lifecycle forbids, `StaleState` if a message
        is not in its `old` state (or missing).
        """

    def apply_transition(self, transition: Transition, now: float) -> None:
        """One transition (its own transaction)."""
        self.apply_transitions([transition], now)

    # --- checkpoints and signatures ---------------------------------------------------------

    @abstractmethod
    def save_certificate(self, checkpoint: Checkpoint, certificate: QuorumCertificate, now: float) -> int:
        """Store a certified checkpoint (idempotent on the checkpoint); return its id."""

    @abstractmethod
    def get_certificate(self, checkpoint_id: int) -> CertifiedCheckpoint | None:
        """A stored certified checkpoint."""

    @abstractmethod
    def attest_messages(
        self, checkpoint: Checkpoint, certificate: QuorumCertificate, ids: Sequence[bytes], now: float
    ) -> int:
        """Store the certificate and move `ids` FINAL -> ATTESTED pointing at it, in one transaction."""

    @abstractmethod
    def save_signature(self, record: SignatureRecord) -> bool:
        """Store an attestor's signature once per (checkpoint, signer, signature); True if written and kept.

        Keyed by the signature too, so a forgery sent under a member's index first never displaces
        the member's own signature. Storing the same signature again keeps the first verdict, except
        that a valid copy replaces a rejected one: the same signature bytes replayed first under a
        wrong public key (rejected) must not shadow the member's own, valid copy.
        Bounded per attestor: at most `max_signatures_per_attestor` rows per (origin, attestor
        address); beyond it the lowest indexes (the oldest first among equal indexes) are forgotten,
        so an attestor signing endless distinct checkpoints only ever crowds out its own rows.
        """

    @abstractmethod
    def prune_signatures(self, origin: int, below_index: int) -> int:
        """Forget signatures over checkpoints of `origin` with index < `below_index`; return how many."""

    @abstractmethod
    def signatures_for(self, origin: int, min_index: int, valid_only: bool = True) -> list[SignatureRecord]:
        """Stored signatures over checkpoints of `origin` with index >= `min_index`."""

    # --- transactions -----------------------------------------------------------------------

    @abstractmethod
    def record_transaction(self, transaction: SubmittedTransaction) -> None:
        """Remember a delivery transaction (idempotent on its hash)."""

    @abstractmethod
    def transactions_for(self, message_id: bytes) -> list[SubmittedTransaction]:
        """Delivery transactions that carried `message_id`."""

    # --- cursors (relay.chains.CursorStore) --------------------------------------------------

    @abstractmethod
    def load_cursor(self, domain: int) -> Cursor | None:
        """The watcher cursor of `domain`."""

    @abstractmethod
    def save_cursor(self, domain: int, cursor: Cursor) -> None:
        """Persist the watcher cursor of `domain`."""

    # --- hand-overs -------------------------------------------------------------------------

    @abstractmethod
    def save_handover(self, origin: int, epoch: int, document: str, now: float) -> bool:
        """Keep a verified hand-over certificate of `origin` to `epoch` (its JSON document); False
        if one for that epoch was kept before (the first one stays)."""

    @abstractmethod
    def handovers(self, origin: int) -> list[tuple[int, str]]:
        """Every kept hand-over of `origin` as (epoch, JSON document), oldest epoch first."""

    # --- notification and lifetime ----------------------------------------------------------

    @abstractmethod
    def add_listener(self, listener: StateListener) -> None:
        """Call `listener(ids)` after each commit that changed message states (a listener that
        raises is ignored: it cannot undo the commit or keep other listeners from hearing it)."""

    @abstractmethod
    def remove_listener(self, listener: StateListener) -> None:
        """Stop calling `listener`."""

    @abstractmethod
    def close(self) -> None:
        """Release the database."""
