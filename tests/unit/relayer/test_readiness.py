"""Readiness: every reason /readyz can give, and the boundaries of each."""

from __future__ import annotations

from pathlib import Path

from relay.errors import StoreUnavailable
from relay.relayer.config import DestinationConfig
from relay.relayer.readiness import StoreProbe, compute_readiness
from relay.relayer.state import DestinationState, SourceState
from relay.store import Lease, SqliteStore, Store

from .fakes import FakeSubmitter
from .helpers import DESTINATION, ORIGIN, START, Clock, cursor_at, make_source, relayer_config

CONFIG = relayer_config(ready_max_lag_blocks=10, ready_max_poll_age=60.0)


def synced(store: Store) -> tuple[SourceState, DestinationState]:
    source = make_source(store)
    source.last_poll_at = START
    source.finalized = 100
    store.save_cursor(ORIGIN, cursor_at(100))
    destination = DestinationState(DestinationConfig(domain=DESTINATION, submitter="s"), FakeSubmitter())
    destination.answered_at = START
    return source, destination


def readiness(source: SourceState, destination: DestinationState, now: float = START) -> tuple[bool, str]:
    return compute_readiness(CONFIG, [source], [destination], now)


def test_ready_when_everything_is_fresh(store: Store) -> None:
    source, destination = synced(store)
    assert readiness(source, destination) == (True, "1 sources synced, attestors and submitters answering")
    source.reachable_weight = 3  # exactly the threshold
    assert readiness(source, destination, START + 60.0)[0] is True  # exactly the allowed age


def test_a_source_never_polled_is_not_ready(store: Store) -> None:
    source, destination = synced(store)
    source.last_poll_at = 0.0
    assert readiness(source, destination) == (False, "alpha: not polled yet")


def test_a_stale_poll_is_not_ready(store: Store) -> None:
    source, destination = synced(store)
    destination.answered_at = START + 61.0
    assert readiness(source, destination, START + 61.0) == (False, "alpha: last successful poll 61 s ago")


def test_a_watcher_too_far_behind_is_not_ready(store: Store) -> None:
    source, destination = synced(store)
    source.finalized = 110
    assert readiness(source, destination)[0] is True  # 10 blocks: the limit
    source.finalized = 111
    assert readiness(source, destination) == (False, "alpha: watcher 11 blocks behind the finalized block")


def test_the_held_back_cursor_counts_as_the_watchers_position(store: Store) -> None:
    source, destination = synced(store)
    source.finalized = 150
    source.cursors.save_cursor(ORIGIN, cursor_at(145))
    assert readiness(source, destination)[0] is True


def test_an_unreachable_quorum_is_not_ready(store: Store) -> None:
    source, destination = synced(store)
    source.reachable_weight = 2
    assert readiness(source, destination) == (
        False,
        "alpha: attestor quorum unreachable (2 of 3 weight answered)",
    )
    source.reachable_weight = None  # never measured: not held against it
    assert readiness(source, destination)[0] is True


def test_a_silent_submitter_is_not_ready(store: Store) -> None:
    source, destination = synced(store)
    source.last_poll_at = START + 61.0
    assert readiness(source, destination, START + 61.0) == (
        False,
        f"submitter of domain {DESTINATION} not answering",
    )


class FlakyStore(SqliteStore):
    """The real SQLite store, whose reads can be made to fail as if its database were away."""

    away = False

    def leases(self, prefix: str = "") -> list[Lease]:
        if self.away:
            raise StoreUnavailable("the store's database is unavailable")
        return super().leases(prefix)


def test_a_replica_whose_store_does_not_answer_is_not_ready(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "relayer.db")
    try:
        source, destination = synced(store)
        clock = Clock(START)
        probe = StoreProbe(store, clock, cache_for=2.0)
        assert compute_readiness(CONFIG, [source], [destination], START, store=probe.check())[0]
        store.away = True
        assert probe.check() == (True, "")  # the verdict is kept for cache_for seconds
        clock.advance(2.0)
        ready, reason = compute_readiness(CONFIG, [source], [destination], START, store=probe.check())
        assert not ready and reason == "store unavailable: StoreUnavailable"
        store.away = False
        clock.advance(2.0)
        assert probe.check() == (True, "")
    finally:
        store.close()
