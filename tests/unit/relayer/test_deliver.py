"""Delivery: batches per destination, sized by max_batch, sent after max_wait, tracked while in flight."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from relay.errors import RpcUnavailable
from relay.metrics import RelayMetrics
from relay.relayer.config import BatchingConfig, DestinationConfig
from relay.relayer.deliver import PROBE_SECONDS, Deliverer
from relay.relayer.gauges import Gauges
from relay.relayer.outcomes import Outcomes
from relay.relayer.state import DestinationState, SourceState
from relay.retry import BackoffSchedule
from relay.store import Store, Transition
from relay.verify.merkle import verify_branch

from .fakes import Call, FakeSubmitter
from .helpers import (
    DESTINATION,
    ORIGIN,
    Clock,
    certify,
    checkpoint_over,
    make_message,
    make_source,
    state_of,
    store_final,
    store_verified,
)
from .helpers import S as St

MESSAGES = [make_message(n) for n in range(6)]
SUBMITTER_TIMEOUT = 60.0
REPLICA = "replica-a"
LEASE = 6.0


class World:
    """A source with its tree, one destination with a fake submitter, and the delivery stage."""

    def __init__(
        self,
        store: Store,
        metrics: RelayMetrics,
        clock: Clock,
        *,
        max_batch: int = 50,
        max_wait: float = 0.0,
        other_sources: tuple[SourceState, ...] = (),
    ) -> None:
        self.store, self.clock = store, clock
        self.source: SourceState = make_source(store)
        self.submitter = FakeSubmitter()
        self.destination = DestinationState(
            DestinationConfig(domain=DESTINATION, submitter="submitter"), self.submitter
        )
        self.stopping = False
        outcomes = Outcomes(
            store,
            metrics,
            clock,
            BackoffSchedule(1.0, 10.0, give_up_after=3600.0, jitter=0.0),
            Gauges(store, metrics, clock),
        )
        self.outcomes = outcomes
        self.deliverer = Deliverer(
            store,
            clock,
            BatchingConfig(max_batch=max_batch, max_wait=max_wait),
            SUBMITTER_TIMEOUT,
            {ORIGIN: self.source, **{other.domain: other for other in other_sources}},
            outcomes,
            lambda: self.stopping,
            metrics=metrics,
            owner=REPLICA,
            lease_seconds=LEASE,
        )

    def verify(self, count: int) -> int:
        return store_verified(
            self.store, self.source, MESSAGES[:count], checkpoint_over(MESSAGES[:count]), now=self.clock.now
        )

    def states(self, count: int) -> list[St]:
        return [state_of(self.store, m.id) for m in MESSAGES[:count]]


@pytest.fixture
def world(store: Store, metrics: RelayMetrics, clock: Clock) -> Callable[..., World]:
    return lambda **batching: World(store, metrics, clock, **batching)


def test_batches_are_cut_at_max_batch_in_nonce_order(world: Callable[..., World]) -> None:
    w = world(max_batch=2)
    w.verify(5)
    w.deliverer.deliver(w.destination, flush=True)
    assert w.submitter.sizes() == [1, 2, 2]
    batches = sorted([m.message.nonce for m in c.items] for c in w.submitter.calls)
    assert batches == [[0, 1], [2, 3], [4]]
    assert w.states(5) == [St.DELIVERED] * 5
    assert w.destination.answered_at == w.clock.now


def test_a_partial_batch_waits_max_wait_unless_flushed(world: Callable[..., World]) -> None:
    w = world(max_batch=10, max_wait=5.0)
    w.verify(3)
    w.deliverer.deliver(w.destination, flush=False)
    assert w.submitter.calls == [] and w.states(3) == [St.VERIFIED] * 3
    w.clock.advance(4.9)
    w.deliverer.deliver(w.destination, flush=False)
    assert w.submitter.calls == []
    w.clock.advance(0.1)
    w.deliverer.deliver(w.destination, flush=False)
    assert w.submitter.sizes() == [3]


def test_flush_sends_a_partial_batch_at_once(world: Callable[..., World]) -> None:
    w = world(max_batch=10, max_wait=5.0)
    w.verify(2)
    w.deliverer.deliver(w.destination, flush=True)
    assert w.submitter.sizes() == [2] and w.states(2) == [St.DELIVERED] * 2


def test_a_full_batch_does_not_wait(world: Callable[..., World]) -> None:
    w = world(max_batch=3, max_wait=5.0)
    w.verify(3)
    w.deliverer.deliver(w.destination, flush=False)
    assert w.submitter.sizes() == [3]


def test_the_batch_is_claimed_and_submitted_under_each_claims_fence(world: Callable[..., World]) -> None:
    w = world()
    w.verify(2)
    seen: list[tuple[St, str, float, int]] = []

    def look(call: Call) -> None:
        for m in MESSAGES[:2]:
            record = w.store.get(m.id)
            assert record is not None
            seen.append((record.state, record.claim_owner, record.claim_expires, record.fence))

    w.submitter.on_wait = look
    w.deliverer.deliver(w.destination, flush=True)
    (s0, owner0, expires0, fence0), (s1, owner1, expires1, fence1) = seen
    assert (s0, s1) == (St.SUBMITTED, St.SUBMITTED)
    assert owner0 == owner1 == REPLICA and expires0 == expires1 == w.clock.now + LEASE
    assert 0 < fence0 < fence1  # one new fencing token per claim
    after = w.store.get(MESSAGES[0].id)
    assert after is not None and after.state is St.DELIVERED
    assert (after.claim_owner, after.claim_expires, after.fence) == ("", 0.0, fence0)


def test_messages_another_replica_claimed_are_left_to_it(world: Callable[..., World]) -> None:
    w = world()
    w.verify(3)
    theirs = w.store.claim_messages([MESSAGES[1].id], "another-replica", w.clock.now, LEASE)
    w.deliverer.deliver(w.destination, flush=True)
    assert [[i.message.nonce for i in c.items] for c in w.submitter.calls] == [[0, 2]]
    assert w.states(3) == [St.DELIVERED, St.VERIFIED, St.DELIVERED]
    record = w.store.get(MESSAGES[1].id)
    assert record is not None and record.claim_owner == "another-replica" and record.fence == theirs[0].fence
    w.clock.advance(LEASE)  # their claim expired unused: anyone takes the message
    w.deliverer.deliver(w.destination, flush=True)
    assert w.states(3) == [St.DELIVERED] * 3


def test_a_retry_another_replica_just_failed_is_not_sent_before_it_is_due(
    world: Callable[..., World],
) -> None:
    w = world()
    w.verify(1)
    ready = w.store.messages_in_state(St.VERIFIED)
    # Read as ready, then another replica sent it and failed meanwhile (backing off for 60 s).
    mine = w.store.claim_messages([MESSAGES[0].id], "another-replica", w.clock.now, LEASE)[0]
    w.store.apply_transitions(
        [
            Transition(mine.id, St.VERIFIED, St.SUBMITTED, fence=mine.fence),
            Transition(
                mine.id, St.SUBMITTED, St.RETRYING, {"next_attempt_at": w.clock.now + 60}, fence=mine.fence
            ),
        ],
        w.clock.now,
    )
    w.deliverer.submit_batch(
        w.destination, w.source, w.store.get_certificate(ready[0].checkpoint_id or 0) or _no(), ready
    )
    assert w.submitter.calls == []
    record = w.store.get(MESSAGES[0].id)
    assert record is not None and record.state is St.RETRYING and record.claim_owner == ""  # released


def _no() -> Any:
    raise AssertionError("no certificate")


def test_claims_are_renewed_every_third_of_the_lease_while_the_call_waits(
    world: Callable[..., World],
) -> None:
    w = world()
    w.verify(2)
    w.submitter.hold = True
    expiries: list[float] = []

    def tick(call: Call) -> None:
        record = w.store.get(MESSAGES[0].id)
        assert record is not None
        expiries.append(record.claim_expires)
        if len(expiries) == 7:
            w.submitter.hold = False
        w.clock.advance(LEASE / 6)

    w.submitter.on_wait = tick
    start = w.clock.now
    w.deliverer.deliver(w.destination, flush=True)
    # Each slice is a sixth of the lease: renewed at every other one, a lease ahead, never lapsing.
    assert expiries == [start + LEASE + LEASE / 3 * (n // 2) for n in range(7)]
    assert w.states(2) == [St.DELIVERED] * 2


def test_a_claim_taken_over_while_waiting_abandons_the_call_and_records_nothing(
    world: Callable[..., World], metrics: RelayMetrics
) -> None:
    w = world()
    w.verify(2)
    w.submitter.hold = True

    def stall_past_the_lease(call: Call) -> None:
        # This replica stalls past its lease; another replica's stranded check takes the messages.
        if w.submitter.waits == 1:
            w.clock.advance(LEASE + 1)
            assert sorted(w.store.requeue_submitted(w.clock.now, destination=DESTINATION)) == sorted(
                m.id for m in MESSAGES[:2]
            )

    w.submitter.on_wait = stall_past_the_lease
    w.deliverer.deliver(w.destination, flush=True)
    assert w.submitter.calls[0].cancelled
    for m in MESSAGES[:2]:
        record = w.store.get(m.id)
        assert record is not None and record.state is St.RETRYING and record.error_reason == "LeaseExpired"
        assert record.attempts == 0  # this replica recorded no failure of its own


def test_a_late_outcome_is_fenced_and_the_rest_of_the_batch_is_recorded(
    world: Callable[..., World], metrics: RelayMetrics
) -> None:
    w = world(max_batch=2)
    w.verify(2)
    taken: list[bytes] = []

    def take_one_over(call: Call) -> None:
        # Another replica requeued (and re-claimed) one message of the batch before the answer.
        if not taken:
            w.store.apply_transition(
                Transition(MESSAGES[1].id, St.SUBMITTED, St.RETRYING, {"next_attempt_at": w.clock.now + 99}),
                w.clock.now,
            )
            taken.extend(r.id for r in w.store.claim_messages([MESSAGES[1].id], "other", w.clock.now, LEASE))

    w.submitter.on_wait = take_one_over
    w.deliverer.deliver(w.destination, flush=True)
    assert taken == [MESSAGES[1].id]
    assert w.states(2) == [St.DELIVERED, St.RETRYING]
    record = w.store.get(MESSAGES[1].id)
    assert record is not None and record.claim_owner == "other"
    fenced = metrics.registry.get_sample_value("relay_fenced_writes_total", {"stage": "outcomes"})
    assert fenced == 1.0


def test_shutdown_abandons_a_waiting_call_and_leaves_the_batch_submitted_unclaimed(
    world: Callable[..., World],
) -> None:
    w = world()
    w.verify(2)
    w.submitter.hold = True

    def stop_after_the_first_slice(call: Call) -> None:
        w.stopping = True

    w.submitter.on_wait = stop_after_the_first_slice
    w.deliverer.deliver(w.destination, flush=True)
    assert w.submitter.waits == 1 and w.submitter.calls[0].cancelled
    assert w.states(2) == [St.SUBMITTED] * 2
    assert w.destination.answered_at == 0.0
    # The claims are released: any replica's stranded check takes the batch at once.
    assert sorted(w.deliverer.requeue_stranded(w.destination)) == sorted(m.id for m in MESSAGES[:2])


def test_submitted_messages_are_requeued_once_their_claim_expired(
    world: Callable[..., World], metrics: RelayMetrics
) -> None:
    w = world()
    w.verify(2)
    # Another replica claimed and sent them; its call waits (renewing) or it died (not renewing).
    claims = w.store.claim_messages([m.id for m in MESSAGES[:2]], "other", w.clock.now, LEASE)
    w.store.apply_transitions(
        [Transition(r.id, St.VERIFIED, St.SUBMITTED, fence=r.fence) for r in claims], w.clock.now
    )
    w.clock.advance(LEASE - 0.1)
    assert w.deliverer.requeue_stranded(w.destination) == []  # still claimed: a call may be waiting
    w.clock.advance(0.1)
    assert sorted(w.deliverer.requeue_stranded(w.destination)) == sorted(m.id for m in MESSAGES[:2])
    record = w.store.get(MESSAGES[0].id)
    assert record is not None and record.state is St.RETRYING and record.error_reason == "LeaseExpired"
    assert record.next_attempt_at == w.clock.now and record.fence > claims[1].fence
    requeued = metrics.registry.get_sample_value(
        "relay_claims_requeued_total", {"destination": str(DESTINATION)}
    )
    assert requeued == 2
    w.deliverer.deliver(w.destination, flush=True)
    assert w.states(2) == [St.DELIVERED] * 2


def test_a_failed_call_backs_off_and_a_due_retry_is_sent_again(world: Callable[..., World]) -> None:
    w = world()
    w.verify(1)
    w.submitter.error = RpcUnavailable("submitter down", peer="submitter")
    w.deliverer.deliver(w.destination, flush=True)
    record = w.store.get(MESSAGES[0].id)
    assert record is not None and record.state is St.RETRYING and record.attempts == 1
    assert record.next_attempt_at == w.clock.now + 1.0
    w.submitter.error = None
    w.deliverer.deliver(w.destination, flush=True)
    assert len(w.submitter.calls) == 1  # not due yet
    w.clock.advance(1.0)
    w.deliverer.deliver(w.destination, flush=True)
    assert len(w.submitter.calls) == 2 and w.states(1) == [St.DELIVERED]


def test_one_batch_goes_under_the_newest_checkpoint_with_branches_reproved(
    world: Callable[..., World], store: Store
) -> None:
    w = world()
    older = checkpoint_over(MESSAGES[:4], 1)
    store_verified(store, w.source, MESSAGES[:2], older)
    newer = checkpoint_over(MESSAGES[:4], 3)
    newer_id = store_verified(store, w.source, MESSAGES[2:4], newer)
    w.deliverer.deliver(w.destination, flush=True)
    assert len(w.submitter.calls) == 1
    call = w.submitter.calls[0]
    assert call.checkpoint == newer and [i.message.nonce for i in call.items] == [0, 1, 2, 3]
    for item in call.items:
        verify_branch(item.message.id, item.branch, item.message.nonce, newer.root)
    record = store.get(MESSAGES[0].id)
    assert record is not None and record.state is St.DELIVERED and record.checkpoint_id == newer_id


def test_a_message_that_does_not_prove_under_the_batch_checkpoint_is_held_back(
    world: Callable[..., World], store: Store
) -> None:
    w = world()
    store_verified(store, w.source, MESSAGES[:2], checkpoint_over(MESSAGES[:2]))
    # A newer checkpoint whose root is not the tree's (stored VERIFIED by hand; the prover never would).
    bogus = checkpoint_over(MESSAGES[:3], root=b"\xee" * 32)
    store_final(store, w.source, MESSAGES[2:3])
    store.attest_messages(bogus, certify(bogus), [MESSAGES[2].id], 1.0)
    store.apply_transition(
        Transition(MESSAGES[2].id, St.ATTESTED, St.VERIFIED, {"branch": (b"\x00" * 32,) * 32}), 1.0
    )
    w.deliverer.deliver(w.destination, flush=True)
    assert [[i.message.nonce for i in c.items] for c in w.submitter.calls] == [[2]]
    assert w.submitter.calls[0].checkpoint.root == bogus.root
    assert w.states(2) == [St.VERIFIED, St.VERIFIED]


def test_a_replica_not_watching_the_origin_rebuilds_its_tree_once_to_reprove(
    world: Callable[..., World], store: Store
) -> None:
    w = world()
    store_verified(store, w.source, MESSAGES[:2], checkpoint_over(MESSAGES[:4], 1))
    # The replica holding the source stored and verified two more under a newer checkpoint; this
    # replica's tree has not followed yet.
    holder = make_source(store)
    holder.tree.rebuild()
    store_verified(store, holder, MESSAGES[2:4], checkpoint_over(MESSAGES[:4], 3))
    assert w.source.tree.count == 2 and w.source.lease is None
    w.deliverer.deliver(w.destination, flush=True)
    assert [[i.message.nonce for i in c.items] for c in w.submitter.calls] == [[0, 1, 2, 3]]
    assert w.source.tree.count == 4 and w.states(4) == [St.DELIVERED] * 4


def test_messages_of_an_unconfigured_origin_are_left_alone(world: Callable[..., World], store: Store) -> None:
    w = world()
    w.verify(1)
    other = make_source(store, domain=5)
    stranger = make_message(0, origin=5)
    store_verified(store, other, [stranger], checkpoint_over([stranger], origin=5))
    w.deliverer.deliver(w.destination, flush=True)
    assert state_of(store, stranger.id) is St.VERIFIED
    assert w.states(1) == [St.DELIVERED]


def test_a_deep_backlog_of_one_origin_does_not_keep_another_origin_out(
    store: Store, world: Callable[..., World]
) -> None:
    """The read window (20 batches) once held only the lowest-numbered origin's backlog."""
    other = make_source(store, domain=5)
    w = world(max_batch=2, other_sources=(other,))
    backlog = [make_message(n) for n in range(60)]
    store_verified(store, w.source, backlog, checkpoint_over(backlog))
    lone = make_message(0, origin=5)
    store_verified(store, other, [lone], checkpoint_over([lone], origin=5))
    w.deliverer.deliver(w.destination, flush=True)
    assert state_of(store, lone.id) is St.DELIVERED


def test_the_submitter_is_probed_only_when_it_has_not_answered_lately(world: Callable[..., World]) -> None:
    w = world()
    w.deliverer.probe(w.destination, 1.0)
    assert w.submitter.probes == 1 and w.destination.answered_at == w.clock.now
    w.clock.advance(PROBE_SECONDS - 0.1)
    w.deliverer.probe(w.destination, 1.0)
    assert w.submitter.probes == 1
    w.clock.advance(0.1)
    w.submitter.answers = False
    answered = w.destination.answered_at
    w.deliverer.probe(w.destination, 1.0)
    assert w.submitter.probes == 2 and w.destination.answered_at == answered
