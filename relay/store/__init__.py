"""Durable relayer state: the `Store` interface and its back ends.

`open_store(path_or_dsn)` chooses the back end by the scheme: `postgresql://` / `postgres://` is
the shared PostgreSQL store (several relayer replicas on one database; migrated beforehand by
`relay store migrate`), `sqlite:///path` or a plain path the embedded SQLite file (WAL).
"""

from __future__ import annotations

import re
from pathlib import Path

from relay.errors import ConfigurationError
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
    "is_postgres_dsn",
    "open_store",
]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


_CONNINFO = re.compile(r"\s*[A-Za-z_]+\s*=")  # libpq's keyword form: "host=... dbname=..."


def is_postgres_dsn(text: str) -> bool:
    """Whether `text` names a PostgreSQL database: by its URI scheme, or in libpq's keyword form
    (`host=... dbname=...`), which must never be taken for a SQLite file name."""
    return text.lower().startswith(POSTGRES_SCHEMES) or _CONNINFO.match(text) is not None


def open_store(path_or_dsn: str | Path, *, password: str | None = None) -> Store:
    """Open the store named by `path_or_dsn`.

    `postgresql://...` (or `postgres://...`): a `PostgresStore`, with `password` if given (else
    libpq's PGPASSWORD or ~/.pgpass); a DSN holding a password is refused (`ConfigurationError`).
    `sqlite:///path` or a plain path: a SQLite file, created if missing. Any other `scheme://` is
    refused rather than taken for a file name.
    """
    text = str(path_or_dsn)
    if is_postgres_dsn(text):
        from relay.store.postgres import PostgresStore  # psycopg is loaded only when used

        return PostgresStore(text, password=password)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise ConfigurationError(
            "unknown store scheme: use postgresql://... or sqlite:///path",
            scheme=text.split("://", 1)[0][:32],
        )
    return SqliteStore(text)
