"""The Altair light-client sync protocol (consensus specs `sync-protocol.md`), Capella to Electra.

A `LightClientStore` starts from a bootstrap whose header root the operator trusts, and follows
the chain from there: each update is signed by the sync committee of its period, and an update
that proves the next period's committee (a Merkle branch into the attested state) lets the
store cross into that period. The finalized header only advances on a 2/3 supermajority of the
committee, through a finality branch. Every `assert` of the spec is a named error here.

Functions follow the spec's names and verbs: `verify_*` raise, `apply_*` mutate the store,
`process_*` verify then apply. `LightClient` bundles a store with its network, its BLS backend
and the decoded committee keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from relay.errors import InvalidPublicKey, InvalidSignature
from relay.verify.bls import BlsBackend
from relay.verify.ethereum.committee_keys import SyncCommitteeKeyCache
from relay.verify.ethereum.config import Fork, NetworkConfig
from relay.verify.ethereum.containers import (
    ZERO_ROOT,
    ExecutionPayloadHeader,
    LightClientBootstrap,
    LightClientFinalityUpdate,
    LightClientHeader,
    LightClientOptimisticUpdate,
    LightClientUpdate,
    SyncCommittee,
    compute_beacon_block_root,
    compute_execution_payload_root,
    compute_sync_committee_root,
    is_empty_light_client_header,
    is_empty_sync_committee,
    is_zero_branch,
)
from relay.verify.ethereum.errors import (
    ForceUpdateDisabled,
    InsufficientParticipation,
    InvalidCurrentSyncCommitteeBranch,
    InvalidExecutionBranch,
    InvalidFinalityBranch,
    InvalidFinalizedHeader,
    InvalidLightClientHeader,
    InvalidNextSyncCommittee,
    InvalidNextSyncCommitteeBranch,
    InvalidSlotOrder,
    InvalidSyncAggregateSignature,
    InvalidSyncCommitteeKey,
    InvalidTrustedRoot,
    IrrelevantUpdate,
    MalformedObject,
    UnknownSyncCommitteePeriod,
)
from relay.verify.ethereum.merkle import (
    EXECUTION_PAYLOAD_GINDEX,
    current_sync_committee_gindex_at_fork,
    finalized_root_gindex_at_fork,
    floorlog2,
    get_subtree_index,
    is_valid_merkle_branch,
    is_valid_normalized_merkle_branch,
    next_sync_committee_gindex_at_fork,
)
from relay.verify.ethereum.signing import compute_sync_committee_signing_root

GENESIS_SLOT = 0


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


# --- headers --------------------------------------------------------------------------------------------


def compute_light_client_execution_root(header: LightClientHeader, network: NetworkConfig) -> bytes:
    """The spec's `get_lc_execution_root`: the execution header's root in its slot's fork layout."""
    fork = network.compute_fork_at_slot(header.beacon.slot)
    if fork < Fork.CAPELLA:
        return ZERO_ROOT
    return compute_execution_payload_root(header.execution, fork, network.preset.max_extra_data_bytes)


def verify_light_client_header(
    header: LightClientHeader, network: NetworkConfig, *, role: str = "header"
) -> None:
    """The spec's `is_valid_light_client_header`, raising: execution fields match the fork and the body.

    `role` names the header in the error (attested, finalized, bootstrap).
    """
    epoch = network.compute_epoch_at_slot(header.beacon.slot)
    if epoch < network.fork_epoch(Fork.DENEB):
        # Blob gas only exists from Deneb on; a non-zero value before is a forged header.
        if header.execution.blob_gas_used != 0 or header.execution.excess_blob_gas != 0:
            raise InvalidLightClientHeader(
                "blob gas fields set before Deneb",
                role=role,
                slot=header.beacon.slot,
                blob_gas_used=header.execution.blob_gas_used,
                excess_blob_gas=header.execution.excess_blob_gas,
            )
    if epoch < network.fork_epoch(Fork.CAPELLA):
        # Before Capella a light-client header carries no execution payload at all.
        if header.execution != ExecutionPayloadHeader() or not is_zero_branch(header.execution_branch):
            raise InvalidLightClientHeader(
                "execution fields set before Capella", role=role, slot=header.beacon.slot
            )
        return
    # The execution payload header must be the one committed in the beacon block body.
    if not is_valid_merkle_branch(
        leaf=compute_light_client_execution_root(header, network),
        branch=header.execution_branch,
        depth=floorlog2(EXECUTION_PAYLOAD_GINDEX),
        index=get_subtree_index(EXECUTION_PAYLOAD_GINDEX),
        root=header.beacon.body_root,
    ):
        raise InvalidExecutionBranch(
            "execution payload header is not in the beacon block body",
            role=role,
            slot=header.beacon.slot,
            block_hash=header.execution.block_hash,
            body_root=header.beacon.body_root,
        )


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


