"""What only the PostgreSQL store promises, against a real server: schema versions and migrations,
passwords, replicas racing for claims and leases, notifications across store instances, and
surviving a server restart.

The `Store` interface itself runs on PostgreSQL in tests/conformance/test_store.py.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from relay.chains import ObservedMessage
from relay.errors import ConfigurationError, StoreUnavailable
from relay.lifecycle import LeaseLost, MessageState
from relay.store import Store, Transition, open_store
from relay.store.postgres import PostgresStore
from relay.store.postgres_schema import SCHEMA_VERSION, migrate
from relay.tools.postgres import PostgresServer
from relay.verify.committee import Checkpoint, QuorumCertificate
from relay.verify.message import Message
from tests.waiting import eventually

S = MessageState
ROOT = Path(__file__).resolve().parents[2]
CERTIFICATE = QuorumCertificate(b"\x07", b"\x99" * 96)


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty (unmigrated) database in the session's server; its DSN."""
    name = "p_" + uuid.uuid4().hex[:16]
    dsn = postgres_server.create_database(name)
    yield dsn
    postgres_server.drop_database(name)


@pytest.fixture
def migrated(database: str) -> str:
    migrate(database)
    return database


def observed(nonce: int, origin: int = 1) -> ObservedMessage:
    message = Message.create(
        nonce=nonce, origin=origin, sender=b"\x01" * 32, destination=2, recipient=b"\x02" * 32, body=b"b"
    )
    return ObservedMessage(message, 10, b"\x0a" * 32, b"\x0b" * 32, 0)


def verified(store: Store, count: int, origin: int = 1) -> list[bytes]:
    """`count` messages of `origin` brought to VERIFIED; their ids."""
    items = [observed(n, origin) for n in range(count)]
    ids = [o.message.id for o in items]
    store.insert_observed(items, now=1.0)
    store.mark_final(origin, 99, now=2.0)
    store.attest_messages(
        Checkpoint(origin, b"\x42" * 32, 3, b"\x07" * 32, count - 1), CERTIFICATE, ids, now=3.0
    )
    store.apply_transitions([Transition(i, S.ATTESTED, S.VERIFIED) for i in ids], now=4.0)
    return ids


def write_secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def relay_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "PG"))}
    return subprocess.run(
        [sys.executable, "-m", "relay", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


# --- schema versions and migrations ---------------------------------------------------------------


def test_an_unmigrated_database_is_refused_naming_the_command(database: str) -> None:
    with pytest.raises(ConfigurationError, match="version 0; run `relay store migrate --store postgresql://"):
        PostgresStore(database)
    with psycopg.connect(database) as connection:  # opening changed nothing
        row = connection.execute("SELECT to_regclass('messages') IS NULL").fetchone()
        assert row == (True,)


def test_a_database_of_a_newer_relay_is_refused(migrated: str) -> None:
    with psycopg.connect(migrated) as connection:
        connection.execute(
            "INSERT INTO schema_migrations (version, description) VALUES (%s, 'from the future')",
            (SCHEMA_VERSION + 1,),
        )
    with pytest.raises(ConfigurationError, match="newer relay"):
        PostgresStore(migrated)
    with pytest.raises(ConfigurationError, match="newer relay"):
        migrate(migrated)
    status = relay_cli("store", "status", "--store", migrated)
    assert status.returncode == 1 and "newer relay" in status.stdout


def test_migrate_is_idempotent_and_two_processes_at_once_apply_each_migration_once(database: str) -> None:
    status = relay_cli("store", "status", "--store", database)
    assert status.returncode == 1 and "schema version: 0" in status.stdout and "1: messages" in status.stdout
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "relay", "store", "migrate", "--store", database],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    printed = "".join(out for out, _ in outputs)
    assert printed.count("applied migration 1") == 1 and "nothing to do" in printed
    assert migrate(database) == []
    with psycopg.connect(database) as connection:
        assert connection.execute("SELECT version FROM schema_migrations").fetchall() == [(1,)]
    store = PostgresStore(database)
    store.acquire_lease("source/1", "replica-a", now=1e12, ttl=15.0)
    store.close()
    status = relay_cli("store", "status", "--store", database)
    assert status.returncode == 0, status
    assert "pending migrations: none" in status.stdout
    assert "source/1  owner=replica-a  fence=1" in status.stdout


def test_a_database_that_does_not_exist_is_a_configuration_error(postgres_server: PostgresServer) -> None:
    missing = postgres_server.dsn("p_" + uuid.uuid4().hex[:16])
    with pytest.raises(ConfigurationError, match="refused the connection"):
        PostgresStore(missing)
    with pytest.raises(ConfigurationError, match="does not exist"):
        migrate(missing)


def test_a_server_that_does_not_answer_is_unavailable_not_misconfigured() -> None:
    from relay.tools.postgres import free_port

    with pytest.raises(StoreUnavailable):
        PostgresStore(f"postgresql://relay@127.0.0.1:{free_port()}/relay")


# --- passwords ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://relay:secret@127.0.0.1:5432/relay",
        "postgres://relay:secret@127.0.0.1/relay",
        "postgresql://relay@127.0.0.1/relay?password=secret",
        "postgresql:///relay?host=127.0.0.1&password=secret",
    ],
)
def test_a_dsn_with_an_inline_password_is_refused_without_echoing_it(dsn: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="store_password_file") as refused:
        open_store(dsn)
    assert "secret" not in str(refused.value)
    run = relay_cli("store", "migrate", "--store", dsn)
    assert run.returncode == 2 and "secret" not in run.stdout + run.stderr


