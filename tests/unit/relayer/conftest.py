"""Fixtures of the relayer stage tests: a real SQLite store, fresh metrics, a clock, a thread pool."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from relay.metrics import RelayMetrics
from relay.store import Store, open_store

from .helpers import Clock


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(str(tmp_path / "relayer.db"))
    yield opened
    opened.close()


@pytest.fixture
def metrics() -> RelayMetrics:
    return RelayMetrics(CollectorRegistry())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pool() -> Iterator[futures.ThreadPoolExecutor]:
    executor = futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="test-attestor")
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)
