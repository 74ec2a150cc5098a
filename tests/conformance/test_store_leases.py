"""Leases, delivery claims and fencing (relay/store/base.py), run against every store back end.

This is what lets several relayer replicas share one store (docs/adr/0007-replicas-leases-fencing.md):
a named lease has one live holder and a fencing token that grows when it changes hands; a message
claimed for delivery carries its claim's token, and a write that presents an older token is
refused with `LeaseLost`, whatever it would have done. Parametrized over `STORE_BACKENDS` like
tests/conformance/test_store.py, whose fixtures and helpers it shares.
"""

from __future__ import annotations

import pytest

from relay.chains import Cursor
from relay.lifecycle import LeaseLost, MessageState, StaleState
from relay.store import Lease, Store, Transition
from tests.conformance import test_store as suite
from tests.conformance.test_store import CERTIFICATE, checkpoint_at, observed, walk
from tests.waiting import eventually

S = MessageState
TTL = 10.0

# The suite's fixtures, so every back end of `STORE_BACKENDS` runs these tests too.
store_factory = suite.store_factory
store = suite.store


def verified(store: Store, *nonces: int, destination: int = 2) -> list[bytes]:
    """Insert messages of origin 1 at `nonces` and walk them to VERIFIED; their ids."""
    items = [observed(n, destination=destination) for n in nonces]
    store.insert_observed(items, now=1.0)
    for item in items:
        walk(store, item.message.id, S.FINAL, S.ATTESTED, S.VERIFIED)
    return [item.message.id for item in items]


# --- named leases ---------------------------------------------------------------------------------


def test_a_lease_has_one_live_holder_and_its_fence_grows_only_when_it_changes_hands(store: Store) -> None:
    first = store.acquire_lease("source/1", "a", now=100.0, ttl=TTL)
    assert first == Lease("source/1", "a", 1, 110.0)
    assert store.acquire_lease("source/1", "b", now=105.0, ttl=TTL) is None  # a's, live
    renewed = store.acquire_lease("source/1", "a", now=108.0, ttl=TTL)
    assert renewed == Lease("source/1", "a", 1, 118.0)  # renewal keeps the fence
    assert store.acquire_lease("source/1", "b", now=117.9, ttl=TTL) is None
    taken = store.acquire_lease("source/1", "b", now=118.0, ttl=TTL)  # expired: taken over
    assert taken == Lease("source/1", "b", 2, 128.0)
    assert store.acquire_lease("source/1", "a", now=120.0, ttl=TTL) is None
    # Leases are independent by name.
    assert store.acquire_lease("source/2", "a", now=120.0, ttl=TTL) == Lease("source/2", "a", 1, 130.0)
    assert [lease.name for lease in store.leases("source/")] == ["source/1", "source/2"]
    assert store.leases("replica/") == []
    assert store.leases() == [Lease("source/1", "b", 2, 128.0), Lease("source/2", "a", 1, 130.0)]


def test_a_released_lease_is_free_at_once_and_a_stale_release_does_nothing(store: Store) -> None:
    old = store.acquire_lease("source/1", "a", now=100.0, ttl=TTL)
    assert old is not None
    assert store.release_lease(old, now=101.0)
    taken = store.acquire_lease("source/1", "b", now=101.5, ttl=TTL)
    assert taken is not None and taken.fence == 2
    assert not store.release_lease(old, now=102.0)  # a's old lease: b keeps it
    assert store.acquire_lease("source/1", "a", now=102.0, ttl=TTL) is None


def test_a_lease_survives_reopening_the_store(store_factory) -> None:
    first = store_factory()
    lease = first.acquire_lease("replica/r1", "pod-1", now=100.0, ttl=TTL)
    first.close()
    again = store_factory()
    assert again.leases("replica/") == [lease]
    assert again.acquire_lease("replica/r1", "pod-2", now=105.0, ttl=TTL) is None


# --- writes under a lease -------------------------------------------------------------------------


