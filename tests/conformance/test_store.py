"""The `Store` interface (relay/store/base.py), run against every store back end.

Everything here is promised by the interface, not by one database: idempotent inserts, reported
conflicts, guarded transitions (`IllegalTransition`, `StaleState`), orphans removed only before
FINAL, certificates, signatures, transactions, cursors, keyset paging, counts and listeners.
SQLite-specific behaviour (WAL, files, crash durability) is in tests/unit/test_store.py.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from relay.chains import Cursor, ObservedMessage
from relay.errors import MalformedEncoding
from relay.lifecycle import IllegalTransition, MessageState, StaleState
from relay.store import (
    MessageFilter,
    SignatureRecord,
    SqliteStore,
    Store,
    SubmittedTransaction,
    Transition,
)
from relay.verify.committee import Checkpoint, QuorumCertificate
from relay.verify.message import Message

S = MessageState

StoreFactory = Callable[[], Store]


def open_postgres(folder: Path, request: pytest.FixtureRequest) -> Store:
    """A `PostgresStore` on the test's own database in the session's server: created and migrated
    on the first call for `folder` (dropped after the test), reopened on the next ones."""
    from relay.store.postgres import PostgresStore
    from relay.store.postgres_schema import migrate

    server = request.getfixturevalue("postgres_server")
    name = "t_" + hashlib.sha256(str(folder).encode()).hexdigest()[:20]
    marker = folder / "postgres-database"
    if not marker.exists():
        migrate(server.create_database(name))
        marker.write_text(name)
        request.addfinalizer(lambda: server.drop_database(name))
    return PostgresStore(server.dsn(name), pool_max=4)


STORE_BACKENDS: dict[str, Callable[[Path, pytest.FixtureRequest], Store]] = {
    "sqlite": lambda folder, request: SqliteStore(folder / "relayer.db"),
    "postgres": open_postgres,
}
"""Back-end name -> how to open (or reopen) that back end's database kept under a test's folder.

A new back end joins the suite with one entry here: a function that opens the store on a fresh
database for the test (the PostgreSQL one: a database named after the folder, in the session's
server) and, called again with the same folder, reopens the same database. Every test below then
runs against it too.
"""


@pytest.fixture(params=sorted(STORE_BACKENDS))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens a store of the back end under test; each call reopens the same database.

    Parametrized by back-end name over `STORE_BACKENDS`; every store opened is closed after the test.
    """
    opened: list[Store] = []

    def open_store() -> Store:
        store = STORE_BACKENDS[request.param](tmp_path, request)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    """A fresh, empty store of the back end under test."""
    return store_factory()


def observed(nonce: int, origin: int = 1, destination: int = 2, block: int | None = None) -> ObservedMessage:
    """A Dispatch of `nonce` seen at block `nonce + 10` (or `block`)."""
    message = Message.create(
        nonce=nonce,
        origin=origin,
        sender=b"\x01" * 32,
        destination=destination,
        recipient=b"\x02" * 32,
        body=f"body {nonce}".encode(),
    )
    number = nonce + 10 if block is None else block
    return ObservedMessage(message, number, number.to_bytes(32, "big"), bytes([nonce % 256]) * 32, nonce % 3)


def walk(store: Store, message_id: bytes, *states: MessageState, now: float = 100.0) -> None:
    """Move `message_id` through `states`, one transition each."""
    record = store.get(message_id)
    assert record is not None
    old = record.state
    for new in states:
        store.apply_transition(Transition(message_id, old, new), now=now)
        old = new


def checkpoint_at(index: int, origin: int = 1, root: bytes = b"\x07" * 32) -> Checkpoint:
    return Checkpoint(origin=origin, gateway=b"\x42" * 32, epoch=3, root=root, index=index)


CERTIFICATE = QuorumCertificate(b"\x07", b"\x99" * 96)


# --- inserts, finality, orphans -------------------------------------------------------------------


def test_insert_is_idempotent_and_conflicts_are_reported(store: Store) -> None:
    first = [observed(0), observed(1)]
    new, conflicts = store.insert_observed(first, now=1.0)
    assert new == [o.message.id for o in first] and conflicts == []
    assert store.insert_observed(first, now=2.0) == ([], [])
    record = store.get(first[0].message.id)
    assert record is not None and record.state is S.OBSERVED and record.observed_at == 1.0
    assert record.message == first[0].message
    assert record.source_block == 10 and record.source_block_hash == (10).to_bytes(32, "big")
    assert record.source_transaction == b"\x00" * 32 and record.log_index == 0
    assert store.get(first[1].message.id).log_index == 1  # type: ignore[union-attr]
    other = ObservedMessage(
        Message.create(
            nonce=1, origin=1, sender=b"\x09" * 32, destination=2, recipient=b"\x02" * 32, body=b"other"
        ),
        11,
        b"\x00" * 32,
        b"",
        0,
    )
    assert store.insert_observed([other], now=3.0) == ([], [other.message.id])
    assert store.get(other.message.id) is None
    # The same nonce on another origin is another message, not a conflict.
    elsewhere = observed(1, origin=5)
    assert store.insert_observed([elsewhere], now=4.0) == ([elsewhere.message.id], [])


