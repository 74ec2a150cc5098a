"""The shared store: PostgreSQL, for several relayer replicas on one database.

Same contract as the embedded SQLite store (tests/conformance/test_store.py and
test_store_leases.py run both), with what sharing needs:
- every public method is one transaction on a pooled connection (psycopg_pool, each connection
  checked on checkout), at READ COMMITTED: each write re-checks the state it expects in its
  `WHERE`, so a second writer gets `StaleState` (or `LeaseLost` under a moved fence);
- claims and requeues lock their rows with `FOR UPDATE SKIP LOCKED`, so two replicas never take
  the same message and never wait on each other; lease-guarded writes read their lease
  `FOR SHARE`, so a takeover waits until a write under the old fence has committed;
- a lost connection (server restart) raises `StoreUnavailable`; the pool reconnects by itself;
- every state change also NOTIFYs its ids, heard by every replica's listener thread
  (`relay.store.postgres_notify`), this one's included, each commit once.

Leases and claims are in `relay.store.postgres_claims`, signatures, transactions, cursors and
hand-overs in `relay.store.postgres_records` (mixins of this class).

The schema is never changed by opening: `relay store migrate` does it (`relay.store.postgres_schema`),
and opening refuses an unmigrated or newer database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from relay.chains import ObservedMessage
from relay.errors import ConfigurationError, StoreUnavailable
from relay.lifecycle import LeaseLost, MessageState, StaleState, verify_transition
from relay.store.base import (
    UNCONFIRMED_STATES,
    CertifiedCheckpoint,
    Lease,
    StateListener,
    Store,
    Transition,
    transition_refusal,
)
from relay.store.postgres_claims import ClaimQueries
from relay.store.postgres_connect import connect, connection_parameters, describe_dsn, store_unavailable
from relay.store.postgres_notify import NotificationListener
from relay.store.postgres_records import RecordQueries
from relay.store.postgres_rows import (
    NOTIFY_CHANNEL,
    notification_payloads,
    transition_assignments,
)
from relay.store.postgres_schema import verify_schema
from relay.store.reads import MessageReads
from relay.store.sqlite_rows import (
    CHECKPOINT_COLUMNS,
    OBSERVED_COLUMNS,
    certified_checkpoint,
    observed_row,
)
from relay.verify.committee import Checkpoint, QuorumCertificate

Connection = psycopg.Connection[TupleRow]

POOL_TIMEOUT_SECONDS = 10.0  # how long a call waits for a connection before `StoreUnavailable`
# How long the pool retries one lost connection (backing off 1, 2, 4 s) before giving it up; the
# next call then asks for a fresh one at once. psycopg_pool's default (5 minutes) doubles its
# delay up to minutes: after an outage of a minute the store would stay away for another one.
RECONNECT_TIMEOUT_SECONDS = 5.0

_OBSERVED_MARKS = ", ".join("%s" for _ in OBSERVED_COLUMNS.split(","))


class PostgresStore(MessageReads, ClaimQueries, RecordQueries, Store):
    """`Store` on a PostgreSQL database migrated by `relay store migrate`. Safe to share between
    threads and between processes (replicas)."""

    shared = True

    def __init__(
        self,
        dsn: str,
        *,
        password: str | None = None,
        pool_min: int = 1,
        pool_max: int = 8,
        timeout: float = POOL_TIMEOUT_SECONDS,
    ) -> None:
        self.dsn = dsn
        self._password = password
        parameters = connection_parameters(dsn, password)  # refuses an inline password
        with connect(dsn, password) as connection:
            verify_schema(connection, dsn)
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            dsn,
            kwargs=parameters,
            min_size=pool_min,
            max_size=pool_max,
            timeout=timeout,
            reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
            check=ConnectionPool.check_connection,
            name="relay-store",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except psycopg.OperationalError as error:
            self._pool.close()
            raise store_unavailable(dsn, error) from error
        self._listeners: list[StateListener] = []
        self._listeners_lock = threading.Lock()
        self._notifications: NotificationListener | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresStore({describe_dsn(self.dsn)!r})"

    # --- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        if self._closed:
            raise ConfigurationError("the store is closed", store=describe_dsn(self.dsn))
        try:
            with self._pool.connection() as connection, connection.transaction():
                yield connection
        except psycopg.errors.TransactionRollback as error:  # a deadlock with another replica
            raise StoreUnavailable(
                "the database rolled the store's transaction back (a conflict with another replica)",
                store=describe_dsn(self.dsn),
                cause=type(error).__name__,
            ) from error
        except psycopg.errors.ReadOnlySqlTransaction as error:
            # A hot standby (a multi-host DSN without target_session_attrs=read-write, or a name
            # still pointing at a demoted primary): transient while the fail-over settles.
            raise StoreUnavailable(
                "the database refuses writes (a standby or a read-only session); point the store at"
                " the primary (target_session_attrs=read-write)",
                store=describe_dsn(self.dsn),
                cause=type(error).__name__,
            ) from error
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedTable) as error:
            raise ConfigurationError(
                "the store's role lacks a right on the store's tables, or they are missing",
                store=describe_dsn(self.dsn),
                cause=type(error).__name__,
            ) from error
        except psycopg.OperationalError as error:
            raise store_unavailable(self.dsn, error) from error

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[TupleRow]:
        """One read-only query; the shared queries' `?` placeholders (`relay.store.reads`) become `%s`."""
        with self._transaction() as connection:
            return connection.execute(sql.replace("?", "%s"), params).fetchall()  # type: ignore[arg-type]

    def _announce(self, connection: Connection, ids: Sequence[bytes]) -> None:
        """NOTIFY `ids` at this transaction's commit (never if it rolls back)."""
        for payload in notification_payloads(list(ids)):
            connection.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, payload))

    def _verify_lease(self, connection: Connection, lease: Lease | None) -> None:
        """`LeaseLost` unless `lease` still holds; its row stays share-locked until the commit,
        so a takeover cannot slip in between this check and the write."""
        if lease is None:
            return
        row = connection.execute(
            "SELECT owner, fence FROM leases WHERE name = %s FOR SHARE", (lease.name,)
        ).fetchone()
        if row is None or str(row[0]) != lease.owner or int(row[1]) != lease.fence:
            raise LeaseLost(
                "the lease moved on: another holder took it over",
                lease=lease.name,
                fence=lease.fence,
                current_owner=None if row is None else str(row[0]),
                current_fence=None if row is None else int(row[1]),
            )

    def _deliver(self, ids: Sequence[bytes]) -> None:
        """Hand a notification's ids to every listener (the listener thread calls this)."""
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
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
        items = list(observed)
        with self._transaction() as db:
            self._verify_lease(db, lease)
            inserted = self._run_many(
                db,
                f"INSERT INTO messages ({OBSERVED_COLUMNS}) VALUES ({_OBSERVED_MARKS})"
                " ON CONFLICT DO NOTHING RETURNING id",
                [observed_row(item, now) for item in items],
            )
            refused = [item.id for item, done in zip(items, inserted, strict=True) if not done]
            stored = {
                bytes(r[0])
                for r in db.execute("SELECT id FROM messages WHERE id = ANY(%s)", (refused,)).fetchall()
            }
            for item, done in zip(items, inserted, strict=True):
                if done:
                    new.append(item.id)
                elif item.id not in stored:
                    conflicts.append(item.id)  # another message holds its (origin, nonce)
            self._announce(db, new)
        return new, conflicts

    def mark_final(
        self, origin: int, finalized_block: int, now: float, *, lease: Lease | None = None
    ) -> list[bytes]:
        with self._transaction() as db:
            self._verify_lease(db, lease)
            rows = db.execute(
                "UPDATE messages SET state = %s, final_at = %s, updated_at = %s"
                " WHERE state = %s AND origin = %s AND source_block <= %s RETURNING nonce, id",
                (MessageState.FINAL.value, now, now, MessageState.OBSERVED.value, origin, finalized_block),
            ).fetchall()
            ids = [bytes(r[1]) for r in sorted(rows, key=lambda r: int(r[0]))]
            self._announce(db, ids)
        return ids

    def remove_orphans(
        self, ids: Iterable[bytes], *, lease: Lease | None = None
    ) -> tuple[list[bytes], list[bytes]]:
        removed: list[bytes] = []
        refused: list[bytes] = []
        with self._transaction() as db:
            self._verify_lease(db, lease)
            for message_id in ids:
                key = bytes(message_id)
                row = db.execute("SELECT state FROM messages WHERE id = %s FOR UPDATE", (key,)).fetchone()
                if row is None:
                    continue
                if row[0] != MessageState.OBSERVED.value:
                    refused.append(key)
                    continue
                db.execute("DELETE FROM messages WHERE id = %s", (key,))
                removed.append(key)
        return removed, refused

    def drop_unconfirmed(self, origin: int, from_nonce: int, *, lease: Lease | None = None) -> list[bytes]:
        states = [s.value for s in UNCONFIRMED_STATES]
        with self._transaction() as db:
            self._verify_lease(db, lease)
            rows = db.execute(
                "DELETE FROM messages WHERE origin = %s AND nonce >= %s AND state = ANY(%s) RETURNING nonce, id",
                (origin, from_nonce, states),
            ).fetchall()
            ids = [bytes(r[1]) for r in sorted(rows, key=lambda r: int(r[0]))]
            self._announce(db, ids)
        return ids

    def apply_transitions(
        self, transitions: Sequence[Transition], now: float, *, lease: Lease | None = None
    ) -> None:
        if not transitions:
            return
        with self._transaction() as db:
            self._verify_lease(db, lease)
            self._apply_all(db, transitions, now)
            self._announce(db, [t.id for t in transitions])

    def _apply_all(self, db: Connection, transitions: Sequence[Transition], now: float) -> None:
        """Apply `transitions` in order, each a guarded row update; raise for the first refused.

        Consecutive updates of the same shape go to the server in one pipeline (one round trip);
        the caller's transaction rolls every one of them back if any is refused.
        """
        statements = []
        for transition in transitions:
            verify_transition(transition.old, transition.new)
            sets, params = transition_assignments(transition, now)
            sql = f"UPDATE messages SET {', '.join(sets)} WHERE id = %s AND state = %s"
            params += [bytes(transition.id), transition.old.value]
            if transition.fence is not None:
                sql += " AND fence = %s"
                params.append(transition.fence)
            statements.append((sql + " RETURNING 1", params))
        start = 0
        while start < len(statements):
            end = start
            while end < len(statements) and statements[end][0] == statements[start][0]:
                end += 1
            applied = self._run_many(db, statements[start][0], [p for _, p in statements[start:end]])
            for transition, done in zip(transitions[start:end], applied, strict=True):
                if not done:
                    self._refuse(db, transition)
            start = end

    def _run_many(self, db: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
        """Run `sql` (ending in RETURNING) once per parameter row, pipelined; whether each returned a row."""
        if not rows:
            return []
        with db.cursor() as cursor:
            cursor.executemany(sql, rows, returning=True)  # type: ignore[arg-type]
            return [cursor.fetchone() is not None for _ in cursor.results()]

    def _refuse(self, db: Connection, transition: Transition) -> None:
        """Raise why `transition` matched no row: `LeaseLost` (another fence) or `StaleState`."""
        row = db.execute(
            "SELECT state, fence FROM messages WHERE id = %s", (bytes(transition.id),)
        ).fetchone()
        raise transition_refusal(transition, row)

    # --- checkpoints and signatures ---------------------------------------------------------

    def save_certificate(self, checkpoint: Checkpoint, certificate: QuorumCertificate, now: float) -> int:
        with self._transaction() as db:
            return self._save_certificate(db, checkpoint, certificate, now)

    def _save_certificate(
        self, db: Connection, checkpoint: Checkpoint, certificate: QuorumCertificate, now: float
    ) -> int:
        key = (checkpoint.origin, checkpoint.gateway, checkpoint.epoch, checkpoint.root, checkpoint.index)
        db.execute(
            "INSERT INTO checkpoints (origin, gateway, epoch, root, idx, signers, signature, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (*key, certificate.signers, certificate.signature, now),
        )
        row = db.execute(
            "SELECT id FROM checkpoints WHERE origin = %s AND gateway = %s AND epoch = %s AND root = %s AND idx = %s",
            key,
        ).fetchone()
        if row is None:  # cannot happen: inserted or already there, in this transaction
            raise StaleState("the checkpoint vanished while it was saved", origin=checkpoint.origin)
        return int(row[0])

    def get_certificate(self, checkpoint_id: int) -> CertifiedCheckpoint | None:
        rows = self._read(f"SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE id = %s", (checkpoint_id,))
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
        with self._transaction() as db:
            self._verify_lease(db, lease)
            checkpoint_id = self._save_certificate(db, checkpoint, certificate, now)
            update: dict[str, object] = {"checkpoint_id": checkpoint_id}
            attested = [Transition(i, MessageState.FINAL, MessageState.ATTESTED, update) for i in ids]
            self._apply_all(db, attested, now)
            self._announce(db, list(ids))
        return checkpoint_id

    # --- notification and lifetime ----------------------------------------------------------

    @property
    def listening(self) -> bool:
        """Whether this store's LISTEN connection is up (False before the first `add_listener`)."""
        return self._notifications is not None and self._notifications.listening

    def add_listener(self, listener: StateListener) -> None:
        with self._listeners_lock:
            self._listeners.append(listener)
            if self._notifications is None and not self._closed:
                self._notifications = NotificationListener(self.dsn, self._password, self._deliver)
                self._notifications.start()

    def remove_listener(self, listener: StateListener) -> None:
        with self._listeners_lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._listeners_lock:
            notifications, self._notifications = self._notifications, None
        if notifications is not None:
            notifications.stop()
        self._pool.close()
