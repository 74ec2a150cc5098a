"""The store interface: what the relayer keeps durably, independent of the database.

Every state change is one row update in one transaction, checked against the lifecycle table
(`relay.lifecycle.verify_transition`) and against the state the caller expects (`StaleState` if
another writer moved the message first). Records are plain frozen dataclasses; the back ends
(`relay.store.sqlite.SqliteStore`, `relay.store.postgres.PostgresStore`) share the conformance suite in
tests/conformance/test_store.py (a back end joins it with one entry in its `STORE_BACKENDS`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from relay.chains import Cursor, ObservedMessage
from relay.lifecycle import LeaseLost, MessageState, StaleState
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
    # The delivery claim (docs/adr/0007-replicas-leases-fencing.md): which replica holds the
    # message, until when, and the fencing token of the latest claim (0: never claimed).
    claim_owner: str = ""
    claim_expires: float = 0.0
    fence: int = 0

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
    # The fencing token of the caller's claim (`MessageRecord.fence` as claimed): the store applies
    # the transition only if the message still carries it, else raises `LeaseLost`. None: unfenced.
    fence: int | None = None


@dataclass(frozen=True)
class Lease:
    """A named lease as held by `owner` until `expires_at`, with its fencing token.

    Names: "source/<domain>" (one watcher per origin), "replica/<replica id>" (one live process
    per replica id). `fence` grows by one every time the lease changes hands, never on renewal.
    """

    name: str
    owner: str
    fence: int
    expires_at: float


StateListener = Callable[[Sequence[bytes]], None]
"""Called after a commit with the ids whose state changed (for RelayService.WatchMessages)."""


def transition_refusal(transition: Transition, row: Sequence[object] | None) -> StaleState:
    """Why `transition` matched no row, given the message's current (state, fence) row or None:
    `LeaseLost` if it carries another fence than the transition's, else `StaleState`."""
    if row is not None and transition.fence is not None and int(str(row[1])) != transition.fence:
        return LeaseLost(
            "the message's delivery claim moved on to another holder",
            id=bytes(transition.id),
            fence=transition.fence,
            current_fence=int(str(row[1])),
        )
    return StaleState(
        "message is not in the expected state",
        id=bytes(transition.id),
        expected=transition.old.name,
        actual=None if row is None else MessageState(str(row[0])).name,
    )


REQUEUED_REASON = "LeaseExpired"
"""`error_reason` of a SUBMITTED message `requeue_submitted` took back (its claim expired)."""
REQUEUED_ERROR = "the delivery claim expired: another replica (or a restart) takes the message over"


MAX_SIGNATURES_PER_ATTESTOR = 256
"""Signatures kept per (origin, attestor address); an honest attestor needs a handful at a time."""