def test_mark_final_moves_only_observed_messages_of_the_origin_up_to_the_block(store: Store) -> None:
    items = [observed(n) for n in range(4)]  # blocks 10..13
    other_origin = observed(0, origin=7, block=5)
    store.insert_observed([*items, other_origin], now=1.0)
    assert store.mark_final(1, finalized_block=11, now=2.0) == [items[0].message.id, items[1].message.id]
    assert store.mark_final(1, finalized_block=11, now=3.0) == []  # already FINAL: not again
    assert store.mark_final(2, finalized_block=99, now=2.0) == []  # another origin
    record = store.get(items[1].message.id)
    assert record is not None and record.state is S.FINAL and record.final_at == 2.0
    assert store.get(items[2].message.id).state is S.OBSERVED  # type: ignore[union-attr]
    assert store.get(other_origin.message.id).state is S.OBSERVED  # type: ignore[union-attr]


def test_orphans_are_removed_only_before_final(store: Store) -> None:
    items = [observed(n) for n in range(4)]  # blocks 10..13
    store.insert_observed(items, now=1.0)
    store.mark_final(1, finalized_block=11, now=2.0)
    walk(store, items[0].message.id, S.ATTESTED)
    removed, refused = store.remove_orphans(
        [items[3].message.id, items[1].message.id, items[0].message.id, b"\x07" * 32]
    )
    assert removed == [items[3].message.id]
    assert refused == [items[1].message.id, items[0].message.id]
    assert store.get(items[3].message.id) is None
    assert store.get(items[1].message.id).state is S.FINAL  # type: ignore[union-attr]
    assert store.get(items[0].message.id).state is S.ATTESTED  # type: ignore[union-attr]
    # The orphan's nonce is free again: its replacement is new, not a conflict.
    replacement = ObservedMessage(
        Message.create(
            nonce=3, origin=1, sender=b"\x09" * 32, destination=2, recipient=b"\x02" * 32, body=b"replacement"
        ),
        13,
        b"\x0d" * 32,
        b"\x0e" * 32,
        0,
    )
    assert store.insert_observed([replacement], now=3.0) == ([replacement.message.id], [])


def test_nonce_views_of_an_origin(store: Store) -> None:
    store.insert_observed([observed(n) for n in (2, 0, 1, 3)] + [observed(0, origin=9)], now=1.0)
    store.mark_final(1, finalized_block=11, now=2.0)  # nonces 0 and 1
    assert [n for n, _ in store.message_ids_by_nonce(1)] == [0, 1, 2, 3]
    assert store.message_ids_by_nonce(1, from_nonce=2) == [
        (2, observed(2).message.id),
        (3, observed(3).message.id),
    ]
    assert store.message_ids_by_nonce(1, from_nonce=4) == []
    assert store.message_ids_by_nonce(4) == []
    assert store.lowest_nonce(1, S.OBSERVED) == 2
    assert store.lowest_nonce(1, S.FINAL) == 0
    assert store.lowest_nonce(9, S.FINAL) is None
    assert store.lowest_nonce(1, S.VERIFIED) is None


# --- transitions -----------------------------------------------------------------------------


