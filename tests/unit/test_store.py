"""What only the SQLite back end promises: a WAL file created where asked, and crash safety.

The `Store` interface itself is tested for every back end in tests/conformance/test_store.py.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from relay.chains import ObservedMessage
from relay.lifecycle import MessageState
from relay.store import SqliteStore, Transition, open_store
from relay.verify.message import Message

S = MessageState
ROOT = Path(__file__).resolve().parents[2]


def test_wal_mode_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "relayer.db"
    opened = open_store(f"sqlite:///{path}")
    opened.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"messages", "checkpoints", "signatures", "cursors", "transactions"} <= tables


def test_committed_state_survives_kill_9_and_the_open_transaction_does_not(tmp_path: Path) -> None:
    path = tmp_path / "relayer.db"
    # The child holds a transaction open until it is killed: it blocks reading its stdin, which
    # the parent never writes (and which ends, so the child exits, if the parent dies first).
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.conformance.test_store import observed
        from relay.lifecycle import MessageState as S
        from relay.store import SqliteStore, Transition
        store = SqliteStore({str(path)!r})
        items = [observed(n) for n in range(3)]
        store.insert_observed(items, now=1.0)
        store.mark_final(1, 99, now=2.0)
        store.apply_transition(Transition(items[0].message.id, S.FINAL, S.ATTESTED), now=3.0)
        db = store._db
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE messages SET state = 'delivered'")
        db.execute("DELETE FROM messages WHERE nonce = 2")
        print("ready", flush=True)
        sys.stdin.read()
    """)
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=10)
        assert child.stdin is not None
        child.stdin.close()
    assert child.returncode == -signal.SIGKILL

    reopened = SqliteStore(path)
    try:
        counts = reopened.count_by_state()
        assert counts == {S.ATTESTED: 1, S.FINAL: 2}
        assert [n for n, _ in reopened.message_ids_by_nonce(1)] == [0, 1, 2]
        # The reopened store is fully writable: the killed writer left no lock behind.
        first = reopened.messages_in_state(S.ATTESTED)[0]
        reopened.apply_transition(Transition(first.id, S.ATTESTED, S.VERIFIED), now=4.0)
    finally:
        reopened.close()


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_file_is_migrated_and_keeps_its_messages(tmp_path: Path, version: int) -> None:
    path = tmp_path / "relayer.db"
    message = Message.create(
        nonce=0, origin=1, sender=b"\x01" * 32, destination=2, recipient=b"\x02" * 32, body=b"v1"
    )
    written = SqliteStore(path)
    written.insert_observed([ObservedMessage(message, 5, b"\x05" * 32, b"\x06" * 32, 0)], 1.0)
    written.close()
    with sqlite3.connect(path) as db:
        # What a version 2 relay wrote: no delivery claims, no leases (version 1: nor malformed_reason).
        db.execute("DROP INDEX messages_claims")
        for column in ("claim_owner", "claim_expires", "fence"):
            db.execute(f"ALTER TABLE messages DROP COLUMN {column}")
        db.execute("DROP TABLE leases")
        db.execute("DROP TABLE fence_counter")
        if version == 1:
            db.execute("ALTER TABLE messages DROP COLUMN malformed_reason")
        db.execute(f"PRAGMA user_version={version}")
    reopened = SqliteStore(path)
    try:
        with sqlite3.connect(path) as db:
            columns = {r[1] for r in db.execute("PRAGMA table_info(messages)")}
            assert db.execute("PRAGMA user_version").fetchone()[0] == 3
        assert {"malformed_reason", "claim_owner", "claim_expires", "fence"} <= columns
        assert reopened.acquire_lease("source/1", "a", now=1.0, ttl=5.0) is not None
        assert reopened.get(message.id).fence == 0  # type: ignore[union-attr]
        record = reopened.get(message.id)
        assert record is not None and record.message == message and not record.is_malformed
    finally:
        reopened.close()
