"""The relayer's message gauges and delivery histograms, computed from the store.

Gauges of stored state (messages by route and state, queue depth, oldest pending age, oldest
RETRYING age: a route a transient fault keeps stuck) come from
GROUP BY scans, so `refresh()` runs them at most once per `every` seconds. `observe_delivery()`
records end-to-end and per-stage latency from a delivered message's stored timestamps.
"""

from __future__ import annotations

from collections import defaultdict

from relay.lifecycle import MessageState
from relay.metrics import RelayMetrics
from relay.relayer.common import Clock
from relay.store.base import Store

S = MessageState
WAITING_STATES = (
    S.FINAL,
    S.ATTESTED,
    S.WAITING_FOR_HEADER,
    S.HEADER_SUBMITTED,
    S.VERIFIED,
    S.SUBMITTED,
    S.RETRYING,
)


class Gauges:
    """Exports the store's message counts and latencies as metrics."""

    def __init__(self, store: Store, metrics: RelayMetrics, clock: Clock) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._refreshed_at: float | None = None
        self._routes: set[tuple[int, int]] = set()

    def observe_delivery(self, message_id: bytes) -> None:
        """Count one delivered message and observe its end-to-end and per-stage latency."""
        record = self._store.get(message_id)
        if record is None:
            return
        route = (str(record.message.origin), str(record.message.destination))
        metrics = self._metrics
        metrics.messages_delivered.labels(*route).inc()
        if record.observed_at:
            metrics.end_to_end_latency.labels(*route).observe(
                max(0.0, record.delivered_at - record.observed_at)
            )
        stages = [
            ("observe", record.observed_at, record.final_at),
            ("attest", record.final_at, record.attested_at),
            ("prove", record.attested_at, record.verified_at),
            ("submit", record.verified_at, record.submitted_at),
            ("confirm", record.submitted_at, record.delivered_at),
        ]
        for stage, start, end in stages:
            if start and end >= start:
                metrics.stage_latency.labels(*route, stage).observe(end - start)

    def refresh(self, *, every: float = 1.0) -> bool:
        """Recompute the message gauges unless done less than `every` seconds ago; True if it ran.

        A route once seen keeps its series (set to zero when empty), so dashboards show drained
        queues as zero rather than as gaps.
        """
        now = self._clock()
        if self._refreshed_at is not None and now - self._refreshed_at < every:
            return False
        self._refreshed_at = now
        counts: dict[tuple[int, int], dict[str, int]] = defaultdict(dict)
        for (origin, destination, state), count in self._store.count_by_route_and_state().items():
            counts[(origin, destination)][state.value] = count
        self._routes |= set(counts)
        waiting = self._store.oldest_by_route(list(WAITING_STATES))
        retrying = self._store.oldest_by_route([S.RETRYING])
        for route in self._routes:
            route_counts = counts.get(route, {})
            self._metrics.set_message_counts(*route, route_counts)
            labels = (str(route[0]), str(route[1]))
            self._metrics.queue_depth.labels(*labels).set(
                route_counts.get(S.VERIFIED.value, 0) + route_counts.get(S.RETRYING.value, 0)
            )
            oldest = waiting.get(route)
            self._metrics.oldest_pending_age.labels(*labels).set(max(0.0, now - oldest) if oldest else 0.0)
            oldest = retrying.get(route)
            self._metrics.oldest_retrying_age.labels(*labels).set(max(0.0, now - oldest) if oldest else 0.0)
        return True