def test_an_unknown_scheme_is_refused_not_taken_for_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown store scheme"):
        open_store("mysql://relay@127.0.0.1/relay")


def test_the_password_comes_from_a_private_file(postgres_server: PostgresServer, tmp_path: Path) -> None:
    role = "r_" + uuid.uuid4().hex[:12]
    postgres_server.create_role(role, "s3cret pass")
    name = "p_" + uuid.uuid4().hex[:16]
    postgres_server.create_database(name)
    with psycopg.connect(postgres_server.dsn(name), autocommit=True) as connection:
        connection.execute(f"ALTER DATABASE {name} OWNER TO {role}")
        connection.execute(f"ALTER SCHEMA public OWNER TO {role}")
    dsn = postgres_server.dsn(name).replace("relay@", f"{role}@")
    try:
        loose = write_secret(tmp_path / "loose", "s3cret pass", 0o644)
        run = relay_cli("store", "migrate", "--store", dsn, "--password-file", str(loose))
        assert run.returncode == 2 and "chmod 600" in run.stderr
        wrong = write_secret(tmp_path / "wrong", "not it")
        run = relay_cli("store", "migrate", "--store", dsn, "--password-file", str(wrong))
        assert run.returncode == 2 and "refused the credentials" in run.stderr, run.stderr
        good = write_secret(tmp_path / "good", "s3cret pass\n")
        run = relay_cli("store", "migrate", "--store", dsn, "--password-file", str(good))
        assert run.returncode == 0 and "applied migration 1" in run.stdout, run.stderr
        with pytest.raises(ConfigurationError, match="refused the credentials"):
            PostgresStore(dsn)  # no password, no PGPASSWORD
        store = open_store(dsn, password="s3cret pass")
        assert store.shared and store.insert_observed([observed(0)], now=1.0)[0]
        store.close()
    finally:
        postgres_server.drop_database(name)


# --- replicas racing ------------------------------------------------------------------------------


