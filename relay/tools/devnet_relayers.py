"""The devnet's relayer replicas and their store: one relayer on SQLite, or N on PostgreSQL.

`relay devnet --store sqlite` (the default) runs one relayer on a SQLite file in the run folder,
as always. `relay devnet --store postgres --relayers N` starts its own PostgreSQL server
(`DevnetDatabase`, a `relay.tools.postgres.PostgresServer` under `<run folder>/postgres/`,
durable unless told otherwise), creates a login role with a random password (kept in a 0600 file
in the run folder's `keys/`, given to each relayer as `store_password_file`) and a database it
owns, applies the store's migrations, and then runs N relayer processes on that one database:
replica ids `relayer-1` .. `relayer-N`, each with its own public, operator and metrics ports,
every other setting the same.

Process names: a single relayer is `relayer` (what the tests and tools have always used), N > 1
are `relayer-1` .. `relayer-N`; `Devnet.relayer_names` lists them, the first is the one
`Devnet.client()` and the `relay send` line use (any replica serves every message: they share the
store). The operator port of relayer `name` is addressed as `<name>-operator`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.errors import ConfigurationError

STORES = ("sqlite", "postgres")
DATABASE_NAME = "relay"
DATABASE_ROLE = "relay_devnet"  # the relayers' login role (password authentication)


def validate_relayer_choice(store: str, relayers: int) -> None:
    """Raise `ConfigurationError` unless `store` is known and can serve `relayers` replicas.

    SQLite is one process's file: several relayers on it would each believe they are alone.
    """
    if store not in STORES:
        raise ConfigurationError(f"unknown store {store!r}: choose one of {', '.join(STORES)}", store=store)
    if relayers < 1:
        raise ConfigurationError("the devnet needs at least one relayer", relayers=relayers)
    if store == "sqlite" and relayers > 1:
        raise ConfigurationError(
            f"{relayers} relayers cannot share a SQLite store: use --store postgres for replicas",
            store=store,
            relayers=relayers,
        )


def relayer_names(count: int) -> list[str]:
    """The process names of `count` relayer replicas: `relayer` alone, else `relayer-1` .. `relayer-N`."""
    return ["relayer"] if count == 1 else [f"relayer-{index}" for index in range(1, count + 1)]


def replica_id(index: int) -> str:
    """The `replica_id` of the `index`-th relayer (from 1), whatever its process name."""
    return f"relayer-{index}"


def operator_name(relayer: str) -> str:
    """The `Devnet.addresses` key of relayer `relayer`'s operator port."""
    return f"{relayer}-operator"


@dataclass
class DevnetDatabase:
    """The devnet's own PostgreSQL: server, login role, database (migrated), password file."""

    root: Path
    keys_dir: Path
    durable: bool = True
    server: Any = None  # relay.tools.postgres.PostgresServer once started
    dsn: str = ""
    password_file: Path | None = None
    _password: str = field(default="", repr=False)

    def start(self) -> DevnetDatabase:
        """Start the server, create the role and the database, migrate it; return self."""
        from relay.tools.certs import write_private_file
        from relay.tools.postgres import PostgresServer

        self.server = PostgresServer(self.root, durable=self.durable)
        self.server.start()
        self._password = secrets.token_hex(16)
        self.server.create_role(DATABASE_ROLE, self._password)
        self._create_database()
        self.password_file = self.keys_dir / "store-password"
        write_private_file(self.password_file, self._password.encode())
        host, port = "127.0.0.1", self.server.port
        self.dsn = f"postgresql://{DATABASE_ROLE}@{host}:{port}/{DATABASE_NAME}"  # never the password
        self.migrate()
        return self

    def _create_database(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.server.dsn(), autocommit=True) as connection:
            connection.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(DATABASE_NAME), sql.Identifier(DATABASE_ROLE)
                )
            )

    def migrate(self) -> None:
        """Apply the store's pending migrations (what `relay store migrate` does) as the relayers' role."""
        from relay.store.postgres_schema import migrate

        migrate(self.dsn, password=self._password)

    @property
    def version(self) -> str:
        """The PostgreSQL server's version."""
        return str(self.server.version) if self.server is not None else ""

    def stop(self) -> None:
        """Stop the server (a fast shutdown: committed work is kept); the data folder stays."""
        if self.server is not None:
            self.server.stop()

    def close(self) -> None:
        """Stop the server and remove any private folder it used (the run folder stays)."""
        if self.server is not None:
            self.server.close()
            self.server = None


def relayer_store_settings(store: str, run_dir: Path, database: DevnetDatabase | None) -> dict[str, Any]:
    """The `store` (and `store_password_file`) settings every relayer of the devnet gets."""
    if store == "sqlite":
        return {"store": str(run_dir / "relayer.db")}
    if database is None or not database.dsn:
        raise ConfigurationError("the devnet's PostgreSQL is not started")
    return {"store": database.dsn, "store_password_file": str(database.password_file)}


def relayer_config_fields() -> frozenset[str]:
    """The keys the relayer's config accepts (it is strict: unknown keys are errors)."""
    from relay.relayer import RelayerConfig

    return frozenset(RelayerConfig.model_fields)


def replica_settings(index: int, lease_seconds: float | None, accepted: frozenset[str]) -> dict[str, Any]:
    """The settings that name the `index`-th relayer (from 1) as a replica and set its lease
    time, limited to the keys the relayer's config `accepted`."""
    settings: dict[str, Any] = {}
    if "replica_id" in accepted:
        settings["replica_id"] = replica_id(index)
    if lease_seconds is not None and "lease_seconds" in accepted:
        settings["lease_seconds"] = lease_seconds
    return settings
