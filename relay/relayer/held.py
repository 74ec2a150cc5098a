"""Held messages of the delivery stage, re-checked: UNPAID ones now paid for, and PARKED ones whose
recipient ran out of the gas it was given and that a top-up now pays beyond it.

Each re-check reads one keyset page per pass and destination, in turn, so its cost is bounded
whatever the number of held messages (`gas_policy.recheck_batch`); see `relay.relayer.policy`.
"""

from __future__ import annotations

import logging
import re

from relay.errors import RelayError
from relay.lifecycle import MessageState, StaleState
from relay.relayer.common import Clock, describe
from relay.relayer.policy import GasPolicy
from relay.store.base import MessageFilter, MessageRecord, Store, Transition

log = logging.getLogger("relay.relayer")

S = MessageState
OUT_OF_GAS = re.compile(r"RecipientOutOfGas\((\d+)\)")  # the Gateway's reason, with the gas given


class HeldMessages:
    """Re-checks UNPAID and out-of-gas PARKED messages per destination (see the module docstring)."""

    def __init__(self, store: Store, clock: Clock, policy: GasPolicy) -> None:
        self._store = store
        self._clock = clock
        self._policy = policy
        self._rechecked_at: dict[int, float] = {}
        self._recheck_tokens: dict[int, str] = {}
        self._parked_tokens: dict[int, str] = {}

    def recheck_unpaid(self, domain: int, *, force: bool = False) -> list[bytes]:
        """UNPAID messages to destination `domain` now paid for enough go back to VERIFIED (at most
        `recheck_batch` per call, in turn, every `recheck_interval` s unless `force`). Returns their ids."""
        config = self._policy.config
        now = self._clock()
        if not force and now - self._rechecked_at.get(domain, float("-inf")) < config.recheck_interval:
            return []
        self._rechecked_at[domain] = now
        # One keyset page per pass, in turn: the cost is `recheck_batch` rows whatever the number
        # of held messages (a flood of unpaid dispatches cannot push others out of the re-check).
        where = MessageFilter(states=frozenset({S.UNPAID}), destination=domain)
        page = self._store.list_messages(where, config.recheck_batch, self._recheck_tokens.get(domain, ""))
        self._recheck_tokens[domain] = page.next_token  # "" starts over from the newest
        window = list(page.records)
        if not window:
            return self.recheck_out_of_gas(domain)
        try:
            decisions = self._policy.decide(domain, window)
        except RelayError as error:
            log.warning(
                "gas payments could not be read to re-check held messages",
                extra={"destination": domain, "reason": describe(error)},
            )
            return []
        paid = [r for r in window if decisions[r.id].deliver]
        released: list[bytes] = []
        for record in paid:
            try:
                self._store.apply_transition(
                    Transition(record.id, S.UNPAID, S.VERIFIED, {"last_error": "", "error_reason": ""}), now
                )
            except StaleState:
                continue
            released.append(record.id)
            log.info("held message paid for; deliverable again", extra={"message_id": record.id})
        return released + self.recheck_out_of_gas(domain)

    def recheck_out_of_gas(self, domain: int) -> list[bytes]:
        """PARKED messages to destination `domain` whose recipient ran out of the gas it was given (`RecipientOutOfGas(N)`)
        go back to VERIFIED once their payment now buys more than N (a `payForGas` top-up): the
        Gateway left them deliverable, so a top-up needs no operator. At most `recheck_batch`."""
        # One keyset page of PARKED messages per pass, in turn, like the UNPAID re-check.
        where = MessageFilter(states=frozenset({S.PARKED}), destination=domain)
        page = self._store.list_messages(
            where, self._policy.config.recheck_batch, self._parked_tokens.get(domain, "")
        )
        self._parked_tokens[domain] = page.next_token
        candidates: list[tuple[MessageRecord, int]] = []
        for record in page.records:
            found = (
                OUT_OF_GAS.search(record.last_error) if record.error_reason == "RecipientReverted" else None
            )
            if found is not None:
                candidates.append((record, int(found.group(1))))
        if not candidates:
            return []
        try:
            decisions = self._policy.decide(domain, [record for record, _ in candidates])
        except RelayError:
            return []  # payments unreadable now; the next recheck asks again
        released: list[bytes] = []
        now = self._clock()
        for record, given in candidates:
            decision = decisions[record.id]
            if not decision.deliver or decision.gas_limit <= given:
                continue
            try:
                self._store.apply_transition(
                    Transition(
                        record.id, S.PARKED, S.VERIFIED, {"last_error": "", "error_reason": "", "attempts": 0}
                    ),
                    now,
                )
            except StaleState:
                continue
            released.append(record.id)
            log.info(
                "parked message topped up beyond the gas it ran out of; deliverable again",
                extra={"message_id": record.id, "gas_before": given, "gas_now": decision.gas_limit},
            )
        return released
