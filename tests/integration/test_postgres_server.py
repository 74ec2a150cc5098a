"""The throw-away PostgreSQL server of the tests, devnet and benches (relay.tools.postgres), for real.

Each test starts its own server (they stop and restart it); the other PostgreSQL tests share the
session's `postgres_server`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import psycopg
import pytest

from relay.errors import ConfigurationError
from relay.tools import postgres
from relay.tools.postgres import PostgresServer


def server_pid(dsn: str) -> int:
    with psycopg.connect(dsn) as connection:
        row = connection.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def test_a_server_starts_keeps_its_data_across_a_restart_and_closes_without_a_trace(tmp_path: Path) -> None:
    root = tmp_path / "pg"
    with PostgresServer(root) as server:
        assert re.fullmatch(r"\d+\.\d+", server.version), server.version
        dsn = server.create_database("kept")
        assert dsn == f"postgresql://relay@127.0.0.1:{server.port}/kept"
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("CREATE TABLE t (v TEXT)")
            connection.execute("INSERT INTO t VALUES ('before')")
            row = connection.execute("SHOW fsync").fetchone()
            assert row == ("on",)  # durable by default
        port = server.port
        backend = server_pid(dsn)
        if os.geteuid() == 0:
            # PostgreSQL refuses root: the backend runs as the service user.
            assert os.stat(f"/proc/{backend}").st_uid != 0

        server.restart()
        assert server.port == port  # the DSN stays valid
        with psycopg.connect(dsn) as connection:
            assert connection.execute("SELECT v FROM t").fetchall() == [("before",)]

        server.stop(immediate=True)  # like a crash: recovered from the WAL
        assert not server.running
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn, connect_timeout=2)
        server.start()
        with psycopg.connect(dsn) as connection:
            assert connection.execute("SELECT v FROM t").fetchall() == [("before",)]
        private = server._private_home
    assert not server.running
    if private is not None:  # root's tmp dir was out of the service user's reach
        assert not private.exists()
    assert not (root / "data").is_symlink()


def test_a_test_server_is_not_durable_and_drops_databases_in_use(tmp_path: Path) -> None:
    with PostgresServer(tmp_path / "pg", durable=False) as server:
        dsn = server.create_database("scratch")
        connection = psycopg.connect(dsn, autocommit=True)
        assert connection.execute("SHOW fsync").fetchone() == ("off",)
        server.drop_database("scratch")  # forces the open connection out
        with pytest.raises(psycopg.OperationalError):
            connection.execute("SELECT 1")
        connection.close()
        with pytest.raises(psycopg.OperationalError, match="does not exist"):
            psycopg.connect(dsn)


def test_a_role_created_with_a_password_must_give_it(postgres_server: PostgresServer) -> None:
    postgres_server.create_role("needs_password", "correct horse")
    dsn = postgres_server.dsn().replace("relay@", "needs_password@")
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(dsn, password="wrong", connect_timeout=5)
    with psycopg.connect(dsn, password="correct horse") as connection:
        assert connection.execute("SELECT current_user").fetchone() == ("needs_password",)


def test_missing_binaries_are_a_configuration_error_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres, "DEBIAN_BINARIES", tmp_path / "nowhere")
    with pytest.raises(ConfigurationError, match="make tools"):
        PostgresServer(tmp_path / "pg")
