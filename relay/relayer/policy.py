"""The relayer's gas policy: deliver what is paid for (or allow-listed), hold the rest UNPAID.

A sender pays for its message's gas on the source gateway (`dispatchWithGas`, `payForGas`; the
totals are `gasPaid(id) -> (gasLimit, payment)`, read through a `relay.chains.PaymentReader` on
demand, so a top-up is seen by the next read). Before a message is delivered the policy decides:

- `mode: allow_all`: every message is delivered with `default_gas_limit` (payments are not read).
  For devnets and deployments where the operator pays.
- `mode: paid` (default): the paid gas covers the recipient's handle AND the delivery's own cost
  for the message (`relay.relayer.sizing.compute_delivery_overhead`: calldata at the EIP-7623
  floor and the Gateway's work), so no message makes the operator pay for its calldata. The
  recipient gets `gas_limit = min(paid gas limit - overhead, max_gas_per_message)`, and the
  message is delivered when `payment >= (gas_limit + overhead) * gas_price * exchange_rate / 1e10`
  at the destination's current gas price (its `chain:` section's `eth_gasPrice`, or the
  `gas_price` override), the Gateway's `quoteGasPayment` formula. A paid limit above the cap is
  delivered with the cap; a recipient needing more then runs out of gas and is parked with
  `RecipientOutOfGas`. `relay send --gas-limit N` pays for N plus the overhead. Nothing paid: `Unpaid`; too little: `Underpaid`; both held UNPAID with the
  figures in the reason, and re-checked every `recheck_interval` seconds.
- An `allow_list` entry (sender and/or recipient, optionally per origin / destination) is
  delivered even unpaid, with `max(paid gas limit, default_gas_limit)` capped.

No gas price known (no `chain:` section nor override, or its read failed) holds paid-mode messages
with `GasPriceUnknown`; a payment read that fails is a `TransientError` for the caller, which
leaves the messages where they are and asks again next pass.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator

from relay.chains import DEFAULT_HANDLE_GAS_LIMIT, GasMarketReader, PaymentReader
from relay.config import StrictModel
from relay.errors import RelayError, RpcUnavailable
from relay.relayer.common import Clock, describe
from relay.relayer.sizing import compute_delivery_overhead
from relay.store.base import MessageRecord

log = logging.getLogger("relay.relayer")

EXCHANGE_RATE_SCALE = 10**10  # as the Gateway's oracle: origin units per destination unit, times 1e10
GAS_PRICE_CACHE_SECONDS = 5.0  # a destination's gas price is read at most this often
BLOCK_GAS_CACHE_SECONDS = 60.0  # and its block gas limit at most this often


def _bytes32(value: str) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x"))
    if len(raw) == 20:
        return b"\x00" * 12 + raw
    if len(raw) != 32:
        raise ValueError("needs a 20-byte address or 32 bytes, in hex")
    return raw


class AllowEntry(StrictModel):
    """Messages delivered even unpaid: every field set must match (sender and/or recipient needed).

    `sender` / `recipient`: 32 bytes or a 20-byte address (left-padded), hex; `origin` /
    `destination`: domains (any when unset).
    """

    sender: str | None = None
    recipient: str | None = None
    origin: int | None = None
    destination: int | None = None

    @field_validator("sender", "recipient")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return "0x" + _bytes32(value).hex()
        except ValueError as error:
            raise ValueError(f"{value!r}: {error}") from error

    @model_validator(mode="after")
    def _check(self) -> AllowEntry:
        if self.sender is None and self.recipient is None:
            raise ValueError("an allow_list entry needs a sender or a recipient")
        return self

    def matches(self, origin: int, sender: bytes, destination: int, recipient: bytes) -> bool:
        """Whether a message of this route, sender and recipient is allow-listed by this entry."""
        return (
            (self.origin is None or self.origin == origin)
            and (self.destination is None or self.destination == destination)
            and (self.sender is None or _bytes32(self.sender) == sender)
            and (self.recipient is None or _bytes32(self.recipient) == recipient)
        )


class DestinationPrices(StrictModel):
    """Price overrides for one destination: `gas_price` (smallest unit per gas) replaces the chain's
    `eth_gasPrice`; `exchange_rate` (origin units per destination unit, times 1e10) applies to every
    origin unless `exchange_rates` names the origin."""

    gas_price: int | None = None
    exchange_rate: int = EXCHANGE_RATE_SCALE
    exchange_rates: dict[int, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> DestinationPrices:
        if self.gas_price is not None and self.gas_price < 0:
            raise ValueError("gas_price must be >= 0")
        if self.exchange_rate <= 0 or any(r <= 0 for r in self.exchange_rates.values()):
            raise ValueError("exchange rates must be positive")
        return self


class GasPolicyConfig(StrictModel):
    """The relayer's `gas_policy:` section (see the module docstring)."""

    mode: Literal["paid", "allow_all"] = "paid"
    allow_list: list[AllowEntry] = Field(default_factory=list)
    default_gas_limit: int = DEFAULT_HANDLE_GAS_LIMIT
    max_gas_per_message: int = 2_000_000
    # Per destination domain: price overrides.
    destinations: dict[int, DestinationPrices] = Field(default_factory=dict)
    recheck_interval: float = 5.0  # how often UNPAID messages are checked again
    recheck_batch: int = 500  # UNPAID messages checked per destination and pass

    @model_validator(mode="after")
    def _check(self) -> GasPolicyConfig:
        if not 0 < self.default_gas_limit <= self.max_gas_per_message:
            raise ValueError("default_gas_limit must be in 1..max_gas_per_message")
        if not 21_000 <= self.max_gas_per_message <= 100_000_000:
            raise ValueError("max_gas_per_message must be in 21000..100000000")
        if self.recheck_interval <= 0 or not 1 <= self.recheck_batch <= 100_000:
            raise ValueError("recheck_interval > 0 and recheck_batch in 1..100000")
        return self


