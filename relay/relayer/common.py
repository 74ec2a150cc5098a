"""Small helpers every relayer stage shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relay.errors import RelayError
from relay.metrics import RelayMetrics

Clock = Callable[[], float]


def describe(error: RelayError) -> str:
    """`Reason: message` of a typed error, as stored in `last_error` and logged."""
    return f"{error.reason}: {error}"


def retry_counter(metrics: RelayMetrics, policy: str) -> Callable[[Any], None]:
    """An `on_retry` callback that counts each retry of the named policy in `relay_retries_total`."""
    counter = metrics.retries.labels(policy)

    def count(_: Any) -> None:
        counter.inc()

    return count
