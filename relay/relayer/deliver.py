"""Stage 4, delivery: per destination, batch what is ready and hand it to the submitter.

VERIFIED and due RETRYING messages are grouped by origin under the newest verified checkpoint among
them (one certificate serves every message with nonce <= its index) and cut into batches of at
most `max_batch`, sent once a batch is full or its oldest message waited `max_wait`. Several
batches of one destination go out at once (up to `MAX_BATCHES_IN_FLIGHT`), so the submitter gives
them consecutive nonces and they can land in the same block. A batch is SUBMITTED before the call,
and the ids of calls in progress are kept in an in-flight set, which tells a stranded SUBMITTED
message (no call waits for it) from one still being delivered. Outcomes go to `Outcomes`.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from typing import TYPE_CHECKING

from relay.chains import DeliveryItem
from relay.errors import InvalidProof, RelayError
from relay.lifecycle import MessageState, StaleState
from relay.relayer.common import Clock, describe
from relay.relayer.config import BatchingConfig
from relay.relayer.outcomes import Outcomes
from relay.store.base import CertifiedCheckpoint, MessageRecord, Store, Transition
from relay.verify.merkle import verify_branch

if TYPE_CHECKING:
    from relay.relayer.state import DestinationState, SourceState

log = logging.getLogger("relay.relayer")

S = MessageState
MAX_BATCHES_IN_FLIGHT = 4  # delivery transactions one destination may have pending at once
PROBE_SECONDS = 5.0  # how often a submitter that has not answered lately is asked for its status
WAIT_SLICE_SECONDS = 0.2  # how often a waiting delivery call checks whether shutdown was requested


class Deliverer:
    """Batches ready messages per destination and sends them to its submitter."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        batching: BatchingConfig,
        submitter_timeout: float,
        sources: Mapping[int, SourceState],
        outcomes: Outcomes,
        stopping: Callable[[], bool],
    ) -> None:
        self._store = store
        self._clock = clock
        self._batching = batching
        self._submitter_timeout = submitter_timeout
        self._sources = sources
        self._outcomes = outcomes
        self._stopping = stopping
        self._in_flight: set[bytes] = set()
        self._in_flight_lock = threading.Lock()

    def in_flight(self) -> frozenset[bytes]:
        """Ids whose delivery call is in progress now."""
        with self._in_flight_lock:
            return frozenset(self._in_flight)

    def probe(self, destination: DestinationState, timeout: float) -> None:
        """Ask the submitter for its status when it has not answered for a while (for /readyz)."""
        if self._clock() - destination.answered_at < PROBE_SECONDS:
            return
        if destination.submitter.probe(timeout):
            destination.answered_at = self._clock()

    def requeue_stranded(self, destination: DestinationState, grace: float) -> list[bytes]:
        """Queue again the SUBMITTED messages of `destination` that no call waits for, once the
        submitter's timeout plus `grace` has surely passed since they were sent."""
        older_than = self._clock() - (self._submitter_timeout + grace)
        return self._outcomes.requeue_stranded(destination.domain, self.in_flight(), older_than)

    def deliver(self, destination: DestinationState, *, flush: bool) -> None:
        """One delivery pass for `destination`; `flush` sends partial batches without waiting."""
        domain = destination.domain
        limit = self._batching.max_batch * 20
        now = self._clock()
        ready = self._store.messages_in_state(S.VERIFIED, destination=domain, limit=limit)
        ready += self._store.due_for_retry(now, destination=domain, limit=limit)
        by_origin: dict[int, list[MessageRecord]] = defaultdict(list)
        for record in ready:
            by_origin[record.message.origin].append(record)
        for origin, records in by_origin.items():
            if self._stopping():
                return
            source = self._sources.get(origin)
            if source is None:
                log.warning("no source configured for verified messages", extra={"origin": origin})
                continue
            certificates = {
                cid: c
                for cid in {r.checkpoint_id for r in records if r.checkpoint_id}
                if (c := self._store.get_certificate(cid)) is not None
            }
            if not certificates:
                continue
            newest = max(certificates.values(), key=lambda c: c.checkpoint.index)
            waited = now - min(r.verified_at if r.state is S.VERIFIED else r.next_attempt_at for r in records)
            if not flush and len(records) < self._batching.max_batch and waited < self._batching.max_wait:
                continue
            records.sort(key=lambda r: r.message.nonce)
            size = self._batching.max_batch
            chunks = [records[start : start + size] for start in range(0, len(records), size)]
            if len(chunks) == 1:
                self.submit_batch(destination, source, newest, chunks[0])
                continue
            # Several batches at once: the submitter gives them consecutive nonces, so they can
            # land in the same block instead of one block each. Each batch keeps its own outcome.
            with futures.ThreadPoolExecutor(
                max_workers=min(len(chunks), MAX_BATCHES_IN_FLIGHT),
                thread_name_prefix=f"relayer-batch-{domain}",
            ) as batches:
                for job in [
                    batches.submit(self.submit_batch, destination, source, newest, chunk) for chunk in chunks
                ]:
                    job.result()

    def submit_batch(
        self,
        destination: DestinationState,
        source: SourceState,
        certified: CertifiedCheckpoint,
        records: Sequence[MessageRecord],
    ) -> None:
        """Mark `records` SUBMITTED under `certified` (re-proving those of older checkpoints) and send."""
        checkpoint = certified.checkpoint
        items: list[DeliveryItem] = []
        submitted: list[MessageRecord] = []
        transitions: list[Transition] = []
        for record in records:
            branch = tuple(record.branch)
            if record.checkpoint_id != certified.checkpoint_id:
                # A newer verified checkpoint covers it too: prove it under that root instead.
                try:
                    branch = tuple(source.tree.branch(record.message.nonce, checkpoint.index + 1))
                    verify_branch(record.id, branch, record.message.nonce, checkpoint.root)
                except InvalidProof as error:
                    log.error(
                        "message does not prove under the batch checkpoint; sent alone later",
                        extra={"message_id": record.id, "error": describe(error)},
                    )
                    continue
            items.append(DeliveryItem(record.message, branch))
            submitted.append(record)
            transitions.append(
                Transition(
                    record.id,
                    record.state,
                    S.SUBMITTED,
                    {"checkpoint_id": certified.checkpoint_id, "branch": branch},
                )
            )
        if not items:
            return
        try:
            self._store.apply_transitions(transitions, self._clock())
        except StaleState as error:
            log.info("delivery raced another writer; retried next pass", extra={"error": str(error)})
            return
        ids = {record.id for record in submitted}
        with self._in_flight_lock:
            self._in_flight |= ids
        try:
            self._send(destination, source, certified, submitted, items)
        finally:
            with self._in_flight_lock:
                self._in_flight -= ids

    def _send(
        self,
        destination: DestinationState,
        source: SourceState,
        certified: CertifiedCheckpoint,
        submitted: Sequence[MessageRecord],
        items: Sequence[DeliveryItem],
    ) -> None:
        checkpoint = certified.checkpoint
        fields = {"origin": source.domain, "destination": destination.domain}
        log.info("batch submitted", extra={**fields, "messages": len(items), "index": checkpoint.index})
        call = destination.submitter.deliver(
            checkpoint, certified.certificate, items, self._submitter_timeout
        )
        try:
            while (report := call.wait(WAIT_SLICE_SECONDS)) is None:
                if self._stopping():
                    # Shutting down: leave the batch SUBMITTED; the next start asks again, and the
                    # submitter skips whatever this call delivered.
                    call.cancel()
                    log.info("delivery abandoned for shutdown", extra={**fields, "messages": len(items)})
                    return
        except RelayError as error:
            self._outcomes.fail(submitted, error, fields)
            return
        destination.answered_at = self._clock()
        self._outcomes.apply_report(
            destination.domain, destination.submitter.address, certified, submitted, report, fields
        )