# --- bootstrap ----------------------------------------------------------------------------------------------------


def initialize_light_client_store(
    trusted_block_root: bytes, bootstrap: LightClientBootstrap, network: NetworkConfig
) -> LightClientStore:
    """The spec's `initialize_light_client_store`: check a bootstrap against a trusted block root."""
    verify_light_client_header(bootstrap.header, network, role="bootstrap")
    # The whole trust of the light client rests on this one root, chosen out of band.
    header_root = compute_beacon_block_root(bootstrap.header.beacon)
    if header_root != trusted_block_root:
        raise InvalidTrustedRoot(
            "bootstrap header is not the trusted block",
            header_root=header_root,
            trusted_block_root=trusted_block_root,
        )
    _verify_sync_committee_size(bootstrap.current_sync_committee, network, InvalidCurrentSyncCommitteeBranch)
    fork = network.compute_fork_at_slot(bootstrap.header.beacon.slot)
    # The committee must be the one in the trusted header's state, else anyone could pick the signers.
    if not is_valid_normalized_merkle_branch(
        leaf=compute_sync_committee_root(bootstrap.current_sync_committee),
        branch=bootstrap.current_sync_committee_branch,
        gindex=current_sync_committee_gindex_at_fork(fork),
        root=bootstrap.header.beacon.state_root,
    ):
        raise InvalidCurrentSyncCommitteeBranch(
            "current sync committee is not in the bootstrap state",
            slot=bootstrap.header.beacon.slot,
            state_root=bootstrap.header.beacon.state_root,
            fork=fork.name.lower(),
        )
    return LightClientStore(
        finalized_header=bootstrap.header,
        current_sync_committee=bootstrap.current_sync_committee,
        next_sync_committee=None,
        best_valid_update=None,
        optimistic_header=bootstrap.header,
        previous_max_active_participants=0,
        current_max_active_participants=0,
    )


def _verify_sync_committee_size(
    committee: SyncCommittee,
    network: NetworkConfig,
    error: type[InvalidCurrentSyncCommitteeBranch] | type[InvalidNextSyncCommittee],
) -> None:
    if len(committee.pubkeys) != network.preset.sync_committee_size:
        raise error(
            "sync committee has the wrong size",
            keys=len(committee.pubkeys),
            expected=network.preset.sync_committee_size,
        )


# --- updates -------------------------------------------------------------------------------------------------------


