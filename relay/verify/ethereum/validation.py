"""The sync protocol's checks: light-client headers, the bootstrap, updates, the sync aggregate.

Everything a light client accepts passes through here first. A bootstrap is checked against the
one block root the operator trusts; an update is checked against the store (slot order, a signing
committee the store knows, relevance), its Merkle branches against the attested state, and its
aggregate signature against the committee of its period. Every `assert` of the spec is a named
error, and every function is `verify_*` (raises, changes nothing) except
`initialize_light_client_store`, which builds a fresh store from a verified bootstrap.
Applying a verified update to a store is `sync_protocol`'s job.
"""

from __future__ import annotations

from relay.errors import InvalidPublicKey, InvalidSignature
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
from relay.verify.ethereum.light_client_store import (
    LightClientStore,
    is_finality_update,
    is_next_sync_committee_known,
    is_sync_committee_update,
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