def test_transitions_are_checked_and_guarded(store: Store) -> None:
    item = observed(0)
    store.insert_observed([item], now=1.0)
    message_id = item.message.id
    with pytest.raises(IllegalTransition):
        store.apply_transition(Transition(message_id, S.OBSERVED, S.DELIVERED), now=2.0)
    with pytest.raises(StaleState):
        store.apply_transition(Transition(message_id, S.FINAL, S.ATTESTED), now=2.0)
    with pytest.raises(StaleState):
        store.apply_transition(Transition(b"\x05" * 32, S.OBSERVED, S.FINAL), now=2.0)
    assert store.get(message_id).state is S.OBSERVED  # type: ignore[union-attr]
    walk(store, message_id, S.FINAL, S.ATTESTED)
    branch = tuple(bytes([i]) * 32 for i in range(32))
    store.apply_transition(Transition(message_id, S.ATTESTED, S.VERIFIED, {"branch": branch}), now=5.0)
    store.apply_transition(Transition(message_id, S.VERIFIED, S.SUBMITTED), now=6.0)
    store.apply_transition(
        Transition(
            message_id,
            S.SUBMITTED,
            S.RETRYING,
            {
                "attempts": 1,
                "next_attempt_at": 50.0,
                "last_error": "RpcUnavailable: down",
                "error_reason": "RpcUnavailable",
            },
        ),
        now=7.0,
    )
    record = store.get(message_id)
    assert record is not None
    assert record.state is S.RETRYING and record.attempts == 1 and record.branch == branch
    assert (record.final_at, record.attested_at, record.verified_at, record.submitted_at) == (
        100.0,
        100.0,
        5.0,
        6.0,
    )
    assert record.updated_at == 7.0 and record.last_error == "RpcUnavailable: down"
    assert record.error_reason == "RpcUnavailable" and record.next_attempt_at == 50.0
    with pytest.raises(ValueError, match="cannot set"):
        store.apply_transition(
            Transition(message_id, S.RETRYING, S.SUBMITTED, {"state": "delivered"}), now=8.0
        )
    assert store.get(message_id).state is S.RETRYING  # type: ignore[union-attr]
    store.apply_transition(Transition(message_id, S.RETRYING, S.SUBMITTED), now=9.0)
    store.apply_transition(
        Transition(message_id, S.SUBMITTED, S.DELIVERED, {"destination_transaction": b"\xdd" * 32}), now=10.0
    )
    record = store.get(message_id)
    assert (
        record is not None and record.delivered_at == 10.0 and record.destination_transaction == b"\xdd" * 32
    )


def test_a_light_client_origins_states_are_stored_counted_and_listed(store: Store) -> None:
    """WAITING_FOR_HEADER and HEADER_SUBMITTED (issue 13) round-trip, count and filter like any state."""
    items = [observed(n) for n in range(3)]
    store.insert_observed(items, now=1.0)
    ids = [i.message.id for i in items]
    for message_id in ids:
        walk(store, message_id, S.FINAL, S.WAITING_FOR_HEADER)
    walk(store, ids[1], S.HEADER_SUBMITTED)
    walk(store, ids[2], S.HEADER_SUBMITTED, S.VERIFIED)
    assert [r.id for r in store.messages_in_state(S.WAITING_FOR_HEADER, origin=1)] == [ids[0]]
    assert [r.id for r in store.messages_in_state(S.HEADER_SUBMITTED, origin=1)] == [ids[1]]
    counts = store.count_by_state()
    assert counts.get(S.WAITING_FOR_HEADER) == 1 and counts.get(S.HEADER_SUBMITTED) == 1
    assert store.count_by_route_and_state()[(1, 2, S.VERIFIED)] == 1
    page = store.list_messages(
        MessageFilter(states=frozenset({S.WAITING_FOR_HEADER, S.HEADER_SUBMITTED})), 10
    )
    assert sorted(r.id for r in page.records) == sorted(ids[:2])
    with pytest.raises(IllegalTransition):
        store.apply_transition(Transition(ids[0], S.WAITING_FOR_HEADER, S.SUBMITTED), now=3.0)


def test_a_second_writer_with_the_same_expectation_gets_stale_state(store: Store) -> None:
    item = observed(0)
    store.insert_observed([item], now=1.0)
    store.mark_final(1, 99, now=1.0)
    move = Transition(item.message.id, S.FINAL, S.ATTESTED)
    store.apply_transition(move, now=2.0)
    with pytest.raises(StaleState):
        store.apply_transition(move, now=3.0)
    record = store.get(item.message.id)
    assert record is not None and record.state is S.ATTESTED and record.attested_at == 2.0


def test_a_batch_of_transitions_is_all_or_nothing(store: Store) -> None:
    items = [observed(0), observed(1)]
    store.insert_observed(items, now=1.0)
    store.mark_final(1, 99, now=1.0)
    good = Transition(items[0].message.id, S.FINAL, S.ATTESTED)
    stale = Transition(items[1].message.id, S.VERIFIED, S.SUBMITTED)
    with pytest.raises(StaleState):
        store.apply_transitions([good, stale], now=2.0)
    assert store.get(items[0].message.id).state is S.FINAL  # type: ignore[union-attr]
    illegal = Transition(items[1].message.id, S.FINAL, S.DELIVERED)
    with pytest.raises(IllegalTransition):
        store.apply_transitions([good, illegal], now=2.0)
    assert store.get(items[0].message.id).state is S.FINAL  # type: ignore[union-attr]
    store.apply_transitions([good, Transition(items[1].message.id, S.FINAL, S.ATTESTED)], now=3.0)
    assert store.count_by_state() == {S.ATTESTED: 2}