def verify_light_client_update(
    store: LightClientStore,
    update: LightClientUpdate,
    current_slot: int,
    network: NetworkConfig,
    keys: SyncCommitteeKeyCache,
) -> None:
    """The spec's `validate_light_client_update`, raising the named error of the first failed check."""
    period = network.compute_sync_committee_period_at_slot
    aggregate = update.sync_aggregate
    committee_size = network.preset.sync_committee_size
    if len(aggregate.sync_committee_bits) != (committee_size + 7) // 8:
        raise MalformedObject(
            "participation bits do not match the committee size",
            bits=len(aggregate.sync_committee_bits) * 8,
            committee_size=committee_size,
        )
    participants = aggregate.participant_count()
    # Too few signers and the signature proves nothing about the committee's view.
    if participants < network.preset.min_sync_committee_participants:
        raise InsufficientParticipation(
            "too few sync committee participants",
            participants=participants,
            minimum=network.preset.min_sync_committee_participants,
        )

    verify_light_client_header(update.attested_header, network, role="attested")
    attested_slot = update.attested_header.beacon.slot
    finalized_slot = update.finalized_header.beacon.slot
    # A signature comes after what it signs, which comes after what it finalizes; nothing from the future.
    if not current_slot >= update.signature_slot > attested_slot >= finalized_slot:
        raise InvalidSlotOrder(
            "expected current_slot >= signature_slot > attested_slot >= finalized_slot",
            current_slot=current_slot,
            signature_slot=update.signature_slot,
            attested_slot=attested_slot,
            finalized_slot=finalized_slot,
        )

    store_period = period(store.finalized_header.beacon.slot)
    signature_period = period(update.signature_slot)
    next_known = is_next_sync_committee_known(store)
    # Only the current committee, or the next once it is proven, may sign: no skipping periods.
    if next_known and signature_period not in (store_period, store_period + 1):
        raise UnknownSyncCommitteePeriod(
            "update signed in a period whose committee is unknown",
            signature_period=signature_period,
            store_period=store_period,
            next_committee_known=True,
        )
    if not next_known and signature_period != store_period:
        raise UnknownSyncCommitteePeriod(
            "update signed outside the store's period while the next committee is unknown",
            signature_period=signature_period,
            store_period=store_period,
            next_committee_known=False,
        )

    attested_period = period(attested_slot)
    has_next_sync_committee = not next_known and (
        is_sync_committee_update(update) and attested_period == store_period
    )
    # An update must either advance the store or bring the committee it is missing.
    if not (attested_slot > store.finalized_header.beacon.slot or has_next_sync_committee):
        raise IrrelevantUpdate(
            "update is older than the finalized header and brings no new committee",
            attested_slot=attested_slot,
            finalized_slot=store.finalized_header.beacon.slot,
        )

    attested_fork = network.compute_fork_at_slot(attested_slot)
    if not is_finality_update(update):
        # Without a finality proof there must be no finalized header to take on trust.
        if not is_empty_light_client_header(update.finalized_header):
            raise InvalidFinalizedHeader(
                "finalized header without a finality branch", finalized_slot=finalized_slot
            )
    else:
        if finalized_slot == GENESIS_SLOT:
            # The genesis checkpoint is stored as the zero root in the state.
            if not is_empty_light_client_header(update.finalized_header):
                raise InvalidFinalizedHeader(
                    "genesis finalized header must be empty", finalized_slot=finalized_slot
                )
            finalized_root = ZERO_ROOT
        else:
            verify_light_client_header(update.finalized_header, network, role="finalized")
            finalized_root = compute_beacon_block_root(update.finalized_header.beacon)
        # The finalized header must be the finalized checkpoint of the signed (attested) state.
        if not is_valid_normalized_merkle_branch(
            leaf=finalized_root,
            branch=update.finality_branch,
            gindex=finalized_root_gindex_at_fork(attested_fork),
            root=update.attested_header.beacon.state_root,
        ):
            raise InvalidFinalityBranch(
                "finalized header is not the attested state's finalized checkpoint",
                finalized_root=finalized_root,
                state_root=update.attested_header.beacon.state_root,
                fork=attested_fork.name.lower(),
            )

    if not is_sync_committee_update(update):
        # Without a branch there must be no committee, so none is taken on trust.
        if not is_empty_sync_committee(update.next_sync_committee):
            raise InvalidNextSyncCommittee(
                "next sync committee without a branch", attested_slot=attested_slot
            )
    else:
        next_committee = update.next_sync_committee
        if next_committee is None:
            raise InvalidNextSyncCommittee(
                "next sync committee branch without a committee", attested_slot=attested_slot
            )
        _verify_sync_committee_size(next_committee, network, InvalidNextSyncCommittee)
        # Within the store's period the next committee is already known and cannot change.
        if attested_period == store_period and next_known and next_committee != store.next_sync_committee:
            raise InvalidNextSyncCommittee(
                "next sync committee differs from the one already known", attested_period=attested_period
            )
        # The next committee must be the one in the signed (attested) state.
        if not is_valid_normalized_merkle_branch(
            leaf=compute_sync_committee_root(next_committee),
            branch=update.next_sync_committee_branch,
            gindex=next_sync_committee_gindex_at_fork(attested_fork),
            root=update.attested_header.beacon.state_root,
        ):
            raise InvalidNextSyncCommitteeBranch(
                "next sync committee is not in the attested state",
                state_root=update.attested_header.beacon.state_root,
                fork=attested_fork.name.lower(),
            )

    if signature_period == store_period:
        committee = store.current_sync_committee
    elif store.next_sync_committee is not None:
        committee = store.next_sync_committee
    else:  # excluded by the period checks above; kept so the type is never None
        raise UnknownSyncCommitteePeriod(
            "no committee for the signature period", signature_period=signature_period
        )
    verify_sync_aggregate(update, committee, network, keys)


def verify_sync_aggregate(
    update: LightClientUpdate | LightClientFinalityUpdate | LightClientOptimisticUpdate,
    committee: SyncCommittee,
    network: NetworkConfig,
    keys: SyncCommitteeKeyCache,
) -> None:
    """The participants' aggregate signature over the attested beacon header, in its signing domain."""
    aggregate = update.sync_aggregate
    participants = aggregate.participant_indices()
    signing_root = compute_sync_committee_signing_root(
        update.attested_header.beacon, update.signature_slot, network
    )
    try:
        key = keys.aggregate_participants(committee, participants)
        keys.backend.verify_with_key(key, signing_root, aggregate.sync_committee_signature)
    except InvalidSyncCommitteeKey:
        raise
    except (InvalidSignature, InvalidPublicKey) as error:
        # A malformed signature, a wrong one, or participants summing to the identity key.
        raise InvalidSyncAggregateSignature(
            "sync aggregate signature does not verify",
            attested_slot=update.attested_header.beacon.slot,
            signature_slot=update.signature_slot,
            participants=len(participants),
            signing_root=signing_root,
            backend=keys.backend.name,
        ) from error


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
