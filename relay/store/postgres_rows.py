"""Rows of the PostgreSQL store to records and back, and the SQL fragments that go with them.

The tables have the columns of the SQLite store's, so most mapping is shared with
`relay.store.sqlite_rows` (observed messages, checkpoints, signatures, transactions). What
differs lives here: the `%s` placeholders of psycopg, and the message columns with the delivery
claim (owner, expiry, fencing token). Pure functions; no connection.
"""

from __future__ import annotations

from typing import Any

from relay.lifecycle import MessageState
from relay.store.base import MessageFilter, MessageRecord, Transition
from relay.store.sqlite_rows import transition_assignments as sqlite_transition_assignments
from relay.verify.message import Message

Row = tuple[Any, ...]

MESSAGE_COLUMNS = (
    "seq, encoded, state, attempts, next_attempt_at, last_error, error_reason, source_block, source_block_hash,"
    " source_tx, log_index, destination_tx, checkpoint_id, branch, observed_at, final_at, attested_at,"
    " verified_at, submitted_at, delivered_at, updated_at, id, malformed_reason, claim_owner, claim_expires,"
    " fence"
)

CLAIM_STATES = (MessageState.VERIFIED.value, MessageState.RETRYING.value)
"""States a message can be claimed for delivery in."""

HELD_STATES = (MessageState.SUBMITTED.value, *CLAIM_STATES)
"""States in which a claim is still renewable (claimed, or sent and waiting for its outcome)."""

PENDING_STATES = tuple(s.value for s in MessageState if s.is_pending)

REQUEUE_ERROR = "the delivery claim expired: another replica (or a restart) takes the message over"
REQUEUE_REASON = "LeaseExpired"


def message_record(r: Row) -> MessageRecord:
    """The record of a `messages` row selected with `MESSAGE_COLUMNS`."""
    branch = bytes(r[13])
    return MessageRecord(
        message=Message.decode(bytes(r[1])),
        state=MessageState(r[2]),
        attempts=int(r[3]),
        next_attempt_at=float(r[4]),
        last_error=str(r[5]),
        error_reason=str(r[6]),
        source_block=int(r[7]),
        source_block_hash=bytes(r[8]),
        source_transaction=bytes(r[9]),
        log_index=int(r[10]),
        destination_transaction=bytes(r[11]),
        checkpoint_id=None if r[12] is None else int(r[12]),
        branch=tuple(branch[i : i + 32] for i in range(0, len(branch), 32)),
        observed_at=float(r[14]),
        final_at=float(r[15]),
        attested_at=float(r[16]),
        verified_at=float(r[17]),
        submitted_at=float(r[18]),
        delivered_at=float(r[19]),
        updated_at=float(r[20]),
        sequence=int(r[0]),
        malformed_reason=str(r[22]),
        leaf_id=bytes(r[21]) if r[22] else b"",
        claim_owner=str(r[23]),
        claim_expires=float(r[24]),
        fence=int(r[25]),
    )


def transition_assignments(transition: Transition, now: float) -> tuple[list[str], list[Any]]:
    """The `SET` assignments (with `%s` placeholders) and parameters of a transition's row update.

    The SQLite store's assignments, plus the end of the claim when the message leaves SUBMITTED
    (the fence stays: a late writer holding it is still refused).
    """
    sets, params = sqlite_transition_assignments(transition, now)
    sets = [s.replace("?", "%s") for s in sets]
    if transition.old is MessageState.SUBMITTED and not any(s.startswith("claim_owner") for s in sets):
        sets += ["claim_owner = ''", "claim_expires = 0"]
    return sets, params


def filter_sql(where: MessageFilter) -> tuple[list[str], list[Any]]:
    """The `WHERE` clauses (to be joined with AND) and parameters selecting `where`'s messages."""
    clauses: list[str] = []
    params: list[Any] = []
    if where.states:
        clauses.append("state = ANY(%s)")
        params.append(sorted(s.value for s in where.states))
    if where.origin:
        clauses.append("origin = %s")
        params.append(where.origin)
    if where.destination:
        clauses.append("destination = %s")
        params.append(where.destination)
    if where.checkpoint_id is not None:
        clauses.append("checkpoint_id = %s")
        params.append(where.checkpoint_id)
    return clauses, params


NOTIFY_CHANNEL = "relay_messages"
NOTIFY_PAYLOAD_LIMIT = 7900  # bytes; PostgreSQL's limit is 8000
_ID_HEX_LENGTH = 64


def notification_payloads(ids: list[bytes]) -> list[str]:
    """The NOTIFY payloads announcing `ids`: hex ids joined by commas, each payload under the limit."""
    payloads: list[str] = []
    current: list[str] = []
    size = 0
    for message_id in ids:
        text = bytes(message_id).hex()
        if current and size + 1 + len(text) > NOTIFY_PAYLOAD_LIMIT:
            payloads.append(",".join(current))
            current, size = [], 0
        current.append(text)
        size += len(text) + (1 if len(current) > 1 else 0)
    if current:
        payloads.append(",".join(current))
    return payloads


def parse_notification(payload: str) -> list[bytes]:
    """The ids a NOTIFY payload announces; `ValueError` for anything but comma-separated 32-byte
    hex ids (anyone who can connect to the database can NOTIFY on the channel)."""
    if len(payload) > NOTIFY_PAYLOAD_LIMIT or not payload:
        raise ValueError("notification payload empty or too long")
    ids = []
    for part in payload.split(","):
        if len(part) != _ID_HEX_LENGTH:
            raise ValueError("notification payload holds something other than a message id")
        ids.append(bytes.fromhex(part))
    return ids