def test_due_for_retry_lists_retrying_messages_whose_time_came_soonest_first(store: Store) -> None:
    items = [observed(n, destination=2 + n % 2) for n in range(4)]
    store.insert_observed(items, now=1.0)
    store.mark_final(1, 99, now=1.0)
    for item, at in zip(items, (30.0, 10.0, 20.0, 40.0), strict=True):
        walk(store, item.message.id, S.ATTESTED, S.VERIFIED, S.SUBMITTED)
        store.apply_transition(
            Transition(item.message.id, S.SUBMITTED, S.RETRYING, {"next_attempt_at": at}), now=2.0
        )
    ids = [o.message.id for o in items]
    assert store.due_for_retry(now=9.0) == []
    assert [r.id for r in store.due_for_retry(now=30.0)] == [ids[1], ids[2], ids[0]]
    assert [r.id for r in store.due_for_retry(now=30.0, destination=2)] == [ids[2], ids[0]]
    assert [r.id for r in store.due_for_retry(now=30.0, destination=4)] == []
    assert [r.id for r in store.due_for_retry(now=99.0, limit=2)] == [ids[1], ids[2]]
    # Only RETRYING messages are due, whatever their next_attempt_at.
    store.apply_transition(Transition(ids[1], S.RETRYING, S.SUBMITTED), now=3.0)
    assert [r.id for r in store.due_for_retry(now=99.0)] == [ids[2], ids[0], ids[3]]


def test_messages_in_state_by_origin_then_nonce(store: Store) -> None:
    items = [observed(1, origin=2), observed(0, origin=2, destination=3), observed(1), observed(0)]
    store.insert_observed(items, now=1.0)
    store.insert_observed([observed(2)], now=1.0)
    store.mark_final(1, 99, now=2.0)
    store.mark_final(2, 99, now=2.0)
    walk(store, observed(2).message.id, S.ATTESTED)
    listed = store.messages_in_state(S.FINAL)
    assert [(r.message.origin, r.message.nonce) for r in listed] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert [r.message.nonce for r in store.messages_in_state(S.FINAL, origin=2)] == [0, 1]
    assert [r.message.nonce for r in store.messages_in_state(S.FINAL, origin=2, destination=3)] == [0]
    assert [r.message.nonce for r in store.messages_in_state(S.FINAL, destination=2)] == [0, 1, 1]
    assert len(store.messages_in_state(S.FINAL, limit=3)) == 3
    assert [r.id for r in store.messages_in_state(S.ATTESTED)] == [observed(2).message.id]
    assert store.messages_in_state(S.DELIVERED) == []


# --- listing and counting --------------------------------------------------------------------


def test_listing_pages_newest_first_with_filters(store: Store) -> None:
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
    both = store.list_messages(MessageFilter(states=frozenset({S.FINAL, S.OBSERVED})), limit=10)
    assert len(both.records) == 7 and both.next_token == ""
    odd = store.list_messages(MessageFilter(destination=3), limit=10)
    assert [r.id for r in odd.records] == [ids[5], ids[3], ids[1]]
    final_odd = store.list_messages(MessageFilter(states=frozenset({S.FINAL}), destination=3), limit=10)
    assert [r.id for r in final_odd.records] == [ids[1]]
    assert store.list_messages(MessageFilter(origin=1), limit=10).records[-1].id == ids[0]
    assert store.list_messages(MessageFilter(origin=9), limit=10).records == []
    with pytest.raises(MalformedEncoding):
        store.list_messages(MessageFilter(), limit=3, page_token="not-a-token")


def test_paging_is_stable_while_messages_arrive(store: Store) -> None:
    store.insert_observed([observed(n) for n in range(4)], now=1.0)
    page = store.list_messages(MessageFilter(), limit=2)
    store.insert_observed([observed(n) for n in range(4, 6)], now=2.0)  # newer: before the first page
    rest = store.list_messages(MessageFilter(), limit=10, page_token=page.next_token)
    assert [r.message.nonce for r in page.records + rest.records] == [3, 2, 1, 0]


def test_listing_by_checkpoint(store: Store) -> None:
    items = [observed(n) for n in range(3)]
    store.insert_observed(items, now=1.0)
    store.mark_final(1, 99, now=1.0)
    checkpoint_id = store.attest_messages(
        checkpoint_at(1), CERTIFICATE, [items[0].message.id, items[1].message.id], now=2.0
    )
    listed = store.list_messages(MessageFilter(checkpoint_id=checkpoint_id), limit=10)
    assert [r.id for r in listed.records] == [items[1].message.id, items[0].message.id]
    assert store.list_messages(MessageFilter(checkpoint_id=checkpoint_id + 1), limit=10).records == []