@dataclass(frozen=True)
class Decision:
    """What the policy says about one message: deliver with `gas_limit`, or hold for `reason`."""

    deliver: bool
    gas_limit: int
    payment: int = 0  # what the sender paid (origin units), as read
    reason: str = ""  # Unpaid, Underpaid, GasPriceUnknown ("" when delivered)
    detail: str = ""


class GasPolicy:
    """Decides per message whether it is paid for enough; reads payments and gas prices."""

    def __init__(
        self,
        config: GasPolicyConfig,
        payments: Mapping[int, PaymentReader],
        markets: Mapping[int, GasMarketReader],
        clock: Clock,
    ) -> None:
        self.config = config
        self._payments = payments
        self._markets = markets
        self._clock = clock
        self._prices: dict[int, tuple[float, int]] = {}
        self._block_limits: dict[int, tuple[float, int]] = {}

    def exchange_rate(self, origin: int, destination: int) -> int:
        """Origin units per destination unit, times 1e10 (default 1e10: the same native token)."""
        prices = self.config.destinations.get(destination)
        if prices is None:
            return EXCHANGE_RATE_SCALE
        return prices.exchange_rates.get(origin, prices.exchange_rate)

    def gas_price(self, destination: int) -> int | None:
        """The destination's gas price: the override, else the chain's (cached briefly); None if unknown."""
        prices = self.config.destinations.get(destination)
        if prices is not None and prices.gas_price is not None:
            return prices.gas_price
        market = self._markets.get(destination)
        if market is None:
            return None
        now = self._clock()
        cached = self._prices.get(destination)
        if cached is not None and now - cached[0] < GAS_PRICE_CACHE_SECONDS:
            return cached[1]
        try:
            price = market.gas_price()
        except RelayError as error:
            log.warning(
                "could not read the destination's gas price",
                extra={"destination": destination, "reason": describe(error)},
            )
            return None
        self._prices[destination] = (now, price)
        return price

    def block_gas_limit(self, destination: int) -> int | None:
        """The destination's latest block gas limit (cached), None when it cannot be read."""
        market = self._markets.get(destination)
        if market is None:
            return None
        now = self._clock()
        cached = self._block_limits.get(destination)
        if cached is not None and now - cached[0] < BLOCK_GAS_CACHE_SECONDS:
            return cached[1]
        try:
            limit = market.block_gas_limit()
        except RelayError as error:
            log.warning(
                "could not read the destination's block gas limit",
                extra={"destination": destination, "reason": describe(error)},
            )
            return None
        self._block_limits[destination] = (now, limit)
        return limit

    def required_payment(self, gas_limit: int, origin: int, destination: int, gas_price: int) -> int:
        """What `gas_limit` costs in origin units at `gas_price` (the Gateway's quote formula)."""
        return gas_limit * gas_price * self.exchange_rate(origin, destination) // EXCHANGE_RATE_SCALE

    def allowed(self, record: MessageRecord) -> bool:
        """Whether an allow_list entry names this message's sender or recipient."""
        m = record.message
        return any(e.matches(m.origin, m.sender, m.destination, m.recipient) for e in self.config.allow_list)

    def decide(self, destination: int, records: Sequence[MessageRecord]) -> dict[bytes, Decision]:
        """A decision per message id. `TransientError` (e.g. `RpcUnavailable`) if payments are unread."""
        config = self.config
        cap = config.max_gas_per_message
        if config.mode == "allow_all":
            return {r.id: Decision(True, min(config.default_gas_limit, cap)) for r in records}
        paid = self._read_payments(records)
        price = self.gas_price(destination)
        decisions: dict[bytes, Decision] = {}
        for record in records:
            paid_limit, payment = paid[record.id]
            origin = record.message.origin
            if self.allowed(record):
                limit = min(max(paid_limit, config.default_gas_limit), cap)
                decisions[record.id] = Decision(True, limit, payment)
                continue
            if paid_limit == 0 or payment == 0:
                decisions[record.id] = Decision(
                    False, 0, payment, "Unpaid", "no gas paid for on the source gateway (gasPaid is zero)"
                )
                continue
            # The sender pays for its handle gas plus the delivery's own cost for this message
            # (calldata and the Gateway's work): the recipient gets what is left, at most the cap.
            overhead = compute_delivery_overhead(len(record.message.encode()))
            if paid_limit <= overhead:
                decisions[record.id] = Decision(
                    False,
                    0,
                    payment,
                    "Underpaid",
                    f"paid for {paid_limit} gas; delivering this message costs {overhead} gas before its "
                    "recipient's handle gets any (pay for handle gas plus that overhead)",
                )
                continue
            limit = min(paid_limit - overhead, cap)
            if price is None:
                decisions[record.id] = Decision(
                    False,
                    limit,
                    payment,
                    "GasPriceUnknown",
                    "the destination's gas price is unknown (configure its chain section or gas_price)",
                )
                continue
            required = self.required_payment(limit + overhead, origin, destination, price)
            if payment < required:
                decisions[record.id] = Decision(
                    False,
                    limit,
                    payment,
                    "Underpaid",
                    f"paid {payment} for {paid_limit} gas; {limit} gas at gas price {price} needs {required}",
                )
                continue
            decisions[record.id] = Decision(True, limit, payment)
        return decisions

    def _read_payments(self, records: Sequence[MessageRecord]) -> dict[bytes, tuple[int, int]]:
        by_origin: dict[int, list[MessageRecord]] = {}
        for record in records:
            by_origin.setdefault(record.message.origin, []).append(record)
        paid: dict[bytes, tuple[int, int]] = {}
        for origin, group in by_origin.items():
            reader = self._payments.get(origin)
            if reader is None:
                raise RpcUnavailable("no payment reader for the origin", origin=origin)
            answers = reader.gas_paid([r.id for r in group])
            if len(answers) != len(group):
                raise RpcUnavailable("the payment reader answered the wrong number of ids", origin=origin)
            for record, (gas_limit, payment) in zip(group, answers, strict=True):
                if gas_limit < 0 or payment < 0:
                    raise RpcUnavailable("the payment reader answered a negative figure", origin=origin)
                paid[record.id] = (gas_limit, payment)
        return paid
