"""Stage 1, ingest: poll each source watcher and store what it saw.

New Dispatch events are stored as OBSERVED (idempotent), messages a reorg orphaned are deleted
(only ever before FINAL), and those at or below the finalized block move to FINAL. The watcher's
cursor is persisted only after its messages are stored (`DeferredCursors`), so a crash re-reads
blocks instead of skipping them. A conflicting observation (another message at a stored nonce) is
settled by the canonical block hash when the stored one is not final yet; otherwise it is an alert.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from relay.chains import ChainConfigBase, Cursor, CursorStore, ObservedMessage, SourceWatcher, WatchUpdate
from relay.errors import RelayError, SourceDisagreement, TransientError
from relay.lifecycle import MessageState
from relay.metrics import RelayMetrics
from relay.relayer.common import Clock, describe, retry_counter
from relay.retry import WATCHER_POLL
from relay.store.base import CONFIRMED_STATES, Lease, Store

if TYPE_CHECKING:
    from relay.relayer.state import SourceState

log = logging.getLogger("relay.relayer")

WatcherFactory = Callable[[ChainConfigBase, CursorStore], SourceWatcher]


class DeferredCursors:
    """The `CursorStore` a watcher gets: its cursor is held back until the relayer stored its report.

    A watcher persists its cursor inside `poll()`; if the relayer then crashed before storing the
    messages, they would be skipped for ever. Holding the cursor until `flush()` (called after the
    messages are committed) turns that crash into a harmless re-read (inserts are idempotent).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: dict[int, Cursor] = {}
        self._lock = threading.Lock()

    def load_cursor(self, domain: int) -> Cursor | None:
        """The held-back cursor if any, else the stored one."""
        with self._lock:
            pending = self._pending.get(domain)
        return pending if pending is not None else self._store.load_cursor(domain)

    def save_cursor(self, domain: int, cursor: Cursor) -> None:
        """Hold `cursor` until `flush()`."""
        with self._lock:
            self._pending[domain] = cursor

    def flush(self, lease: Lease | None = None) -> None:
        """Persist the held-back cursors (under the source `lease` when given: `LeaseLost` if it
        moved on, and the cursors are dropped)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for domain, cursor in pending.items():
            self._store.save_cursor(domain, cursor, lease=lease)

    def discard(self) -> None:
        """Forget held-back cursors (their messages were not stored)."""
        with self._lock:
            self._pending.clear()


class Ingest:
    """Polls watchers and writes their reports to the store (OBSERVED, orphans, FINAL)."""

    def __init__(
        self, store: Store, metrics: RelayMetrics, clock: Clock, watcher_factory: WatcherFactory
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._watcher_factory = watcher_factory

    def poll(self, source: SourceState, lease: Lease | None = None) -> None:
        """Poll `source`'s watcher once and store the update; failures are logged and retried next pass.

        With `lease` (the replica's "source/<domain>"), every write is made under it: `LeaseLost`
        (raised, nothing of the update stored) once another replica took the source over.
        """
        fields = {"chain": source.name, "origin": source.domain}
        if source.repair_requested:
            self.repair(source, lease)
        try:
            update = WATCHER_POLL.call(
                source.watcher.poll, on_retry=retry_counter(self._metrics, WATCHER_POLL.name)
            )
        except SourceDisagreement as error:
            source.cursors.discard()
            log.error(
                "source halted: its RPC endpoints disagree (alert)",
                extra={**fields, "error": describe(error)},
            )
            return
        except TransientError as error:
            source.cursors.discard()
            log.warning("source poll failed", extra={**fields, "error": describe(error)})
            return
        except RelayError as error:
            source.cursors.discard()
            log.error("source poll failed", extra={**fields, "error": describe(error)})
            return
        now = self._clock()
        # What the chain looks like is known now, whatever storing the update does: set it before
        # storing, so a status reader does not see the new cursor next to an old head for long.
        source.head = max(source.head, update.head_block)
        source.finalized = max(source.finalized, update.finalized_block)
        try:
            self.apply_update(source, update, now, lease)
        except Exception:
            # What the watcher reported is not stored: start it again from the stored cursor.
            source.cursors.discard()
            source.watcher = self._watcher_factory(source.config.chain, source.cursors)
            raise
        try:
            source.cursors.flush(lease)
            if update.cursor is not None and source.cursors.load_cursor(source.domain) != update.cursor:
                self._store.save_cursor(source.domain, update.cursor, lease=lease)
        except Exception:
            source.cursors.discard()
            source.watcher = self._watcher_factory(source.config.chain, source.cursors)
            raise
        source.last_poll_at = now
        position = source.cursor_block()
        behind = source.cursors.load_cursor(source.domain) is not None and position < source.finalized
        source.behind_since = (source.behind_since or now) if behind else 0.0
        self._metrics.set_chain_progress(source.name, source.head, source.finalized, position)

    def repair(self, source: SourceState, lease: Lease | None = None) -> None:
        """Re-read `source` from its last confirmed leaf, dropping what no proof has used yet.

        Called when a genuine committee checkpoint disagreed with the relayer's tree: some
        observation above the last leaf a verified proof covered is wrong (a lying or lagging RPC).
        Messages above it that are only OBSERVED, FINAL or ATTESTED are deleted and the watcher
        starts again from the confirmed leaf's block; they come back as they are on the chain and
        are attested again. Nothing is rejected.
        """
        confirmed = self._store.highest_nonce(source.domain, CONFIRMED_STATES)
        block = source.config.chain.start_block
        if confirmed is not None:
            held = dict(self._store.message_ids_by_nonce(source.domain, confirmed)).get(confirmed)
            record = self._store.get(held) if held is not None else None
            block = record.source_block if record is not None else block
        from_nonce = 0 if confirmed is None else confirmed + 1
        dropped = self._store.drop_unconfirmed(source.domain, from_nonce, lease=lease)
        source.cursors.discard()
        self._store.save_cursor(source.domain, Cursor(max(block - 1, -1), b""), lease=lease)
        source.watcher = self._watcher_factory(source.config.chain, source.cursors)
        source.tree.rebuild()
        source.repair_requested = False
        log.error(
            "tree repaired: re-reading the source from its last confirmed leaf (alert)",
            extra={
                "chain": source.name,
                "origin": source.domain,
                "from_nonce": from_nonce,
                "from_block": block,
                "dropped": len(dropped),
            },
        )

    def apply_update(
        self, source: SourceState, update: WatchUpdate, now: float, lease: Lease | None = None
    ) -> None:
        """Store one watcher report: orphans, new observations (conflicts settled), then finality."""
        fields = {"chain": source.name, "origin": source.domain}
        if update.orphaned_ids:
            removed, refused = self._store.remove_orphans(update.orphaned_ids, lease=lease)
            for message_id in removed:
                log.warning("message orphaned by a reorg", extra={**fields, "message_id": message_id})
            for message_id in refused:
                log.error(
                    "reorg reported for a message past FINAL: ignored (alert)",
                    extra={**fields, "message_id": message_id},
                )
            if removed:
                source.tree.rebuild()
        observed = []
        for item in update.observed:
            if item.message.origin != source.domain:
                log.error(
                    "watcher reported a message of another origin: ignored",
                    extra={**fields, "message_id": item.id, "message_origin": item.message.origin},
                )
                continue
            observed.append(item)
        new, conflicts = self._store.insert_observed(observed, now, lease=lease)
        if conflicts:
            replacements = self.settle_conflicts(
                source, [o for o in observed if o.id in set(conflicts)], lease
            )
            if replacements:
                more, conflicts = self._store.insert_observed(replacements, now, lease=lease)
                new += more
                source.tree.rebuild()
        for message_id in conflicts:
            log.error(
                "conflicting observation: another message holds this nonce (alert)",
                extra={**fields, "message_id": message_id},
            )
        # Every pass, not only when this one inserted: a pass that failed after its insert committed
        # (a store outage) left those leaves in the store and out of the tree.
        source.tree.extend()
        final = self._store.mark_final(source.domain, update.finalized_block, now, lease=lease)
        malformed = {o.id: o.malformed_reason for o in observed if o.is_malformed}
        for message_id in new:
            if message_id in malformed:
                log.warning(
                    "malformed leaf observed: it keeps the tree gapless and will be rejected",
                    extra={**fields, "message_id": message_id, "reason": malformed[message_id]},
                )
            else:
                log.info("message observed", extra={**fields, "message_id": message_id})
        for message_id in final:
            log.info("message final", extra={**fields, "message_id": message_id})

    def settle_conflicts(
        self, source: SourceState, challengers: list[ObservedMessage], lease: Lease | None = None
    ) -> list[ObservedMessage]:
        """Drop stored messages orphaned while nobody watched; return the observations replacing them.

        A conflict is a new observation at a nonce another stored message holds. If that stored
        message is not final yet and its block is no longer on the canonical chain, a reorg took it
        while the relayer was down: it goes, the new observation takes its place. A conflict with
        a FINAL message, or with one whose block is still canonical, stays a conflict (an alert).
        """
        by_nonce = dict(self._store.message_ids_by_nonce(source.domain))
        orphans: list[bytes] = []
        replacements = []
        for challenger in challengers:
            held = by_nonce.get(challenger.message.nonce)
            record = self._store.get(held) if held is not None else None
            if record is None or record.state is not MessageState.OBSERVED:
                continue
            try:
                current = source.watcher.block_hash(record.source_block)
            except RelayError:
                continue  # cannot tell now; the next poll reports the conflict again
            if current is not None and current != record.source_block_hash:
                orphans.append(record.id)
                replacements.append(challenger)
        if orphans:
            removed, _refused = self._store.remove_orphans(orphans, lease=lease)
            for message_id in removed:
                log.warning(
                    "message orphaned by a reorg while the relayer was down",
                    extra={"chain": source.name, "origin": source.domain, "message_id": message_id},
                )
            replacements = [r for r, o in zip(replacements, orphans, strict=True) if o in set(removed)]
        return replacements
