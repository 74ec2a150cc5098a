"""Outcomes: each submitter verdict maps to one state; failures back off, then park; recovery paths."""

from __future__ import annotations

import pytest

from relay.errors import InvalidProof, PermanentError, RpcUnavailable
from relay.metrics import RelayMetrics
from relay.peers import DeliveryOutcome, DeliveryReport, DeliveryResult
from relay.relayer.gauges import Gauges
from relay.relayer.outcomes import Outcomes
from relay.retry import BackoffSchedule
from relay.store import CertifiedCheckpoint, MessageRecord, Store, Transition

from .helpers import (
    DESTINATION,
    ORIGIN,
    Clock,
    checkpoint_over,
    make_message,
    make_source,
    store_verified,
)
from .helpers import S as St

MESSAGES = [make_message(n) for n in range(5)]
TX = b"\xaa" * 32
FIELDS = {"origin": ORIGIN, "destination": DESTINATION}
LEASE = 15.0
SCHEDULE = BackoffSchedule(base=2.0, cap=100.0, give_up_after=3600.0, jitter=0.0)


def outcomes(store: Store, metrics: RelayMetrics, clock: Clock) -> Outcomes:
    return Outcomes(store, metrics, clock, SCHEDULE, Gauges(store, metrics, clock))


def submitted(store: Store, count: int, now: float) -> tuple[CertifiedCheckpoint, list[MessageRecord]]:
    """`count` messages VERIFIED then SUBMITTED, as the delivery stage leaves them before its call."""
    source = make_source(store)
    checkpoint_id = store_verified(
        store, source, MESSAGES[:count], checkpoint_over(MESSAGES[:count]), now=now
    )
    claims = store.claim_messages([m.id for m in MESSAGES[:count]], "replica-a", now, LEASE)
    store.apply_transitions([Transition(r.id, St.VERIFIED, St.SUBMITTED, fence=r.fence) for r in claims], now)
    certified = store.get_certificate(checkpoint_id)
    assert certified is not None
    return certified, [r for m in MESSAGES[:count] if (r := store.get(m.id)) is not None]


def get(store: Store, index: int) -> MessageRecord:
    record = store.get(MESSAGES[index].id)
    assert record is not None
    return record


def test_each_reported_outcome_maps_to_its_state(store: Store, metrics: RelayMetrics, clock: Clock) -> None:
    certified, records = submitted(store, 5, clock.now)
    report = DeliveryReport(
        TX,
        7,
        90_000,
        {
            MESSAGES[0].id: DeliveryResult(DeliveryOutcome.DELIVERED),
            MESSAGES[1].id: DeliveryResult(DeliveryOutcome.ALREADY_DELIVERED),
            MESSAGES[2].id: DeliveryResult(DeliveryOutcome.RECIPIENT_REVERTED, "Counter: not today"),
            MESSAGES[3].id: DeliveryResult(DeliveryOutcome.REJECTED, "InvalidMerkleProof"),
            # MESSAGES[4]: no outcome at all
        },
    )
    clock.advance(3.0)
    outcomes(store, metrics, clock).apply_report(DESTINATION, "submitter", certified, records, report, FIELDS)
    delivered, already, reverted, rejected, missing = (get(store, i) for i in range(5))
    assert delivered.state is St.DELIVERED and delivered.destination_transaction == TX
    assert delivered.delivered_at == clock.now
    assert already.state is St.DELIVERED and already.destination_transaction == b""
    assert reverted.state is St.PARKED and reverted.error_reason == "RecipientReverted"
    assert (
        reverted.last_error == "RecipientReverted: Counter: not today"
        and reverted.destination_transaction == TX
    )
    # Refused by the destination although verified here: parked (deliverable), never terminal.
    assert rejected.state is St.PARKED and rejected.error_reason == "GatewayRejected"
    assert rejected.last_error == "GatewayRejected: InvalidMerkleProof"
    assert missing.state is St.RETRYING and missing.error_reason == "RpcUnavailable" and missing.attempts == 1
    [transaction] = store.transactions_for(MESSAGES[0].id)
    assert transaction.block_number == 7 and transaction.gas_used == 90_000
    # The transaction carried the delivered and the reverted message only: the others were left out.
    assert set(transaction.message_ids) == {MESSAGES[0].id, MESSAGES[2].id}
    assert store.transactions_for(MESSAGES[1].id) == []  # already delivered: not in this transaction
    registry = metrics.registry
    assert (
        registry.get_sample_value("relay_messages_delivered_total", {"origin": "1", "destination": "2"}) == 2
    )
    assert registry.get_sample_value(
        "relay_end_to_end_latency_seconds_sum", {"origin": "1", "destination": "2"}
    ) == pytest.approx(6.0)
    assert (
        registry.get_sample_value(
            "relay_proof_rejections_total", {"origin": "1", "reason": "GatewayRejected"}
        )
        == 1
    )


