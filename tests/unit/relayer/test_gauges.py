"""Gauges: throttled refresh of message counts per route, zero for drained routes, delivery latency."""

from __future__ import annotations

import pytest

from relay.metrics import RelayMetrics
from relay.relayer.gauges import Gauges
from relay.store import Store

from .helpers import START, Clock, make_message, observe, walk
from .helpers import S as St


def messages(metrics: RelayMetrics, destination: int, state: str) -> float | None:
    return metrics.registry.get_sample_value(
        "relay_messages", {"origin": "1", "destination": str(destination), "state": state}
    )


def route(metrics: RelayMetrics, name: str, destination: int) -> float | None:
    return metrics.registry.get_sample_value(name, {"origin": "1", "destination": str(destination)})


def test_refresh_runs_at_most_once_per_interval(store: Store, metrics: RelayMetrics, clock: Clock) -> None:
    gauges = Gauges(store, metrics, clock)
    assert gauges.refresh() is True
    store.insert_observed([observe(make_message(0))], clock.now)
    clock.advance(0.5)
    assert gauges.refresh() is False
    assert messages(metrics, 2, "observed") is None  # not recomputed yet
    clock.advance(0.5)
    assert gauges.refresh() is True
    assert messages(metrics, 2, "observed") == 1
    clock.advance(2.0)
    assert gauges.refresh(every=5.0) is False


def test_counts_queue_depth_and_oldest_age_per_route(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    to_two = [make_message(n, destination=2) for n in range(3)]
    to_three = make_message(3, destination=3)
    store.insert_observed([observe(m) for m in to_two], START - 30.0)
    store.insert_observed([observe(to_three)], START - 5.0)
    store.mark_final(1, 100, START)
    walk(store, to_two[1].id, St.ATTESTED, St.VERIFIED)
    walk(store, to_two[2].id, St.ATTESTED, St.VERIFIED, St.RETRYING)
    Gauges(store, metrics, clock).refresh()
    assert (
        messages(metrics, 2, "final")
        == messages(metrics, 2, "verified")
        == messages(metrics, 2, "retrying")
        == 1
    )
    assert messages(metrics, 2, "delivered") == 0  # every state has a series
    assert messages(metrics, 3, "final") == 1 and messages(metrics, 3, "verified") == 0
    assert route(metrics, "relay_queue_depth", 2) == 2 and route(metrics, "relay_queue_depth", 3) == 0
    assert route(metrics, "relay_oldest_pending_message_age_seconds", 2) == 30.0
    assert route(metrics, "relay_oldest_pending_message_age_seconds", 3) == 5.0
    assert route(metrics, "relay_oldest_retrying_message_age_seconds", 2) == 30.0  # to_two[2]
    assert route(metrics, "relay_oldest_retrying_message_age_seconds", 3) == 0


def test_a_drained_route_keeps_its_series_at_zero(store: Store, metrics: RelayMetrics, clock: Clock) -> None:
    message = make_message(0, destination=2)
    store.insert_observed([observe(message)], START)
    gauges = Gauges(store, metrics, clock)
    gauges.refresh()
    assert messages(metrics, 2, "observed") == 1
    removed, _ = store.remove_orphans([message.id])  # the route now has no messages at all
    assert removed == [message.id]
    clock.advance(1.0)
    gauges.refresh()
    assert messages(metrics, 2, "observed") == 0
    assert route(metrics, "relay_queue_depth", 2) == 0
    assert route(metrics, "relay_oldest_pending_message_age_seconds", 2) == 0


def test_observe_delivery_records_end_to_end_and_stage_latency(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    message = make_message(0)
    store.insert_observed([observe(message)], 100.0)
    store.mark_final(1, 10, 110.0)
    for state, at in [
        (St.ATTESTED, 115.0),
        (St.VERIFIED, 116.0),
        (St.SUBMITTED, 120.0),
        (St.DELIVERED, 150.0),
    ]:
        walk(store, message.id, state, now=at)
    gauges = Gauges(store, metrics, clock)
    gauges.observe_delivery(message.id)
    gauges.observe_delivery(make_message(9).id)  # unknown: ignored
    registry = metrics.registry
    assert route(metrics, "relay_messages_delivered_total", 2) == 1
    assert route(metrics, "relay_end_to_end_latency_seconds_sum", 2) == pytest.approx(50.0)
    expected = {"observe": 10.0, "attest": 5.0, "prove": 1.0, "submit": 4.0, "confirm": 30.0}
    for stage, seconds in expected.items():
        assert registry.get_sample_value(
            "relay_stage_latency_seconds_sum", {"origin": "1", "destination": "2", "stage": stage}
        ) == pytest.approx(seconds)
