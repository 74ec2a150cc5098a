"""Stage 4, delivery: per destination, batch what is ready and hand it to the submitter.

VERIFIED and due RETRYING messages are grouped by origin under the newest verified checkpoint among
them (one certificate serves every message with nonce <= its index). Once a batch is full or its
oldest message waited `max_wait`, the gas policy (`relay.relayer.policy`) decides per message:
what is not paid for enough is held UNPAID with its reason (and re-checked every
`gas_policy.recheck_interval`, at most `recheck_batch` per pass, back to VERIFIED once paid); PAUSED messages (the destination gateway
paused delivery from their origin) go back to VERIFIED once their re-check time has come;
the rest is cut into batches bounded by count (`max_batch`), calldata bytes (`max_batch_bytes`)
and declared gas (`max_batch_gas`, and a fraction of the destination's block gas limit), each
message carrying the gas limit the policy granted. Several
batches of one destination go out at once (up to `MAX_BATCHES_IN_FLIGHT`), so the submitter gives
them consecutive nonces and they can land in the same block.

Replicas share the work through claims (docs/adr/0007-replicas-leases-fencing.md): each batch is
claimed (`Store.claim_messages`, owner = this replica's id, for `lease_seconds`) and only what was
claimed is sent, from the claimed (fresh) records. The batch becomes SUBMITTED under each claim's
fencing token before the call, the claims are renewed every third of `lease_seconds` while the call
waits (a lost claim abandons the call: the replica that took it over decides), and outcomes are
recorded under the same tokens (`Outcomes`). A SUBMITTED message whose claim expired (its replica
died or stalled) is taken back by any replica's stranded check (`requeue_stranded`).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from typing import TYPE_CHECKING, Any

from relay.chains import DeliveryItem
from relay.errors import InvalidProof, RelayError
from relay.lifecycle import LeaseLost, MessageState, StaleState
from relay.metrics import RelayMetrics
from relay.peers import DeliveryReport, PendingDelivery
from relay.relayer.common import Clock, describe
from relay.relayer.config import BatchingConfig
from relay.relayer.costs import RouteCosts
from relay.relayer.deliver_receipts import submit_receipt_batch
from relay.relayer.held import HeldMessages
from relay.relayer.outcomes import Outcomes
from relay.relayer.policy import Decision, GasPolicy, GasPolicyConfig
from relay.relayer.sizing import cut_batches
from relay.store.base import CertifiedCheckpoint, MessageRecord, Store, Transition
from relay.verify.merkle import verify_branch

if TYPE_CHECKING:
    from relay.relayer.lightclient import HeaderDriver
    from relay.relayer.state import DestinationState, SourceState

log = logging.getLogger("relay.relayer")

S = MessageState
# Delivery transactions one destination may have pending at once: more than a 30M-gas block
# packs (about 12 batches of 50 messages at 200k handle gas each), so the pool holds the next
# block's worth while one is mined. The submitter admits this many calls (relay.roles.submitter).
MAX_BATCHES_IN_FLIGHT = 16
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
        *,
        policy: GasPolicy | None = None,
        metrics: RelayMetrics | None = None,
        costs: RouteCosts | None = None,
        owner: str = "relayer",
        lease_seconds: float = 15.0,
        receipts: HeaderDriver | None = None,
    ) -> None:
        self._receipts = receipts  # light-client origins: their verified receipt proofs
        self._policy = policy or GasPolicy(GasPolicyConfig(mode="allow_all"), {}, {}, clock)
        self._metrics = metrics
        self.costs = costs or RouteCosts(metrics)
        self._held = HeldMessages(store, clock, self._policy)
        self._store = store
        self._clock = clock
        self._batching = batching
        self._submitter_timeout = submitter_timeout
        self._sources = sources
        self._outcomes = outcomes
        self._stopping = stopping
        self._owner = owner  # this replica's id: the owner of its claims
        # The delivery loop's batches in flight, per destination: their slots and message ids.
        self._flight_lock = threading.Lock()
        self._slots: dict[int, int] = defaultdict(int)
        self._in_flight: dict[int, set[bytes]] = defaultdict(set)
        self._pools: dict[int, futures.ThreadPoolExecutor] = {}
        self._turns: dict[int, int] = defaultdict(int)  # which origin a pass serves first
        self._lease_seconds = lease_seconds

    def probe(self, destination: DestinationState, timeout: float) -> None:
        """Ask the submitter for its status when it has not answered for a while (for /readyz)."""
        if self._clock() - destination.answered_at < PROBE_SECONDS:
            return
        if destination.submitter.probe(timeout):
            destination.answered_at = self._clock()

    def requeue_stranded(self, destination: DestinationState) -> list[bytes]:
        """Queue again the SUBMITTED messages of `destination` whose claim expired: no replica
        waits for their call any more (a waiting one renews its claims)."""
        return self._outcomes.requeue_expired(destination.domain)

    def deliver(self, destination: DestinationState, *, flush: bool, wait: bool = True) -> None:
        """One delivery pass for `destination`; `flush` sends partial batches without waiting
        (and re-checks UNPAID messages whatever the interval).

        `wait=False` (the delivery loop) hands each batch to the destination's in-flight pool and
        returns: a batch that ends frees its slot and wakes the loop, so the next batch goes out
        at once instead of after the slowest of a pass (`close()` waits for them)."""
        domain = destination.domain
        self.recheck_unpaid(destination, force=flush)
        limit = self._batching.max_batch * 20
        self._outcomes.release_paused(domain, limit)
        if not wait:
            with self._flight_lock:
                free = MAX_BATCHES_IN_FLIGHT - self._slots[domain]
                flying = set(self._in_flight[domain])
            if free <= 0:
                return  # every slot busy: the batch that ends first wakes the loop
            # What the free slots can take, and a batch more (some read may still be in flight).
            limit = min(limit, (free + 1) * self._batching.max_batch)
        now = self._clock()
        # Each configured origin is read on its own, and the first one served turns every pass:
        # a deep backlog of one origin (or a removed origin's leftovers) never keeps another
        # origin's messages to this destination out of the read window.
        ready = []
        for origin in self._origins_in_turn(domain):
            ready += self._store.messages_in_state(S.VERIFIED, origin=origin, destination=domain, limit=limit)
        ready += self._store.due_for_retry(now, destination=domain, limit=limit)
        # What another replica claimed is its to send (until the claim expires); what one of our
        # batches holds is on its way.
        ready = [
            r
            for r in ready
            if (r.claim_expires <= now or r.claim_owner == self._owner) and (wait or r.id not in flying)
        ]
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
            newest: CertifiedCheckpoint | None = None  # a light-client origin's go by receipt proof
            if not source.config.is_light_client:
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
            if not wait:  # no more than the free slots can take (the policy reads each payment)
                records.sort(key=lambda r: r.message.nonce)
                records = records[: free * self._batching.max_batch]
            decisions = self._decide(domain, records)
            if decisions is None:
                continue
            records = [r for r in records if decisions[r.id].deliver]
            if not records:
                continue
            records.sort(key=lambda r: r.message.nonce)
            chunks = cut_batches(
                records,
                {r.id: decisions[r.id].gas_limit for r in records},
                self._batching.max_batch,
                self._batching.max_batch_bytes,
                self.max_batch_gas(domain),
            )
            if not wait:
                free -= self._launch(destination, source, newest, chunks, decisions)
                if free <= 0:
                    return
                continue
            if len(chunks) == 1:
                self.submit_batch(destination, source, newest, chunks[0], decisions)
                continue
            # Several batches at once: the submitter gives them consecutive nonces, so they can
            # land in the same block instead of one block each. Each batch keeps its own outcome.
            with futures.ThreadPoolExecutor(
                max_workers=min(len(chunks), MAX_BATCHES_IN_FLIGHT),
                thread_name_prefix=f"relayer-batch-{domain}",
            ) as batches:
                for job in [
                    batches.submit(self.submit_batch, destination, source, newest, chunk, decisions)
                    for chunk in chunks
                ]:
                    job.result()

    def _origins_in_turn(self, domain: int) -> list[int]:
        """The configured origins, starting one further along at each pass for `domain`."""
        origins = sorted(self._sources)
        if not origins:
            return []
        turn = self._turns[domain] % len(origins)
        self._turns[domain] += 1
        return origins[turn:] + origins[:turn]

    def _launch(
        self,
        destination: DestinationState,
        source: SourceState,
        certified: CertifiedCheckpoint | None,
        chunks: Sequence[Sequence[MessageRecord]],
        decisions: Mapping[bytes, Decision],
    ) -> int:
        """Start `chunks` in `destination`'s in-flight pool while slots are free; how many started."""
        domain = destination.domain
        started = 0
        for chunk in chunks:
            ids = {r.id for r in chunk}
            with self._flight_lock:
                if self._slots[domain] >= MAX_BATCHES_IN_FLIGHT:
                    break
                self._slots[domain] += 1
                self._in_flight[domain] |= ids
                pool = self._pools.get(domain)
                if pool is None:
                    pool = self._pools[domain] = futures.ThreadPoolExecutor(
                        max_workers=MAX_BATCHES_IN_FLIGHT, thread_name_prefix=f"relayer-batch-{domain}"
                    )
            pool.submit(self._fly, destination, source, certified, chunk, decisions, ids)
            started += 1
        return started

    def _fly(
        self,
        destination: DestinationState,
        source: SourceState,
        certified: CertifiedCheckpoint | None,
        chunk: Sequence[MessageRecord],
        decisions: Mapping[bytes, Decision],
        ids: set[bytes],
    ) -> None:
        try:
            self.submit_batch(destination, source, certified, chunk, decisions)
        except Exception:  # a failed batch must not keep its slot: its messages are retried
            log.exception("delivery batch failed", extra={"destination": destination.domain})
        finally:
            with self._flight_lock:
                self._slots[destination.domain] -= 1
                self._in_flight[destination.domain] -= ids
            destination.wake.set()

    def close(self) -> None:
        """Wait for the batches in flight (each returns promptly once shutdown was requested)."""
        with self._flight_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=True)

    def max_batch_gas(self, destination: int) -> int:
        """`max_batch_gas`, lowered to `block_gas_fraction` of the destination's block gas limit."""
        bound = self._batching.max_batch_gas
        block_limit = self._policy.block_gas_limit(destination)
        if block_limit is not None:
            bound = min(bound, int(block_limit * self._batching.block_gas_fraction))
        return bound

    def _decide(self, destination: int, records: Sequence[MessageRecord]) -> dict[bytes, Decision] | None:
        """The policy's decisions; held messages become UNPAID. None if payments could not be read."""
        try:
            decisions = self._policy.decide(destination, records)
        except RelayError as error:
            log.warning(
                "gas payments could not be read; the messages wait",
                extra={"destination": destination, "messages": len(records), "reason": describe(error)},
            )
            return None
        held = [r for r in records if not decisions[r.id].deliver]
        if held:
            self._hold(held, decisions)
        return decisions

    def _hold(self, records: Sequence[MessageRecord], decisions: Mapping[bytes, Decision]) -> None:
        now = self._clock()
        transitions = [
            Transition(
                r.id,
                r.state,
                S.UNPAID,
                {
                    "last_error": f"{decisions[r.id].reason}: {decisions[r.id].detail}",
                    "error_reason": decisions[r.id].reason,
                },
            )
            for r in records
        ]
        for transition in transitions:
            try:
                self._store.apply_transition(transition, now)
            except StaleState:
                continue  # moved meanwhile; decided again next time
            record = next(r for r in records if r.id == transition.id)
            if self._metrics is not None:
                self._metrics.gas_policy_holds.labels(
                    str(record.message.origin), str(record.message.destination), decisions[record.id].reason
                ).inc()
            log.info(
                "message held: gas not paid for enough",
                extra={"message_id": record.id, "reason": transition.updates["last_error"]},
            )

    def recheck_unpaid(self, destination: DestinationState, *, force: bool = False) -> list[bytes]:
        """See `relay.relayer.held.HeldMessages.recheck_unpaid`."""
        return self._held.recheck_unpaid(destination.domain, force=force)

    def recheck_out_of_gas(self, destination: DestinationState) -> list[bytes]:
        """See `relay.relayer.held.HeldMessages.recheck_out_of_gas`."""
        return self._held.recheck_out_of_gas(destination.domain)

    def submit_batch(
        self,
        destination: DestinationState,
        source: SourceState,
        certified: CertifiedCheckpoint | None,
        records: Sequence[MessageRecord],
        decisions: Mapping[bytes, Decision] | None = None,
    ) -> None:
        """Claim `records`, mark what was claimed SUBMITTED under `certified` (re-proving those of
        older checkpoints) and send, each with the gas limit of its policy decision (the default
        without one). What another replica holds is left to it. `certified` None: a light-client
        origin's batch, sent by receipt proof (`relay.relayer.deliver_receipts`)."""
        decisions = decisions or {}
        if certified is None:
            if self._receipts is None:
                log.error("no receipt proofs for a light-client origin", extra={"origin": source.domain})
                return
            submit_receipt_batch(self, self._receipts, destination, source, records, decisions)
            return
        now = self._clock()
        claimed = self._store.claim_messages([r.id for r in records], self._owner, now, self._lease_seconds)
        if len(claimed) < len(records):
            log.debug(
                "some messages of the batch are claimed by another replica",
                extra={"destination": destination.domain, "claimed": len(claimed), "batch": len(records)},
            )
        if not claimed:
            return
        items: list[DeliveryItem] = []
        transitions: list[Transition] = []
        rebuilt = False
        for record in claimed:  # fresh: as they are now, with this claim's fencing token
            branch, rebuilt = self._prove_for_batch(source, certified, record, now, rebuilt)
            if branch is None:
                continue
            decision = decisions.get(record.id)
            items.append(
                DeliveryItem(record.message, branch, decision.gas_limit)
                if decision is not None
                else DeliveryItem(record.message, branch)
            )
            transitions.append(
                Transition(
                    record.id,
                    record.state,
                    S.SUBMITTED,
                    {"checkpoint_id": certified.checkpoint_id, "branch": branch},
                    fence=record.fence,
                )
            )
        applied = self._mark_submitted(transitions, now)
        self._release([r for r in claimed if r.id not in applied])  # claimed, not sent: free again
        submitted = [r for r in claimed if r.id in applied]
        if not submitted:
            return
        sent = [item for item, t in zip(items, transitions, strict=True) if t.id in applied]
        self._send(destination, source, certified, submitted, sent, decisions, claimed_at=now)

    def _prove_for_batch(
        self,
        source: SourceState,
        certified: CertifiedCheckpoint,
        record: MessageRecord,
        now: float,
        rebuilt: bool,
    ) -> tuple[tuple[bytes, ...] | None, bool]:
        """(the branch `record` is sent with under `certified`, or None to leave it out; whether
        the tree was rebuilt). A message not due any more (another replica just failed it), or
        that does not prove under the batch's checkpoint, is left out."""
        if record.state is S.RETRYING and record.next_attempt_at > now:
            return None, rebuilt
        checkpoint = certified.checkpoint
        if record.checkpoint_id == certified.checkpoint_id:
            return tuple(record.branch), rebuilt
        # A newer verified checkpoint covers it too: prove it under that root instead.
        while True:
            try:
                branch = tuple(source.tree.branch(record.message.nonce, checkpoint.index + 1))
                verify_branch(record.id, branch, record.message.nonce, checkpoint.root)
                return branch, rebuilt
            except InvalidProof as error:
                if not rebuilt and source.lease is None:
                    # Another replica grows this origin's tree: sync it from the store, once.
                    source.tree.rebuild()
                    rebuilt = True
                    continue
                log.error(
                    "message does not prove under the batch checkpoint; sent alone later",
                    extra={"message_id": record.id, "error": describe(error)},
                )
                return None, rebuilt

    def _mark_submitted(self, transitions: Sequence[Transition], now: float) -> set[bytes]:
        """Apply the fenced VERIFIED/RETRYING -> SUBMITTED `transitions`; the ids that moved.

        All at once when nothing changed meanwhile; else one by one, so a message another
        replica took over (or another writer moved) does not hold back the rest of the batch."""
        if not transitions:
            return set()
        try:
            self._store.apply_transitions(transitions, now)
            return {t.id for t in transitions}
        except StaleState as error:
            log.info(
                "delivery raced another writer; the batch is marked one by one", extra={"error": str(error)}
            )
        applied: set[bytes] = set()
        for transition in transitions:
            try:
                self._store.apply_transition(transition, now)
            except LeaseLost as error:
                self._count_fenced("deliver")
                log.warning(
                    "delivery claim lost before sending: another replica took the message over",
                    extra={"message_id": transition.id, "error": str(error)},
                )
                continue
            except StaleState:
                continue  # moved meanwhile; whoever moved it decides
            applied.add(transition.id)
        return applied

    def _release(self, records: Sequence[MessageRecord]) -> None:
        """End this replica's claims on `records` (claimed but not sent): free for any replica."""
        if records:
            self._store.release_claims({r.id: r.fence for r in records}, self._owner)

    def _count_fenced(self, stage: str) -> None:
        if self._metrics is not None:
            self._metrics.fenced_writes.labels(stage).inc()

    def _send(
        self,
        destination: DestinationState,
        source: SourceState,
        certified: CertifiedCheckpoint,
        submitted: Sequence[MessageRecord],
        items: Sequence[DeliveryItem],
        decisions: Mapping[bytes, Decision],
        *,
        claimed_at: float,
    ) -> None:
        checkpoint = certified.checkpoint
        fields = {"origin": source.domain, "destination": destination.domain}
        log.info("batch submitted", extra={**fields, "messages": len(items), "index": checkpoint.index})
        call = destination.submitter.deliver(
            checkpoint, certified.certificate, items, self._submitter_timeout
        )
        self.finish(destination, certified, submitted, call, decisions, fields, claimed_at=claimed_at)

    def finish(
        self,
        destination: DestinationState,
        certified: CertifiedCheckpoint | None,
        submitted: Sequence[MessageRecord],
        call: PendingDelivery,
        decisions: Mapping[bytes, Decision],
        fields: dict[str, Any],
        *,
        claimed_at: float,
    ) -> None:
        """Wait for delivery `call` of `submitted` (renewing their claims), account and apply its
        report (`certified` None: a receipt-proof batch)."""
        try:
            report = self._wait(call, submitted, fields, claimed_at)
        except RelayError as error:
            self._outcomes.fail(submitted, error, fields)
            return
        if report is None:
            return
        destination.answered_at = self._clock()
        self._account(submitted, report, decisions)
        self._outcomes.apply_report(
            destination.domain, destination.submitter.address, certified, submitted, report, fields
        )

    # What `relay.relayer.deliver_receipts` shares with the certificate path.

    @property
    def store(self) -> Store:
        """The store."""
        return self._store

    @property
    def outcomes(self) -> Outcomes:
        """The outcomes stage."""
        return self._outcomes

    @property
    def owner(self) -> str:
        """This replica's id, the owner of its claims."""
        return self._owner

    @property
    def lease_seconds(self) -> float:
        """How long a delivery claim lasts unless renewed."""
        return self._lease_seconds

    @property
    def max_batch_bytes(self) -> int:
        """The calldata bound of one batch."""
        return self._batching.max_batch_bytes

    @property
    def submitter_timeout(self) -> float:
        """How long one delivery call may run."""
        return self._submitter_timeout

    def now(self) -> float:
        """The relayer's clock."""
        return self._clock()

    def mark_submitted(self, transitions: Sequence[Transition], now: float) -> set[bytes]:
        """See `_mark_submitted`."""
        return self._mark_submitted(transitions, now)

    def release(self, records: Sequence[MessageRecord]) -> None:
        """See `_release`."""
        self._release(records)

    def _wait(
        self,
        call: PendingDelivery,
        submitted: Sequence[MessageRecord],
        fields: Mapping[str, object],
        claimed_at: float,
    ) -> DeliveryReport | None:
        """The call's report, renewing the batch's claims every third of `lease_seconds` meanwhile.

        None when the call was abandoned: for shutdown (the claims are released, so another
        replica or the next start takes the batch over at once), or because a claim was lost
        (another replica took the messages over after it expired: it decides; nothing is
        recorded here)."""
        fences = {r.id: r.fence for r in submitted}
        renew_every = self._lease_seconds / 3
        renewed_at = claimed_at  # the claims run from then, however late this thread gets here
        while (report := call.wait(WAIT_SLICE_SECONDS)) is None:
            if self._stopping():
                # Shutting down: leave the batch SUBMITTED, unclaimed; whoever takes it asks again,
                # and the submitter skips whatever this call delivered.
                call.cancel()
                self._store.release_claims(fences, self._owner)
                log.info("delivery abandoned for shutdown", extra={**fields, "messages": len(submitted)})
                return None
            if self._clock() - renewed_at < renew_every:
                continue
            renewed_at = self._clock()
            try:
                held = self._store.renew_claims(fences, self._owner, renewed_at, self._lease_seconds)
            except RelayError as error:  # the store away: keep waiting; a lapsed claim fences us later
                log.warning("could not renew delivery claims", extra={**fields, "error": describe(error)})
                continue
            if len(held) < len(fences):
                self._count_fenced("renew")  # the renewal was refused: nothing of this call is recorded
                call.cancel()
                self._store.release_claims({i: f for i, f in fences.items() if i in held}, self._owner)
                log.warning(
                    "delivery claim lost while the call waited: another replica took the messages over",
                    extra={**fields, "messages": len(fences), "lost": len(fences) - len(held)},
                )
                return None
        return report

    def _account(
        self, submitted: Sequence[MessageRecord], report: DeliveryReport, decisions: Mapping[bytes, Decision]
    ) -> None:
        routes = {(r.message.origin, r.message.destination) for r in submitted}
        self.costs.record(
            submitted,
            report,
            {id_: d.payment for id_, d in decisions.items()},
            {route: self._policy.exchange_rate(*route) for route in routes},
        )
