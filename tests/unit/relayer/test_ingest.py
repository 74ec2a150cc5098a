"""Ingest: watcher reports become OBSERVED / FINAL rows, orphans go, cursors follow the stored data."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.chains import ChainConfigBase as ChainConfig
from relay.chains import Cursor, CursorStore, ObservedMessage, WatchUpdate
from relay.errors import PermanentError, RpcUnavailable, SourceDisagreement, StoreUnavailable
from relay.metrics import RelayMetrics
from relay.relayer.ingest import DeferredCursors, Ingest
from relay.relayer.state import SourceState
from relay.retry import WATCHER_POLL
from relay.store import SqliteStore, Store
from relay.store.base import Lease

from .helpers import (
    ORIGIN,
    Clock,
    block_hash,
    cursor_at,
    make_message,
    make_source,
    observe,
    state_of,
    walk,
)
from .helpers import S as St

MESSAGES = [make_message(n) for n in range(4)]


class ScriptedWatcher:
    """A `SourceWatcher` that returns (or raises) scripted reports and saves their cursors, like a real one."""

    def __init__(
        self,
        cursors: CursorStore,
        script: Iterable[WatchUpdate | Exception] = (),
        hashes: dict[int, bytes | Exception] | None = None,
        *,
        save_cursor: bool = True,
    ) -> None:
        self.domain = ORIGIN
        self.cursors = cursors
        self.script = list(script)
        self.hashes = hashes or {}
        self.save = save_cursor
        self.polls = 0

    def poll(self) -> WatchUpdate:
        self.polls += 1
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        if self.save and item.cursor is not None:
            self.cursors.save_cursor(self.domain, item.cursor)
        return item

    def block_hash(self, number: int) -> bytes | None:
        hashed = self.hashes.get(number)
        if isinstance(hashed, Exception):
            raise hashed
        return hashed


class FailingStore(SqliteStore):
    """The real SQLite store, whose next `insert_observed` can be made to fail (a disk error)."""

    fail_inserts = False
    cursor_seen_at_insert: Cursor | None = None

    def insert_observed(
        self, observed: Iterable[ObservedMessage], now: float, *, lease: Lease | None = None
    ) -> tuple[list[bytes], list[bytes]]:
        self.cursor_seen_at_insert = self.load_cursor(ORIGIN)
        if self.fail_inserts:
            raise OSError("disk I/O error")
        return super().insert_observed(observed, now, lease=lease)


class Factory:
    """The watcher factory: records every watcher it (re)creates."""

    def __init__(self, script: list[WatchUpdate | Exception] | None = None) -> None:
        self.script = script if script is not None else []
        self.created: list[ScriptedWatcher] = []

    def __call__(self, chain: ChainConfig, cursors: CursorStore) -> ScriptedWatcher:
        watcher = ScriptedWatcher(cursors, self.script)
        self.created.append(watcher)
        return watcher


def update(
    *observed: ObservedMessage,
    finalized: int = 0,
    head: int | None = None,
    cursor: int | None = None,
    orphaned: Iterable[bytes] = (),
) -> WatchUpdate:
    top = max([o.block_number for o in observed] + [finalized]) if head is None else head
    return WatchUpdate(
        observed=list(observed),
        orphaned_ids=list(orphaned),
        head_block=top,
        finalized_block=finalized,
        cursor=cursor_at(top if cursor is None else cursor),
    )


@pytest.fixture
def failing_store(tmp_path: Path) -> Iterator[FailingStore]:
    opened = FailingStore(tmp_path / "failing.db")
    yield opened
    opened.close()


def scripted_source(
    store: Store, *script: WatchUpdate | Exception, hashes: dict[int, bytes | Exception] | None = None
) -> tuple[SourceState, ScriptedWatcher]:
    source = make_source(store)
    watcher = ScriptedWatcher(source.cursors, script, hashes)
    source.watcher = watcher
    return source, watcher


def test_a_poll_stores_observations_finality_tree_cursor_and_progress(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    source, _ = scripted_source(store, update(*[observe(m) for m in MESSAGES], finalized=2, head=5))
    Ingest(store, metrics, clock, Factory()).poll(source)
    assert [state_of(store, m.id) for m in MESSAGES] == [St.FINAL, St.FINAL, St.OBSERVED, St.OBSERVED]
    assert source.tree.count == 4
    assert store.load_cursor(ORIGIN) == cursor_at(5)
    assert (source.head, source.finalized, source.last_poll_at) == (5, 2, clock.now)
    assert source.behind_since == 0.0
    assert metrics.registry.get_sample_value("relay_chain_head_block", {"chain": "alpha"}) == 5
    assert metrics.registry.get_sample_value("relay_watcher_lag_blocks", {"chain": "alpha"}) == 0


def test_the_cursor_is_persisted_only_after_the_messages_are_stored(
    failing_store: FailingStore, metrics: RelayMetrics, clock: Clock
) -> None:
    factory = Factory([update(observe(MESSAGES[0]), finalized=1)])
    source, _ = scripted_source(failing_store, update(observe(MESSAGES[0]), finalized=1))
    ingest = Ingest(failing_store, metrics, clock, factory)
    failing_store.fail_inserts = True
    with pytest.raises(OSError):
        ingest.poll(source)
    # The watcher had saved its cursor inside poll(); it was held back, then dropped.
    assert failing_store.cursor_seen_at_insert is None
    assert failing_store.load_cursor(ORIGIN) is None
    assert source.cursors.load_cursor(ORIGIN) is None
    assert failing_store.get(MESSAGES[0].id) is None
    assert source.last_poll_at == 0.0
    # The watcher is started again from the stored cursor, so it reads the same blocks again.
    assert len(factory.created) == 1 and source.watcher is factory.created[0]
    failing_store.fail_inserts = False
    ingest.poll(source)
    assert failing_store.cursor_seen_at_insert is None  # still held back while inserting
    assert state_of(failing_store, MESSAGES[0].id) is St.FINAL
    assert failing_store.load_cursor(ORIGIN) == cursor_at(1)


def test_a_reported_cursor_is_stored_even_if_the_watcher_did_not_save_it(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    source = make_source(store)
    source.watcher = ScriptedWatcher(
        source.cursors, [update(observe(MESSAGES[0]), cursor=9)], save_cursor=False
    )
    Ingest(store, metrics, clock, Factory()).poll(source)
    assert store.load_cursor(ORIGIN) == cursor_at(9)


def test_a_failed_poll_stores_nothing_and_keeps_the_watcher(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    factory = Factory()
    source, watcher = scripted_source(store, PermanentError("bad range", code=-32602))
    source.cursors.save_cursor(ORIGIN, cursor_at(3))  # as if the watcher had saved it before failing
    Ingest(store, metrics, clock, factory).poll(source)  # logged, not raised
    assert watcher.polls == 1  # a permanent error is not retried in-call
    assert source.cursors.load_cursor(ORIGIN) is None and store.load_cursor(ORIGIN) is None
    assert source.watcher is watcher and factory.created == []
    assert source.last_poll_at == 0.0


def test_a_transient_poll_failure_is_retried_in_call(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    source, watcher = scripted_source(store, RpcUnavailable("rpc down"), update(observe(MESSAGES[0])))
    Ingest(store, metrics, clock, Factory()).poll(source)
    assert watcher.polls == 2
    assert state_of(store, MESSAGES[0].id) is St.OBSERVED
    assert metrics.registry.get_sample_value("relay_retries_total", {"policy": "watcher_poll"}) == 1


def test_a_message_of_another_origin_is_ignored(store: Store, metrics: RelayMetrics, clock: Clock) -> None:
    stranger = make_message(0, origin=9)
    source, _ = scripted_source(store, update(observe(stranger), observe(MESSAGES[0]), finalized=1))
    Ingest(store, metrics, clock, Factory()).poll(source)
    assert store.get(stranger.id) is None
    assert state_of(store, MESSAGES[0].id) is St.FINAL
    assert source.tree.count == 1


def test_orphans_are_removed_only_before_final(store: Store, metrics: RelayMetrics, clock: Clock) -> None:
    first, second = MESSAGES[0], MESSAGES[1]
    source, _ = scripted_source(
        store,
        update(observe(first), observe(second), finalized=1),
        update(orphaned=[first.id, second.id], finalized=1, head=2),
    )
    ingest = Ingest(store, metrics, clock, Factory())
    ingest.poll(source)
    assert source.tree.count == 2
    ingest.poll(source)
    assert state_of(store, first.id) is St.FINAL  # past FINAL a reorg report is an alert, not a delete
    assert store.get(second.id) is None
    assert source.tree.count == 1


def test_a_conflict_with_a_block_no_longer_canonical_is_settled(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    held = MESSAGES[1]
    challenger = make_message(1, body=b"the canonical one")
    source, _ = scripted_source(
        store,
        update(observe(MESSAGES[0]), observe(held)),
        update(observe(challenger, 2, fork=1)),
        hashes={2: block_hash(2, fork=1)},
    )  # block 2 is now the fork's block
    ingest = Ingest(store, metrics, clock, Factory())
    ingest.poll(source)
    ingest.poll(source)
    assert store.get(held.id) is None
    assert state_of(store, challenger.id) is St.OBSERVED
    assert store.message_ids_by_nonce(ORIGIN) == [(0, MESSAGES[0].id), (1, challenger.id)]
    with source.tree.view() as tree:
        assert tree.count == 2 and tree.leaf(1) == challenger.id


UNSETTLED: dict[str, tuple[int, dict[int, bytes | Exception]]] = {
    # case: (finalized block of the first report, block hashes the watcher answers)
    "still canonical": (0, {1: block_hash(1)}),
    "stored one is final": (1, {1: block_hash(1, fork=1)}),
    "hash unknown": (0, {1: PermanentError("eth_getBlockByNumber failed")}),
}


@pytest.mark.parametrize("case", sorted(UNSETTLED))
def test_an_unsettled_conflict_stays_an_alert(
    store: Store, metrics: RelayMetrics, clock: Clock, case: str
) -> None:
    finalized, hashes = UNSETTLED[case]
    held = MESSAGES[0]
    challenger = make_message(0, body=b"another message at nonce 0")
    source, _ = scripted_source(
        store,
        update(observe(held), finalized=finalized),
        update(observe(challenger, 1, fork=1)),
        hashes=hashes,
    )
    ingest = Ingest(store, metrics, clock, Factory())
    ingest.poll(source)
    ingest.poll(source)
    assert store.get(held.id) is not None
    assert store.get(challenger.id) is None
    assert store.message_ids_by_nonce(ORIGIN) == [(0, held.id)]


def test_behind_since_tracks_a_watcher_below_the_finalized_block(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    source, _ = scripted_source(
        store,
        update(finalized=50, head=60, cursor=10),
        update(finalized=50, head=60, cursor=20),
        update(finalized=50, head=60, cursor=60),
    )
    ingest = Ingest(store, metrics, clock, Factory())
    ingest.poll(source)
    started = clock.now
    assert source.behind_since == started
    assert metrics.registry.get_sample_value("relay_watcher_lag_blocks", {"chain": "alpha"}) == 40
    clock.advance(5)
    ingest.poll(source)
    assert source.behind_since == started  # still behind since the first poll
    ingest.poll(source)
    assert source.behind_since == 0.0


def test_deferred_cursors_hold_back_until_flush(store: Store) -> None:
    cursors = DeferredCursors(store)
    store.save_cursor(ORIGIN, cursor_at(1))
    cursors.save_cursor(ORIGIN, cursor_at(2))
    assert cursors.load_cursor(ORIGIN) == cursor_at(2) and store.load_cursor(ORIGIN) == cursor_at(1)
    cursors.discard()
    assert cursors.load_cursor(ORIGIN) == cursor_at(1)
    cursors.save_cursor(ORIGIN, cursor_at(3))
    cursors.flush()
    assert store.load_cursor(ORIGIN) == cursor_at(3)
    cursors.discard()
    assert cursors.load_cursor(ORIGIN) == cursor_at(3)


def test_a_disagreement_between_endpoints_halts_the_origin_without_storing_anything(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    disagreement = SourceDisagreement("source RPC endpoints disagree", method="eth_getLogs")
    # Retried within the poll like any transient failure (a race at the head), then halted.
    script = [disagreement] * WATCHER_POLL.attempts + [update(observe(MESSAGES[0]), finalized=1)]
    source, watcher = scripted_source(store, *script)
    ingest = Ingest(store, metrics, clock, Factory())
    ingest.poll(source)
    assert store.get(MESSAGES[0].id) is None and store.load_cursor(ORIGIN) is None
    ingest.poll(source)  # the endpoints agree again: it resumes where it stopped
    assert state_of(store, MESSAGES[0].id) is St.FINAL and watcher.polls == WATCHER_POLL.attempts + 1


def test_a_repair_drops_unconfirmed_observations_and_rereads_from_the_last_confirmed_leaf(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    # Leaves 0 and 1 were verified under a committee root; a lying RPC put a wrong leaf at nonce 2.
    wrong = make_message(2, body=b"what a lying RPC said")
    source, _ = scripted_source(
        store, update(*[observe(m) for m in [*MESSAGES[:2], wrong, MESSAGES[3]]], finalized=10)
    )
    ingest = Ingest(
        store, metrics, clock, Factory([update(observe(MESSAGES[2]), observe(MESSAGES[3]), finalized=10)])
    )
    ingest.poll(source)
    for message in MESSAGES[:2]:
        walk(store, message.id, St.ATTESTED, St.VERIFIED)
    source.repair_requested = True
    ingest.poll(source)
    assert source.repair_requested is False
    assert store.get(wrong.id) is None  # the wrong observation is gone, never rejected
    assert [state_of(store, m.id) for m in MESSAGES] == [St.VERIFIED, St.VERIFIED, St.FINAL, St.FINAL]
    assert [i for _, i in store.message_ids_by_nonce(ORIGIN)] == [m.id for m in MESSAGES]
    assert source.tree.count == 4 and store.count_rejections() == {}


def test_a_repair_with_nothing_confirmed_rereads_from_the_start_block(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    factory = Factory([update(observe(MESSAGES[0]), finalized=10)])
    source, _ = scripted_source(store, update(observe(make_message(0, body=b"wrong")), finalized=10))
    ingest = Ingest(store, metrics, clock, factory)
    ingest.poll(source)
    source.repair_requested = True
    ingest.poll(source)
    assert len(factory.created) == 1
    assert [i for _, i in store.message_ids_by_nonce(ORIGIN)] == [MESSAGES[0].id]


class FailsMarkFinalOnce(SqliteStore):
    """A store whose next `mark_final` fails as during a database restart (after the insert committed)."""

    armed = False

    def mark_final(self, *args: Any, **kwargs: Any) -> list[bytes]:
        if self.armed:
            self.armed = False
            raise StoreUnavailable("the store's database is unavailable")
        return super().mark_final(*args, **kwargs)


def test_leaves_stored_by_a_pass_that_failed_later_join_the_tree_on_the_next_pass(
    tmp_path: Path, metrics: RelayMetrics, clock: Clock
) -> None:
    store = FailsMarkFinalOnce(tmp_path / "relayer.db")
    try:
        messages = [make_message(n) for n in range(3)]
        report = update(*[observe(m) for m in messages], finalized=3, head=5)
        source, _ = scripted_source(store, report)
        ingest = Ingest(
            store, metrics, clock, Factory([update(*[observe(m) for m in messages], finalized=3, head=5)])
        )
        store.armed = True
        with pytest.raises(StoreUnavailable):
            ingest.poll(source)
        assert len(store.message_ids_by_nonce(ORIGIN)) == 3  # the insert committed
        ingest.poll(source)  # the restarted watcher reads the same blocks: nothing new to insert
        assert source.tree.count == 3
        assert {state_of(store, m.id) for m in messages} == {St.FINAL}
    finally:
        store.close()