def test_source_writes_under_a_lease_taken_over_are_refused_whole(store: Store) -> None:
    stale = store.acquire_lease("source/1", "a", now=100.0, ttl=TTL)
    assert stale is not None
    items = [observed(0), observed(1)]
    assert store.insert_observed(items[:1], now=100.0, lease=stale)[0] == [items[0].message.id]
    # Expired but nobody took it over: still safe to write under.
    store.save_cursor(1, Cursor(10, b"\x01" * 32), lease=stale)
    assert store.load_cursor(1) == Cursor(10, b"\x01" * 32)
    fresh = store.acquire_lease("source/1", "b", now=200.0, ttl=TTL)
    assert fresh is not None and fresh.fence == 2

    with pytest.raises(LeaseLost):
        store.insert_observed(items[1:], now=201.0, lease=stale)
    assert store.get(items[1].message.id) is None
    with pytest.raises(LeaseLost):
        store.save_cursor(1, Cursor(5, b"\x05" * 32), lease=stale)  # would rewind the watcher
    assert store.load_cursor(1) == Cursor(10, b"\x01" * 32)
    with pytest.raises(LeaseLost):
        store.mark_final(1, finalized_block=99, now=201.0, lease=stale)
    assert store.get(items[0].message.id).state is S.OBSERVED  # type: ignore[union-attr]
    with pytest.raises(LeaseLost):
        store.remove_orphans([items[0].message.id], lease=stale)
    with pytest.raises(LeaseLost):
        store.drop_unconfirmed(1, 0, lease=stale)
    assert store.get(items[0].message.id) is not None
    with pytest.raises(LeaseLost):
        store.apply_transition(Transition(items[0].message.id, S.OBSERVED, S.FINAL), now=201.0, lease=stale)

    # The holder's writes go through, and the lease of another name does not count.
    assert store.mark_final(1, finalized_block=99, now=202.0, lease=fresh) == [items[0].message.id]
    other = store.acquire_lease("source/2", "a", now=202.0, ttl=TTL)
    assert other is not None
    with pytest.raises(LeaseLost):
        store.attest_messages(checkpoint_at(0), CERTIFICATE, [items[0].message.id], now=203.0, lease=stale)
    assert store.get(items[0].message.id).state is S.FINAL  # type: ignore[union-attr]
    store.attest_messages(checkpoint_at(0), CERTIFICATE, [items[0].message.id], now=203.0, lease=fresh)
    assert store.get(items[0].message.id).state is S.ATTESTED  # type: ignore[union-attr]


def test_a_lease_never_acquired_fences_nothing_through(store: Store) -> None:
    ghost = Lease("source/1", "a", 1, 1e12)
    with pytest.raises(LeaseLost):
        store.insert_observed([observed(0)], now=1.0, lease=ghost)
    assert store.get(observed(0).message.id) is None


# --- delivery claims ------------------------------------------------------------------------------


def test_claims_are_exclusive_until_they_expire_and_each_claim_gets_a_new_fence(store: Store) -> None:
    a, b, c = verified(store, 0, 1, 2)
    claimed = store.claim_messages([a, b], "r1", now=100.0, ttl=TTL)
    assert [r.id for r in claimed] == [a, b]
    assert all(r.claim_owner == "r1" and r.claim_expires == 110.0 and r.fence > 0 for r in claimed)
    assert claimed[0].fence != claimed[1].fence
    assert store.get(a).fence == claimed[0].fence  # type: ignore[union-attr]
    # Another replica gets only what is free; the holder may claim its own again (a new fence).
    assert [r.id for r in store.claim_messages([a, b, c], "r2", now=105.0, ttl=TTL)] == [c]
    again = store.claim_messages([a], "r1", now=106.0, ttl=TTL)
    assert [r.id for r in again] == [a] and again[0].fence > claimed[0].fence
    # Expired: anyone may claim it, under a newer fence.
    taken = store.claim_messages([b], "r2", now=110.0, ttl=TTL)
    assert [r.id for r in taken] == [b] and taken[0].fence > again[0].fence
    # Duplicates, unknown ids and messages in other states are not claimed.
    item = observed(7)
    store.insert_observed([item], now=1.0)
    assert store.claim_messages([item.message.id, b"\x09" * 32, b, b], "r3", now=111.0, ttl=TTL) == []


def test_retrying_messages_are_claimable_and_others_are_not(store: Store) -> None:
    a, b = verified(store, 0, 1)
    walk(store, b, S.SUBMITTED, S.RETRYING)
    claimed = store.claim_messages([a, b], "r1", now=100.0, ttl=TTL)
    assert {r.id for r in claimed} == {a, b}
    walk(store, a, S.SUBMITTED)  # SUBMITTED is not claimable again
    assert store.claim_messages([a], "r2", now=200.0, ttl=TTL) == []


def test_a_fenced_transition_needs_the_current_fence(store: Store) -> None:
    (a,) = verified(store, 0)
    (old,) = store.claim_messages([a], "r1", now=100.0, ttl=TTL)
    store.apply_transition(Transition(a, S.VERIFIED, S.SUBMITTED, fence=old.fence), now=101.0)
    # r1 stalls; its claim expires and the message is requeued and claimed by r2.
    assert store.requeue_submitted(now=120.0) == [a]
    requeued = store.get(a)
    assert requeued is not None and requeued.state is S.RETRYING and requeued.error_reason == "LeaseExpired"
    assert requeued.claim_owner == "" and requeued.fence > old.fence
    (new,) = store.claim_messages([a], "r2", now=121.0, ttl=TTL)
    store.apply_transition(Transition(a, S.RETRYING, S.SUBMITTED, fence=new.fence), now=122.0)
    # r1 wakes up and reports its outcome: refused, whatever the state it names.
    with pytest.raises(LeaseLost):
        store.apply_transition(Transition(a, S.SUBMITTED, S.DELIVERED, fence=old.fence), now=123.0)
    assert store.get(a).state is S.SUBMITTED  # type: ignore[union-attr]
    store.apply_transition(Transition(a, S.SUBMITTED, S.DELIVERED, fence=new.fence), now=124.0)
    done = store.get(a)
    assert done is not None and done.state is S.DELIVERED
    assert done.claim_owner == "" and done.claim_expires == 0.0 and done.fence == new.fence  # claim ended
    with pytest.raises(LeaseLost):
        store.apply_transition(Transition(a, S.SUBMITTED, S.RETRYING, fence=old.fence), now=125.0)
    # A wrong state under the right fence is the usual StaleState, not LeaseLost.
    with pytest.raises(StaleState) as raised:
        store.apply_transition(Transition(a, S.SUBMITTED, S.DELIVERED, fence=new.fence), now=126.0)
    assert not isinstance(raised.value, LeaseLost)


