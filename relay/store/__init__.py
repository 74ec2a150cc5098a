"""Durable relayer state: the `Store` interface and its back ends.

`open_store(path)` returns the embedded SQLite store (WAL); a PostgreSQL back end for several
relayer replicas would be chosen here too, by the path's scheme.
"""

from __future__ import annotations

from pathlib import Path

from relay.store.base import (
    CertifiedCheckpoint,
    Lease,
    MessageFilter,
    MessageRecord,
    Page,
    SignatureRecord,
    Store,
    SubmittedTransaction,
    Transition,
)
from relay.store.sqlite import SqliteStore

__all__ = [
    "CertifiedCheckpoint",
    "Lease",
    "MessageFilter",
    "MessageRecord",
    "Page",
    "SignatureRecord",
    "SqliteStore",
    "Store",
    "SubmittedTransaction",
    "Transition",
    "open_store",
]


def open_store(path: str | Path) -> Store:
    """Open the store at `path` (a SQLite file, created if missing; `sqlite:///path` also accepted)."""
    text = str(path)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    return SqliteStore(text)
