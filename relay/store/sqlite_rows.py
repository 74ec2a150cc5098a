"""Rows of the SQLite store to records and back, and the SQL fragments that go with them.

Each table's column list sits here next to the function that reads a row of it into the record
of `relay.store.base` (or turns a record into the parameters of its INSERT), so a column added
to `relay.store.sqlite_schema` is mapped in one place. `relay.store.sqlite.SqliteStore` keeps
the transactions and queries; these functions are pure and touch no connection.
"""

from __future__ import annotations

import sqlite3
import struct
from typing import Any

from relay.chains import ObservedMessage
from relay.lifecycle import MessageState
from relay.store.base import (
    CertifiedCheckpoint,
    MessageFilter,
    MessageRecord,
    SignatureRecord,
    SubmittedTransaction,
    Transition,
)
from relay.verify.committee import Checkpoint, QuorumCertificate
from relay.verify.message import Message

Row = sqlite3.Row | tuple[Any, ...]

# --- messages -------------------------------------------------------------------------------

MESSAGE_COLUMNS = (
    "seq, encoded, state, attempts, next_attempt_at, last_error, error_reason, source_block, source_block_hash,"
    " source_tx, log_index, destination_tx, checkpoint_id, branch, observed_at, final_at, attested_at,"
    " verified_at, submitted_at, delivered_at, updated_at, id, malformed_reason, claim_owner, claim_expires, fence"
)

# The column that records when a message reached each state.
_STATE_TIMESTAMP = {
    MessageState.FINAL: "final_at",
    MessageState.ATTESTED: "attested_at",
    MessageState.VERIFIED: "verified_at",
    MessageState.SUBMITTED: "submitted_at",
    MessageState.DELIVERED: "delivered_at",
}

# Columns a transition may set, with how to store the value.
_UPDATABLE = {
    "attempts": int,
    "next_attempt_at": float,
    "last_error": str,
    "error_reason": str,
    "destination_transaction": bytes,
    "checkpoint_id": lambda v: None if v is None else int(v),
    "branch": lambda v: b"".join(v),
}
_COLUMN = {"destination_transaction": "destination_tx"}


_FULL_BRANCH = struct.Struct("32s" * 32)  # a stored branch: 32 nodes of 32 bytes


def split_branch(stored: bytes) -> tuple[bytes, ...]:
    """The nodes of a stored branch (one C call for the usual full one: rows are read by thousands)."""
    if len(stored) == _FULL_BRANCH.size:
        return tuple(_FULL_BRANCH.unpack(stored))
    return tuple(stored[i : i + 32] for i in range(0, len(stored), 32))


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
        branch=split_branch(branch),
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


OBSERVED_COLUMNS = (
    "id, origin, destination, nonce, encoded, state, source_block,"
    " source_block_hash, source_tx, log_index, observed_at, updated_at,"
    " malformed_reason, last_error, error_reason"
)

MALFORMED_ERROR_REASON = "MalformedMessage"
"""`error_reason` of a malformed leaf (the name of `relay.errors.MalformedMessage`)."""


def observed_row(item: ObservedMessage, now: float) -> tuple[Any, ...]:
    """The parameters inserting a newly observed message under `OBSERVED_COLUMNS`.

    A malformed leaf keeps its stand-in's encoding (header, empty body) under its leaf id, and
    its explanation in `last_error` / `error_reason` from the start.
    """
    message = item.message
    malformed = item.malformed_reason
    return (
        item.id,
        message.origin,
        message.destination,
        message.nonce,
        message.encode(),
        MessageState.OBSERVED.value,
        item.block_number,
        bytes(item.block_hash),
        bytes(item.transaction_hash),
        item.log_index,
        now,
        now,
        malformed,
        f"{MALFORMED_ERROR_REASON}: {malformed}" if malformed else "",
        MALFORMED_ERROR_REASON if malformed else "",
    )


