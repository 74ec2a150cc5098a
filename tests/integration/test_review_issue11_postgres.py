"""Review of issue 11 on a real PostgreSQL server (the session's): findings shown as tests.

`xfail(strict=True)`: what the store should do and does not today (the reason names the finding of
the review report); plain tests measure a behaviour the report reasons from.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from relay.chains import ObservedMessage
from relay.errors import RelayError
from relay.store.postgres import PostgresStore
from relay.store.postgres_rows import NOTIFY_CHANNEL, NOTIFY_PAYLOAD_LIMIT
from relay.store.postgres_schema import migrate
from relay.tools.postgres import PostgresServer
from relay.verify.message import Message
from tests.integration import test_relayer_replicas as replicas_suite
from tests.integration.test_relayer import DESTINATION
from tests.integration.test_relayer_replicas import (
    LEASE,
    ReplicaClock,
    Replicas,
    S,
    SharedStore,
    in_thread,
    metric,
)
from tests.waiting import eventually

shared_store = replicas_suite.shared_store  # the fixture: one database, both back ends


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[str]:
    name = "r_" + uuid.uuid4().hex[:16]
    dsn = postgres_server.create_database(name)
    yield dsn
    postgres_server.drop_database(name)


@pytest.fixture
def migrated(database: str) -> str:
    migrate(database)
    return database


# --- F4: a read-only session (a standby after a fail-over, a read-only role) ----------------------


def test_a_write_refused_by_a_read_only_server_is_a_typed_store_error(migrated: str) -> None:
    # What a replica sees when its DSN lands on a hot standby (a multi-host DSN without
    # target_session_attrs=read-write, a DNS name still pointing at the demoted primary).
    store = PostgresStore(migrated + "?options=-c%20default_transaction_read_only%3Don")
    try:
        with pytest.raises(RelayError):
            store.acquire_lease("replica/pod-0", "pod-0", 1.0, 5.0)  # Relayer.open()'s first write
        with pytest.raises(RelayError):
            store.renew_claims(
                {b"\x01" * 32: 1}, "pod-0", 1.0, 5.0
            )  # Deliverer._wait catches RelayError only
    finally:
        store.close()


def test_migrate_by_a_role_without_create_rights_is_a_configuration_error(
    postgres_server: PostgresServer, database: str
) -> None:
    role = "r" + uuid.uuid4().hex[:12]
    postgres_server.create_role(role, "pw-" + role)
    dsn = database.replace("//relay@", f"//{role}@")  # PostgreSQL 15+: no CREATE on public
    with pytest.raises(RelayError):
        migrate(dsn, "pw-" + role)


# --- F6: a stopped replica's LISTEN connection pins the server's NOTIFY queue -------------------


def queue_usage(connection: psycopg.Connection[Any]) -> float:
    """The fraction of the server's NOTIFY queue in use."""
    row = connection.execute("SELECT pg_notification_queue_usage()").fetchone()
    assert row is not None
    return float(row[0])


def test_a_stopped_listener_pins_the_notify_queue_which_every_state_change_needs(migrated: str) -> None:
    """Measures what F6 reasons from (passes): a process stopped with a LISTEN connection open
    (SIGSTOP, a frozen VM) keeps every later notification in the server's queue. The queue holds
    8 GB (PostgreSQL 15); once full, every transaction that calls pg_notify fails at commit, and
    in this store that is every state change of every replica."""
    listener = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, signal, sys, psycopg\n"
            "c = psycopg.connect(sys.argv[1], autocommit=True)\n"
            f"c.execute('LISTEN {NOTIFY_CHANNEL}')\n"
            "print('listening', flush=True)\n"
            "os.kill(os.getpid(), signal.SIGSTOP)\n",
            migrated,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "listening"
        payload = "ab" * (NOTIFY_PAYLOAD_LIMIT // 2)
        with psycopg.connect(migrated, autocommit=True) as sender:
            for _ in range(40):  # 40 transactions of 50 notifications: about 16 MB
                with sender.transaction():
                    for n in range(50):
                        sender.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, f"{n}{payload}"[:7900]))
            pinned = queue_usage(sender)
            print(f"\nNOTIFY queue usage with one stopped listener: {pinned:.6f} of 8 GB")
            assert pinned > 0
            os.kill(listener.pid, signal.SIGKILL)
            listener.wait(10)

            def drained() -> bool:
                sender.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, "x"))  # advances the tail
                return queue_usage(sender) < pinned

            eventually(drained, 20, "the queue released once the stopped listener is gone")
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait(10)