def test_counts_by_state_route_and_rejection(store: Store) -> None:
    items = [observed(0), observed(1), observed(2, destination=3), observed(0, origin=4)]
    store.insert_observed(items, now=1.0)
    walk(store, items[0].message.id, S.FINAL, S.ATTESTED)
    store.apply_transition(
        Transition(
            items[0].message.id,
            S.ATTESTED,
            S.REJECTED,
            {"last_error": "InvalidSignature: forged", "error_reason": "InvalidSignature"},
        ),
        now=3.0,
    )
    walk(store, items[1].message.id, S.FINAL, S.ATTESTED)
    store.apply_transition(
        Transition(
            items[1].message.id,
            S.ATTESTED,
            S.REJECTED,
            {"last_error": "InvalidMerkleProof: bad", "error_reason": "InvalidMerkleProof"},
        ),
        now=3.0,
    )
    assert store.count_by_state() == {S.OBSERVED: 2, S.REJECTED: 2}
    assert store.count_by_state(origin=4) == {S.OBSERVED: 1}
    assert store.count_by_state(origin=5) == {}
    assert store.count_by_route_and_state() == {
        (1, 2, S.REJECTED): 2,
        (1, 3, S.OBSERVED): 1,
        (4, 2, S.OBSERVED): 1,
    }
    assert store.count_rejections() == {"InvalidSignature": 1, "InvalidMerkleProof": 1}


def test_oldest_by_route_and_oldest_pending(store: Store) -> None:
    assert store.oldest_pending() is None
    assert store.oldest_by_route([S.OBSERVED]) == {}
    routes = [observed(0), observed(1), observed(2, destination=3), observed(0, origin=4)]
    for at, item in zip((5.0, 2.0, 7.0, 9.0), routes, strict=True):
        store.insert_observed([item], now=at)
    assert store.oldest_by_route([S.OBSERVED]) == {(1, 2): 2.0, (1, 3): 7.0, (4, 2): 9.0}
    assert store.oldest_by_route([]) == {}
    walk(store, routes[1].message.id, S.FINAL)
    assert store.oldest_by_route([S.OBSERVED]) == {(1, 2): 5.0, (1, 3): 7.0, (4, 2): 9.0}
    assert store.oldest_by_route([S.OBSERVED, S.FINAL]) == {(1, 2): 2.0, (1, 3): 7.0, (4, 2): 9.0}
    oldest = store.oldest_pending()
    assert oldest is not None and oldest.id == routes[1].message.id  # FINAL is still pending
    walk(store, routes[1].message.id, S.ATTESTED, S.VERIFIED, S.SUBMITTED, S.DELIVERED)
    walk(store, routes[0].message.id, S.FINAL, S.ATTESTED, S.REJECTED)
    oldest = store.oldest_pending()
    assert oldest is not None and oldest.id == routes[2].message.id  # delivered and rejected are done


# --- checkpoints, signatures, transactions, cursors -------------------------------------------


def test_attest_messages_stores_the_certificate_and_moves_final_messages(store: Store) -> None:
    items = [observed(0), observed(1), observed(2)]
    store.insert_observed(items, now=1.0)
    store.mark_final(1, 11, now=1.0)  # nonces 0 and 1
    ids = [o.message.id for o in items]
    checkpoint = checkpoint_at(1)
    checkpoint_id = store.attest_messages(checkpoint, CERTIFICATE, ids[:2], now=2.0)
    for message_id in ids[:2]:
        record = store.get(message_id)
        assert record is not None and record.state is S.ATTESTED and record.checkpoint_id == checkpoint_id
        assert record.attested_at == 2.0
    stored = store.get_certificate(checkpoint_id)
    assert stored is not None and stored.checkpoint == checkpoint and stored.certificate == CERTIFICATE
    # One transaction: a message that is not FINAL fails the whole call; the others stay FINAL.
    store.mark_final(1, 12, now=3.0)
    walk(store, ids[2], S.ATTESTED)
    items_after = [observed(3)]
    store.insert_observed(items_after, now=3.0)
    store.mark_final(1, 13, now=3.0)
    with pytest.raises(StaleState):
        store.attest_messages(checkpoint_at(3), CERTIFICATE, [items_after[0].message.id, ids[2]], now=4.0)
    assert store.get(items_after[0].message.id).state is S.FINAL  # type: ignore[union-attr]
    assert store.get(items_after[0].message.id).checkpoint_id is None  # type: ignore[union-attr]