def test_a_batch_with_one_stale_fence_is_refused_whole(store: Store) -> None:
    a, b = verified(store, 0, 1)
    claims = {r.id: r.fence for r in store.claim_messages([a, b], "r1", now=100.0, ttl=TTL)}
    with pytest.raises(LeaseLost):
        store.apply_transitions(
            [
                Transition(a, S.VERIFIED, S.SUBMITTED, fence=claims[a]),
                Transition(b, S.VERIFIED, S.SUBMITTED, fence=claims[b] + 1000),
            ],
            now=101.0,
        )
    assert store.get(a).state is S.VERIFIED and store.get(b).state is S.VERIFIED  # type: ignore[union-attr]


def test_claims_are_renewed_only_while_still_held(store: Store) -> None:
    a, b, c = verified(store, 0, 1, 2)
    fences = {r.id: r.fence for r in store.claim_messages([a, b, c], "r1", now=100.0, ttl=TTL)}
    store.apply_transition(Transition(a, S.VERIFIED, S.SUBMITTED, fence=fences[a]), now=101.0)
    assert store.renew_claims(fences, "r1", now=105.0, ttl=TTL) == {a, b, c}
    assert store.get(a).claim_expires == 115.0  # type: ignore[union-attr]
    assert store.renew_claims(fences, "r2", now=106.0, ttl=TTL) == set()  # not r2's
    # c taken over after expiry; a delivered; only b is still r1's.
    assert [r.id for r in store.claim_messages([c], "r2", now=116.0, ttl=TTL)] == [c]
    store.apply_transition(Transition(a, S.SUBMITTED, S.DELIVERED, fence=fences[a]), now=116.0)
    assert store.renew_claims(fences, "r1", now=116.5, ttl=TTL) == {b}


def test_released_claims_are_free_at_once(store: Store) -> None:
    a, b = verified(store, 0, 1)
    fences = {r.id: r.fence for r in store.claim_messages([a, b], "r1", now=100.0, ttl=TTL)}
    assert store.release_claims({a: fences[a], b: fences[b] + 1}, "r2") == 0
    assert store.release_claims({a: fences[a], b: fences[b] + 1}, "r1") == 1
    assert [r.id for r in store.claim_messages([a, b], "r2", now=101.0, ttl=TTL)] == [a]


def test_requeue_takes_only_expired_submitted_claims_unless_told_otherwise(store: Store) -> None:
    a, b, c = verified(store, 0, 1, 2)
    d = verified(store, 3, destination=5)[0]
    fences = {r.id: r.fence for r in store.claim_messages([a, b, d], "r1", now=100.0, ttl=TTL)}
    store.apply_transitions(
        [Transition(i, S.VERIFIED, S.SUBMITTED, fence=fences[i]) for i in (a, b, d)], now=101.0
    )
    store.renew_claims({b: fences[b]}, "r1", now=105.0, ttl=TTL)  # b: until 115
    assert store.requeue_submitted(now=109.0) == []
    assert store.requeue_submitted(now=110.0, destination=2) == [a]  # d is another destination's
    assert store.requeue_submitted(now=110.0) == [d]
    assert store.get(b).state is S.SUBMITTED and store.get(c).state is S.VERIFIED  # type: ignore[union-attr]
    # After a restart of the only process (SQLite), every SUBMITTED message is taken back.
    assert store.requeue_submitted(now=111.0, expired_only=False) == [b]
    assert store.requeue_submitted(now=111.0, expired_only=False) == []


def test_requeue_is_bounded(store: Store) -> None:
    ids = verified(store, *range(5))
    fences = {r.id: r.fence for r in store.claim_messages(ids, "r1", now=100.0, ttl=TTL)}
    store.apply_transitions([Transition(i, S.VERIFIED, S.SUBMITTED, fence=fences[i]) for i in ids], now=101.0)
    first = store.requeue_submitted(now=200.0, limit=2)
    assert len(first) == 2
    rest = store.requeue_submitted(now=200.0, limit=10)
    assert sorted(first + rest) == sorted(ids)


def test_requeued_messages_are_heard_by_listeners(store: Store) -> None:
    (a,) = verified(store, 0)
    (claim,) = store.claim_messages([a], "r1", now=100.0, ttl=TTL)
    store.apply_transition(Transition(a, S.VERIFIED, S.SUBMITTED, fence=claim.fence), now=101.0)
    heard: list[bytes] = []
    store.add_listener(heard.extend)
    store.requeue_submitted(now=200.0)
    eventually(lambda: a in heard or None, timeout=10.0, what="the listener hearing the requeue")
