"""Stage 5, outcomes: turn what a submitter reported (or failed to report) into lifecycle transitions.

Per message: DELIVERED (by this transaction or earlier), PARKED (the recipient reverted; still
deliverable, an operator can retry), REJECTED (the destination gateway refused the proof), PAUSED
(the destination gateway paused delivery from the origin: waits, no attempt counted, tried again
after `paused_recheck` seconds), or, for
a transient failure or a missing outcome, RETRYING under the persisted backoff schedule, for as
long as the configured retry window (days): an outage never parks a message. Also the recovery paths for SUBMITTED messages whose outcome can no longer
arrive: after a restart (`recover_submitted`) and when their delivery claim expired, no replica
renewing it (`requeue_expired`); the submitter skips ids already delivered, so nothing runs twice.

Every transition out of SUBMITTED carries the fencing token of the claim the message was sent
under (`MessageRecord.fence`): if another replica took the message over meanwhile (the claim
expired and was requeued), the store refuses it with `LeaseLost`, counted in
`relay_fenced_writes_total{stage="outcomes"}` and logged; the other messages of the batch are
still recorded (one by one), and the new holder's outcome stands.

With a `DeliveryReader` for the destination (its `chain:` section configured), a submitter's
DELIVERED / ALREADY_DELIVERED is confirmed on the chain before the transition: a message the chain
does not show delivered goes to RETRYING with `DeliveryNotConfirmed` (counted in
`relay_deliveries_unconfirmed_total`). And `find_delivered_on_chain` moves PARKED and RETRYING
messages that the chain shows delivered (by anyone) to DELIVERED.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from relay.chains import DeliveryReader
from relay.errors import AttemptsExhausted, DeliveryNotConfirmed, RelayError, RpcUnavailable, TransientError
from relay.lifecycle import LeaseLost, MessageState, StaleState
from relay.metrics import RelayMetrics
from relay.peers import DeliveryOutcome, DeliveryReport
from relay.relayer.common import Clock, describe
from relay.relayer.gauges import Gauges
from relay.retry import BackoffSchedule
from relay.store.base import (
    CertifiedCheckpoint,
    MessageFilter,
    MessageRecord,
    Store,
    SubmittedTransaction,
    Transition,
)

log = logging.getLogger("relay.relayer")

S = MessageState
CARRIED_OUTCOMES = frozenset({DeliveryOutcome.DELIVERED, DeliveryOutcome.RECIPIENT_REVERTED})
"""Outcomes of the messages a delivery transaction carried (the others were left out of it)."""
FOUND_DELIVERED_BATCH = 200  # PARKED / RETRYING messages looked up on the chain per pass


class Outcomes:
    """Records delivery outcomes and failures in the store."""

    def __init__(
        self,
        store: Store,
        metrics: RelayMetrics,
        clock: Clock,
        schedule: BackoffSchedule,
        gauges: Gauges,
        readers: Mapping[int, DeliveryReader] | None = None,
        paused_recheck: float = 15.0,
    ) -> None:
        self._paused_recheck = paused_recheck
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._schedule = schedule
        self._gauges = gauges
        self._readers: Mapping[int, DeliveryReader] = readers or {}
        self._found_tokens: dict[int, str] = {}  # per destination: where the next pass looks

    def _apply_fenced(self, transitions: Sequence[Transition], now: float) -> list[Transition]:
        """Apply the fenced transitions out of SUBMITTED; return those applied.

        One transaction when every claim still holds; else one by one: a message another replica
        took over is refused alone (`LeaseLost`: counted, logged, never raised), the rest recorded.
        """
        if not transitions:
            return []
        try:
            self._store.apply_transitions(transitions, now)
            return list(transitions)
        except StaleState:
            pass
        applied = []
        for transition in transitions:
            try:
                self._store.apply_transition(transition, now)
            except LeaseLost as error:
                self._metrics.fenced_writes.labels("outcomes").inc()
                log.warning(
                    "late outcome fenced: another replica took the delivery over",
                    extra={"message_id": transition.id, "outcome": transition.new.value, "error": str(error)},
                )
                continue
            except StaleState as error:
                log.info(
                    "outcome raced another writer; its state stands",
                    extra={"message_id": transition.id, "error": str(error)},
                )
                continue
            applied.append(transition)
        return applied

    def apply_report(
        self,
        destination: int,
        peer: str,
        certified: CertifiedCheckpoint | None,
        submitted: Sequence[MessageRecord],
        report: DeliveryReport,
        fields: dict[str, Any],
    ) -> None:
        """Apply the report of submitter `peer` for `submitted` (all SUBMITTED) under `certified`
        (None: delivered by receipt proof, a light-client origin's)."""
        now = self._clock()
        transaction = report.transaction_hash
        # The transaction carried only the messages it delivered or whose recipient reverted: the
        # submitter leaves out those already delivered (by another replica's earlier call, say).
        carried = tuple(
            r.id
            for r in submitted
            if (result := report.results.get(r.id)) is not None and result.outcome in CARRIED_OUTCOMES
        )
        if transaction and carried:
            self._store.record_transaction(
                SubmittedTransaction(
                    transaction,
                    destination,
                    certified.checkpoint_id if certified is not None else None,
                    carried,
                    report.block_number,
                    report.gas_used,
                    now,
                )
            )
        transitions: list[Transition] = []
        failed: list[MessageRecord] = []
        unconfirmed, unconfirmed_error = self._confirm_on_chain(destination, submitted, report, fields)
        for record in submitted:
            result = report.results.get(record.id)
            outcome = result.outcome if result is not None else DeliveryOutcome.UNSPECIFIED
            reason = result.reason if result is not None else ""
            if record.id in unconfirmed:
                continue
            fence = record.fence
            if outcome is DeliveryOutcome.DELIVERED:
                transitions.append(
                    Transition(
                        record.id, S.SUBMITTED, S.DELIVERED, {"destination_transaction": transaction}, fence
                    )
                )
            elif outcome is DeliveryOutcome.ALREADY_DELIVERED:
                transitions.append(Transition(record.id, S.SUBMITTED, S.DELIVERED, {}, fence))
            elif outcome is DeliveryOutcome.RECIPIENT_REVERTED:
                transitions.append(
                    Transition(
                        record.id,
                        S.SUBMITTED,
                        S.PARKED,
                        {
                            "last_error": f"RecipientReverted: {reason or 'the recipient reverted'}",
                            "error_reason": "RecipientReverted",
                            "destination_transaction": transaction,
                        },
                        fence,
                    )
                )
            elif outcome is DeliveryOutcome.PAUSED:
                # Not a failure (attempts unchanged): the gateway's guardian or owner paused this
                # origin. The message waits and is tried again at next_attempt_at.
                transitions.append(
                    Transition(
                        record.id,
                        S.SUBMITTED,
                        S.PAUSED,
                        {
                            "next_attempt_at": now + self._paused_recheck,
                            "last_error": f"DeliveryPaused: {reason or 'delivery from this origin is paused'}",
                            "error_reason": "DeliveryPaused",
                        },
                        fence,
                    )
                )
            elif outcome is DeliveryOutcome.REJECTED:
                # The relayer verified this proof itself before sending it: a refusal is the word of
                # one destination endpoint (or a destination whose committee moved on), never final.
                # PARKED keeps it deliverable (operator retry, found-delivered check) and alerting.
                transitions.append(
                    Transition(
                        record.id,
                        S.SUBMITTED,
                        S.PARKED,
                        {
                            "last_error": f"GatewayRejected: {reason or 'the destination gateway rejected the proof'}",
                            "error_reason": "GatewayRejected",
                        },
                        fence,
                    )
                )
            else:
                failed.append(record)
        for transition in self._apply_fenced(transitions, now):
            extra = {**fields, "message_id": transition.id, "transaction": transaction}
            if transition.new is S.DELIVERED:
                self._gauges.observe_delivery(transition.id)
                log.info("message delivered", extra=extra)
            elif transition.new is S.PAUSED:
                self._metrics.deliveries_paused.labels(str(fields["origin"]), str(destination)).inc()
                log.info("delivery paused at the destination gateway: message waits", extra=extra)
            elif transition.updates.get("error_reason") == "GatewayRejected":
                self._metrics.rejections.labels(str(fields["origin"]), "GatewayRejected").inc()
                log.warning(
                    "destination gateway refused a proof the relayer verified: parked (alert)",
                    extra={**extra, "reason": transition.updates["last_error"]},
                )
            else:
                log.warning(
                    f"message {transition.new.value}",
                    extra={**extra, "reason": transition.updates["last_error"]},
                )
        if failed:
            self.fail(failed, RpcUnavailable("the submitter reported no outcome", peer=peer), fields)
        if unconfirmed and unconfirmed_error is not None:
            self.fail([r for r in submitted if r.id in unconfirmed], unconfirmed_error, fields)

    def _confirm_on_chain(
        self,
        destination: int,
        submitted: Sequence[MessageRecord],
        report: DeliveryReport,
        fields: dict[str, Any],
    ) -> tuple[set[bytes], RelayError | None]:
        """Ids reported delivered that the destination chain does not show delivered, and why.

        Empty without a reader for `destination` (the submitter's word is taken, as configured).
        """
        reader = self._readers.get(destination)
        claimed = [
            r
            for r in submitted
            if (result := report.results.get(r.id)) is not None
            and result.outcome in (DeliveryOutcome.DELIVERED, DeliveryOutcome.ALREADY_DELIVERED)
        ]
        if reader is None or not claimed:
            return set(), None
        try:
            flags = reader.delivered([(r.message.origin, r.message.nonce) for r in claimed])
        except RelayError as error:
            log.warning(
                "could not confirm deliveries on the destination chain",
                extra={**fields, "messages": len(claimed), "reason": describe(error)},
            )
            return {r.id for r in claimed}, DeliveryNotConfirmed(
                "the destination chain could not be read to confirm the delivery", cause=describe(error)
            )
        missing = {r.id for r, done in zip(claimed, flags, strict=True) if not done}
        if missing:
            self._metrics.deliveries_unconfirmed.labels(str(destination)).inc(len(missing))
            log.warning(
                "submitter reported deliveries the destination chain does not show",
                extra={**fields, "messages": len(missing), "transaction": report.transaction_hash},
            )
        return missing, DeliveryNotConfirmed(
            "reported delivered, but the destination gateway does not show it delivered",
            transaction=report.transaction_hash.hex(),
        )

    def find_delivered_on_chain(self, destination: int, reader: DeliveryReader) -> list[bytes]:
        """PARKED, RETRYING, UNPAID and PAUSED messages of `destination` that the chain shows delivered (by
        an operator, another relayer, or anyone with the proof) become DELIVERED. Looks at
        `FOUND_DELIVERED_BATCH` of them per call, in turn. Returns their ids."""
        # One keyset page per call, in turn: bounded work however many messages wait.
        where = MessageFilter(
            states=frozenset({S.PARKED, S.RETRYING, S.UNPAID, S.PAUSED}), destination=destination
        )
        page = self._store.list_messages(
            where, FOUND_DELIVERED_BATCH, self._found_tokens.get(destination, "")
        )
        self._found_tokens[destination] = page.next_token  # "" starts over from the newest
        window = list(page.records)
        if not window:
            return []
        flags = reader.delivered([(r.message.origin, r.message.nonce) for r in window])
        now = self._clock()
        found: list[bytes] = []
        for record, done in zip(window, flags, strict=True):
            if not done:
                continue
            try:
                self._store.apply_transition(
                    Transition(
                        record.id,
                        record.state,
                        S.DELIVERED,
                        {"last_error": "", "error_reason": "", "next_attempt_at": 0.0},
                    ),
                    now,
                )
            except StaleState:
                continue  # moved meanwhile (a delivery attempt started); its outcome decides
            found.append(record.id)
            self._gauges.observe_delivery(record.id)
            log.info(
                "message found delivered on the destination chain",
                extra={"message_id": record.id, "destination": destination, "was": record.state.value},
            )
        if found:
            self._metrics.deliveries_found_on_chain.labels(str(destination)).inc(len(found))
        return found

    def fail(self, records: Sequence[MessageRecord], error: RelayError, fields: dict[str, Any]) -> None:
        """A delivery attempt failed for `records` (all SUBMITTED): back off, or park.

        A transient error always backs off (RETRYING) until the message has been deliverable for
        the schedule's `give_up_after`; any other error parks it at once, as does a transient one
        past that window (`AttemptsExhausted`).
        """
        now = self._clock()
        transitions = []
        for record in records:
            attempts = record.attempts + 1
            deliverable_since = record.verified_at or record.observed_at or now
            if isinstance(error, TransientError) and not self._schedule.is_expired(now - deliverable_since):
                delay = self._schedule.compute_delay(attempts, record.id)
                transitions.append(
                    Transition(
                        record.id,
                        S.SUBMITTED,
                        S.RETRYING,
                        {
                            "attempts": attempts,
                            "next_attempt_at": now + delay,
                            "last_error": describe(error),
                            "error_reason": error.reason,
                        },
                        record.fence,
                    )
                )
            else:
                final_error = (
                    error
                    if not isinstance(error, TransientError)
                    else AttemptsExhausted(
                        "still failing after the retry window",
                        attempts=attempts,
                        retrying_for=round(now - deliverable_since),
                        last=describe(error),
                    )
                )
                transitions.append(
                    Transition(
                        record.id,
                        S.SUBMITTED,
                        S.PARKED,
                        {
                            "attempts": attempts,
                            "last_error": describe(final_error),
                            "error_reason": final_error.reason,
                        },
                        record.fence,
                    )
                )
        for transition in self._apply_fenced(transitions, now):
            if transition.new is S.RETRYING:
                self._metrics.retries.labels("delivery").inc()
            log.warning(
                f"delivery failed: message {transition.new.value}",
                extra={
                    **fields,
                    "message_id": transition.id,
                    "attempts": transition.updates["attempts"],
                    "reason": transition.updates["last_error"],
                },
            )

    def release_paused(self, destination: int, limit: int) -> list[bytes]:
        """PAUSED messages of `destination` due again (next_attempt_at passed) go back to VERIFIED,
        at most `limit` per call; entering VERIFIED restarts their retry window. Returns their ids."""
        now = self._clock()
        where = MessageFilter(states=frozenset({S.PAUSED}), destination=destination)
        due = [r for r in self._store.list_messages(where, limit, "").records if r.next_attempt_at <= now]
        released: list[bytes] = []
        for record in due:
            try:
                self._store.apply_transition(
                    Transition(record.id, S.PAUSED, S.VERIFIED, {"next_attempt_at": 0.0}), now
                )
            except StaleState:
                continue
            released.append(record.id)
        if released:
            log.info(
                "paused deliveries tried again",
                extra={"destination": destination, "messages": len(released)},
            )
        return released

    def recover_submitted(self, *, expired_only: bool) -> int:
        """Deliveries in flight when the relayer stopped: ask again (the submitter skips delivered ids).

        On a store only this process uses, every SUBMITTED message (`expired_only` False); on a
        shared one, only those whose claim expired: the others are live replicas' work. Returns
        how many messages were queued again."""
        recovered = 0
        while True:
            ids = self._store.requeue_submitted(self._clock(), expired_only=expired_only)
            if not ids:
                return recovered
            recovered += len(ids)
            self._count_requeued(ids)
            log.info("interrupted deliveries queued again", extra={"messages": len(ids)})

    def requeue_expired(self, destination: int) -> list[bytes]:
        """SUBMITTED messages of `destination` whose delivery claim expired (no replica waits for
        their call: it died, stalled past its lease, or gave the call up): queue them again, each
        with a new fencing token, so the replica that sent them can no longer record an outcome.
        Returns their ids."""
        ids = self._store.requeue_submitted(self._clock(), expired_only=True, destination=destination)
        if ids:
            self._metrics.claims_requeued.labels(str(destination)).inc(len(ids))
            log.warning(
                "deliveries whose claim expired queued again",
                extra={"destination": destination, "messages": len(ids)},
            )
        return ids

    def _count_requeued(self, ids: Sequence[bytes]) -> None:
        destinations: dict[int, int] = {}
        for message_id in ids:
            record = self._store.get(message_id)
            if record is not None:
                destination = record.message.destination
                destinations[destination] = destinations.get(destination, 0) + 1
        for destination, count in destinations.items():
            self._metrics.claims_requeued.labels(str(destination)).inc(count)
