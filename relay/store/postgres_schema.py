"""The PostgreSQL store's schema: ordered migrations, applied by `relay store migrate`, checked at open.

Unlike the embedded SQLite file (migrated by whoever opens it), a PostgreSQL database is shared by
several replicas and often owned by a DBA: a relayer never changes its schema by itself. `migrate`
applies the pending migrations in one transaction under an advisory lock (two processes running
it at once apply each migration once), recording each in `schema_migrations`. Opening a store
calls `verify_schema`, which refuses a database that is not migrated yet (naming the command to
run) or was migrated by a newer relay (its code would misread the tables).

Version 1 is the whole schema of SQLite's version 3, with PostgreSQL types: BYTEA blobs, BIGINT
integers, DOUBLE PRECISION times, BIGSERIAL for the message sequence and checkpoint ids. Two
additions: the SEQUENCE `fences` (the store-wide fencing-token counter SQLite keeps in a one-row
table) and `signatures.seq` (insertion order, the tie-break SQLite's rowid gives when an
attestor's oldest signatures are forgotten).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from relay.errors import ConfigurationError
from relay.store.postgres_connect import connect, describe_dsn, store_unavailable

MIGRATION_LOCK = 0x72656C6179  # "relay": the advisory lock key `migrate` holds while it works

SCHEMA_V1 = """
CREATE TABLE checkpoints (
    id BIGSERIAL PRIMARY KEY,
    origin BIGINT NOT NULL,
    gateway BYTEA NOT NULL,
    epoch BIGINT NOT NULL,
    root BYTEA NOT NULL,
    idx BIGINT NOT NULL,
    signers BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (origin, gateway, epoch, root, idx)
);
CREATE TABLE messages (
    seq BIGSERIAL PRIMARY KEY,
    id BYTEA NOT NULL UNIQUE,
    origin BIGINT NOT NULL,
    destination BIGINT NOT NULL,
    nonce BIGINT NOT NULL,
    encoded BYTEA NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    error_reason TEXT NOT NULL DEFAULT '',
    source_block BIGINT NOT NULL DEFAULT 0,
    source_block_hash BYTEA NOT NULL DEFAULT '',
    source_tx BYTEA NOT NULL DEFAULT '',
    log_index BIGINT NOT NULL DEFAULT 0,
    destination_tx BYTEA NOT NULL DEFAULT '',
    checkpoint_id BIGINT REFERENCES checkpoints(id),
    branch BYTEA NOT NULL DEFAULT '',
    observed_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    final_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    attested_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    verified_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    submitted_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    delivered_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    updated_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    malformed_reason TEXT NOT NULL DEFAULT '',
    claim_owner TEXT NOT NULL DEFAULT '',
    claim_expires DOUBLE PRECISION NOT NULL DEFAULT 0,
    fence BIGINT NOT NULL DEFAULT 0,
    UNIQUE (origin, nonce)
);
CREATE INDEX messages_state ON messages (state, origin, nonce);
CREATE INDEX messages_retry ON messages (state, next_attempt_at);
CREATE INDEX messages_route ON messages (origin, destination, seq);
CREATE INDEX messages_claims ON messages (state, destination, claim_expires);
CREATE TABLE signatures (
    origin BIGINT NOT NULL,
    gateway BYTEA NOT NULL,
    epoch BIGINT NOT NULL,
    root BYTEA NOT NULL,
    idx BIGINT NOT NULL,
    signer_index BIGINT NOT NULL,
    public_key BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    attestor TEXT NOT NULL DEFAULT '',
    rejected_reason TEXT NOT NULL DEFAULT '',
    received_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    seq BIGSERIAL NOT NULL,
    PRIMARY KEY (origin, gateway, epoch, root, idx, signer_index, signature)
);
CREATE INDEX signatures_index ON signatures (origin, idx);
CREATE INDEX signatures_attestor ON signatures (origin, attestor, idx);
CREATE TABLE cursors (
    domain BIGINT PRIMARY KEY,
    block_number BIGINT NOT NULL,
    block_hash BYTEA NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE TABLE transactions (
    hash BYTEA PRIMARY KEY,
    destination BIGINT NOT NULL,
    checkpoint_id BIGINT,
    block_number BIGINT NOT NULL DEFAULT 0,
    gas_used BIGINT NOT NULL DEFAULT 0,
    submitted_at DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE TABLE transaction_messages (
    hash BYTEA NOT NULL,
    message_id BYTEA NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (hash, message_id)
);
CREATE INDEX transaction_messages_id ON transaction_messages (message_id);
CREATE TABLE handovers (
    origin BIGINT NOT NULL,
    epoch BIGINT NOT NULL,
    document TEXT NOT NULL,
    saved_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (origin, epoch)
);
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    fence BIGINT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    acquired_at DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE SEQUENCE fences;
"""

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "messages, checkpoints, signatures, cursors, transactions, hand-overs, leases and claims", SCHEMA_V1),
)
"""(version, description, SQL), in order. A migration is never edited once released: add one."""

SCHEMA_VERSION = MIGRATIONS[-1][0]
"""The version this code reads and writes."""

_HISTORY = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INT PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands: its version, and the migrations this code would apply."""

    version: int
    pending: tuple[tuple[int, str], ...]

    @property
    def is_current(self) -> bool:
        """Whether the database is exactly at the version this code uses."""
        return self.version == SCHEMA_VERSION


def schema_version(connection: psycopg.Connection) -> int:
    """The highest migration applied to the connection's database (0: never migrated)."""
    row = connection.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return 0
    row = connection.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row is not None else 0


def schema_status(connection: psycopg.Connection) -> SchemaStatus:
    """The version of the connection's database and the migrations pending for it."""
    version = schema_version(connection)
    return SchemaStatus(version, tuple((v, d) for v, d, _ in MIGRATIONS if v > version))


def verify_schema(connection: psycopg.Connection, dsn: str) -> None:
    """Raise `ConfigurationError` unless the database is at `SCHEMA_VERSION`: older (or empty)
    names `relay store migrate`; newer was written by a newer relay and is never misread."""
    version = schema_version(connection)
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            "the store's schema was written by a newer relay; upgrade this relay",
            store=describe_dsn(dsn),
            version=version,
            supported=SCHEMA_VERSION,
        )
    if version < SCHEMA_VERSION:
        raise ConfigurationError(
            f"the store's schema is at version {version}; run `relay store migrate --store {describe_dsn(dsn)}`",
            supported=SCHEMA_VERSION,
        )


def migrate(dsn: str, password: str | None = None) -> list[tuple[int, str]]:
    """Apply the pending migrations to the database at `dsn`; return the (version, description)
    of those applied (empty if it was current). One transaction under an advisory lock: a
    concurrent `migrate` waits, then finds nothing left to do. Refuses a newer schema."""
    try:
        with connect(dsn, password) as connection:
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                connection.execute(_HISTORY)
                version = schema_version(connection)
                if version > SCHEMA_VERSION:
                    verify_schema(connection, dsn)
                applied = []
                for number, description, script in MIGRATIONS:
                    if number <= version:
                        continue
                    connection.execute(script)  # type: ignore[arg-type]
                    connection.execute(
                        "INSERT INTO schema_migrations (version, description) VALUES (%s, %s)",
                        (number, description),
                    )
                    applied.append((number, description))
                return applied
    except psycopg.errors.InsufficientPrivilege as error:
        raise ConfigurationError(
            "the store's role may not create the schema: migrate as the database's owner (or grant"
            " CREATE on the schema), then run the relayers as any role with read and write rights",
            store=describe_dsn(dsn),
            cause=type(error).__name__,
        ) from error
    except psycopg.OperationalError as error:
        raise store_unavailable(dsn, error) from error
