"""Deliveries confirmed on the destination chain: a submitter's word alone never makes a message
DELIVERED when the destination's chain is configured, and a PARKED or RETRYING message that the
chain shows delivered (by anyone) becomes DELIVERED."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from relay.errors import RpcUnavailable
from relay.metrics import RelayMetrics
from relay.peers import DeliveryOutcome, DeliveryReport, DeliveryResult
from relay.relayer.gauges import Gauges
from relay.relayer.outcomes import FOUND_DELIVERED_BATCH, Outcomes
from relay.retry import BackoffSchedule
from relay.store import Store, Transition

from .helpers import DESTINATION, ORIGIN, Clock, checkpoint_over, make_message, make_source, store_verified
from .helpers import S as St

TX = b"\xbb" * 32
FIELDS = {"origin": ORIGIN, "destination": DESTINATION}
SCHEDULE = BackoffSchedule(base=2.0, cap=100.0, give_up_after=3600.0, jitter=0.0)


class ChainFlags:
    """A `DeliveryReader` over a set of delivered (origin, nonce) keys; counts its reads."""

    def __init__(self, delivered: set[tuple[int, int]] | None = None, down: bool = False) -> None:
        self.domain = DESTINATION
        self.keys = set(delivered or ())
        self.down = down
        self.asked: list[int] = []

    def delivered(self, keys: Sequence[tuple[int, int]]) -> list[bool]:
        self.asked.append(len(keys))
        if self.down:
            raise RpcUnavailable("destination RPC down")
        return [key in self.keys for key in keys]


def stage(store: Store, metrics: RelayMetrics, clock: Clock, reader: ChainFlags | None) -> Outcomes:
    readers = {DESTINATION: reader} if reader is not None else None
    return Outcomes(store, metrics, clock, SCHEDULE, Gauges(store, metrics, clock), readers)


def submitted(store: Store, count: int, now: float) -> tuple[object, list]:
    messages = [make_message(n) for n in range(count)]
    source = make_source(store)
    checkpoint_id = store_verified(store, source, messages, checkpoint_over(messages), now=now)
    store.apply_transitions([Transition(m.id, St.VERIFIED, St.SUBMITTED) for m in messages], now)
    return store.get_certificate(checkpoint_id), [store.get(m.id) for m in messages]


def unconfirmed(metrics: RelayMetrics) -> float:
    value = metrics.registry.get_sample_value(
        "relay_deliveries_unconfirmed_total", {"destination": str(DESTINATION)}
    )
    return value or 0.0


def test_a_lying_submitter_leaves_the_message_retrying_with_a_typed_reason(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    certified, records = submitted(store, 3, clock.now)
    chain = ChainFlags({(ORIGIN, 0)})  # only nonce 0 is really delivered
    report = DeliveryReport(
        TX,
        7,
        90_000,
        {
            records[0].id: DeliveryResult(DeliveryOutcome.DELIVERED),
            records[1].id: DeliveryResult(DeliveryOutcome.DELIVERED),  # a lie
            records[2].id: DeliveryResult(DeliveryOutcome.ALREADY_DELIVERED),  # a lie too
        },
    )
    stage(store, metrics, clock, chain).apply_report(DESTINATION, "liar", certified, records, report, FIELDS)
    states = [store.get(r.id) for r in records]
    assert states[0].state is St.DELIVERED
    for lied in states[1:]:
        assert lied.state is St.RETRYING and lied.error_reason == "DeliveryNotConfirmed"
        assert lied.attempts == 1
    assert unconfirmed(metrics) == 2 and chain.asked == [3]


def test_an_unreadable_chain_confirms_nothing(store: Store, metrics: RelayMetrics, clock: Clock) -> None:
    certified, records = submitted(store, 1, clock.now)
    report = DeliveryReport(TX, 7, 1, {records[0].id: DeliveryResult(DeliveryOutcome.DELIVERED)})
    chain = ChainFlags({(ORIGIN, 0)}, down=True)
    stage(store, metrics, clock, chain).apply_report(DESTINATION, "s", certified, records, report, FIELDS)
    record = store.get(records[0].id)
    assert record.state is St.RETRYING and record.error_reason == "DeliveryNotConfirmed"
    assert "RpcUnavailable" in record.last_error


def test_without_a_reader_the_submitters_word_is_taken(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    certified, records = submitted(store, 1, clock.now)
    report = DeliveryReport(TX, 7, 1, {records[0].id: DeliveryResult(DeliveryOutcome.DELIVERED)})
    stage(store, metrics, clock, None).apply_report(DESTINATION, "s", certified, records, report, FIELDS)
    assert store.get(records[0].id).state is St.DELIVERED


def test_parked_and_retrying_messages_found_delivered_on_chain_become_delivered(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    _, records = submitted(store, 4, clock.now)
    store.apply_transitions(
        [
            Transition(records[0].id, St.SUBMITTED, St.PARKED, {"last_error": "AttemptsExhausted: ..."}),
            Transition(records[1].id, St.SUBMITTED, St.RETRYING, {"attempts": 2}),
            Transition(records[2].id, St.SUBMITTED, St.PARKED),
        ],
        clock.now,
    )
    chain = ChainFlags({(ORIGIN, 0), (ORIGIN, 1), (ORIGIN, 3)})  # nonce 3 is still SUBMITTED
    found = stage(store, metrics, clock, chain).find_delivered_on_chain(DESTINATION, chain)
    assert set(found) == {records[0].id, records[1].id}
    assert [store.get(r.id).state for r in records] == [St.DELIVERED, St.DELIVERED, St.PARKED, St.SUBMITTED]
    assert store.get(records[0].id).last_error == ""
    value = metrics.registry.get_sample_value(
        "relay_deliveries_found_on_chain_total", {"destination": str(DESTINATION)}
    )
    assert value == 2


def test_an_unpaid_message_delivered_by_someone_else_becomes_delivered(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    """Held UNPAID by this relayer, paid for and delivered by another (or by hand): not held forever."""
    _, records = submitted(store, 2, clock.now)
    store.apply_transitions(
        [Transition(r.id, St.SUBMITTED, St.RETRYING) for r in records]
        + [Transition(r.id, St.RETRYING, St.UNPAID, {"last_error": "Unpaid: no gas paid"}) for r in records],
        clock.now,
    )
    chain = ChainFlags({(ORIGIN, 0)})
    found = stage(store, metrics, clock, chain).find_delivered_on_chain(DESTINATION, chain)
    assert found == [records[0].id]
    assert [store.get(r.id).state for r in records] == [St.DELIVERED, St.UNPAID]


def test_the_found_delivered_check_is_bounded_per_pass_and_goes_round(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    count = FOUND_DELIVERED_BATCH + 5
    _, records = submitted(store, count, clock.now)
    store.apply_transitions([Transition(r.id, St.SUBMITTED, St.PARKED) for r in records], clock.now)
    chain = ChainFlags({(ORIGIN, 0)})  # the oldest one: beyond the first (newest-first) page
    outcomes = stage(store, metrics, clock, chain)
    assert outcomes.find_delivered_on_chain(DESTINATION, chain) == []
    assert outcomes.find_delivered_on_chain(DESTINATION, chain) == [records[0].id]
    assert chain.asked == [FOUND_DELIVERED_BATCH, 5]


@pytest.mark.parametrize("domain", [DESTINATION + 1])
def test_a_destination_chain_of_another_domain_is_refused(domain: int) -> None:
    from pydantic import ValidationError

    from relay.relayer.config import DestinationConfig

    chain = {"name": "d", "domain": domain, "rpc_urls": ["http://127.0.0.1:1"], "gateway": "0x" + "11" * 20}
    with pytest.raises(ValidationError, match="must be the destination's domain"):
        DestinationConfig(domain=DESTINATION, submitter="127.0.0.1:1", chain=chain)  # type: ignore[arg-type]
    config = DestinationConfig(
        domain=DESTINATION, submitter="127.0.0.1:1", chain={**chain, "domain": DESTINATION}
    )  # type: ignore[arg-type]
    assert config.chain is not None and config.chain.kind == "evm"
