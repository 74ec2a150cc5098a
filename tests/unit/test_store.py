"""The SQLite store on real files: idempotent inserts, guarded transitions, paging, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.chains import Cursor, ObservedMessage
from relay.errors import MalformedEncoding
from relay.lifecycle import IllegalTransition, MessageState, StaleState
from relay.store import (
    MessageFilter,
    SignatureRecord,
    SqliteStore,
    SubmittedTransaction,
    Transition,
    open_store,
)
from relay.verify.committee import Checkpoint, QuorumCertificate
from relay.verify.message import Message

S = MessageState
ROOT = Path(__file__).resolve().parents[2]


def observed(nonce: int, origin: int = 1, destination: int = 2, block: int | None = None) -> ObservedMessage:
    message = Message.create(nonce=nonce, origin=origin, sender=b"\x01" * 32, destination=destination,
                             recipient=b"\x02" * 32, body=f"body {nonce}".encode())
    number = nonce + 10 if block is None else block
    return ObservedMessage(message, number, number.to_bytes(32, "big"), bytes([nonce % 256]) * 32, 0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "relayer.db")
    yield opened
    opened.close()


def walk(store: SqliteStore, message_id: bytes, *states: MessageState) -> None:
    record = store.get(message_id)
    assert record is not None
    old = record.state
    for new in states:
        store.apply_transition(Transition(message_id, old, new), now=100.0)
        old = new


def test_wal_mode_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "relayer.db"
    opened = open_store(f"sqlite:///{path}")
    opened.close()
    import sqlite3

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"messages", "checkpoints", "signatures", "cursors", "transactions"} <= tables


def test_insert_is_idempotent_and_conflicts_are_reported(store: SqliteStore) -> None:
    first = [observed(0), observed(1)]
    new, conflicts = store.insert_observed(first, now=1.0)
    assert new == [o.message.id for o in first] and conflicts == []
    assert store.insert_observed(first, now=2.0) == ([], [])
    record = store.get(first[0].message.id)
    assert record is not None and record.state is S.OBSERVED and record.observed_at == 1.0
    assert record.source_block == 10 and record.source_transaction == b"\x00" * 32
    other = ObservedMessage(Message.create(nonce=1, origin=1, sender=b"\x09" * 32, destination=2,
                                           recipient=b"\x02" * 32, body=b"other"), 11, b"\x00" * 32, b"", 0)
    assert store.insert_observed([other], now=3.0) == ([], [other.message.id])
    assert store.get(other.message.id) is None


def test_mark_final_and_orphans_only_before_final(store: SqliteStore) -> None:
    items = [observed(n) for n in range(4)]  # blocks 10..13
    store.insert_observed(items, now=1.0)
    assert store.mark_final(1, finalized_block=11, now=2.0) == [items[0].message.id, items[1].message.id]
    assert store.mark_final(2, finalized_block=99, now=2.0) == []  # another origin
    removed, refused = store.remove_orphans([items[3].message.id, items[1].message.id, b"\x07" * 32])
    assert removed == [items[3].message.id]
    assert refused == [items[1].message.id]
    assert store.get(items[3].message.id) is None
    assert store.get(items[1].message.id).state is S.FINAL  # type: ignore[union-attr]
    assert [n for n, _ in store.message_ids_by_nonce(1)] == [0, 1, 2]
    assert store.lowest_nonce(1, S.OBSERVED) == 2
    assert store.lowest_nonce(1, S.VERIFIED) is None


def test_transitions_are_checked_and_guarded(store: SqliteStore) -> None:
    item = observed(0)
    store.insert_observed([item], now=1.0)
    message_id = item.message.id
    with pytest.raises(IllegalTransition):
        store.apply_transition(Transition(message_id, S.OBSERVED, S.DELIVERED), now=2.0)
    with pytest.raises(StaleState):
        store.apply_transition(Transition(message_id, S.FINAL, S.ATTESTED), now=2.0)
    with pytest.raises(StaleState):
        store.apply_transition(Transition(b"\x05" * 32, S.OBSERVED, S.FINAL), now=2.0)
    walk(store, message_id, S.FINAL, S.ATTESTED)
    branch = tuple(bytes([i]) * 32 for i in range(32))
    store.apply_transition(Transition(message_id, S.ATTESTED, S.VERIFIED, {"branch": branch}), now=5.0)
    store.apply_transition(Transition(message_id, S.VERIFIED, S.SUBMITTED), now=6.0)
    store.apply_transition(Transition(message_id, S.SUBMITTED, S.RETRYING, {
        "attempts": 1, "next_attempt_at": 50.0, "last_error": "RpcUnavailable: down", "error_reason": "RpcUnavailable",
    }), now=7.0)
    record = store.get(message_id)
    assert record is not None
    assert record.state is S.RETRYING and record.attempts == 1 and record.branch == branch
    assert (record.final_at, record.attested_at, record.verified_at, record.submitted_at) == (100.0, 100.0, 5.0, 6.0)
    assert record.updated_at == 7.0 and record.last_error == "RpcUnavailable: down"
    assert store.due_for_retry(now=49.0) == []
    assert [r.id for r in store.due_for_retry(now=50.0, destination=2)] == [message_id]
    assert store.due_for_retry(now=50.0, destination=3) == []
    with pytest.raises(ValueError, match="cannot set"):
        store.apply_transition(Transition(message_id, S.RETRYING, S.SUBMITTED, {"state": "delivered"}), now=8.0)


def test_a_batch_of_transitions_is_all_or_nothing(store: SqliteStore) -> None:
    items = [observed(0), observed(1)]
    store.insert_observed(items, now=1.0)
    store.mark_final(1, 99, now=1.0)
    good = Transition(items[0].message.id, S.FINAL, S.ATTESTED)
    stale = Transition(items[1].message.id, S.VERIFIED, S.SUBMITTED)
    with pytest.raises(StaleState):
        store.apply_transitions([good, stale], now=2.0)
    assert store.get(items[0].message.id).state is S.FINAL  # type: ignore[union-attr]


def test_listing_pages_newest_first_with_filters(store: SqliteStore) -> None:
    items = [observed(n, destination=2 + n % 2) for n in range(7)]
    store.insert_observed(items, now=1.0)
    store.mark_final(1, 12, now=2.0)  # nonces 0..2
    ids = [o.message.id for o in items]
    page = store.list_messages(MessageFilter(), limit=3)
    assert [r.id for r in page.records] == ids[::-1][:3] and page.next_token
    second = store.list_messages(MessageFilter(), limit=3, page_token=page.next_token)
    third = store.list_messages(MessageFilter(), limit=3, page_token=second.next_token)
    assert [r.id for r in second.records + third.records] == ids[::-1][3:]
    assert third.next_token == ""
    finals = store.list_messages(MessageFilter(states=frozenset({S.FINAL})), limit=10)
    assert [r.id for r in finals.records] == ids[2::-1]
    odd = store.list_messages(MessageFilter(destination=3), limit=10)
    assert [r.id for r in odd.records] == [ids[5], ids[3], ids[1]]
    assert store.list_messages(MessageFilter(origin=9), limit=10).records == []
    with pytest.raises(MalformedEncoding):
        store.list_messages(MessageFilter(), limit=3, page_token="not-a-token")


def test_counts_and_oldest_pending(store: SqliteStore) -> None:
    items = [observed(n) for n in range(3)]
    for n, item in enumerate(items):
        store.insert_observed([item], now=float(n))
    walk(store, items[0].message.id, S.FINAL, S.ATTESTED)
    store.apply_transition(Transition(items[0].message.id, S.ATTESTED, S.REJECTED, {
        "last_error": "InvalidSignature: forged", "error_reason": "InvalidSignature"}), now=3.0)
    assert store.count_by_state() == {S.OBSERVED: 2, S.REJECTED: 1}
    assert store.count_by_state(origin=5) == {}
    assert store.count_by_route_and_state() == {(1, 2, S.OBSERVED): 2, (1, 2, S.REJECTED): 1}
    assert store.count_rejections() == {"InvalidSignature": 1}
    oldest = store.oldest_pending()
    assert oldest is not None and oldest.id == items[1].message.id


def test_certificates_signatures_transactions_and_cursors(store: SqliteStore) -> None:
    items = [observed(0), observed(1)]
    store.insert_observed(items, now=1.0)
    store.mark_final(1, 99, now=1.0)
    checkpoint = Checkpoint(origin=1, gateway=b"\x42" * 32, epoch=3, root=b"\x07" * 32, index=1)
    certificate = QuorumCertificate(b"\x07", b"\x99" * 96)
    ids = [o.message.id for o in items]
    checkpoint_id = store.attest_messages(checkpoint, certificate, ids, now=2.0)
    assert store.save_certificate(checkpoint, QuorumCertificate(b"\x0f", b"\x98" * 96), now=3.0) == checkpoint_id
    stored = store.get_certificate(checkpoint_id)
    assert stored is not None and stored.checkpoint == checkpoint and stored.certificate == certificate
    assert store.get(ids[1]).checkpoint_id == checkpoint_id  # type: ignore[union-attr]
    assert store.get_certificate(checkpoint_id + 1) is None

    signature = SignatureRecord(checkpoint, 0, b"\x01" * 48, b"\x02" * 96, "127.0.0.1:1", "", 5.0)
    assert store.save_signature(signature)
    assert not store.save_signature(signature)
    forged = SignatureRecord(checkpoint, 1, b"\x03" * 48, b"\x04" * 96, "127.0.0.1:2", "UnknownSigner: x", 5.0)
    assert store.save_signature(forged)
    assert store.signatures_for(1, 0) == [signature]
    assert store.signatures_for(1, 0, valid_only=False) == [signature, forged]
    assert store.signatures_for(1, 2) == []
    assert store.prune_signatures(1, 2) == 2
    assert store.signatures_for(1, 0, valid_only=False) == []

    transaction = SubmittedTransaction(b"\xaa" * 32, 2, checkpoint_id, tuple(ids), 17, 21000, 9.0)
    store.record_transaction(transaction)
    store.record_transaction(transaction)
    assert store.transactions_for(ids[1]) == [transaction]
    assert store.transactions_for(b"\x00" * 32) == []

    assert store.load_cursor(1) is None
    store.save_cursor(1, Cursor(10, b"\x0a" * 32))
    store.save_cursor(1, Cursor(12, b"\x0c" * 32))
    assert store.load_cursor(1) == Cursor(12, b"\x0c" * 32)


def test_listeners_hear_committed_changes(store: SqliteStore) -> None:
    heard: list[list[bytes]] = []
    store.add_listener(lambda ids: heard.append(list(ids)))
    item = observed(0)
    store.insert_observed([item], now=1.0)
    store.mark_final(1, 99, now=2.0)
    with pytest.raises(IllegalTransition):
        store.apply_transition(Transition(item.message.id, S.FINAL, S.DELIVERED), now=3.0)
    assert heard == [[item.message.id], [item.message.id]]


def test_committed_state_survives_kill_9_and_the_open_transaction_does_not(tmp_path: Path) -> None:
    path = tmp_path / "relayer.db"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from tests.unit.test_store import observed
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
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=10)
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