def test_a_report_without_a_transaction_records_none(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    certified, records = submitted(store, 1, clock.now)
    report = DeliveryReport(results={MESSAGES[0].id: DeliveryResult(DeliveryOutcome.ALREADY_DELIVERED)})
    outcomes(store, metrics, clock).apply_report(DESTINATION, "submitter", certified, records, report, FIELDS)
    assert get(store, 0).state is St.DELIVERED and store.transactions_for(MESSAGES[0].id) == []


def test_transient_failures_back_off_capped_and_never_park_within_the_retry_window(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    """Failure after failure stays RETRYING (waits 2, 4, ... capped at 100 s) for the whole
    window, far beyond the 8 attempts that used to park a message; past the window it parks."""
    stage = outcomes(store, metrics, clock)
    _, records = submitted(store, 1, clock.now)
    error = RpcUnavailable("submitter down", peer="submitter")
    expected = [2.0, 4.0, 8.0, 16.0, 32.0, 64.0] + [100.0] * 30
    started = clock.now
    for attempt, delay in enumerate(expected, start=1):
        stage.fail(records, error, FIELDS)
        record = get(store, 0)
        assert record.state is St.RETRYING and record.attempts == attempt
        assert record.next_attempt_at == clock.now + delay
        assert record.error_reason == "RpcUnavailable" and record.last_error.startswith("RpcUnavailable: ")
        clock.advance(delay)
        store.apply_transition(Transition(record.id, St.RETRYING, St.SUBMITTED), clock.now)
        records = [get(store, 0)]
    assert clock.now - started < 3600
    clock.advance(3600 - (clock.now - started))
    stage.fail(records, error, FIELDS)
    record = get(store, 0)
    assert record.state is St.PARKED and record.attempts == len(expected) + 1
    assert record.error_reason == "AttemptsExhausted" and "RpcUnavailable" in record.last_error
    assert metrics.registry.get_sample_value("relay_retries_total", {"policy": "delivery"}) == len(expected)


@pytest.mark.parametrize(
    "error",
    [PermanentError("nonce too low", peer="submitter"), InvalidProof("malformed answer")],
    ids=["permanent", "invalid"],
)
def test_a_non_transient_failure_parks_at_once(
    store: Store, metrics: RelayMetrics, clock: Clock, error: Exception
) -> None:
    _, records = submitted(store, 2, clock.now)
    outcomes(store, metrics, clock).fail(records, error, FIELDS)  # type: ignore[arg-type]
    for index in range(2):
        record = get(store, index)
        assert record.state is St.PARKED and record.attempts == 1
        assert record.error_reason == type(error).__name__


def test_recover_submitted_on_an_own_store_queues_every_interrupted_delivery_again(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    submitted(store, 3, clock.now)
    clock.advance(1.0)  # the claims are still live: only this process used the store, they were its own
    assert outcomes(store, metrics, clock).recover_submitted(expired_only=False) == 3
    for index in range(3):
        record = get(store, index)
        assert record.state is St.RETRYING and record.error_reason == "LeaseExpired"
        assert record.next_attempt_at == clock.now and record.attempts == 0 and record.claim_owner == ""
    assert store.due_for_retry(clock.now) != []
    assert outcomes(store, metrics, clock).recover_submitted(expired_only=False) == 0
    requeued = metrics.registry.get_sample_value(
        "relay_claims_requeued_total", {"destination": str(DESTINATION)}
    )
    assert requeued == 3


def test_recover_submitted_on_a_shared_store_touches_only_expired_claims(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    _, records = submitted(store, 3, clock.now)
    clock.advance(5.0)
    store.renew_claims({records[1].id: records[1].fence}, "replica-a", clock.now, LEASE)  # still worked on
    clock.advance(LEASE - 5.0)
    assert outcomes(store, metrics, clock).recover_submitted(expired_only=True) == 2
    assert [get(store, i).state for i in range(3)] == [St.RETRYING, St.SUBMITTED, St.RETRYING]
    assert get(store, 1).fence == records[1].fence  # the live claim is untouched


def test_requeue_expired_takes_only_expired_claims_of_its_destination(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    _, records = submitted(store, 3, clock.now)
    stage = outcomes(store, metrics, clock)
    clock.advance(LEASE - 0.1)
    assert stage.requeue_expired(DESTINATION) == []
    clock.advance(0.1)
    assert stage.requeue_expired(DESTINATION + 1) == []
    assert sorted(stage.requeue_expired(DESTINATION)) == sorted(m.id for m in MESSAGES[:3])
    # The replica that sent them can no longer record an outcome: its fences are gone.
    stage.fail(records, RpcUnavailable("late", peer="submitter"), FIELDS)
    assert [get(store, i).attempts for i in range(3)] == [0, 0, 0]
    fenced = metrics.registry.get_sample_value("relay_fenced_writes_total", {"stage": "outcomes"})
    assert fenced == 3
