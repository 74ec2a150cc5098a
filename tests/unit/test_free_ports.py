"""Listening ports for devnet processes: parallel pytest workers draw from disjoint shares."""

from __future__ import annotations

import pytest

from adapters.evm import anvil


@pytest.mark.parametrize(
    ("worker", "count", "expected"), [("gw0", "2", (0, 2)), ("gw1", "2", (1, 2)), ("gw3", "4", (3, 4))]
)
def test_each_worker_draws_its_own_share(
    monkeypatch: pytest.MonkeyPatch, worker: str, count: str, expected: tuple[int, int]
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", count)
    assert anvil._worker_share() == expected
    share, shares = expected
    assert all(anvil.find_free_port() % shares == share for _ in range(20))


@pytest.mark.parametrize(
    ("worker", "count"), [("", "1"), ("master", "2"), ("gw5", "2"), ("gwx", "2"), ("gw0", "0")]
)
def test_outside_xdist_or_with_odd_values_every_port_may_be_drawn(
    monkeypatch: pytest.MonkeyPatch, worker: str, count: str
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", count)
    assert anvil._worker_share() == (0, 1)
