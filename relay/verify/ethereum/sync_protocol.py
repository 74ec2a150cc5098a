"""The Altair light-client sync protocol (consensus specs `sync-protocol.md`), Capella to Electra.

A `LightClientStore` starts from a bootstrap whose header root the operator trusts, and follows
the chain from there: each update is signed by the sync committee of its period, and an update
that proves the next period's committee (a Merkle branch into the attested state) lets the
store cross into that period. The finalized header only advances on a 2/3 supermajority of the
committee, through a finality branch.

This module moves the store: `process_*` verifies an update (the checks live in `validation`)
then `apply_*` mutates the store; finality and optimistic updates are converted to full updates
first. The store and its predicates live in `light_client_store`. `LightClient` bundles a store
with its network, its BLS backend and the decoded committee keys.
"""

from __future__ import annotations

import dataclasses

from relay.verify.bls import BlsBackend
from relay.verify.ethereum.committee_keys import SyncCommitteeKeyCache
from relay.verify.ethereum.config import NetworkConfig
from relay.verify.ethereum.containers import (
    ZERO_ROOT,
    LightClientBootstrap,
    LightClientFinalityUpdate,
    LightClientHeader,
    LightClientOptimisticUpdate,
    LightClientUpdate,
)
from relay.verify.ethereum.errors import ForceUpdateDisabled, UnknownSyncCommitteePeriod
from relay.verify.ethereum.light_client_store import (
    LightClientStore,
    UpdateOutcome,
    compute_safety_threshold,
    has_supermajority,
    is_better_update,
    is_finality_update,
    is_next_sync_committee_known,
    is_sync_committee_update,
)
from relay.verify.ethereum.merkle import (
    finalized_root_gindex_at_fork,
    floorlog2,
    next_sync_committee_gindex_at_fork,
)
from relay.verify.ethereum.validation import initialize_light_client_store, verify_light_client_update

# --- applying updates ----------------------------------------------------------------------------------------------


def apply_light_client_update(
    store: LightClientStore, update: LightClientUpdate, network: NetworkConfig
) -> bool:
    """The spec's `apply_light_client_update`; returns whether the store moved into the next period."""
    period = network.compute_sync_committee_period_at_slot
    store_period = period(store.finalized_header.beacon.slot)
    finalized_period = period(update.finalized_header.beacon.slot)
    rotated = False
    if not is_next_sync_committee_known(store):
        if finalized_period != store_period:
            raise UnknownSyncCommitteePeriod(
                "cannot learn the next committee from another period",
                finalized_period=finalized_period,
                store_period=store_period,
            )
        store.next_sync_committee = update.next_sync_committee
    elif finalized_period == store_period + 1 and store.next_sync_committee is not None:
        store.current_sync_committee = store.next_sync_committee
        store.next_sync_committee = update.next_sync_committee
        store.previous_max_active_participants = store.current_max_active_participants
        store.current_max_active_participants = 0
        rotated = True
    if update.finalized_header.beacon.slot > store.finalized_header.beacon.slot:
        store.finalized_header = update.finalized_header
        if store.finalized_header.beacon.slot > store.optimistic_header.beacon.slot:
            store.optimistic_header = store.finalized_header
    return rotated


def process_light_client_update(
    store: LightClientStore,
    update: LightClientUpdate,
    current_slot: int,
    network: NetworkConfig,
    keys: SyncCommitteeKeyCache,
) -> UpdateOutcome:
    """The spec's `process_light_client_update`: verify, then move the optimistic and finalized headers."""
    verify_light_client_update(store, update, current_slot, network, keys)
    participants = update.sync_aggregate.participant_count()
    finalized_before = store.finalized_header
    optimistic_before = store.optimistic_header
    next_known_before = is_next_sync_committee_known(store)

    # Remember the best update, should finality stall long enough to need a forced update.
    if store.best_valid_update is None or is_better_update(update, store.best_valid_update, network):
        store.best_valid_update = update
    store.current_max_active_participants = max(store.current_max_active_participants, participants)

    # The optimistic header follows any update signed by enough of the committee.
    if (
        participants > compute_safety_threshold(store)
        and update.attested_header.beacon.slot > store.optimistic_header.beacon.slot
    ):
        store.optimistic_header = update.attested_header

    period = network.compute_sync_committee_period_at_slot
    has_finalized_next_sync_committee = (
        not is_next_sync_committee_known(store)
        and is_sync_committee_update(update)
        and is_finality_update(update)
        and period(update.finalized_header.beacon.slot) == period(update.attested_header.beacon.slot)
    )
    rotated = False
    # Finality moves only on a 2/3 supermajority of the committee.
    if has_supermajority(participants, network.preset.sync_committee_size) and (
        update.finalized_header.beacon.slot > store.finalized_header.beacon.slot
        or has_finalized_next_sync_committee
    ):
        rotated = apply_light_client_update(store, update, network)
        store.best_valid_update = None
    return UpdateOutcome(
        finalized_advanced=store.finalized_header is not finalized_before,
        optimistic_advanced=store.optimistic_header is not optimistic_before,
        next_sync_committee_learned=not next_known_before and is_next_sync_committee_known(store),
        period_advanced=rotated,
        participants=participants,
    )