def transition_assignments(transition: Transition, now: float) -> tuple[list[str], list[Any]]:
    """The `SET` assignments and their parameters for a transition's row update.

    Sets the state, `updated_at`, the new state's timestamp column, and each of the transition's
    updates; ends the delivery claim of a message leaving SUBMITTED (the fence stays); raises
    `ValueError` for an update naming a column a transition may not set.
    """
    sets = ["state = ?", "updated_at = ?"]
    params: list[Any] = [transition.new.value, now]
    if transition.old is MessageState.SUBMITTED and transition.new is not MessageState.SUBMITTED:
        sets += ["claim_owner = ''", "claim_expires = 0"]
    stamp = _STATE_TIMESTAMP.get(transition.new)
    if stamp is not None:
        sets.append(f"{stamp} = ?")
        params.append(now)
    for name, value in transition.updates.items():
        convert = _UPDATABLE.get(name)
        if convert is None:
            raise ValueError(f"a transition cannot set {name!r}")
        sets.append(f"{_COLUMN.get(name, name)} = ?")
        params.append(convert(value))  # type: ignore[operator]
    return sets, params


def filter_sql(where: MessageFilter) -> tuple[list[str], list[Any]]:
    """The `WHERE` clauses (to be joined with AND) and parameters selecting `where`'s messages."""
    clauses: list[str] = []
    params: list[Any] = []
    if where.states:
        clauses.append(f"state IN ({', '.join('?' for _ in where.states)})")
        params.extend(sorted(s.value for s in where.states))
    if where.origin:
        clauses.append("origin = ?")
        params.append(where.origin)
    if where.destination:
        clauses.append("destination = ?")
        params.append(where.destination)
    if where.checkpoint_id is not None:
        clauses.append("checkpoint_id = ?")
        params.append(where.checkpoint_id)
    return clauses, params


# --- checkpoints and signatures -------------------------------------------------------------

CHECKPOINT_COLUMNS = "id, origin, gateway, epoch, root, idx, signers, signature, created_at"


def certified_checkpoint(r: Row) -> CertifiedCheckpoint:
    """The record of a `checkpoints` row selected with `CHECKPOINT_COLUMNS`."""
    checkpoint = Checkpoint(int(r[1]), bytes(r[2]), int(r[3]), bytes(r[4]), int(r[5]))
    return CertifiedCheckpoint(
        int(r[0]), checkpoint, QuorumCertificate(bytes(r[6]), bytes(r[7])), float(r[8])
    )


SIGNATURE_COLUMNS = (
    "origin, gateway, epoch, root, idx, signer_index, public_key, signature, attestor,"
    " rejected_reason, received_at"
)


def signature_row(record: SignatureRecord) -> tuple[Any, ...]:
    """The parameters inserting `record` under `SIGNATURE_COLUMNS`."""
    c = record.checkpoint
    return (
        c.origin,
        c.gateway,
        c.epoch,
        c.root,
        c.index,
        record.signer_index,
        bytes(record.public_key),
        bytes(record.signature),
        record.attestor,
        record.rejected_reason,
        record.received_at,
    )


def signature_record(r: Row) -> SignatureRecord:
    """The record of a `signatures` row selected with `SIGNATURE_COLUMNS`."""
    return SignatureRecord(
        Checkpoint(int(r[0]), bytes(r[1]), int(r[2]), bytes(r[3]), int(r[4])),
        int(r[5]),
        bytes(r[6]),
        bytes(r[7]),
        str(r[8]),
        str(r[9]),
        float(r[10]),
    )


# --- transactions ---------------------------------------------------------------------------

TRANSACTION_COLUMNS = "hash, destination, checkpoint_id, block_number, gas_used, submitted_at"


def transaction_row(t: SubmittedTransaction) -> tuple[Any, ...]:
    """The parameters inserting `t` under `TRANSACTION_COLUMNS` (its messages go in another table)."""
    return (
        bytes(t.transaction_hash),
        t.destination,
        t.checkpoint_id,
        t.block_number,
        t.gas_used,
        t.submitted_at,
    )


def submitted_transaction(r: Row, message_ids: tuple[bytes, ...]) -> SubmittedTransaction:
    """The record of a `transactions` row selected with `TRANSACTION_COLUMNS`, and its message ids."""
    return SubmittedTransaction(
        bytes(r[0]),
        int(r[1]),
        None if r[2] is None else int(r[2]),
        message_ids,
        int(r[3]),
        int(r[4]),
        float(r[5]),
    )