def test_certificates_are_idempotent_on_the_checkpoint(store: Store) -> None:
    checkpoint = checkpoint_at(1)
    checkpoint_id = store.save_certificate(checkpoint, CERTIFICATE, now=2.0)
    assert (
        store.save_certificate(checkpoint, QuorumCertificate(b"\x0f", b"\x98" * 96), now=3.0) == checkpoint_id
    )
    stored = store.get_certificate(checkpoint_id)
    assert stored is not None and stored.checkpoint == checkpoint and stored.certificate == CERTIFICATE
    assert stored.checkpoint_id == checkpoint_id and stored.created_at == 2.0
    other_root = store.save_certificate(checkpoint_at(1, root=b"\x08" * 32), CERTIFICATE, now=4.0)
    other_origin = store.save_certificate(checkpoint_at(1, origin=2), CERTIFICATE, now=4.0)
    assert len({checkpoint_id, other_root, other_origin}) == 3
    assert store.get_certificate(other_origin).checkpoint.origin == 2  # type: ignore[union-attr]


def test_signatures_are_kept_once_listed_from_an_index_and_pruned(store: Store) -> None:
    def signature(
        index: int, signer: int, *, origin: int = 1, rejected: str = "", byte: int = 2
    ) -> SignatureRecord:
        return SignatureRecord(
            checkpoint_at(index, origin=origin),
            signer,
            bytes([signer]) * 48,
            bytes([byte]) * 96,
            f"127.0.0.1:{signer}",
            rejected,
            5.0,
        )

    # A forgery under member 0's index, stored first, does not crowd out member 0's own signature.
    impostor = signature(1, 0, rejected="InvalidSignature: x", byte=3)
    assert store.save_signature(impostor)
    first = signature(1, 0)
    assert store.save_signature(first)
    assert not store.save_signature(first)  # the same signature again: kept once
    assert not store.save_signature(signature(1, 0, rejected="late verdict"))  # first verdict wins
    forged = signature(1, 1, rejected="UnknownSigner: x")
    assert store.save_signature(forged)
    later = [signature(3, 0), signature(3, 2), signature(5, 1)]
    for record in later:
        assert store.save_signature(record)
    assert store.save_signature(signature(3, 0, origin=2))
    assert store.signatures_for(1, 0) == [first, *later]
    every = store.signatures_for(1, 0, valid_only=False)
    assert every[2:] == [forged, *later] and sorted(every[:2], key=lambda r: r.signature) == [first, impostor]
    assert store.signatures_for(1, 3) == later
    assert store.signatures_for(1, 4) == [later[2]]
    assert store.signatures_for(1, 6) == []
    assert store.signatures_for(2, 0) == [signature(3, 0, origin=2)]
    assert store.prune_signatures(1, 3) == 3  # index 1: impostor, first and forged
    assert store.signatures_for(1, 0, valid_only=False) == later
    assert store.prune_signatures(1, 3) == 0
    assert store.signatures_for(2, 0) == [signature(3, 0, origin=2)]  # other origins untouched


def test_a_valid_copy_replaces_a_rejected_copy_of_the_same_signature(store: Store) -> None:
    """The same signature bytes stored rejected first (replayed under a wrong public key), then
    valid (the member's own): the valid copy counts, and a later rejected copy does not undo it."""
    checkpoint = checkpoint_at(7, origin=9)
    replayed = SignatureRecord(checkpoint, 3, b"\x01" * 48, b"\x02" * 96, "a", "UnknownSigner: replayed", 5.0)
    genuine = SignatureRecord(checkpoint, 3, b"\x03" * 48, b"\x02" * 96, "b", "", 6.0)
    assert store.save_signature(replayed)
    assert store.signatures_for(9, 0) == []
    assert store.save_signature(genuine)
    assert store.signatures_for(9, 0) == [genuine]
    assert not store.save_signature(replayed)
    assert store.signatures_for(9, 0) == [genuine]
    assert len(store.signatures_for(9, 0, valid_only=False)) == 1


def test_signatures_are_bounded_per_attestor_lowest_index_forgotten_first(store: Store) -> None:
    """An attestor signing endless distinct checkpoints crowds out only its own oldest rows."""

    def signature(index: int, attestor: str, *, origin: int = 1, byte: int = 2) -> SignatureRecord:
        return SignatureRecord(
            checkpoint_at(index, origin=origin), 0, b"\x01" * 48, bytes([byte]) * 96, attestor, "", 5.0
        )

    assert 16 <= store.max_signatures_per_attestor <= 100_000  # the default: bounded, yet ample
    store.max_signatures_per_attestor = 4
    honest = [signature(1, "honest:1"), signature(2, "honest:1")]
    for record in honest:
        assert store.save_signature(record)
    liar = "liar:1"
    # Worst value: many distinct checkpoints, at one index (distinct signatures) and at rising ones.
    for byte in range(10, 16):
        assert store.save_signature(signature(7, liar, byte=byte))
    for index in range(100, 110):
        assert store.save_signature(signature(index, liar))
    assert not store.save_signature(signature(3, liar))  # below everything it keeps: not kept
    assert store.save_signature(signature(4, liar, origin=2))  # another origin, its own bound
    kept = [r for r in store.signatures_for(1, 0, valid_only=False) if r.attestor == liar]
    assert [r.checkpoint.index for r in kept] == [106, 107, 108, 109]
    assert [r for r in store.signatures_for(1, 0) if r.attestor != liar] == honest
    assert [r.checkpoint.index for r in store.signatures_for(2, 0)] == [4]