def test_two_stores_claiming_the_same_messages_at_once_never_claim_one_twice(migrated: str) -> None:
    stores = [PostgresStore(migrated, pool_max=4) for _ in range(2)]
    try:
        ids = verified(stores[0], 300)
        start = threading.Barrier(4)

        def claim_all(store: Store, owner: str, seed: int) -> list[tuple[bytes, int]]:
            order = list(ids)
            random.Random(seed).shuffle(order)
            start.wait()
            taken = []
            for offset in range(0, len(order), 25):
                for record in store.claim_messages(order[offset : offset + 25], owner, now=10.0, ttl=60.0):
                    assert record.claim_owner == owner and record.claim_expires == 70.0
                    taken.append((record.id, record.fence))
            return taken

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(claim_all, stores[n % 2], f"replica-{n}", seed=n) for n in range(4)]
            claims = [f.result(timeout=120) for f in futures]
        claimed = [message_id for taken in claims for message_id, _ in taken]
        assert len(claimed) == len(set(claimed)), "a message was claimed twice"
        assert set(claimed) == set(ids)  # nothing left out: every batch was retried over all ids
        fences = [fence for taken in claims for _, fence in taken]
        assert len(set(fences)) == len(fences) and min(fences) > 0
        owners = {r.claim_owner for r in stores[1].messages_in_state(S.VERIFIED, limit=1000)}
        assert owners <= {f"replica-{n}" for n in range(4)}
    finally:
        for store in stores:
            store.close()


def test_a_claim_skips_rows_another_transaction_holds_instead_of_waiting(migrated: str) -> None:
    store = PostgresStore(migrated)
    try:
        ids = verified(store, 3)
        with psycopg.connect(migrated) as holder:  # another replica mid-transaction on ids[1]
            holder.execute("SELECT 1 FROM messages WHERE id = %s FOR UPDATE", (ids[1],))
            result: list[list[bytes]] = []
            claimer = threading.Thread(
                target=lambda: result.append([r.id for r in store.claim_messages(ids, "a", now=5.0, ttl=9.0)])
            )
            claimer.start()
            claimer.join(timeout=20)
            assert not claimer.is_alive(), "the claim waited for the locked row"
            holder.rollback()
        assert result == [[ids[0], ids[2]]]
        assert [r.id for r in store.claim_messages(ids, "b", now=6.0, ttl=9.0)] == [ids[1]]
        assert store.requeue_submitted(100.0, expired_only=False) == []
    finally:
        store.close()


def test_two_stores_racing_for_a_lease_give_it_to_one(migrated: str) -> None:
    stores = [PostgresStore(migrated, pool_max=2) for _ in range(4)]
    try:
        start = threading.Barrier(len(stores))

        def acquire(n: int) -> object:
            start.wait()
            return stores[n].acquire_lease("source/7", f"replica-{n}", now=100.0, ttl=15.0)

        with ThreadPoolExecutor(len(stores)) as pool:
            results = list(pool.map(acquire, range(len(stores))))
        held = [r for r in results if r is not None]
        assert len(held) == 1 and held[0].fence == 1  # type: ignore[attr-defined]
    finally:
        for store in stores:
            store.close()


