"""`relay store migrate|status` on a SQLite store (which migrates itself on open); the PostgreSQL
side runs against a real server in tests/integration/test_postgres_store.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from relay.cli import main
from relay.store.sqlite_schema import SCHEMA_VERSION


def test_migrate_opens_a_sqlite_store_and_status_reads_its_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "relayer.db"
    assert main(["store", "status", "--store", str(path)]) == 1  # nothing there yet
    assert "cannot read it" in capsys.readouterr().out
    assert main(["store", "migrate", "--store", f"sqlite:///{path}"]) == 0
    assert "migrated on open" in capsys.readouterr().out
    assert main(["store", "status", "--store", str(path)]) == 0
    assert f"schema version {SCHEMA_VERSION}" in capsys.readouterr().out
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    assert main(["store", "status", "--store", str(path)]) == 1


def test_an_inline_password_or_unknown_scheme_is_a_configuration_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["store", "migrate", "--store", "postgresql://relay:hunter2@db/relay"]) == 2
    err = capsys.readouterr().err
    assert "store_password_file" in err and "hunter2" not in err
    assert main(["store", "migrate", "--store", "mysql://relay@db/relay"]) == 2
    assert "unknown store scheme" in capsys.readouterr().err
