"""The embedded store: one SQLite file in WAL mode.

Durability: `journal_mode=WAL` with `synchronous=FULL`, so a committed transaction survives
`kill -9` (and power loss); an interrupted one leaves no trace. One connection is shared by all
threads behind a lock, and every public method is exactly one transaction (`BEGIN IMMEDIATE` ...
`COMMIT`), so a state transition is always one atomic row update. The schema is created on open;
`schema_version` in `PRAGMA user_version` guards against opening a newer file with older code.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from relay.chains import Cursor, ObservedMessage
from relay.errors import ConfigurationError, MalformedEncoding
from relay.lifecycle import MessageState, StaleState, verify_transition
from relay.store.base import (
    CertifiedCheckpoint,
    MessageFilter,
    MessageRecord,
    Page,
    SignatureRecord,
    StateListener,
    Store,
    SubmittedTransaction,
    Transition,
)
from relay.verify.committee import Checkpoint, QuorumCertificate
from relay.verify.message import Message

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin INTEGER NOT NULL,
    gateway BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    root BLOB NOT NULL,
    idx INTEGER NOT NULL,
    signers BLOB NOT NULL,
    signature BLOB NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (origin, gateway, epoch, root, idx)
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id BLOB NOT NULL UNIQUE,
    origin INTEGER NOT NULL,
    destination INTEGER NOT NULL,
    nonce INTEGER NOT NULL,
    encoded BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    error_reason TEXT NOT NULL DEFAULT '',
    source_block INTEGER NOT NULL DEFAULT 0,
    source_block_hash BLOB NOT NULL DEFAULT x'',
    source_tx BLOB NOT NULL DEFAULT x'',
    log_index INTEGER NOT NULL DEFAULT 0,
    destination_tx BLOB NOT NULL DEFAULT x'',
    checkpoint_id INTEGER REFERENCES checkpoints(id),
    branch BLOB NOT NULL DEFAULT x'',
    observed_at REAL NOT NULL DEFAULT 0,
    final_at REAL NOT NULL DEFAULT 0,
    attested_at REAL NOT NULL DEFAULT 0,
    verified_at REAL NOT NULL DEFAULT 0,
    submitted_at REAL NOT NULL DEFAULT 0,
    delivered_at REAL NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL DEFAULT 0,
    UNIQUE (origin, nonce)
);
CREATE INDEX IF NOT EXISTS messages_state ON messages (state, origin, nonce);
CREATE INDEX IF NOT EXISTS messages_retry ON messages (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS messages_route ON messages (origin, destination, seq);
CREATE TABLE IF NOT EXISTS signatures (
    origin INTEGER NOT NULL,
    gateway BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    root BLOB NOT NULL,
    idx INTEGER NOT NULL,
    signer_index INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    signature BLOB NOT NULL,
    attestor TEXT NOT NULL DEFAULT '',
    rejected_reason TEXT NOT NULL DEFAULT '',
    received_at REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (origin, gateway, epoch, root, idx, signer_index, signature)
);
CREATE INDEX IF NOT EXISTS signatures_index ON signatures (origin, idx);
CREATE TABLE IF NOT EXISTS cursors (
    domain INTEGER PRIMARY KEY,
    block_number INTEGER NOT NULL,
    block_hash BLOB NOT NULL,
    updated_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS transactions (
    hash BLOB PRIMARY KEY,
    destination INTEGER NOT NULL,
    checkpoint_id INTEGER,
    block_number INTEGER NOT NULL DEFAULT 0,
    gas_used INTEGER NOT NULL DEFAULT 0,
    submitted_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS transaction_messages (
    hash BLOB NOT NULL,
    message_id BLOB NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (hash, message_id)
);
CREATE INDEX IF NOT EXISTS transaction_messages_id ON transaction_messages (message_id);
"""

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

_PENDING_STATES = tuple(s.value for s in MessageState if s.is_pending)


