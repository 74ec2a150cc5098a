"""The embedded store: one SQLite file in WAL mode.

Durability: `journal_mode=WAL` with `synchronous=FULL`, so a committed transaction survives
`kill -9` (and power loss); an interrupted one leaves no trace. One connection is shared by all
threads behind a lock, and every public method is exactly one transaction (`BEGIN IMMEDIATE` ...
`COMMIT`), so a state transition is always one atomic row update. The schema is created on open
(`relay.store.sqlite_schema`, whose `PRAGMA user_version` guards against opening a newer file with
older code); rows are mapped to records by `relay.store.sqlite_rows`. This module keeps the
connection, the transactions and the queries.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from relay.chains import Cursor, ObservedMessage
from relay.errors import ConfigurationError
from relay.lifecycle import MessageState, verify_transition
from relay.store.base import (
    REQUEUED_ERROR,
    REQUEUED_REASON,
    UNCONFIRMED_STATES,
    CertifiedCheckpoint,
    Lease,
    MessageRecord,
    SignatureRecord,
    StateListener,
    Store,
    SubmittedTransaction,
    Transition,
    transition_refusal,
)
from relay.store.reads import MessageReads
from relay.store.sqlite_leases import acquire_lease, check_lease, next_fence
from relay.store.sqlite_rows import (
    CHECKPOINT_COLUMNS,
    MESSAGE_COLUMNS,
    OBSERVED_COLUMNS,
    SIGNATURE_COLUMNS,
    TRANSACTION_COLUMNS,
    certified_checkpoint,
    message_record,
    observed_row,
    signature_record,
    signature_row,
    submitted_transaction,
    transaction_row,
    transition_assignments,
)
from relay.store.sqlite_schema import prepare_database
from relay.verify.committee import Checkpoint, QuorumCertificate


class SqliteStore(MessageReads, Store):
    """`Store` on one SQLite file (WAL). Safe to share between threads.

    `shared=True` declares that several relayer processes use the file at once (replicas on one
    host, tests of replicas): restart recovery then takes over only expired delivery claims. WAL
    and `BEGIN IMMEDIATE` serialise their writes.
    """

    def __init__(self, path: str | Path, *, timeout: float = 30.0, shared: bool = False) -> None:
        self.shared = shared
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
            prepare_database(self._db, self.path)

    # --- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, lease: Lease | None = None) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise ConfigurationError("the store is closed", path=self.path)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if lease is not None:
                    check_lease(self._db, lease)
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
        self, observed: Iterable[ObservedMessage], now: float, *, lease: Lease | None = None
    ) -> tuple[list[bytes], list[bytes]]:
        new: list[bytes] = []
        conflicts: list[bytes] = []
        with self._transaction(lease) as db:
            for item in observed:
                message = item.message
                row = db.execute(
                    "SELECT id FROM messages WHERE id = ? OR (origin = ? AND nonce = ?)",
                    (item.id, message.origin, message.nonce),
                ).fetchall()
                if row:
                    if all(bytes(r[0]) != item.id for r in row):
                        conflicts.append(item.id)
                    continue
                values = observed_row(item, now)
                db.execute(
                    f"INSERT INTO messages ({OBSERVED_COLUMNS}) VALUES ({', '.join('?' for _ in values)})",
                    values,
                )
                new.append(item.id)
        self._notify(new)
        return new, conflicts

    def mark_final(
        self, origin: int, finalized_block: int, now: float, *, lease: Lease | None = None
    ) -> list[bytes]:
        with self._transaction(lease) as db:
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

    def remove_orphans(
        self, ids: Iterable[bytes], *, lease: Lease | None = None
    ) -> tuple[list[bytes], list[bytes]]:
        removed: list[bytes] = []
        refused: list[bytes] = []
        with self._transaction(lease) as db:
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

    def drop_unconfirmed(self, origin: int, from_nonce: int, *, lease: Lease | None = None) -> list[bytes]:
        states = [s.value for s in UNCONFIRMED_STATES]
        marks = ", ".join("?" for _ in states)
        with self._transaction(lease) as db:
            where = f"origin = ? AND nonce >= ? AND state IN ({marks})"
            ids = [
                bytes(r[0])
                for r in db.execute(
                    f"SELECT id FROM messages WHERE {where} ORDER BY nonce", (origin, from_nonce, *states)
                )
            ]
            db.execute(f"DELETE FROM messages WHERE {where}", (origin, from_nonce, *states))
        self._notify(ids)
        return ids

    def apply_transitions(
        self, transitions: Sequence[Transition], now: float, *, lease: Lease | None = None
    ) -> None:
        if not transitions:
            return
        with self._transaction(lease) as db:
            for transition in transitions:
                self._apply(db, transition, now)
        self._notify([t.id for t in transitions])

    def _apply(self, db: sqlite3.Connection, transition: Transition, now: float) -> None:
        verify_transition(transition.old, transition.new)
        sets, params = transition_assignments(transition, now)
        sql = f"UPDATE messages SET {', '.join(sets)} WHERE id = ? AND state = ?"
        params += [bytes(transition.id), transition.old.value]
        if transition.fence is not None:
            sql += " AND fence = ?"
            params.append(transition.fence)
        cursor = db.execute(sql, params)
        if cursor.rowcount != 1:
            row = db.execute(
                "SELECT state, fence FROM messages WHERE id = ?", (bytes(transition.id),)
            ).fetchone()
            raise transition_refusal(transition, row)

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
        rows = self._read(f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE id = ?", (checkpoint_id,))
        return certified_checkpoint(rows[0]) if rows else None

    def attest_messages(
        self,
        checkpoint: Checkpoint,
        certificate: QuorumCertificate,
        ids: Sequence[bytes],
        now: float,
        *,
        lease: Lease | None = None,
    ) -> int:
        with self._transaction(lease) as db:
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
        with self._transaction() as db:
            cursor = db.execute(
                f"INSERT INTO signatures ({SIGNATURE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                # A valid copy replaces a rejected one (a replay of the member's signature under a
                # wrong public key must not shadow the member's own); anything else keeps the first.
                " ON CONFLICT DO UPDATE SET public_key = excluded.public_key, attestor = excluded.attestor,"
                " rejected_reason = '', received_at = excluded.received_at"
                " WHERE signatures.rejected_reason != '' AND excluded.rejected_reason = ''",
                signature_row(record),
            )
            if cursor.rowcount != 1:
                return False
            # The attestor's rows beyond its bound, lowest index (then oldest) first.
            pruned = db.execute(
                "DELETE FROM signatures WHERE rowid IN (SELECT rowid FROM signatures"
                " WHERE origin = ? AND attestor = ? ORDER BY idx DESC, received_at DESC, rowid DESC"
                " LIMIT -1 OFFSET ?)",
                (record.checkpoint.origin, record.attestor, self.max_signatures_per_attestor),
            )
            if not pruned.rowcount:
                return True
            c = record.checkpoint  # by key, not rowid: an upsert that updated a row sets no lastrowid
            kept = db.execute(
                "SELECT 1 FROM signatures WHERE origin = ? AND gateway = ? AND epoch = ? AND root = ?"
                " AND idx = ? AND signer_index = ? AND signature = ?",
                (c.origin, c.gateway, c.epoch, c.root, c.index, record.signer_index, record.signature),
            ).fetchone()
            return kept is not None

    def prune_signatures(self, origin: int, below_index: int) -> int:
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM signatures WHERE origin = ? AND idx < ?", (origin, below_index))
            return int(cursor.rowcount)

    def signatures_for(self, origin: int, min_index: int, valid_only: bool = True) -> list[SignatureRecord]:
        sql = f"SELECT {SIGNATURE_COLUMNS} FROM signatures WHERE origin = ? AND idx >= ?"
        if valid_only:
            sql += " AND rejected_reason = ''"
        rows = self._read(sql + " ORDER BY idx, signer_index", (origin, min_index))
        return [signature_record(r) for r in rows]

    # --- transactions -----------------------------------------------------------------------

    def record_transaction(self, transaction: SubmittedTransaction) -> None:
        t = transaction
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO transactions ({TRANSACTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                transaction_row(t),
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
            result.append(submitted_transaction(r, tuple(bytes(i[0]) for i in ids)))
        return result

    # --- cursors ----------------------------------------------------------------------------

    def load_cursor(self, domain: int) -> Cursor | None:
        rows = self._read("SELECT block_number, block_hash FROM cursors WHERE domain = ?", (domain,))
        return Cursor(int(rows[0][0]), bytes(rows[0][1])) if rows else None

    def save_cursor(self, domain: int, cursor: Cursor, *, lease: Lease | None = None) -> None:
        with self._transaction(lease) as db:
            db.execute(
                "INSERT INTO cursors (domain, block_number, block_hash, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (domain) DO UPDATE SET block_number = excluded.block_number,"
                " block_hash = excluded.block_hash, updated_at = excluded.updated_at",
                (domain, cursor.block_number, bytes(cursor.block_hash), time.time()),
            )

    # --- hand-overs ---------------------------------------------------------------------------

    def save_handover(self, origin: int, epoch: int, document: str, now: float) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO handovers (origin, epoch, document, saved_at) VALUES (?, ?, ?, ?)",
                (origin, epoch, document, now),
            )
            return cursor.rowcount > 0

    def handovers(self, origin: int) -> list[tuple[int, str]]:
        rows = self._read("SELECT epoch, document FROM handovers WHERE origin = ? ORDER BY epoch", (origin,))
        return [(int(row[0]), str(row[1])) for row in rows]

    # --- leases and claims ---------------------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, now: float, ttl: float) -> Lease | None:
        with self._transaction() as db:
            return acquire_lease(db, name, owner, now, ttl)

    def release_lease(self, lease: Lease, now: float) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ? AND fence = ?",
                (now, lease.name, lease.owner, lease.fence),
            )
            return cursor.rowcount == 1

    def leases(self, prefix: str = "") -> list[Lease]:
        rows = self._read(
            "SELECT name, owner, fence, expires_at FROM leases WHERE substr(name, 1, ?) = ? ORDER BY name",
            (len(prefix), prefix),
        )
        return [Lease(str(r[0]), str(r[1]), int(r[2]), float(r[3])) for r in rows]

    def claim_messages(self, ids: Sequence[bytes], owner: str, now: float, ttl: float) -> list[MessageRecord]:
        claimable = (MessageState.VERIFIED.value, MessageState.RETRYING.value)
        claimed: list[MessageRecord] = []
        with self._transaction() as db:
            for message_id in dict.fromkeys(bytes(i) for i in ids):
                fence = next_fence(db)
                cursor = db.execute(
                    "UPDATE messages SET claim_owner = ?, claim_expires = ?, fence = ?"
                    " WHERE id = ? AND state IN (?, ?) AND (claim_expires <= ? OR claim_owner = ?)",
                    (owner, now + ttl, fence, message_id, *claimable, now, owner),
                )
                if cursor.rowcount != 1:
                    continue
                row = db.execute(
                    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
                ).fetchone()
                claimed.append(message_record(row))
        return claimed

    def renew_claims(self, fences: Mapping[bytes, int], owner: str, now: float, ttl: float) -> set[bytes]:
        held: set[bytes] = set()
        states = (MessageState.VERIFIED.value, MessageState.RETRYING.value, MessageState.SUBMITTED.value)
        with self._transaction() as db:
            for message_id, fence in fences.items():
                cursor = db.execute(
                    "UPDATE messages SET claim_expires = ? WHERE id = ? AND fence = ? AND claim_owner = ?"
                    " AND state IN (?, ?, ?)",
                    (now + ttl, bytes(message_id), fence, owner, *states),
                )
                if cursor.rowcount == 1:
                    held.add(bytes(message_id))
        return held

    def release_claims(self, fences: Mapping[bytes, int], owner: str) -> int:
        released = 0
        with self._transaction() as db:
            for message_id, fence in fences.items():
                cursor = db.execute(
                    "UPDATE messages SET claim_owner = '', claim_expires = 0"
                    " WHERE id = ? AND fence = ? AND claim_owner = ?",
                    (bytes(message_id), fence, owner),
                )
                released += cursor.rowcount
        return released

    def requeue_submitted(
        self, now: float, *, expired_only: bool = True, destination: int | None = None, limit: int = 1000
    ) -> list[bytes]:
        sql = "SELECT id FROM messages WHERE state = ?"
        params: list[Any] = [MessageState.SUBMITTED.value]
        if expired_only:
            sql += " AND claim_expires <= ?"
            params.append(now)
        if destination is not None:
            sql += " AND destination = ?"
            params.append(destination)
        requeued: list[bytes] = []
        with self._transaction() as db:
            for row in db.execute(sql + " ORDER BY seq LIMIT ?", [*params, limit]).fetchall():
                db.execute(
                    "UPDATE messages SET state = ?, next_attempt_at = ?, last_error = ?, error_reason = ?,"
                    " claim_owner = '', claim_expires = 0, fence = ?, updated_at = ? WHERE id = ?",
                    (
                        MessageState.RETRYING.value,
                        now,
                        REQUEUED_ERROR,
                        REQUEUED_REASON,
                        next_fence(db),
                        now,
                        bytes(row[0]),
                    ),
                )
                requeued.append(bytes(row[0]))
        self._notify(requeued)
        return requeued

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