def test_transactions_are_recorded_once_and_found_by_message(store: Store) -> None:
    ids = [o.message.id for o in (observed(0), observed(1), observed(2))]
    first = SubmittedTransaction(b"\xaa" * 32, 2, 1, tuple(ids[:2]), 17, 21000, 9.0)
    retry = SubmittedTransaction(b"\xbb" * 32, 2, 1, (ids[1], ids[2]), 19, 25000, 12.0)
    store.record_transaction(first)
    store.record_transaction(first)
    store.record_transaction(retry)
    assert store.transactions_for(ids[0]) == [first]
    assert store.transactions_for(ids[1]) == [first, retry]
    assert store.transactions_for(ids[2]) == [retry]
    assert store.transactions_for(b"\x00" * 32) == []
    without_checkpoint = SubmittedTransaction(b"\xcc" * 32, 3, None, (b"\x05" * 32,), submitted_at=13.0)
    store.record_transaction(without_checkpoint)
    assert store.transactions_for(b"\x05" * 32) == [without_checkpoint]


def test_cursors_per_domain_last_write_wins(store: Store) -> None:
    assert store.load_cursor(1) is None
    store.save_cursor(1, Cursor(10, b"\x0a" * 32))
    store.save_cursor(2, Cursor(5, b"\x05" * 32))
    store.save_cursor(1, Cursor(12, b"\x0c" * 32))
    assert store.load_cursor(1) == Cursor(12, b"\x0c" * 32)
    assert store.load_cursor(2) == Cursor(5, b"\x05" * 32)
    store.save_cursor(1, Cursor(11, b"\x0b" * 32))  # a rewind after a reorg is a cursor too
    assert store.load_cursor(1) == Cursor(11, b"\x0b" * 32)


def test_committed_state_is_there_after_reopening(store_factory: StoreFactory) -> None:
    store = store_factory()
    items = [observed(0), observed(1)]
    store.insert_observed(items, now=1.0)
    store.mark_final(1, 99, now=2.0)
    checkpoint_id = store.attest_messages(checkpoint_at(0), CERTIFICATE, [items[0].message.id], now=3.0)
    store.save_cursor(1, Cursor(12, b"\x0c" * 32))
    store.save_signature(SignatureRecord(checkpoint_at(0), 0, b"\x01" * 48, b"\x02" * 96))
    store.close()
    reopened = store_factory()
    assert reopened.count_by_state() == {S.ATTESTED: 1, S.FINAL: 1}
    assert reopened.get(items[0].message.id).checkpoint_id == checkpoint_id  # type: ignore[union-attr]
    assert reopened.get_certificate(checkpoint_id) is not None
    assert reopened.load_cursor(1) == Cursor(12, b"\x0c" * 32)
    assert len(reopened.signatures_for(1, 0)) == 1
    assert reopened.insert_observed(items, now=4.0) == ([], [])


# --- listeners -------------------------------------------------------------------------------

SETTLE_TIMEOUT_SECONDS = 15.0
_MARKER_ORIGIN = 4242


def settle(store: Store) -> None:
    """Wait until every change committed so far has reached the store's listeners, by committing
    a marker message (one of `MARKERS`, which listeners hear too: they ignore those).

    A shared store hears its commits asynchronously (NOTIFY), in commit order, so once a listener
    added now hears a fresh commit, every earlier one was delivered; for SQLite it is immediate.
    """
    marker = observed(len(store.message_ids_by_nonce(_MARKER_ORIGIN)), origin=_MARKER_ORIGIN)
    arrived = threading.Event()

    def barrier(ids: Sequence[bytes]) -> None:
        if marker.message.id in ids:
            arrived.set()

    store.add_listener(barrier)
    store.insert_observed([marker], now=0.0)
    assert arrived.wait(SETTLE_TIMEOUT_SECONDS), "the store's listeners never heard a commit"
    store.remove_listener(barrier)


MARKERS = frozenset(observed(n, origin=_MARKER_ORIGIN).message.id for n in range(16))


