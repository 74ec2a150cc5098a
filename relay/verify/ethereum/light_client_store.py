"""The light-client store and the spec's pure predicates on it and on updates.

A `LightClientStore` is all a light client knows: its finalized and optimistic headers, the
current and (once proven) next sync committee, and the participation it has seen. This module
holds the store and the questions the sync protocol asks of it without changing it (is the next
committee known, does an update carry a committee or a finality proof, how much participation is
enough, which of two updates is better), so that both `validation` and `sync_protocol` can ask
them without importing each other. Everything here is pure: `is_*`/`has_*`/`compute_*` only.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.verify.ethereum.config import NetworkConfig
from relay.verify.ethereum.containers import (
    LightClientHeader,
    LightClientUpdate,
    SyncCommittee,
    is_empty_sync_committee,
    is_zero_branch,
)

# --- the store ------------------------------------------------------------------------------------------------


@dataclass
class LightClientStore:
    """What the light client knows; replaced field by field by `apply_*` functions only."""

    finalized_header: LightClientHeader
    current_sync_committee: SyncCommittee
    next_sync_committee: SyncCommittee | None
    best_valid_update: LightClientUpdate | None
    optimistic_header: LightClientHeader
    previous_max_active_participants: int
    current_max_active_participants: int


@dataclass(frozen=True)
class UpdateOutcome:
    """What processing one update changed in the store."""

    finalized_advanced: bool
    optimistic_advanced: bool
    next_sync_committee_learned: bool
    period_advanced: bool
    participants: int


# --- predicates on the store and on updates ------------------------------------------------------------------


def is_next_sync_committee_known(store: LightClientStore) -> bool:
    """The spec's `is_next_sync_committee_known`."""
    return not is_empty_sync_committee(store.next_sync_committee)


def is_sync_committee_update(update: LightClientUpdate) -> bool:
    """The spec's `is_sync_committee_update`: the update proves a next sync committee."""
    return not is_zero_branch(update.next_sync_committee_branch)


def is_finality_update(update: LightClientUpdate) -> bool:
    """The spec's `is_finality_update`: the update proves a finalized header."""
    return not is_zero_branch(update.finality_branch)


def compute_safety_threshold(store: LightClientStore) -> int:
    """The spec's `get_safety_threshold`: participation needed to move the optimistic header."""
    return max(store.previous_max_active_participants, store.current_max_active_participants) // 2


def has_supermajority(participants: int, committee_size: int) -> bool:
    """At least 2/3 of the committee signed."""
    return participants * 3 >= committee_size * 2


def is_better_update(
    new_update: LightClientUpdate, old_update: LightClientUpdate, network: NetworkConfig
) -> bool:
    """The spec's `is_better_update`: which update to force-apply if finality stalls."""
    period = network.compute_sync_committee_period_at_slot
    size = len(new_update.sync_aggregate.sync_committee_bits) * 8
    new_participants = new_update.sync_aggregate.participant_count()
    old_participants = old_update.sync_aggregate.participant_count()
    new_supermajority = has_supermajority(new_participants, size)
    old_supermajority = has_supermajority(old_participants, size)
    if new_supermajority != old_supermajority:
        return new_supermajority
    if not new_supermajority and new_participants != old_participants:
        return new_participants > old_participants

    def has_relevant_sync_committee(update: LightClientUpdate) -> bool:
        return is_sync_committee_update(update) and (
            period(update.attested_header.beacon.slot) == period(update.signature_slot)
        )

    if has_relevant_sync_committee(new_update) != has_relevant_sync_committee(old_update):
        return has_relevant_sync_committee(new_update)
    new_finality = is_finality_update(new_update)
    if new_finality != is_finality_update(old_update):
        return new_finality
    if new_finality:

        def has_sync_committee_finality(update: LightClientUpdate) -> bool:
            return period(update.finalized_header.beacon.slot) == period(update.attested_header.beacon.slot)

        if has_sync_committee_finality(new_update) != has_sync_committee_finality(old_update):
            return has_sync_committee_finality(new_update)
    if new_participants != old_participants:
        return new_participants > old_participants
    if new_update.attested_header.beacon.slot != old_update.attested_header.beacon.slot:
        return new_update.attested_header.beacon.slot < old_update.attested_header.beacon.slot
    return new_update.signature_slot < old_update.signature_slot