def test_a_takeover_waits_for_a_write_in_flight_under_the_old_fence(
    migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease check and the write commit together: a takeover between them would let a write
    under the old fence land after the new holder started. The write holds the lease row FOR SHARE
    until it commits, so the takeover waits for it (and the write after the takeover is refused)."""
    holder, taker = PostgresStore(migrated), PostgresStore(migrated)
    try:
        lease = holder.acquire_lease("source/1", "replica-a", now=100.0, ttl=10.0)
        assert lease is not None
        in_write, finish = threading.Event(), threading.Event()
        original = PostgresStore._announce

        def paused(self: PostgresStore, connection: Any, ids: Sequence[bytes]) -> None:
            if self is holder and not finish.is_set():  # inside the write's transaction, before COMMIT
                in_write.set()
                assert finish.wait(30)
            original(self, connection, ids)

        monkeypatch.setattr(PostgresStore, "_announce", paused)
        with ThreadPoolExecutor(2) as pool:
            write = pool.submit(holder.insert_observed, [observed(0)], 101.0, lease=lease)
            assert in_write.wait(30)
            takeover = pool.submit(taker.acquire_lease, "source/1", "replica-b", 200.0, 10.0)

            def takeover_waits_on_the_lease_row() -> bool:
                with psycopg.connect(migrated) as connection:
                    row = connection.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query LIKE 'INSERT INTO leases%%'"
                    ).fetchone()
                return row is not None and row[0] == 1

            eventually(takeover_waits_on_the_lease_row, 30, "the takeover to wait for the write")
            assert not takeover.done()
            finish.set()
            assert write.result(timeout=30)[0] == [observed(0).message.id]
            taken = takeover.result(timeout=30)
        assert taken is not None and taken.fence == lease.fence + 1
        with pytest.raises(LeaseLost):
            holder.insert_observed([observed(1)], now=201.0, lease=lease)
        assert holder.get(observed(1).message.id) is None
    finally:
        holder.close()
        taker.close()


# --- notifications --------------------------------------------------------------------------------


class Heard:
    """A listener that records what it hears and lets a test wait for an id."""

    def __init__(self) -> None:
        self.ids: list[bytes] = []
        self.calls = 0
        self._changed = threading.Condition()

    def __call__(self, ids: Sequence[bytes]) -> None:
        with self._changed:
            self.ids.extend(ids)
            self.calls += 1
            self._changed.notify_all()

    def wait_for(self, wanted: Sequence[bytes], timeout: float = 15.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: set(wanted) <= set(self.ids), timeout)


def test_a_commit_of_one_store_reaches_the_listeners_of_another_once(migrated: str) -> None:
    writer, watcher = PostgresStore(migrated), PostgresStore(migrated)
    try:
        heard_by_watcher, heard_by_writer = Heard(), Heard()
        watcher.add_listener(heard_by_watcher)
        writer.add_listener(heard_by_writer)
        ids = verified(writer, 300)  # 4 commits, some over one NOTIFY payload (300 ids)
        marker = writer.insert_observed([observed(0, origin=9)], now=5.0)[0]
        assert heard_by_watcher.wait_for(marker) and heard_by_writer.wait_for(marker)
        for heard in (heard_by_watcher, heard_by_writer):
            # insert, mark_final, attest, verify: each id 4 times, then the marker: each commit once.
            assert sorted(heard.ids) == sorted(ids * 4 + marker)
            assert heard.calls > 5  # 300 ids do not fit one payload: chunked
    finally:
        writer.close()
        watcher.close()


def test_a_junk_notification_is_dropped_and_the_listener_carries_on(migrated: str) -> None:
    store = PostgresStore(migrated)
    try:
        heard = Heard()
        store.add_listener(heard)
        with psycopg.connect(migrated, autocommit=True) as connection:
            for junk in ("junk", "zz" * 32, ",", "ab" * 32 + ",", "x" * 7999):
                connection.execute("SELECT pg_notify('relay_messages', %s)", (junk,))
        new = store.insert_observed([observed(0)], now=1.0)[0]
        assert heard.wait_for(new)
        assert heard.ids == new and heard.calls == 1
    finally:
        store.close()


# --- a server restart -----------------------------------------------------------------------------


@pytest.mark.parametrize("crash", [False, True], ids=["fast-shutdown", "crash"])
def test_a_server_restart_is_transient_and_the_listener_resumes(tmp_path: Path, crash: bool) -> None:
    with PostgresServer(tmp_path / "pg", durable=False) as server:
        dsn = server.create_database("restarted")
        migrate(dsn)
        store, other = PostgresStore(dsn, timeout=2.0), PostgresStore(dsn, timeout=2.0)
        try:
            heard = Heard()
            store.add_listener(heard)
            first = store.insert_observed([observed(0)], now=1.0)[0]
            assert heard.wait_for(first)

            server.stop(immediate=crash)  # a crash (SIGQUIT) drops connections without a word
            with pytest.raises(StoreUnavailable):
                store.get(first[0])
            with pytest.raises(StoreUnavailable):
                other.insert_observed([observed(1)], now=2.0)
            server.start()

            def answers() -> bool:
                try:
                    return store.get(first[0]) is not None
                except StoreUnavailable:
                    return False

            eventually(answers, 30, "the store to answer after the restart")
            nonces = iter(range(2, 1000))

            def heard_a_new_commit() -> bool:
                new = other.insert_observed([observed(next(nonces))], now=3.0)[0]
                return heard.wait_for(new, timeout=0.5)

            eventually(heard_a_new_commit, 30, "the listener to hear commits after the restart")
            assert store.listening
            assert store.count_by_state()[S.OBSERVED] >= 2
        finally:
            store.close()
            other.close()
