"""Service core: operator retries, the operator token, bounded subscriptions, chain statuses."""

from __future__ import annotations

import pytest

from relay.lifecycle import StaleState
from relay.relayer.service import (
    Subscriber,
    Subscriptions,
    check_token,
    compute_chain_statuses,
    retry_message,
)
from relay.store import Store, Transition

from .helpers import (
    ORIGIN,
    START,
    Clock,
    checkpoint_over,
    cursor_at,
    make_message,
    make_source,
    store_attested,
    store_verified,
    walk,
)
from .helpers import S as St

MESSAGE = make_message(0)


def test_a_parked_message_with_its_proof_goes_back_to_verified(store: Store, clock: Clock) -> None:
    source = make_source(store)
    checkpoint_id = store_verified(store, source, [MESSAGE], checkpoint_over([MESSAGE]))
    store.apply_transition(
        Transition(MESSAGE.id, St.VERIFIED, St.PARKED, {"attempts": 8, "next_attempt_at": 5.0}), START
    )
    record = retry_message(store, MESSAGE.id, clock.advance(1.0))
    assert record.state is St.VERIFIED and record.attempts == 0 and record.next_attempt_at == 0.0
    assert record.checkpoint_id == checkpoint_id and len(record.branch) == 32


def test_a_parked_message_without_a_proof_goes_back_to_final(store: Store, clock: Clock) -> None:
    source = make_source(store)
    store_attested(store, source, [MESSAGE], checkpoint_over([MESSAGE]))
    walk(store, MESSAGE.id, St.VERIFIED, St.PARKED)  # no branch stored
    record = retry_message(store, MESSAGE.id, clock.now)
    assert record.state is St.FINAL and record.checkpoint_id is None and record.branch == ()


def test_a_rejected_message_needs_force(store: Store, clock: Clock) -> None:
    source = make_source(store)
    store_attested(store, source, [MESSAGE], checkpoint_over([MESSAGE]))
    walk(store, MESSAGE.id, St.REJECTED)
    with pytest.raises(StaleState):
        retry_message(store, MESSAGE.id, clock.now)
    record = retry_message(store, MESSAGE.id, clock.now, force=True)
    assert record.state is St.FINAL and record.checkpoint_id is None


@pytest.mark.parametrize("force", [False, True])
def test_other_states_cannot_be_retried(store: Store, clock: Clock, force: bool) -> None:
    source = make_source(store)
    store_verified(store, source, [MESSAGE], checkpoint_over([MESSAGE]))
    with pytest.raises(StaleState):
        retry_message(store, MESSAGE.id, clock.now, force=force)
    assert store.get(MESSAGE.id).state is St.VERIFIED  # type: ignore[union-attr]


def test_an_unknown_message_is_a_lookup_error(store: Store, clock: Clock) -> None:
    with pytest.raises(LookupError):
        retry_message(store, b"\x00" * 32, clock.now)


@pytest.mark.parametrize(
    ("given", "expected", "accepted"),
    [
        ("operator-secret", "operator-secret", True),
        ("operator-secreT", "operator-secret", False),
        ("operator-secret-and-more", "operator-secret", False),
        ("", "operator-secret", False),
        ("anything", None, False),
        ("", None, False),
        ("", "", False),
        ("clé-ünïcode", "clé-ünïcode", True),
    ],
)
def test_check_token(given: str, expected: str | None, accepted: bool) -> None:
    assert check_token(given, expected) is accepted


def test_subscribers_get_the_ids_they_asked_for(store: Store) -> None:
    subscriptions = Subscriptions()
    store.add_listener(subscriptions.publish)
    everything, only = subscriptions.subscribe(), subscriptions.subscribe([MESSAGE.id])
    other = make_message(1)
    subscriptions.publish([other.id, MESSAGE.id])
    assert [everything.inbox.get_nowait() for _ in range(2)] == [other.id, MESSAGE.id]
    assert only.inbox.get_nowait() == MESSAGE.id and only.inbox.empty()
    source = make_source(store)
    store_attested(store, source, [MESSAGE], checkpoint_over([MESSAGE]))  # the store's listener feeds them
    assert MESSAGE.id in [only.inbox.get_nowait() for _ in range(only.inbox.qsize())]
    subscriptions.unsubscribe(everything)
    while not everything.inbox.empty():
        everything.inbox.get_nowait()
    subscriptions.publish([MESSAGE.id])
    assert everything.inbox.empty()
    store.remove_listener(subscriptions.publish)


def test_a_stuck_subscriber_overflows_instead_of_growing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Subscriber, "CAPACITY", 3)
    subscriptions = Subscriptions()
    stuck, healthy = subscriptions.subscribe(), subscriptions.subscribe()
    ids = [make_message(n).id for n in range(5)]
    subscriptions.publish(ids[:3])
    assert not stuck.overflowed
    healthy.inbox.get_nowait()
    subscriptions.publish(ids[3:4])
    assert stuck.overflowed and stuck.inbox.qsize() == 3
    assert not healthy.overflowed and healthy.inbox.qsize() == 3
    assert [healthy.inbox.get_nowait() for _ in range(3)] == ids[1:4]
    subscriptions.close_all()
    assert stuck.overflowed and stuck.inbox.qsize() == 3  # no room for the end marker: still overflowed
    assert healthy.inbox.get_nowait() is None and not healthy.overflowed


def test_close_all_ends_every_stream() -> None:
    subscriptions = Subscriptions()
    subscriber = subscriptions.subscribe()
    subscriptions.close_all()
    assert subscriber.inbox.get_nowait() is None and not subscriber.overflowed


def test_chain_statuses_report_cursor_and_lag(store: Store, clock: Clock) -> None:
    idle, behind = make_source(store), make_source(store, domain=5)
    idle.head, idle.finalized = 12, 10
    store.save_cursor(ORIGIN, cursor_at(12))
    behind.head, behind.finalized, behind.behind_since = 900, 800, START - 30.0
    behind.cursors.save_cursor(5, cursor_at(700))
    statuses = {s.domain: s for s in compute_chain_statuses({ORIGIN: idle, 5: behind}, clock.now)}
    assert (statuses[ORIGIN].cursor, statuses[ORIGIN].lag_blocks, statuses[ORIGIN].lag_seconds) == (
        12,
        0,
        0.0,
    )
    assert (statuses[5].cursor, statuses[5].lag_blocks, statuses[5].lag_seconds) == (700, 100, 30.0)
    assert statuses[5].head == 900 and statuses[5].name == "alpha"


def test_missed_changes_make_watchers_of_ids_re_read_them_and_watchers_of_all_start_over() -> None:
    subscriptions = Subscriptions()
    ids = [make_message(n).id for n in range(3)]
    everything, some = subscriptions.subscribe(), subscriptions.subscribe(ids[:2])
    subscriptions.publish(())  # the store lost its notifications for a while (Store.add_listener)
    assert sorted(some.inbox.get_nowait() for _ in range(2)) == sorted(ids[:2]) and some.inbox.empty()
    assert not some.overflowed
    assert everything.overflowed and everything.inbox.empty()  # its stream ends: watch again
    subscriptions.close_all()