def process_light_client_store_force_update(
    store: LightClientStore, current_slot: int, network: NetworkConfig
) -> bool:
    """The spec's `process_light_client_store_force_update`; returns whether it applied an update.

    Unsafe: it applies the best update seen even without a 2/3 supermajority, once finality has
    stalled for a whole period. Only `LightClient(allow_force_update=True)` calls it.
    """
    best = store.best_valid_update
    if current_slot <= store.finalized_header.beacon.slot + network.preset.update_timeout or best is None:
        return False
    # Without finality, the attested header stands in for the finalized one (as the spec does).
    if best.finalized_header.beacon.slot <= store.finalized_header.beacon.slot:
        best = dataclasses.replace(best, finalized_header=best.attested_header)
    apply_light_client_update(store, best, network)
    store.best_valid_update = None
    return True


# --- finality and optimistic updates as full updates ------------------------------------------------------


def convert_finality_update(update: LightClientFinalityUpdate, network: NetworkConfig) -> LightClientUpdate:
    """A finality update as the full update the spec processes (no next committee)."""
    fork = network.compute_fork_at_slot(update.attested_header.beacon.slot)
    return LightClientUpdate(
        attested_header=update.attested_header,
        next_sync_committee=None,
        next_sync_committee_branch=(ZERO_ROOT,) * floorlog2(next_sync_committee_gindex_at_fork(fork)),
        finalized_header=update.finalized_header,
        finality_branch=update.finality_branch,
        sync_aggregate=update.sync_aggregate,
        signature_slot=update.signature_slot,
    )


def convert_optimistic_update(
    update: LightClientOptimisticUpdate, network: NetworkConfig
) -> LightClientUpdate:
    """An optimistic update as the full update the spec processes (no finality, no next committee)."""
    fork = network.compute_fork_at_slot(update.attested_header.beacon.slot)
    return LightClientUpdate(
        attested_header=update.attested_header,
        next_sync_committee=None,
        next_sync_committee_branch=(ZERO_ROOT,) * floorlog2(next_sync_committee_gindex_at_fork(fork)),
        finalized_header=LightClientHeader(),
        finality_branch=(ZERO_ROOT,) * floorlog2(finalized_root_gindex_at_fork(fork)),
        sync_aggregate=update.sync_aggregate,
        signature_slot=update.signature_slot,
    )


# --- the light client as one object -------------------------------------------------------------------------------


class LightClient:
    """A light-client store with its network, BLS backend and decoded committee keys.

    The caller supplies the current slot to every call (this class reads no clock). The unsafe
    force update is refused unless `allow_force_update` is set.
    """

    def __init__(
        self,
        store: LightClientStore,
        network: NetworkConfig,
        backend: BlsBackend,
        *,
        allow_force_update: bool = False,
        keys: SyncCommitteeKeyCache | None = None,
    ) -> None:
        self.store = store
        self.network = network
        self.keys = keys if keys is not None else SyncCommitteeKeyCache(backend)
        if self.keys.backend is not backend:
            raise ValueError("the key cache belongs to another BLS backend")
        self.allow_force_update = allow_force_update

    @classmethod
    def from_bootstrap(
        cls,
        trusted_block_root: bytes,
        bootstrap: LightClientBootstrap,
        network: NetworkConfig,
        backend: BlsBackend,
        *,
        allow_force_update: bool = False,
        keys: SyncCommitteeKeyCache | None = None,
    ) -> LightClient:
        """Verify `bootstrap` against the trusted root and start a light client from it."""
        store = initialize_light_client_store(trusted_block_root, bootstrap, network)
        return cls(store, network, backend, allow_force_update=allow_force_update, keys=keys)

    @property
    def backend(self) -> BlsBackend:
        """The BLS backend the signatures are checked with."""
        return self.keys.backend

    @property
    def finalized_header(self) -> LightClientHeader:
        """The latest header finalized by a 2/3 supermajority (or forced, if allowed)."""
        return self.store.finalized_header

    @property
    def optimistic_header(self) -> LightClientHeader:
        """The latest header signed by enough of the committee, not necessarily final."""
        return self.store.optimistic_header

    def current_period(self) -> int:
        """The sync-committee period of the finalized header."""
        return self.network.compute_sync_committee_period_at_slot(self.store.finalized_header.beacon.slot)

    def next_sync_committee_known(self) -> bool:
        """Whether the store can already verify updates of the next period."""
        return is_next_sync_committee_known(self.store)

    def process_update(self, update: LightClientUpdate, current_slot: int) -> UpdateOutcome:
        """Verify and apply a `LightClientUpdate`."""
        return process_light_client_update(self.store, update, current_slot, self.network, self.keys)

    def process_finality_update(self, update: LightClientFinalityUpdate, current_slot: int) -> UpdateOutcome:
        """Verify and apply a `LightClientFinalityUpdate`."""
        return self.process_update(convert_finality_update(update, self.network), current_slot)

    def process_optimistic_update(
        self, update: LightClientOptimisticUpdate, current_slot: int
    ) -> UpdateOutcome:
        """Verify and apply a `LightClientOptimisticUpdate`."""
        return self.process_update(convert_optimistic_update(update, self.network), current_slot)

    def process_force_update(self, current_slot: int) -> bool:
        """Force-apply the best update after the timeout; refused unless `allow_force_update`."""
        if not self.allow_force_update:
            raise ForceUpdateDisabled(
                "force update is disabled: it can apply an update without a 2/3 supermajority",
                finalized_slot=self.store.finalized_header.beacon.slot,
                current_slot=current_slot,
            )
        return process_light_client_store_force_update(self.store, current_slot, self.network)