def test_listeners_hear_committed_changes_only(store: Store) -> None:
    heard: list[list[bytes]] = []

    def listener(ids: Sequence[bytes]) -> None:
        if not MARKERS & set(ids):
            heard.append(list(ids))

    store.add_listener(listener)
    items = [observed(0), observed(1)]
    ids = [o.message.id for o in items]
    store.insert_observed(items, now=1.0)
    store.insert_observed(items, now=1.5)  # nothing new: nothing changed
    store.mark_final(1, 99, now=2.0)
    with pytest.raises(IllegalTransition):
        store.apply_transition(Transition(ids[0], S.FINAL, S.DELIVERED), now=3.0)
    with pytest.raises(StaleState):
        store.apply_transitions(
            [Transition(ids[0], S.FINAL, S.ATTESTED), Transition(ids[1], S.OBSERVED, S.FINAL)], now=3.0
        )
    store.attest_messages(checkpoint_at(1), CERTIFICATE, ids, now=4.0)
    settle(store)
    assert heard == [ids, ids, ids]
    store.remove_listener(listener)
    store.apply_transition(Transition(ids[0], S.ATTESTED, S.VERIFIED), now=5.0)
    settle(store)
    assert heard == [ids, ids, ids]
    store.remove_listener(listener)  # removing twice is harmless


def test_a_failing_listener_does_not_undo_or_block_the_change(store: Store) -> None:
    heard: list[list[bytes]] = []

    def broken(ids: object) -> None:
        raise RuntimeError("listener bug")

    store.add_listener(broken)
    store.add_listener(lambda ids: heard.append(list(ids)))
    item = observed(0)
    store.insert_observed([item], now=1.0)
    assert store.get(item.message.id) is not None
    settle(store)
    assert [ids for ids in heard if not MARKERS & set(ids)] == [[item.message.id]]


# --- malformed leaves and tree repair -------------------------------------------------------------


def malformed(nonce: int, leaf_id: bytes, origin: int = 1, destination: int = 2) -> ObservedMessage:
    """A leaf whose message did not decode: a stand-in with the header fields, under `leaf_id`."""
    stand_in = Message.create(
        nonce=nonce,
        origin=origin,
        sender=b"\x01" * 32,
        destination=destination,
        recipient=b"\x02" * 32,
        body=b"",
    )
    number = nonce + 10
    return ObservedMessage(
        stand_in, number, number.to_bytes(32, "big"), b"\x09" * 32, 0, "message body too long", leaf_id
    )


def test_a_malformed_leaf_is_stored_under_its_leaf_id_with_its_reason(store: Store) -> None:
    leaf = malformed(1, b"\x5a" * 32)
    new, conflicts = store.insert_observed([observed(0), leaf, observed(2)], now=1.0)
    assert new == [observed(0).message.id, b"\x5a" * 32, observed(2).message.id] and conflicts == []
    assert store.insert_observed([leaf], now=2.0) == ([], [])  # idempotent on the leaf id
    record = store.get(b"\x5a" * 32)
    assert record is not None and record.id == b"\x5a" * 32 and record.is_malformed
    assert record.malformed_reason == "message body too long"
    assert record.error_reason == "MalformedMessage" and "too long" in record.last_error
    assert (record.message.nonce, record.message.origin, record.message.destination) == (1, 1, 2)
    assert [i for _, i in store.message_ids_by_nonce(1)] == [
        observed(0).message.id,
        b"\x5a" * 32,
        observed(2).message.id,
    ]
    assert [r.id for r in store.list_messages(MessageFilter(origin=1), 10).records][1] == b"\x5a" * 32
    assert store.count_by_route_and_state()[(1, 2, S.OBSERVED)] == 3
    # Another leaf at its nonce is a conflict, like for any message.
    assert store.insert_observed([observed(1)], now=3.0) == ([], [observed(1).message.id])
    plain = store.get(observed(0).message.id)
    assert plain is not None and not plain.is_malformed and plain.leaf_id == b""


def test_drop_unconfirmed_removes_only_unproven_messages_from_a_nonce_on(store: Store) -> None:
    items = [observed(n) for n in range(5)]
    store.insert_observed(items, now=1.0)
    store.mark_final(1, 100, now=1.0)
    walk(store, items[0].message.id, S.ATTESTED, S.VERIFIED)
    walk(store, items[2].message.id, S.ATTESTED, S.VERIFIED, S.SUBMITTED)
    walk(store, items[3].message.id, S.ATTESTED)
    store.insert_observed([observed(0, origin=7)], now=1.0)
    assert store.highest_nonce(1, {S.VERIFIED, S.SUBMITTED}) == 2
    assert store.highest_nonce(1, {S.DELIVERED}) is None
    assert store.drop_unconfirmed(1, 1) == [items[1].message.id, items[3].message.id, items[4].message.id]
    assert [n for n, _ in store.message_ids_by_nonce(1)] == [0, 2]
    assert store.get(observed(0, origin=7).message.id) is not None  # another origin is untouched
    assert store.drop_unconfirmed(1, 0) == []
