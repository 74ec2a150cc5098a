"""A delivery refused because the destination gateway paused the origin waits PAUSED: no attempt is
counted, it is not parked however long the pause lasts, it is tried again after `paused_recheck`,
and a delivery by anyone after the unpause is found."""

from __future__ import annotations

from relay.errors import DeliveryPaused, PermanentError, RpcUnavailable, TransientError
from relay.lifecycle import is_transition_allowed
from relay.metrics import RelayMetrics
from relay.peers import DeliveryOutcome, DeliveryReport, DeliveryResult
from relay.relayer.gauges import Gauges
from relay.relayer.outcomes import Outcomes
from relay.retry import BackoffSchedule
from relay.store import Store, Transition

from .helpers import DESTINATION, ORIGIN, Clock, checkpoint_over, make_message, make_source, store_verified
from .helpers import S as St

FIELDS = {"origin": ORIGIN, "destination": DESTINATION}
SCHEDULE = BackoffSchedule(base=2.0, cap=100.0, give_up_after=3600.0, jitter=0.0)
RECHECK = 15.0


class DeliveredKeys:
    def __init__(self) -> None:
        self.domain = DESTINATION
        self.keys: set[tuple[int, int]] = set()

    def delivered(self, keys: list[tuple[int, int]]) -> list[bool]:
        return [key in self.keys for key in keys]


def outcomes(
    store: Store, metrics: RelayMetrics, clock: Clock, reader: DeliveredKeys | None = None
) -> Outcomes:
    readers = {DESTINATION: reader} if reader is not None else None
    return Outcomes(
        store, metrics, clock, SCHEDULE, Gauges(store, metrics, clock), readers, paused_recheck=RECHECK
    )


def submit(store: Store, clock: Clock, count: int) -> tuple[object, list]:
    messages = [make_message(n) for n in range(count)]
    checkpoint_id = store_verified(
        store, make_source(store), messages, checkpoint_over(messages), now=clock.now
    )
    store.apply_transitions([Transition(m.id, St.VERIFIED, St.SUBMITTED) for m in messages], clock.now)
    return store.get_certificate(checkpoint_id), [store.get(m.id) for m in messages]


def paused_report(records: list) -> DeliveryReport:
    reason = "DeliveryPaused: gateway rejected the delivery: DeliveryIsPaused(1)"
    return DeliveryReport(results={r.id: DeliveryResult(DeliveryOutcome.PAUSED, reason) for r in records})


def test_a_paused_delivery_waits_without_counting_an_attempt_and_is_never_parked(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    stage = outcomes(store, metrics, clock)
    certified, records = submit(store, clock, 2)
    for _ in range(3):  # a pause far longer than the retry window (3600 s)
        records = [store.get(r.id) for r in records]
        stage.apply_report(DESTINATION, "s", certified, records, paused_report(records), FIELDS)
        for record in (store.get(r.id) for r in records):
            assert record.state is St.PAUSED and record.error_reason == "DeliveryPaused"
            assert record.attempts == 0 and record.next_attempt_at == clock.now + RECHECK
        assert stage.release_paused(DESTINATION, 100) == []  # not due yet
        clock.advance(3000.0)
        assert sorted(stage.release_paused(DESTINATION, 100)) == sorted(r.id for r in records)
        assert all(store.get(r.id).state is St.VERIFIED for r in records)
        store.apply_transitions([Transition(r.id, St.VERIFIED, St.SUBMITTED) for r in records], clock.now)
    # After 9000 s of pause a transient failure backs off: the window restarted at the release.
    stage.fail([store.get(r.id) for r in records], RpcUnavailable("submitter away"), FIELDS)
    assert all(store.get(r.id).state is St.RETRYING for r in records)
    paused = metrics.registry.get_sample_value(
        "relay_deliveries_paused_total", {"origin": str(ORIGIN), "destination": str(DESTINATION)}
    )
    assert paused == 6


def test_a_paused_message_delivered_by_anyone_is_found(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    reader = DeliveredKeys()
    stage = outcomes(store, metrics, clock, reader)
    certified, records = submit(store, clock, 2)
    stage.apply_report(DESTINATION, "s", certified, records, paused_report(records), FIELDS)
    reader.keys.add((ORIGIN, 0))
    assert stage.find_delivered_on_chain(DESTINATION, reader) == [records[0].id]
    assert [store.get(r.id).state for r in records] == [St.DELIVERED, St.PAUSED]


def test_paused_is_a_waiting_state() -> None:
    assert not St.PAUSED.is_terminal
    assert is_transition_allowed(St.SUBMITTED, St.PAUSED)
    assert is_transition_allowed(St.PAUSED, St.VERIFIED) and is_transition_allowed(St.PAUSED, St.DELIVERED)
    assert not is_transition_allowed(St.PAUSED, St.PARKED)
    # Neither transient (backoff toward give-up) nor permanent (parked).
    assert not issubclass(DeliveryPaused, (TransientError, PermanentError))
