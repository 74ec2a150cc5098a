"""Cost accounting per route: gas spent, native amount spent, native amount paid.

A delivery transaction's `gasUsed` is split **evenly** among the messages it carried (delivered
or failed: the gas was spent either way); its fee is that share times the transaction's effective
gas price, in the destination's smallest native unit, and valued in the origin's unit with the gas
policy's exchange rate so that it compares with what was paid. The payment (`gasPaid` on the
source, as read by the policy before the delivery) counts once per delivered message. An even
split keeps the figures simple and summable; a batch of very unequal messages over-charges the
small ones and under-charges the large ones, but a route's totals are exact.

Totals are kept since the relayer started (for the status page and `relay bench e2e`) and
exported as the `relay_route_*` counters.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from relay.metrics import RelayMetrics
from relay.peers import DeliveryOutcome, DeliveryReport
from relay.store.base import MessageRecord

Route = tuple[int, int]


@dataclass
class RouteCost:
    """What one route cost and earned since the relayer started."""

    messages: int = 0  # messages carried by delivery transactions
    delivered: int = 0  # of which delivered (their payment counted)
    gas_spent: int = 0
    spent: int = 0  # destination units
    spent_in_origin_units: int = 0
    paid: int = 0  # origin units


class RouteCosts:
    """Accumulates `RouteCost` per (origin, destination) and mirrors it into the metrics."""

    def __init__(self, metrics: RelayMetrics | None = None) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._routes: dict[Route, RouteCost] = {}

    def snapshot(self) -> dict[Route, RouteCost]:
        """A copy of the totals per route."""
        with self._lock:
            return {route: RouteCost(**vars(cost)) for route, cost in self._routes.items()}

    def record(
        self,
        submitted: Sequence[MessageRecord],
        report: DeliveryReport,
        payments: Mapping[bytes, int],
        exchange_rate: Mapping[Route, int],
    ) -> None:
        """Account one delivery report for `submitted`; `payments` per id, `exchange_rate` per route
        (origin units per destination unit, times 1e10)."""
        if not submitted:
            return
        carried = {r.id for r in submitted if report.transaction_hash and _in_transaction(r, report)}
        share = report.gas_used // len(carried) if carried else 0
        with self._lock:
            for record in submitted:
                route = (record.message.origin, record.message.destination)
                cost = self._routes.setdefault(route, RouteCost())
                labels = (str(route[0]), str(route[1]))
                result = report.results.get(record.id)
                if record.id in carried:
                    spent = share * report.effective_gas_price
                    in_origin = spent * exchange_rate.get(route, 10**10) // 10**10
                    cost.messages += 1
                    cost.gas_spent += share
                    cost.spent += spent
                    cost.spent_in_origin_units += in_origin
                    if self._metrics is not None:
                        self._metrics.route_gas_spent.labels(*labels).inc(share)
                        self._metrics.route_native_spent.labels(*labels).inc(spent)
                        self._metrics.route_spent_in_origin_units.labels(*labels).inc(in_origin)
                if result is not None and result.outcome is DeliveryOutcome.DELIVERED:
                    paid = payments.get(record.id, 0)
                    cost.delivered += 1
                    cost.paid += paid
                    if self._metrics is not None:
                        self._metrics.route_native_paid.labels(*labels).inc(paid)


def _in_transaction(record: MessageRecord, report: DeliveryReport) -> bool:
    # A message the submitter skipped (already delivered) was not in the transaction.
    result = report.results.get(record.id)
    return result is None or result.outcome is not DeliveryOutcome.ALREADY_DELIVERED