# --- the ABA case of fencing, at the relayer level (verified: holds) ---------------------------------


def test_a_late_outcome_is_fenced_while_the_message_is_submitted_again_by_another_replica(
    tmp_path: Path, shared_store: SharedStore
) -> None:
    """tests/integration/test_relayer_replicas.py's late-outcome test lets the late outcome arrive
    once the message is DELIVERED, where the state guard alone refuses it (it passes with the
    `fence = ?` clause removed from the store's UPDATE). Here the late outcome arrives while the
    message is SUBMITTED again under the other replica's claim: only the fence refuses it."""
    replicas = Replicas(tmp_path, shared_store)
    held = [threading.Event(), threading.Event()]
    destination = replicas.destination
    original = destination._deliver  # called per request after the call is counted
    order = itertools.count()

    def deliver(request: Any, context: Any) -> Any:
        index = next(order)  # 0: a's call, 1: b's call
        if index < len(held):
            held[index].wait(30)
        return original(request, context)

    destination._deliver = deliver  # type: ignore[method-assign]
    try:
        start = time.time()
        clock_a, clock_b = ReplicaClock(start), ReplicaClock(start)
        a = replicas.replica("replica-a", clock_a).open()
        b = replicas.replica("replica-b", clock_b).open()
        message = replicas.chain.dispatch(b"aba")
        a.process_sources()
        late, late_errors = in_thread(lambda: a.process_deliveries(flush=True))
        destination.wait_entries(1)
        fence_a = b.store.get(message.id).fence  # type: ignore[union-attr]
        clock_b.advance(LEASE + 1)
        assert b.requeue_stranded(DESTINATION) == [message.id]
        current, current_errors = in_thread(lambda: b.process_deliveries(flush=True))
        destination.wait_entries(2)
        record = b.store.get(message.id)
        assert record is not None and record.state is S.SUBMITTED and record.claim_owner == "replica-b"
        fence_b = record.fence
        assert fence_b > fence_a

        held[0].set()  # a's call returns DELIVERED while b's call for the same message waits
        late.join(10)
        assert not late.is_alive() and late_errors == []
        assert metric(a, "relay_fenced_writes_total", {"stage": "outcomes"}) == 1
        record = b.store.get(message.id)
        assert record is not None and record.state is S.SUBMITTED and record.fence == fence_b

        held[1].set()
        current.join(10)
        assert not current.is_alive() and current_errors == []
        record = b.store.get(message.id)
        assert record is not None and record.state is S.DELIVERED and record.fence == fence_b
        assert destination.executions == Counter({message.id: 1})
    finally:
        for event in held:
            event.set()
        replicas.close()


# --- F7: a change committed while the LISTEN connection is down is never heard --------------------


def test_a_change_committed_while_the_listener_reconnects_still_reaches_the_listeners(
    postgres_server: PostgresServer, migrated: str
) -> None:
    name = migrated.rsplit("/", 1)[1]
    writer, watcher = PostgresStore(migrated), PostgresStore(migrated)
    heard: list[bytes] = []
    resyncs: list[int] = []

    def listener(ids: Sequence[bytes]) -> None:
        if not ids:  # "changes may have been missed: re-read what you watch"
            resyncs.append(len(heard))
        heard.extend(ids)

    try:
        watcher.add_listener(listener)
        assert watcher.listening
        missed, later = observed_message(0), observed_message(1)
        with psycopg.connect(postgres_server.dsn(), autocommit=True) as admin:
            # A server restart or network cut, held open long enough to commit one change.
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LISTEN%%'",
                (name,),
            )
            eventually(lambda: not watcher.listening, 10, "the LISTEN connection lost")
            writer.insert_observed([missed], now=1.0)  # the writer's pooled connection is still up
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        eventually(lambda: watcher.listening, 20, "the LISTEN connection back")
        writer.insert_observed([later], now=2.0)
        eventually(lambda: later.message.id in heard, 10, "the change after the reconnect heard")
        # The change committed during the outage cannot be heard; the listeners are told to
        # re-read what they watch instead, once, before anything after the reconnect.
        assert missed.message.id not in heard
        assert resyncs == [0]
    finally:
        writer.close()
        watcher.close()


def observed_message(nonce: int) -> ObservedMessage:
    message = Message.create(
        nonce=nonce, origin=1, sender=b"\x01" * 32, destination=2, recipient=b"\x02" * 32, body=b"b"
    )
    return ObservedMessage(message, 10, b"\x0a" * 32, b"\x0b" * 32, 0)
