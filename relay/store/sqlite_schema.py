"""The SQLite store's schema, and how a freshly opened file is brought onto it.

The tables (messages, checkpoints, signatures, cursors, transactions) and their indexes are kept
apart from `relay.store.sqlite.SqliteStore` so the on-disk layout reads in one place and a
migration has one home. `SCHEMA_VERSION`, kept in `PRAGMA user_version`, guards against opening
a file written by a newer relay: it is refused rather than misread; an older file is migrated
(`migrate_from_1`, `migrate_from_2`).
"""

from __future__ import annotations

import sqlite3

from relay.errors import ConfigurationError

SCHEMA_VERSION = 3

SCHEMA = """
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
    malformed_reason TEXT NOT NULL DEFAULT '',
    claim_owner TEXT NOT NULL DEFAULT '',
    claim_expires REAL NOT NULL DEFAULT 0,
    fence INTEGER NOT NULL DEFAULT 0,
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
CREATE INDEX IF NOT EXISTS signatures_attestor ON signatures (origin, attestor, idx);
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
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    fence INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    acquired_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS fence_counter (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO fence_counter (one, value) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS handovers (
    origin INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    document TEXT NOT NULL,
    saved_at REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (origin, epoch)
);
"""


def prepare_database(db: sqlite3.Connection, path: str) -> None:
    """Put a new connection in WAL mode with `synchronous=FULL` and create the schema.

    Raises `ConfigurationError` if the file cannot use WAL (any path but `:memory:`) or was
    written by a newer relay (`user_version` above `SCHEMA_VERSION`). The caller holds the
    store's lock.
    """
    mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if path != ":memory:" and str(mode).lower() != "wal":
        raise ConfigurationError("the store needs SQLite WAL mode", path=path, mode=mode)
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            "the store was written by a newer relay",
            path=path,
            version=version,
            supported=SCHEMA_VERSION,
        )
    db.executescript(SCHEMA)
    if version == 1:
        migrate_from_1(db)
    if 0 < version <= 2:
        migrate_from_2(db)
    db.execute(CLAIM_INDEX)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


CLAIM_INDEX = "CREATE INDEX IF NOT EXISTS messages_claims ON messages (state, destination, claim_expires)"


def migrate_from_2(db: sqlite3.Connection) -> None:
    """Version 3 added delivery claims (`claim_owner`, `claim_expires`, `fence`) and the `leases`
    and `fence_counter` tables (created by `SCHEMA`): several replicas, docs/adr/0007."""
    columns = {str(row[1]) for row in db.execute("PRAGMA table_info(messages)")}
    for name, kind in (
        ("claim_owner", "TEXT NOT NULL DEFAULT ''"),
        ("claim_expires", "REAL NOT NULL DEFAULT 0"),
        ("fence", "INTEGER NOT NULL DEFAULT 0"),
    ):
        if name not in columns:
            db.execute(f"ALTER TABLE messages ADD COLUMN {name} {kind}")


def migrate_from_1(db: sqlite3.Connection) -> None:
    """Version 2 added `messages.malformed_reason` (leaves whose message does not decode)."""
    columns = {str(row[1]) for row in db.execute("PRAGMA table_info(messages)")}
    if "malformed_reason" not in columns:
        db.execute("ALTER TABLE messages ADD COLUMN malformed_reason TEXT NOT NULL DEFAULT ''")
