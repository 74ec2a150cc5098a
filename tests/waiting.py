"""Waiting for something to happen in a test, with a deadline instead of a fixed sleep.

`eventually(probe, timeout, what)` polls an observable condition of a real process (a gRPC answer,
a metric, a database row) until it holds; a test that times out fails naming what it waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

POLL_SECONDS = 0.2


def eventually(probe: Callable[[], T | None], timeout: float, what: str, interval: float = POLL_SECONDS) -> T:
    """Poll `probe` until it returns something truthy and return it; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """The sum of the samples of metric `name` whose labels include `labels`, in Prometheus text format."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        if series != name and not series.startswith(name + "{"):
            continue
        if all(f'{key}="{expected}"' in series for key, expected in (labels or {}).items()):
            total += float(value)
    return total
