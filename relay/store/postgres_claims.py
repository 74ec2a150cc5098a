"""Leases and delivery claims on PostgreSQL: the part of the store replicas share work through.

A mixin of `relay.store.postgres.PostgresStore` (kept apart to keep each module readable); the
contract is `relay.store.base.Store`'s and docs/adr/0007-replicas-leases-fencing.md's:
- a named lease is taken by an upsert whose `WHERE` lets it through only if the lease is free,
  expired or already the caller's; its fence grows by one each time it changes hands;
- claims and requeues pick their rows with `FOR UPDATE SKIP LOCKED` (two replicas racing for a
  batch split it, neither waits), and each picked message gets a fence from the store-wide
  SEQUENCE `fences`, so a later claim always carries a larger token than an earlier one;
- renewals and releases match on (id, fence, owner): a replica whose claim was taken over
  changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from relay.lifecycle import MessageState, verify_transition
from relay.store.base import REQUEUED_ERROR, REQUEUED_REASON, Lease, MessageRecord
from relay.store.postgres_rows import CLAIM_STATES, HELD_STATES
from relay.store.sqlite_rows import MESSAGE_COLUMNS, message_record

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow


class ClaimQueries:
    """Leases, claims and requeues (see the module docstring); needs the store's plumbing."""

    if TYPE_CHECKING:
        _transaction: Callable[[], AbstractContextManager[psycopg.Connection[TupleRow]]]
        _read: Callable[..., list[TupleRow]]
        _announce: Callable[[psycopg.Connection[TupleRow], Sequence[bytes]], None]

    # --- named leases -----------------------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, now: float, ttl: float) -> Lease | None:
        """See `Store.acquire_lease`."""
        with self._transaction() as db:
            row = db.execute(
                "INSERT INTO leases AS held (name, owner, fence, expires_at, acquired_at)"
                " VALUES (%(name)s, %(owner)s, 1, %(expires)s, %(now)s)"
                " ON CONFLICT (name) DO UPDATE SET"
                " fence = CASE WHEN held.owner = excluded.owner THEN held.fence ELSE held.fence + 1 END,"
                " acquired_at = CASE WHEN held.owner = excluded.owner THEN held.acquired_at"
                " ELSE excluded.acquired_at END,"
                " owner = excluded.owner, expires_at = excluded.expires_at"
                " WHERE held.owner = excluded.owner OR held.expires_at <= excluded.acquired_at"
                " RETURNING owner, fence, expires_at",
                {"name": name, "owner": owner, "expires": now + ttl, "now": now},
            ).fetchone()
        if row is None:
            return None
        return Lease(name, str(row[0]), int(row[1]), float(row[2]))

    def release_lease(self, lease: Lease, now: float) -> bool:
        """See `Store.release_lease`."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE leases SET expires_at = %s WHERE name = %s AND owner = %s AND fence = %s",
                (now, lease.name, lease.owner, lease.fence),
            )
            return cursor.rowcount == 1

    def leases(self, prefix: str = "") -> list[Lease]:
        """See `Store.leases` (byte order of names, whatever the database's collation)."""
        rows = self._read(
            'SELECT name, owner, fence, expires_at FROM leases WHERE starts_with(name, %s) ORDER BY name COLLATE "C"',
            (prefix,),
        )
        return [Lease(str(r[0]), str(r[1]), int(r[2]), float(r[3])) for r in rows]

    # --- delivery claims --------------------------------------------------------------------

    def claim_messages(self, ids: Sequence[bytes], owner: str, now: float, ttl: float) -> list[MessageRecord]:
        """See `Store.claim_messages`."""
        wanted = list(dict.fromkeys(bytes(i) for i in ids))
        if not wanted:
            return []
        with self._transaction() as db:
            rows = db.execute(
                f"UPDATE messages SET claim_owner = %s, claim_expires = %s, fence = nextval('fences')"
                " WHERE seq IN (SELECT seq FROM messages WHERE id = ANY(%s) AND state = ANY(%s)"
                " AND (claim_expires <= %s OR claim_owner = %s) ORDER BY seq FOR UPDATE SKIP LOCKED)"
                f" RETURNING {MESSAGE_COLUMNS}",
                (owner, now + ttl, wanted, list(CLAIM_STATES), now, owner),
            ).fetchall()
        claimed = {r.id: r for r in (message_record(row) for row in rows)}
        return [claimed[i] for i in wanted if i in claimed]

    def renew_claims(self, fences: Mapping[bytes, int], owner: str, now: float, ttl: float) -> set[bytes]:
        """See `Store.renew_claims`."""
        if not fences:
            return set()
        ids, tokens = _columns(fences)
        with self._transaction() as db:
            rows = db.execute(
                "UPDATE messages m SET claim_expires = %s FROM unnest(%s::bytea[], %s::bigint[]) AS f(id, fence)"
                " WHERE m.id = f.id AND m.fence = f.fence AND m.claim_owner = %s AND m.state = ANY(%s)"
                " RETURNING m.id",
                (now + ttl, ids, tokens, owner, list(HELD_STATES)),
            ).fetchall()
        return {bytes(r[0]) for r in rows}

    def release_claims(self, fences: Mapping[bytes, int], owner: str) -> int:
        """See `Store.release_claims`."""
        if not fences:
            return 0
        ids, tokens = _columns(fences)
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE messages m SET claim_owner = '', claim_expires = 0"
                " FROM unnest(%s::bytea[], %s::bigint[]) AS f(id, fence)"
                " WHERE m.id = f.id AND m.fence = f.fence AND m.claim_owner = %s",
                (ids, tokens, owner),
            )
            return int(cursor.rowcount)

    def requeue_submitted(
        self, now: float, *, expired_only: bool = True, destination: int | None = None, limit: int = 1000
    ) -> list[bytes]:
        """See `Store.requeue_submitted`."""
        verify_transition(MessageState.SUBMITTED, MessageState.RETRYING)
        picked = "SELECT seq FROM messages WHERE state = %s"
        params: list[Any] = [MessageState.SUBMITTED.value]
        if expired_only:
            picked += " AND claim_expires <= %s"
            params.append(now)
        if destination is not None:
            picked += " AND destination = %s"
            params.append(destination)
        picked += " ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED"
        params.append(limit)
        with self._transaction() as db:
            rows = db.execute(
                "UPDATE messages SET state = %s, next_attempt_at = %s, last_error = %s, error_reason = %s,"
                " fence = nextval('fences'), claim_owner = '', claim_expires = 0, updated_at = %s"
                f" WHERE seq IN ({picked}) RETURNING seq, id",
                (MessageState.RETRYING.value, now, REQUEUED_ERROR, REQUEUED_REASON, now, *params),
            ).fetchall()
            ids = [bytes(r[1]) for r in sorted(rows, key=lambda r: int(r[0]))]
            self._announce(db, ids)
        return ids


def _columns(fences: Mapping[bytes, int]) -> tuple[list[bytes], list[int]]:
    """(ids, fences) as two parallel lists, for `unnest`."""
    items = list(fences.items())
    return [bytes(i) for i, _ in items], [int(f) for _, f in items]
