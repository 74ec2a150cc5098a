"""Leases, delivery claims and fencing tokens of the SQLite store (docs/adr/0007).

The statements behind `SqliteStore.acquire_lease`, the lease check of lease-guarded writes and the
store-wide fencing counter, each run inside the caller's transaction (`BEGIN IMMEDIATE`, so one
writer at a time: a claim needs no row locks here, unlike PostgreSQL's `FOR UPDATE SKIP LOCKED`).
"""

from __future__ import annotations

import sqlite3

from relay.lifecycle import LeaseLost
from relay.store.base import Lease


def check_lease(db: sqlite3.Connection, lease: Lease) -> None:
    """Raise `LeaseLost` unless `lease` still carries its fencing token (inside the transaction)."""
    row = db.execute("SELECT owner, fence FROM leases WHERE name = ?", (lease.name,)).fetchone()
    if row is None or str(row[0]) != lease.owner or int(row[1]) != lease.fence:
        raise LeaseLost(
            "the lease moved on to another holder",
            lease=lease.name,
            fence=lease.fence,
            holder=None if row is None else str(row[0]),
        )


def next_fence(db: sqlite3.Connection) -> int:
    """The next store-wide fencing token (inside the transaction)."""
    db.execute("UPDATE fence_counter SET value = value + 1 WHERE one = 1")
    return int(db.execute("SELECT value FROM fence_counter WHERE one = 1").fetchone()[0])


def acquire_lease(db: sqlite3.Connection, name: str, owner: str, now: float, ttl: float) -> Lease | None:
    """`Store.acquire_lease` inside the caller's transaction."""
    row = db.execute("SELECT owner, fence, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
    if row is None:
        fence = 1
        db.execute(
            "INSERT INTO leases (name, owner, fence, expires_at, acquired_at) VALUES (?, ?, ?, ?, ?)",
            (name, owner, fence, now + ttl, now),
        )
    elif str(row[0]) == owner:
        fence = int(row[1])
        db.execute("UPDATE leases SET expires_at = ? WHERE name = ?", (now + ttl, name))
    elif float(row[2]) <= now:
        fence = int(row[1]) + 1
        db.execute(
            "UPDATE leases SET owner = ?, fence = ?, expires_at = ?, acquired_at = ? WHERE name = ?",
            (owner, fence, now + ttl, now, name),
        )
    else:
        return None
    return Lease(name, owner, fence, now + ttl)
