"""Signatures, delivery transactions, watcher cursors and hand-overs on PostgreSQL.

A mixin of `relay.store.postgres.PostgresStore` (kept apart so each module reads in one sitting): the
records beside the messages, with the SQLite store's semantics (`relay.store.base.Store`). The
signature bound forgets an attestor's lowest indexes first, then its oldest rows (`seq`, the
insertion order SQLite's rowid gives).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from relay.chains import Cursor
from relay.store.base import MAX_SIGNATURES_PER_ATTESTOR, Lease, SignatureRecord, SubmittedTransaction
from relay.store.sqlite_rows import (
    SIGNATURE_COLUMNS,
    TRANSACTION_COLUMNS,
    signature_record,
    signature_row,
    submitted_transaction,
    transaction_row,
)

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

_SIGNATURE_MARKS = ", ".join("%s" for _ in SIGNATURE_COLUMNS.split(","))
_TRANSACTION_MARKS = ", ".join("%s" for _ in TRANSACTION_COLUMNS.split(","))


class RecordQueries:
    """Signatures, transactions, cursors and hand-overs (see the module docstring)."""

    max_signatures_per_attestor: int = MAX_SIGNATURES_PER_ATTESTOR
    if TYPE_CHECKING:
        _transaction: Callable[[], AbstractContextManager[psycopg.Connection[TupleRow]]]
        _read: Callable[..., list[TupleRow]]
        _verify_lease: Callable[[psycopg.Connection[TupleRow], Lease | None], None]

    # --- signatures ---------------------------------------------------------------------------

    def save_signature(self, record: SignatureRecord) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                f"INSERT INTO signatures ({SIGNATURE_COLUMNS}) VALUES ({_SIGNATURE_MARKS})"
                " ON CONFLICT (origin, gateway, epoch, root, idx, signer_index, signature)"
                # A valid copy replaces a rejected one (a replay of the member's signature under a
                # wrong public key must not shadow the member's own); anything else keeps the first.
                " DO UPDATE SET public_key = excluded.public_key, attestor = excluded.attestor,"
                " rejected_reason = '', received_at = excluded.received_at"
                " WHERE signatures.rejected_reason <> '' AND excluded.rejected_reason = ''"
                " RETURNING seq",
                signature_row(record),
            )
            row = cursor.fetchone()
            if row is None:
                return False
            # The attestor's rows beyond its bound, lowest index (then oldest) first.
            pruned = db.execute(
                "DELETE FROM signatures WHERE seq IN (SELECT seq FROM signatures"
                " WHERE origin = %s AND attestor = %s ORDER BY idx DESC, received_at DESC, seq DESC"
                " OFFSET %s) RETURNING seq",
                (record.checkpoint.origin, record.attestor, self.max_signatures_per_attestor),
            ).fetchall()
            return all(int(p[0]) != int(row[0]) for p in pruned)

    def prune_signatures(self, origin: int, below_index: int) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM signatures WHERE origin = %s AND idx < %s", (origin, below_index)
            )
            return int(cursor.rowcount)

    def signatures_for(self, origin: int, min_index: int, valid_only: bool = True) -> list[SignatureRecord]:
        sql = f"SELECT {SIGNATURE_COLUMNS} FROM signatures WHERE origin = %s AND idx >= %s"
        if valid_only:
            sql += " AND rejected_reason = ''"
        rows = self._read(sql + " ORDER BY idx, signer_index", (origin, min_index))
        return [signature_record(r) for r in rows]

    # --- transactions -----------------------------------------------------------------------

    def record_transaction(self, transaction: SubmittedTransaction) -> None:
        t = transaction
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO transactions ({TRANSACTION_COLUMNS}) VALUES ({_TRANSACTION_MARKS})"
                " ON CONFLICT DO NOTHING",
                transaction_row(t),
            )
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO transaction_messages (hash, message_id, position) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    [(bytes(t.transaction_hash), bytes(i), n) for n, i in enumerate(t.message_ids)],
                )

    def transactions_for(self, message_id: bytes) -> list[SubmittedTransaction]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT t.hash, t.destination, t.checkpoint_id, t.block_number, t.gas_used, t.submitted_at"
                " FROM transactions t JOIN transaction_messages m ON m.hash = t.hash"
                " WHERE m.message_id = %s ORDER BY t.submitted_at",
                (bytes(message_id),),
            ).fetchall()
            result = []
            for r in rows:
                ids = db.execute(
                    "SELECT message_id FROM transaction_messages WHERE hash = %s ORDER BY position", (r[0],)
                ).fetchall()
                result.append(submitted_transaction(r, tuple(bytes(i[0]) for i in ids)))
        return result

    # --- cursors ----------------------------------------------------------------------------

    def load_cursor(self, domain: int) -> Cursor | None:
        rows = self._read("SELECT block_number, block_hash FROM cursors WHERE domain = %s", (domain,))
        return Cursor(int(rows[0][0]), bytes(rows[0][1])) if rows else None

    def save_cursor(self, domain: int, cursor: Cursor, *, lease: Lease | None = None) -> None:
        with self._transaction() as db:
            self._verify_lease(db, lease)
            db.execute(
                "INSERT INTO cursors (domain, block_number, block_hash, updated_at) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (domain) DO UPDATE SET block_number = excluded.block_number,"
                " block_hash = excluded.block_hash, updated_at = excluded.updated_at",
                (domain, cursor.block_number, bytes(cursor.block_hash), time.time()),
            )

    # --- hand-overs ---------------------------------------------------------------------------

    def save_handover(self, origin: int, epoch: int, document: str, now: float) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO handovers (origin, epoch, document, saved_at) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (origin, epoch, document, now),
            )
            return cursor.rowcount > 0

    def handovers(self, origin: int) -> list[tuple[int, str]]:
        rows = self._read("SELECT epoch, document FROM handovers WHERE origin = %s ORDER BY epoch", (origin,))
        return [(int(row[0]), str(row[1])) for row in rows]