class SqliteStore(Store):
    """`Store` on one SQLite file (WAL). Safe to share between threads."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise ConfigurationError("cannot open the store", path=self.path, cause=str(error)) from error
        self._lock = threading.RLock()
        self._listeners: list[StateListener] = []
        self._closed = False
        with self._lock:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if self.path != ":memory:" and str(mode).lower() != "wal":
                raise ConfigurationError("the store needs SQLite WAL mode", path=self.path, mode=mode)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ConfigurationError(
                    "the store was written by a newer relay",
                    path=self.path,
                    version=version,
                    supported=SCHEMA_VERSION,
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # --- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise ConfigurationError("the store is closed", path=self.path)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            if self._closed:
                raise ConfigurationError("the store is closed", path=self.path)
            return list(self._db.execute(sql, params).fetchall())

    def _notify(self, ids: Sequence[bytes]) -> None:
        if not ids:
            return
        for listener in list(self._listeners):
            try:
                listener(ids)
            except Exception:  # noqa: BLE001, S110 - a broken watcher must not break the store
                pass

    # --- messages ---------------------------------------------------------------------------

    def insert_observed(
        self, observed: Iterable[ObservedMessage], now: float
    ) -> tuple[list[bytes], list[bytes]]:
        new: list[bytes] = []
        conflicts: list[bytes] = []
        with self._transaction() as db:
            for item in observed:
                message = item.message
                row = db.execute(
                    "SELECT id FROM messages WHERE id = ? OR (origin = ? AND nonce = ?)",
                    (message.id, message.origin, message.nonce),
                ).fetchall()
                if row:
                    if all(bytes(r[0]) != message.id for r in row):
                        conflicts.append(message.id)
                    continue
                db.execute(
                    "INSERT INTO messages (id, origin, destination, nonce, encoded, state, source_block,"
                    " source_block_hash, source_tx, log_index, observed_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        message.id,
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
                    ),
                )
                new.append(message.id)
        self._notify(new)
        return new, conflicts

    def mark_final(self, origin: int, finalized_block: int, now: float) -> list[bytes]:
        with self._transaction() as db:
            ids = [
                bytes(r[0])
                for r in db.execute(
                    "SELECT id FROM messages WHERE state = ? AND origin = ? AND source_block <= ? ORDER BY nonce",
                    (MessageState.OBSERVED.value, origin, finalized_block),
                )
            ]
            db.executemany(
                "UPDATE messages SET state = ?, final_at = ?, updated_at = ? WHERE id = ? AND state = ?",
                [(MessageState.FINAL.value, now, now, i, MessageState.OBSERVED.value) for i in ids],
            )
        self._notify(ids)
        return ids

    def remove_orphans(self, ids: Iterable[bytes]) -> tuple[list[bytes], list[bytes]]:
        removed: list[bytes] = []
        refused: list[bytes] = []
        with self._transaction() as db:
            for message_id in ids:
                row = db.execute("SELECT state FROM messages WHERE id = ?", (bytes(message_id),)).fetchone()
                if row is None:
                    continue
                if row[0] != MessageState.OBSERVED.value:
                    refused.append(bytes(message_id))
                    continue
                db.execute(
                    "DELETE FROM messages WHERE id = ? AND state = ?",
                    (bytes(message_id), MessageState.OBSERVED.value),
                )
                removed.append(bytes(message_id))
        return removed, refused

    def get(self, message_id: bytes) -> MessageRecord | None:
        rows = self._read(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (bytes(message_id),))
        return _message_record(rows[0]) if rows else None

    def list_messages(self, where: MessageFilter, limit: int, page_token: str = "") -> Page:
        if limit <= 0:
            raise MalformedEncoding("page size must be positive", limit=limit)
        clauses, params = _filter_sql(where)
        if page_token:
            if not page_token.isdecimal() or len(page_token) > 19:
                raise MalformedEncoding("page token is not one this relayer issued", page_token=page_token)
            clauses.append("seq < ?")
            params.append(int(page_token))
        sql = f"SELECT {_MESSAGE_COLUMNS} FROM messages"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY seq DESC LIMIT ?"
        rows = self._read(sql, [*params, limit + 1])
        records = [_message_record(r) for r in rows[:limit]]
        token = str(records[-1].sequence) if len(rows) > limit else ""
        return Page(records, token)

    def messages_in_state(
        self,
        state: MessageState,
        origin: int | None = None,
        destination: int | None = None,
        limit: int = 1000,
    ) -> list[MessageRecord]:
        sql = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE state = ?"
        params: list[Any] = [state.value]
        if origin is not None:
            sql += " AND origin = ?"
            params.append(origin)
        if destination is not None:
            sql += " AND destination = ?"
            params.append(destination)
        sql += " ORDER BY origin, nonce LIMIT ?"
        return [_message_record(r) for r in self._read(sql, [*params, limit])]

    def due_for_retry(
        self, now: float, destination: int | None = None, limit: int = 1000
    ) -> list[MessageRecord]:
        sql = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE state = ? AND next_attempt_at <= ?"
        params: list[Any] = [MessageState.RETRYING.value, now]
        if destination is not None:
            sql += " AND destination = ?"
            params.append(destination)
        rows = self._read(sql + " ORDER BY next_attempt_at, seq LIMIT ?", [*params, limit])
        return [_message_record(r) for r in rows]

    def message_ids_by_nonce(self, origin: int, from_nonce: int = 0) -> list[tuple[int, bytes]]:
        rows = self._read(
            "SELECT nonce, id FROM messages WHERE origin = ? AND nonce >= ? ORDER BY nonce",
            (origin, from_nonce),
        )
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def lowest_nonce(self, origin: int, state: MessageState) -> int | None:
        rows = self._read(
            "SELECT MIN(nonce) FROM messages WHERE origin = ? AND state = ?", (origin, state.value)
        )
        return None if rows[0][0] is None else int(rows[0][0])

    def count_by_state(self, origin: int | None = None) -> dict[MessageState, int]:
        sql = "SELECT state, COUNT(*) FROM messages"
        params: list[Any] = []
        if origin is not None:
            sql += " WHERE origin = ?"
            params.append(origin)
        rows = self._read(sql + " GROUP BY state", params)
        return {MessageState(r[0]): int(r[1]) for r in rows}

    def count_by_route_and_state(self) -> dict[tuple[int, int, MessageState], int]:
        rows = self._read("SELECT origin, destination, state, COUNT(*) FROM messages GROUP BY 1, 2, 3")
        return {(int(r[0]), int(r[1]), MessageState(r[2])): int(r[3]) for r in rows}

    def count_rejections(self) -> dict[str, int]:
        rows = self._read(
            "SELECT error_reason, COUNT(*) FROM messages WHERE state = ? GROUP BY error_reason",
            (MessageState.REJECTED.value,),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def oldest_by_route(self, states: Iterable[MessageState]) -> dict[tuple[int, int], float]:
        values = sorted(s.value for s in states)
        if not values:
            return {}
        marks = ", ".join("?" for _ in values)
        rows = self._read(
            f"SELECT origin, destination, MIN(observed_at) FROM messages WHERE state IN ({marks}) GROUP BY 1, 2",
            values,
        )
        return {(int(r[0]), int(r[1])): float(r[2]) for r in rows}

    def oldest_pending(self) -> MessageRecord | None:
        marks = ", ".join("?" for _ in _PENDING_STATES)
        rows = self._read(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE state IN ({marks}) ORDER BY observed_at, seq LIMIT 1",
            _PENDING_STATES,
        )
        return _message_record(rows[0]) if rows else None

    def apply_transitions(self, transitions: Sequence[Transition], now: float) -> None:
        if not transitions:
            return
        with self._transaction() as db:
            for transition in transitions:
                self._apply(db, transition, now)
        self._notify([t.id for t in transitions])

    def _apply(self, db: sqlite3.Connection, transition: Transition, now: float) -> None:
        verify_transition(transition.old, transition.new)
        sets = ["state = ?", "updated_at = ?"]
        params: list[Any] = [transition.new.value, now]
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
        cursor = db.execute(
            f"UPDATE messages SET {', '.join(sets)} WHERE id = ? AND state = ?",
            [*params, bytes(transition.id), transition.old.value],
        )
        if cursor.rowcount != 1:
            row = db.execute("SELECT state FROM messages WHERE id = ?", (bytes(transition.id),)).fetchone()
            raise StaleState(
                "message is not in the expected state",
                id=bytes(transition.id),
                expected=transition.old.name,
                actual=None if row is None else MessageState(row[0]).name,
            )

    # --- checkpoints and signatures ---------------------------------------------------------

    def save_certificate(self, checkpoint: Checkpoint, certificate: QuorumCertificate, now: float) -> int:
        with self._transaction() as db:
            return self._save_certificate(db, checkpoint, certificate, now)

    def _save_certificate(
        self, db: sqlite3.Connection, checkpoint: Checkpoint, certificate: QuorumCertificate, now: float
    ) -> int:
        key = (checkpoint.origin, checkpoint.gateway, checkpoint.epoch, checkpoint.root, checkpoint.index)
        db.execute(
            "INSERT INTO checkpoints (origin, gateway, epoch, root, idx, signers, signature, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (*key, certificate.signers, certificate.signature, now),
        )
        row = db.execute(
            "SELECT id FROM checkpoints WHERE origin = ? AND gateway = ? AND epoch = ? AND root = ? AND idx = ?",
            key,
        ).fetchone()
        return int(row[0])

    def get_certificate(self, checkpoint_id: int) -> CertifiedCheckpoint | None:
        rows = self._read(
            "SELECT id, origin, gateway, epoch, root, idx, signers, signature, created_at"
            " FROM checkpoints WHERE id = ?",
            (checkpoint_id,),
        )
        if not rows:
            return None
        r = rows[0]
        checkpoint = Checkpoint(int(r[1]), bytes(r[2]), int(r[3]), bytes(r[4]), int(r[5]))
        return CertifiedCheckpoint(
            int(r[0]), checkpoint, QuorumCertificate(bytes(r[6]), bytes(r[7])), float(r[8])
        )

    def attest_messages(
        self, checkpoint: Checkpoint, certificate: QuorumCertificate, ids: Sequence[bytes], now: float
    ) -> int:
        with self._transaction() as db:
            checkpoint_id = self._save_certificate(db, checkpoint, certificate, now)
            for message_id in ids:
                self._apply(
                    db,
                    Transition(
                        message_id,
                        MessageState.FINAL,
                        MessageState.ATTESTED,
                        {"checkpoint_id": checkpoint_id},
                    ),
                    now,
                )
        self._notify(list(ids))
        return checkpoint_id

    def save_signature(self, record: SignatureRecord) -> bool:
        c = record.checkpoint
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO signatures (origin, gateway, epoch, root, idx, signer_index, public_key, signature,"
                " attestor, rejected_reason, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (
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
                ),
            )
            return cursor.rowcount == 1

    def prune_signatures(self, origin: int, below_index: int) -> int:
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM signatures WHERE origin = ? AND idx < ?", (origin, below_index))
            return int(cursor.rowcount)

    def signatures_for(self, origin: int, min_index: int, valid_only: bool = True) -> list[SignatureRecord]:
        sql = (
            "SELECT origin, gateway, epoch, root, idx, signer_index, public_key, signature, attestor,"
            " rejected_reason, received_at FROM signatures WHERE origin = ? AND idx >= ?"
        )
        if valid_only:
            sql += " AND rejected_reason = ''"
        rows = self._read(sql + " ORDER BY idx, signer_index", (origin, min_index))
        return [
            SignatureRecord(
                Checkpoint(int(r[0]), bytes(r[1]), int(r[2]), bytes(r[3]), int(r[4])),
                int(r[5]),
                bytes(r[6]),
                bytes(r[7]),
                str(r[8]),
                str(r[9]),
                float(r[10]),
            )
            for r in rows
        ]

    # --- transactions -----------------------------------------------------------------------

    def record_transaction(self, transaction: SubmittedTransaction) -> None:
        t = transaction
        with self._transaction() as db:
            db.execute(
                "INSERT INTO transactions (hash, destination, checkpoint_id, block_number, gas_used, submitted_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    bytes(t.transaction_hash),
                    t.destination,
                    t.checkpoint_id,
                    t.block_number,
                    t.gas_used,
                    t.submitted_at,
                ),
            )
            db.executemany(
                "INSERT INTO transaction_messages (hash, message_id, position) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [(bytes(t.transaction_hash), bytes(i), n) for n, i in enumerate(t.message_ids)],
            )

    def transactions_for(self, message_id: bytes) -> list[SubmittedTransaction]:
        rows = self._read(
            "SELECT t.hash, t.destination, t.checkpoint_id, t.block_number, t.gas_used, t.submitted_at"
            " FROM transactions t JOIN transaction_messages m ON m.hash = t.hash"
            " WHERE m.message_id = ? ORDER BY t.submitted_at",
            (bytes(message_id),),
        )
        result = []
        for r in rows:
            ids = self._read(
                "SELECT message_id FROM transaction_messages WHERE hash = ? ORDER BY position", (r[0],)
            )
            result.append(
                SubmittedTransaction(
                    bytes(r[0]),
                    int(r[1]),
                    None if r[2] is None else int(r[2]),
                    tuple(bytes(i[0]) for i in ids),
                    int(r[3]),
                    int(r[4]),
                    float(r[5]),
                )
            )
        return result

    # --- cursors ----------------------------------------------------------------------------

    def load_cursor(self, domain: int) -> Cursor | None:
        rows = self._read("SELECT block_number, block_hash FROM cursors WHERE domain = ?", (domain,))
        return Cursor(int(rows[0][0]), bytes(rows[0][1])) if rows else None

    def save_cursor(self, domain: int, cursor: Cursor) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO cursors (domain, block_number, block_hash, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (domain) DO UPDATE SET block_number = excluded.block_number,"
                " block_hash = excluded.block_hash, updated_at = excluded.updated_at",
                (domain, cursor.block_number, bytes(cursor.block_hash), time.time()),
            )

    # --- notification and lifetime ----------------------------------------------------------

    def add_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: StateListener) -> None:
        try:
            self._listeners.remove(listener)
        except ValueError:
            pass

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()


_MESSAGE_COLUMNS = (
    "seq, encoded, state, attempts, next_attempt_at, last_error, error_reason, source_block, source_block_hash,"
    " source_tx, log_index, destination_tx, checkpoint_id, branch, observed_at, final_at, attested_at,"
    " verified_at, submitted_at, delivered_at, updated_at"
)


def _message_record(r: sqlite3.Row | tuple[Any, ...]) -> MessageRecord:
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
    )


def _filter_sql(where: MessageFilter) -> tuple[list[str], list[Any]]:
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
