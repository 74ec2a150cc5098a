"""`relay store migrate|status`: bring a PostgreSQL store's schema up to this relay's, or show it.

A PostgreSQL store is shared by relayer replicas and never migrated by one of them on its own:
the operator (or a deployment's init job) runs `relay store migrate --store DSN` once per upgrade;
running it twice, or from two places at once, is harmless. `relay store status` prints the
schema version, the pending migrations and the leases (which replica watches which origin, which
replicas are registered); it exits 1 while the schema is not the one this relay uses.

The password comes from `--password-file` (0600) or libpq's PGPASSWORD, never from the DSN. A
SQLite store (a path or `sqlite:///path`) migrates itself when opened: `migrate` just opens it.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import time
from pathlib import Path

from relay.config import SecretRef
from relay.store import is_postgres_dsn, open_store
from relay.store.base import Lease


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `relay store migrate` and `relay store status`."""
    store = subparsers.add_parser("store", help="migrate or inspect the relayer's store")
    commands = store.add_subparsers(dest="store_command", metavar="COMMAND", required=True)
    for name, handler, text in (
        ("migrate", run_migrate, "apply the pending schema migrations (PostgreSQL)"),
        ("status", run_status, "show the schema version, pending migrations and leases"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument(
            "--store", required=True, help="postgresql://user@host:port/db (no password), or a SQLite path"
        )
        command.add_argument("--password-file", help="file (0600) holding the database password")
        command.set_defaults(handler=handler)


def _password(args: argparse.Namespace) -> str | None:
    return None if args.password_file is None else SecretRef(file=args.password_file).reveal()


def run_migrate(args: argparse.Namespace) -> int:
    """Apply the pending migrations; print what was applied."""
    if not is_postgres_dsn(args.store):
        open_store(args.store).close()  # SQLite migrates on open
        print(f"SQLite store {args.store}: migrated on open")
        return 0
    from relay.store.postgres_connect import describe_dsn
    from relay.store.postgres_schema import SCHEMA_VERSION, migrate

    applied = migrate(args.store, _password(args))
    for version, description in applied:
        print(f"applied migration {version}: {description}")
    if not applied:
        print(f"store {describe_dsn(args.store)} is at version {SCHEMA_VERSION}: nothing to do")
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print the schema version, pending migrations and leases; 1 unless the schema is current."""
    if not is_postgres_dsn(args.store):
        return _sqlite_status(args.store)
    from relay.store.postgres_connect import connect, describe_dsn
    from relay.store.postgres_schema import SCHEMA_VERSION, schema_status

    with connect(args.store, _password(args)) as connection:
        status = schema_status(connection)
    print(f"store: {describe_dsn(args.store)}")
    print(f"schema version: {status.version} (this relay uses {SCHEMA_VERSION})")
    if status.version > SCHEMA_VERSION:
        print("the schema was written by a newer relay: upgrade this relay")
        return 1
    if status.pending:
        print("pending migrations (run `relay store migrate`):")
        for version, description in status.pending:
            print(f"  {version}: {description}")
        return 1
    print("pending migrations: none")
    store = open_store(args.store, password=_password(args))
    try:
        leases = store.leases()
    finally:
        store.close()
    print("leases:" if leases else "leases: none")
    now = time.time()
    for lease in leases:
        print(f"  {_describe(lease, now)}")
    return 0


def _describe(lease: Lease, now: float) -> str:
    left = lease.expires_at - now
    when = f"expires in {left:.1f} s" if left > 0 else f"expired {-left:.1f} s ago"
    return f"{lease.name}  owner={lease.owner or '-'}  fence={lease.fence}  {when}"


def _sqlite_status(path: str) -> int:
    from relay.store.sqlite_schema import SCHEMA_VERSION

    file = path.removeprefix("sqlite:///")
    try:
        uri = Path(file).absolute().as_uri() + "?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as error:
        print(f"SQLite store {file}: cannot read it ({error})")
        return 1
    print(
        f"SQLite store {file}: schema version {version} (this relay uses {SCHEMA_VERSION}; migrated on open)"
    )
    return 0 if version <= SCHEMA_VERSION else 1
