"""Delivery: batches per destination, sized by max_batch, sent after max_wait, tracked while in flight."""

from __future__ import annotations

from collections.abc import Callable

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


class World:
    """A source with its tree, one destination with a fake submitter, and the delivery stage."""

    def __init__(
        self, store: Store, metrics: RelayMetrics, clock: Clock, *, max_batch: int = 50, max_wait: float = 0.0
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
            {ORIGIN: self.source},
            outcomes,
            lambda: self.stopping,
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


def test_ids_are_in_flight_exactly_while_their_call_runs(world: Callable[..., World]) -> None:
    w = world()
    w.verify(2)
    seen: list[frozenset[bytes]] = []
    w.submitter.on_wait = lambda call: seen.append(w.deliverer.in_flight())
    w.deliverer.deliver(w.destination, flush=True)
    assert seen == [frozenset(m.id for m in MESSAGES[:2])]
    assert w.deliverer.in_flight() == frozenset()


def test_shutdown_abandons_a_waiting_call_and_leaves_the_batch_submitted(world: Callable[..., World]) -> None:
    w = world()
    w.verify(2)
    w.submitter.hold = True

    def stop_after_the_first_slice(call: Call) -> None:
        w.stopping = True

    w.submitter.on_wait = stop_after_the_first_slice
    w.deliverer.deliver(w.destination, flush=True)
    assert w.submitter.waits == 1 and w.submitter.calls[0].cancelled
    assert w.states(2) == [St.SUBMITTED] * 2
    assert w.deliverer.in_flight() == frozenset()
    assert w.destination.answered_at == 0.0


def test_stranded_submitted_messages_are_requeued_after_timeout_and_grace(
    world: Callable[..., World],
) -> None:
    w = world()
    w.verify(2)
    w.submitter.hold = True
    w.submitter.on_wait = lambda call: setattr(w, "stopping", True)
    w.deliverer.deliver(w.destination, flush=True)
    w.clock.advance(SUBMITTER_TIMEOUT + 10.0)
    assert w.deliverer.requeue_stranded(w.destination, 10.0) == []  # not older than timeout + grace yet
    w.clock.advance(0.1)
    assert sorted(w.deliverer.requeue_stranded(w.destination, 10.0)) == sorted(m.id for m in MESSAGES[:2])
    record = w.store.get(MESSAGES[0].id)
    assert record is not None and record.state is St.RETRYING and record.error_reason == "Stranded"
    assert record.next_attempt_at == w.clock.now


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


def test_messages_of_an_unconfigured_origin_are_left_alone(world: Callable[..., World], store: Store) -> None:
    w = world()
    w.verify(1)
    other = make_source(store, domain=5)
    stranger = make_message(0, origin=5)
    store_verified(store, other, [stranger], checkpoint_over([stranger], origin=5))
    w.deliverer.deliver(w.destination, flush=True)
    assert state_of(store, stranger.id) is St.VERIFIED
    assert w.states(1) == [St.DELIVERED]


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