class Store(ABC):
    """Durable relayer state. Thread-safe; each method is one transaction.

    Writes used by the source stages (`insert_observed`, `mark_final`, `remove_orphans`,
    `drop_unconfirmed`, `apply_transitions`, `attest_messages`, `save_cursor`) take an optional
    `lease`: given, the write happens only if that lease still carries the same fencing token, in
    the same transaction, else `LeaseLost` and nothing is written.
    """

    max_signatures_per_attestor: int = MAX_SIGNATURES_PER_ATTESTOR
    shared: bool = False
    """True if several relayer processes may use this store at once (PostgreSQL); False if one
    process owns it (SQLite): restart recovery may then take over every claim, expired or not."""

    # --- messages -------------------------------------------------------------------------

    @abstractmethod
    def insert_observed(
        self, observed: Iterable[ObservedMessage], now: float, *, lease: Lease | None = None
    ) -> tuple[list[bytes], list[bytes]]:
        """Insert new messages as OBSERVED; ids already stored are left alone (idempotent).

        A malformed leaf (`ObservedMessage.malformed_reason`) is stored like any other, under its
        leaf id, with `error_reason` "MalformedMessage" and `last_error` saying why from the
        start (the prover rejects it once a checkpoint covering it verifies).

        Returns (new ids, conflicting ids): a conflicting id has the (origin, nonce) of another
        stored message, which only a reorg the watcher did not report can cause; it is not stored.
        """

    @abstractmethod
    def mark_final(
        self, origin: int, finalized_block: int, now: float, *, lease: Lease | None = None
    ) -> list[bytes]:
        """Move OBSERVED messages of `origin` at or below `finalized_block` to FINAL; return their ids."""

    @abstractmethod
    def remove_orphans(
        self, ids: Iterable[bytes], *, lease: Lease | None = None
    ) -> tuple[list[bytes], list[bytes]]:
        """Delete orphaned messages that are still OBSERVED.

        Returns (removed, refused): ids past OBSERVED are never removed (after FINAL a reorg
        cannot happen by definition; a conflicting report is an alert for the caller to raise).
        """

    @abstractmethod
    def drop_unconfirmed(self, origin: int, from_nonce: int, *, lease: Lease | None = None) -> list[bytes]:
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
    def apply_transitions(
        self, transitions: Sequence[Transition], now: float, *, lease: Lease | None = None
    ) -> None:
        """Apply every transition in one transaction, or none of them.

        Raises `IllegalTransition` for a move the lifecycle forbids, `StaleState` if a message
        is not in its `old` state (or missing), `LeaseLost` if a transition's `fence` is not the
        message's (or `lease` moved on). A transition out of SUBMITTED ends the message's claim
        (owner and expiry cleared; the fence stays, so a late writer still holding the old one is
        refused).
        """

    def apply_transition(self, transition: Transition, now: float, *, lease: Lease | None = None) -> None:
        """One transition (its own transaction)."""
        self.apply_transitions([transition], now, lease=lease)

    # --- checkpoints and signatures ---------------------------------------------------------

    @abstractmethod
    def save_certificate(self, checkpoint: Checkpoint, certificate: QuorumCertificate, now: float) -> int:
        """Store a certified checkpoint (idempotent on the checkpoint); return its id."""

    @abstractmethod
    def get_certificate(self, checkpoint_id: int) -> CertifiedCheckpoint | None:
        """A stored certified checkpoint."""

    @abstractmethod
    def attest_messages(
        self,
        checkpoint: Checkpoint,
        certificate: QuorumCertificate,
        ids: Sequence[bytes],
        now: float,
        *,
        lease: Lease | None = None,
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
    def save_cursor(self, domain: int, cursor: Cursor, *, lease: Lease | None = None) -> None:
        """Persist the watcher cursor of `domain`."""

    # --- hand-overs -------------------------------------------------------------------------

    @abstractmethod
    def save_handover(self, origin: int, epoch: int, document: str, now: float) -> bool:
        """Keep a verified hand-over certificate of `origin` to `epoch` (its JSON document); False
        if one for that epoch was kept before (the first one stays)."""

    @abstractmethod
    def handovers(self, origin: int) -> list[tuple[int, str]]:
        """Every kept hand-over of `origin` as (epoch, JSON document), oldest epoch first."""

    # --- leases and claims (several replicas on one store; docs/adr/0007) ------------------

    @abstractmethod
    def acquire_lease(self, name: str, owner: str, now: float, ttl: float) -> Lease | None:
        """Take or renew the lease `name` for `owner` until `now + ttl`.

        Free, expired, or already `owner`'s: returned held (a renewal keeps the fence; taking it
        from another owner, or from nobody, gives fence = previous + 1, the first being 1). Held
        by another owner and not expired: None, nothing changed.
        """

    @abstractmethod
    def release_lease(self, lease: Lease, now: float) -> bool:
        """Give `lease` up (expire it now) if it still carries `lease.fence`; True if released."""

    @abstractmethod
    def leases(self, prefix: str = "") -> list[Lease]:
        """Every lease whose name starts with `prefix` (held or expired), by name."""

    @abstractmethod
    def claim_messages(self, ids: Sequence[bytes], owner: str, now: float, ttl: float) -> list[MessageRecord]:
        """Claim for delivery those of `ids` that are VERIFIED or RETRYING and not claimed by a live
        claim (`claim_expires <= now`, or already `owner`'s).

        Each claimed message gets `claim_owner = owner`, `claim_expires = now + ttl` and a new
        fencing token (`fence`, unique and increasing across the store). Rows another transaction
        holds locked are skipped, not waited for (PostgreSQL: FOR UPDATE SKIP LOCKED). Returns the
        claimed records as they are now, in the order of `ids`.
        """

    @abstractmethod
    def renew_claims(self, fences: Mapping[bytes, int], owner: str, now: float, ttl: float) -> set[bytes]:
        """Extend to `now + ttl` the claims of `owner` that still carry their fence (id -> fence)
        and have not ended; return the ids still held."""

    @abstractmethod
    def release_claims(self, fences: Mapping[bytes, int], owner: str) -> int:
        """End the claims of `owner` that still carry their fence (claimed but not sent); how many."""

    @abstractmethod
    def requeue_submitted(
        self, now: float, *, expired_only: bool = True, destination: int | None = None, limit: int = 1000
    ) -> list[bytes]:
        """SUBMITTED messages whose claim expired (every SUBMITTED one if not `expired_only`), at most
        `limit`: move them to RETRYING due now (`error_reason` "LeaseExpired"), with a new fence and
        no owner, so the replica that sent them can no longer record an outcome. Returns their ids.
        Rows another transaction holds locked are skipped."""

    # --- notification and lifetime ----------------------------------------------------------

    @abstractmethod
    def add_listener(self, listener: StateListener) -> None:
        """Call `listener(ids)` after each commit that changed message states (a listener that
        raises is ignored: it cannot undo the commit or keep other listeners from hearing it).

        A shared store (PostgreSQL) reports every replica's commits (LISTEN/NOTIFY), its own
        included, each once, shortly after the commit. An empty `ids` means changes may have been
        missed (its notification connection was lost and is back): re-read whatever is watched."""

    @abstractmethod
    def remove_listener(self, listener: StateListener) -> None:
        """Stop calling `listener`."""

    @abstractmethod
    def close(self) -> None:
        """Release the database."""
