"""The gas policy: paid, underpaid, allow-listed, capped, gas price changes, top-ups; UNPAID held and
released by the delivery stage; batches bounded by bytes and gas; cost accounting per route."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from pydantic import ValidationError

from relay.errors import RpcUnavailable
from relay.lifecycle import ALLOWED_TRANSITIONS
from relay.metrics import RelayMetrics
from relay.peers import DeliveryReport
from relay.relayer.config import BatchingConfig, DestinationConfig, RelayerConfig
from relay.relayer.deliver import Deliverer
from relay.relayer.gauges import Gauges
from relay.relayer.outcomes import Outcomes
from relay.relayer.policy import GasPolicy, GasPolicyConfig
from relay.relayer.sizing import compute_delivery_overhead, cut_batches, message_bytes, message_gas
from relay.relayer.state import DestinationState, SourceState
from relay.retry import BackoffSchedule
from relay.store import Store
from relay.store.base import MessageRecord, Transition
from relay.verify.message import MAX_BODY_LENGTH

from .fakes import Call, FakeSubmitter
from .helpers import (
    DESTINATION,
    ORIGIN,
    Clock,
    checkpoint_over,
    make_message,
    make_source,
    source_config,
    state_of,
    store_verified,
)
from .helpers import S as St

GWEI = 10**9
SENDER = b"\x01" * 32
RECIPIENT = b"\x02" * 32


@dataclass
class FakePayments:
    """`gasPaid` per id; `error` makes every read fail; `reads` counts them."""

    domain: int = ORIGIN
    paid: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    error: Exception | None = None
    reads: int = 0

    def gas_paid(self, ids: Sequence[bytes]) -> list[tuple[int, int]]:
        self.reads += 1
        if self.error is not None:
            raise self.error
        return [self.paid.get(i, (0, 0)) for i in ids]

    def pay(self, message_id: bytes, gas_limit: int, price: int) -> None:
        """Like `payForGas` at an oracle of `price`: totals add up."""
        old_limit, old_payment = self.paid.get(message_id, (0, 0))
        self.paid[message_id] = (old_limit + gas_limit, old_payment + gas_limit * price)


@dataclass
class FakeMarket:
    domain: int = DESTINATION
    price: int = 2 * GWEI
    block_limit: int = 30_000_000
    error: Exception | None = None

    def gas_price(self) -> int:
        if self.error is not None:
            raise self.error
        return self.price

    def block_gas_limit(self) -> int:
        return self.block_limit


class PricedSubmitter(FakeSubmitter):
    """A fake submitter whose reports carry gas used and an effective gas price."""

    def answer(self, call: Call) -> DeliveryReport:
        report = super().answer(call)
        return DeliveryReport(
            report.transaction_hash,
            7,
            100_000 * len(call.items),
            report.results,
            effective_gas_price=3 * GWEI,
        )


class World:
    def __init__(self, store: Store, clock: Clock, metrics: RelayMetrics, **policy: object) -> None:
        self.store, self.clock, self.metrics = store, clock, metrics
        self.source: SourceState = make_source(store)
        self.payments = FakePayments()
        self.market = FakeMarket()
        self.submitter = PricedSubmitter()
        self.destination = DestinationState(
            DestinationConfig(domain=DESTINATION, submitter="submitter"), self.submitter
        )
        self.policy = GasPolicy(
            GasPolicyConfig.model_validate(policy),
            {ORIGIN: self.payments},
            {DESTINATION: self.market},
            clock,
        )
        outcomes = Outcomes(
            store,
            metrics,
            clock,
            BackoffSchedule(1.0, 10.0, give_up_after=3600.0, jitter=0.0),
            Gauges(store, metrics, clock),
        )
        self.deliverer = Deliverer(
            store,
            clock,
            BatchingConfig(max_batch=50, max_wait=0.0),
            60.0,
            {ORIGIN: self.source},
            outcomes,
            lambda: False,
            policy=self.policy,
            metrics=metrics,
        )

    def verify(self, *bodies: bytes, first: int = 0) -> list[bytes]:
        messages = [make_message(first + n, body=body) for n, body in enumerate(bodies)]
        store_verified(self.store, self.source, messages, checkpoint_over(messages), now=self.clock.now)
        return [m.id for m in messages]

    def records(self, ids: Sequence[bytes]) -> list[MessageRecord]:
        return [r for i in ids if (r := self.store.get(i)) is not None]

    def deliver(self) -> None:
        self.deliverer.deliver(self.destination, flush=True)

    def gas_limits(self) -> dict[bytes, int]:
        return {i.message.id: i.gas_limit for c in self.submitter.calls for i in c.items}


@pytest.fixture
def world(store: Store, clock: Clock, metrics: RelayMetrics):  # type: ignore[no-untyped-def]
    return lambda **policy: World(store, clock, metrics, **policy)


# --- decisions ---------------------------------------------------------------------------------


def test_a_message_paid_for_enough_is_delivered_with_its_paid_gas_limit(world) -> None:  # type: ignore[no-untyped-def]
    w = world()
    [paid] = w.verify(b"paid")
    overhead = compute_delivery_overhead(len(w.store.get(paid).message.encode()))  # type: ignore[union-attr]
    w.payments.pay(paid, 300_000 + overhead, 2 * GWEI)  # exactly enough at the current 2 gwei
    w.deliver()
    assert state_of(w.store, paid) is St.DELIVERED
    assert w.gas_limits() == {paid: 300_000}  # the handle gets what was paid beyond the overhead


def test_a_payment_that_does_not_cover_the_delivery_overhead_is_held(world) -> None:  # type: ignore[no-untyped-def]
    """A sender cannot make the operator pay for its message's calldata and the Gateway's work:
    paying for a tiny gas limit (the attack: 1 gas for a maximum body) holds the message."""
    w = world()
    small, big = w.verify(b"1 gas", b"x" * 65_000)
    w.payments.pay(small, 1, 2 * GWEI)
    overhead = compute_delivery_overhead(len(w.store.get(big).message.encode()))  # type: ignore[union-attr]
    assert overhead > 2_600_000  # 64 KiB of calldata at the EIP-7623 floor
    w.payments.pay(big, overhead, 2 * GWEI)  # the overhead exactly: nothing left for the handle
    w.deliver()
    assert w.submitter.calls == []
    held = {r.id: r for r in w.records([small, big])}
    assert {r.state for r in held.values()} == {St.UNPAID}
    assert all(
        r.error_reason == "Underpaid" and "before its recipient" in r.last_error for r in held.values()
    )


def test_unpaid_and_underpaid_messages_are_held_with_their_reason(world) -> None:  # type: ignore[no-untyped-def]
    w = world()
    unpaid, under = w.verify(b"unpaid", b"under")
    w.payments.pay(under, 300_000, 2 * GWEI - 1)  # one wei per gas short
    w.deliver()
    assert w.submitter.calls == []
    held = {r.id: r for r in w.records([unpaid, under])}
    assert held[unpaid].state is St.UNPAID and held[unpaid].error_reason == "Unpaid"
    assert held[under].state is St.UNPAID and held[under].error_reason == "Underpaid"
    assert "needs 600000000000000" in held[under].last_error
    sample = w.metrics.registry.get_sample_value
    route = {"origin": str(ORIGIN), "destination": str(DESTINATION)}
    assert sample("relay_gas_policy_holds_total", {**route, "reason": "Underpaid"}) == 1


def test_a_top_up_releases_a_held_message(world) -> None:  # type: ignore[no-untyped-def]
    w = world(recheck_interval=10.0)
    [message] = w.verify(b"top me up")
    w.payments.pay(message, 100_000, GWEI)  # half the price
    w.deliver()
    assert state_of(w.store, message) is St.UNPAID
    w.payments.pay(message, 100_000, 3 * GWEI)  # totals: 200k gas for 400k gwei = 2 gwei/gas
    w.deliverer.deliver(w.destination, flush=False)  # the recheck interval has not passed yet
    assert state_of(w.store, message) is St.UNPAID
    w.clock.advance(10.0)
    w.deliverer.deliver(w.destination, flush=False)
    assert state_of(w.store, message) is St.DELIVERED
    overhead = compute_delivery_overhead(len(w.store.get(message).message.encode()))  # type: ignore[union-attr]
    assert w.gas_limits() == {message: 200_000 - overhead}


def test_a_lower_gas_price_releases_a_held_message_and_a_higher_one_holds(world) -> None:  # type: ignore[no-untyped-def]
    w = world()
    cheap, dear = w.verify(b"cheap", b"dear")
    w.payments.pay(cheap, 100_000, GWEI)
    w.market.price = 5 * GWEI
    w.deliver()
    assert state_of(w.store, cheap) is St.UNPAID
    w.market.price = GWEI
    w.clock.advance(10.0)  # past the gas price cache
    w.payments.pay(dear, 100_000, GWEI)
    w.deliver()
    assert state_of(w.store, cheap) is St.DELIVERED and state_of(w.store, dear) is St.DELIVERED


def test_a_paid_limit_above_the_cap_is_delivered_with_the_cap(world) -> None:  # type: ignore[no-untyped-def]
    w = world(max_gas_per_message=500_000)
    [big] = w.verify(b"greedy")
    w.payments.pay(big, 10_000_000, 2 * GWEI)
    w.deliver()
    assert w.gas_limits() == {big: 500_000}


def test_allow_listed_senders_and_recipients_go_unpaid_with_the_default_limit(world) -> None:  # type: ignore[no-untyped-def]
    w = world(allow_list=[{"recipient": "0x" + RECIPIENT.hex(), "destination": DESTINATION}])
    [message] = w.verify(b"free")
    w.deliver()
    assert w.gas_limits() == {message: 200_000}
    assert w.policy.allowed(w.store.get(message))
    for entry in (
        {"sender": "0x" + "11" * 20},  # another sender
        {"recipient": "0x" + RECIPIENT.hex(), "origin": ORIGIN + 1},  # another origin
        {"sender": "0x" + SENDER.hex(), "recipient": "0x" + "22" * 20},  # both must match
    ):
        other = GasPolicy(GasPolicyConfig.model_validate({"allow_list": [entry]}), {}, {}, w.clock)
        assert not other.allowed(w.store.get(message)), entry


def test_allow_all_delivers_without_reading_payments(world) -> None:  # type: ignore[no-untyped-def]
    w = world(mode="allow_all", default_gas_limit=123_456)
    [message] = w.verify(b"anything")
    w.payments.error = RpcUnavailable("must not be read")
    w.deliver()
    assert w.gas_limits() == {message: 123_456} and w.payments.reads == 0


def test_an_unknown_gas_price_holds_paid_messages(world) -> None:  # type: ignore[no-untyped-def]
    w = world()
    w.market.error = RpcUnavailable("eth_gasPrice down")
    [message] = w.verify(b"priced?")
    w.payments.pay(message, 100_000, GWEI)
    w.deliver()
    record = w.store.get(message)
    assert record is not None and record.state is St.UNPAID and record.error_reason == "GasPriceUnknown"


def test_a_gas_price_override_replaces_the_chains(world) -> None:  # type: ignore[no-untyped-def]
    w = world(destinations={DESTINATION: {"gas_price": GWEI // 2, "exchange_rate": 2 * 10**10}})
    [message] = w.verify(b"override")
    w.market.price = 100 * GWEI  # ignored
    w.payments.paid[message] = (100_000, 100_000 * GWEI)  # 0.5 gwei * rate 2 = 1 gwei per gas
    w.deliver()
    assert state_of(w.store, message) is St.DELIVERED


def test_unreadable_payments_leave_messages_where_they_are(world) -> None:  # type: ignore[no-untyped-def]
    w = world()
    [message] = w.verify(b"wait")
    w.payments.error = RpcUnavailable("source down")
    w.deliver()
    assert state_of(w.store, message) is St.VERIFIED and w.submitter.calls == []


@pytest.mark.parametrize("answer", [[(-1, 5)], [(1, 1), (1, 1)]])
def test_a_hostile_payment_answer_is_transient_never_a_delivery(world, answer) -> None:  # type: ignore[no-untyped-def]
    w = world()
    [message] = w.verify(b"hostile")
    w.payments.gas_paid = lambda ids: answer  # type: ignore[method-assign]
    w.deliver()
    assert state_of(w.store, message) is St.VERIFIED and w.submitter.calls == []


def test_unpaid_is_a_pending_state_with_a_way_back() -> None:
    assert St.UNPAID.is_pending and not St.UNPAID.is_terminal
    assert St.UNPAID in ALLOWED_TRANSITIONS[St.VERIFIED] and St.UNPAID in ALLOWED_TRANSITIONS[St.RETRYING]
    assert ALLOWED_TRANSITIONS[St.UNPAID] == frozenset({St.VERIFIED, St.DELIVERED})


@pytest.mark.parametrize(
    "policy",
    [
        {"mode": "free"},
        {"default_gas_limit": 0},
        {"default_gas_limit": 3_000_000},  # above the default cap
        {"allow_list": [{"origin": 1}]},  # neither sender nor recipient
        {"allow_list": [{"sender": "0x1234"}]},
        {"destinations": {DESTINATION: {"exchange_rate": 0}}},
        {"unknown": 1},
    ],
)
def test_invalid_policies_are_refused(policy: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        GasPolicyConfig.model_validate(policy)


def test_price_overrides_must_name_a_destination() -> None:
    with pytest.raises(ValidationError, match="not destination domains"):
        RelayerConfig.model_validate(
            {
                "sources": [source_config().model_dump()],
                "destinations": [{"domain": DESTINATION, "submitter": "s"}],
                "gas_policy": {"destinations": {999: {"gas_price": 1}}},
                "insecure_plaintext": True,
            }
        )


# --- cost accounting ---------------------------------------------------------------------------


def test_costs_are_accounted_per_route(world) -> None:  # type: ignore[no-untyped-def]
    w = world()
    ids = w.verify(b"a", b"b")
    for message_id in ids:
        w.payments.pay(message_id, 100_000, 2 * GWEI)
    w.deliver()
    [(route, cost)] = w.deliverer.costs.snapshot().items()
    assert route == (ORIGIN, DESTINATION)
    assert (cost.messages, cost.delivered, cost.gas_spent) == (2, 2, 200_000)
    assert cost.spent == cost.spent_in_origin_units == 200_000 * 3 * GWEI
    assert cost.paid == 2 * 100_000 * 2 * GWEI
    sample = w.metrics.registry.get_sample_value
    route = {"origin": str(ORIGIN), "destination": str(DESTINATION)}
    assert sample("relay_route_gas_spent_total", route) == 200_000
    assert sample("relay_route_native_paid_total", route) == cost.paid
    assert sample("relay_route_native_spent_total", route) == cost.spent


# --- batches bounded by bytes and gas ----------------------------------------------------------


def test_batches_are_cut_by_bytes_and_by_gas(world) -> None:  # type: ignore[no-untyped-def]
    w = world(mode="allow_all")
    ids = w.verify(*[bytes([n + 1]) * MAX_BODY_LENGTH for n in range(6)])
    records = w.records(ids)
    limits = dict.fromkeys(ids, 200_000)
    one = message_bytes(records[0])
    assert one > MAX_BODY_LENGTH
    by_bytes = cut_batches(records, limits, 50, 2 * one, 10**12)
    assert [len(b) for b in by_bytes] == [2, 2, 2]
    by_gas = cut_batches(records, limits, 50, 10**9, 3 * message_gas(records[0], 200_000))
    assert [len(b) for b in by_gas] == [3, 3]
    alone = cut_batches(records[:2], limits, 50, 4096, 10**12)  # each above the byte bound
    assert [len(b) for b in alone] == [1, 1]


def test_the_block_gas_limit_bounds_batches(world) -> None:  # type: ignore[no-untyped-def]
    w = world(mode="allow_all")
    w.market.block_limit = 4_000_000
    assert w.deliverer.max_batch_gas(DESTINATION) == 2_000_000  # half of it, below max_batch_gas
    ids = w.verify(*[b"x" * 1000 for _ in range(40)])
    w.deliver()
    assert all(state_of(w.store, i) is St.DELIVERED for i in ids)
    sizes = w.submitter.sizes()
    assert len(sizes) > 1 and sum(sizes) == 40
    per_message = message_gas(w.records(ids)[0], 200_000)
    assert max(sizes) * per_message <= 2_000_000


def test_a_parked_out_of_gas_message_is_released_by_a_top_up_beyond_the_gas_it_had(world) -> None:  # type: ignore[no-untyped-def]
    """The Gateway leaves a message whose recipient ran out of gas deliverable; once its sender
    pays for more gas than it was given, it goes back to VERIFIED without an operator."""
    w = world()
    [message] = w.verify(b"needs more gas")
    overhead = compute_delivery_overhead(len(w.store.get(message).message.encode()))  # type: ignore[union-attr]
    w.payments.pay(message, 100_000 + overhead, 2 * GWEI)
    w.store.apply_transition(
        Transition(
            message,
            St.VERIFIED,
            St.PARKED,
            {
                "last_error": "RecipientReverted: RecipientOutOfGas(100000)",
                "error_reason": "RecipientReverted",
            },
        ),
        w.clock.now,
    )
    assert w.deliverer.recheck_out_of_gas(w.destination) == []  # paid for exactly what it had: stays
    assert state_of(w.store, message) is St.PARKED
    w.payments.pay(message, 150_000, 2 * GWEI)  # the sender tops up
    assert w.deliverer.recheck_out_of_gas(w.destination) == [message]
    assert state_of(w.store, message) is St.VERIFIED
    w.deliver()
    assert w.gas_limits() == {message: 250_000}  # delivered with the larger limit
