"""Every real mainnet object, tampered one way at a time, is rejected with the error naming the check.

Each case changes one thing in a real bootstrap, update, finality or optimistic update (a
signature byte, a branch node, a header field, the participation bits, the fork version, the
order of periods) and checks both the error's type and its `check` name, and that the store did
not change.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from relay.verify.ethereum.committee_keys import SyncCommitteeKeyCache
from relay.verify.ethereum.config import MAINNET, Fork, ForkActivation, NetworkConfig
from relay.verify.ethereum.containers import (
    LightClientFinalityUpdate,
    LightClientHeader,
    LightClientOptimisticUpdate,
    LightClientUpdate,
    compute_beacon_block_root,
)
from relay.verify.ethereum.errors import (
    EthereumProofError,
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
    InvalidTrustedRoot,
    IrrelevantUpdate,
    UnknownSyncCommitteePeriod,
)
from relay.verify.ethereum.light_client_store import LightClientStore
from relay.verify.ethereum.sync_protocol import (
    convert_finality_update,
    convert_optimistic_update,
    process_light_client_update,
)
from relay.verify.ethereum.validation import initialize_light_client_store

from .conftest import CURRENT_SLOT, MainnetVectors

AnyUpdate = LightClientUpdate | LightClientFinalityUpdate | LightClientOptimisticUpdate
OBJECTS = [f"update{i}" for i in range(6)] + ["finality", "optimistic"]


def flip(data: bytes, position: int = 5) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def with_network_change(**changes: Any) -> NetworkConfig:
    return dataclasses.replace(MAINNET, **changes)


WRONG_CAPELLA_VERSION = with_network_change(
    forks=tuple(
        ForkActivation(a.fork, bytes.fromhex("03000001"), a.epoch) if a.fork is Fork.CAPELLA else a
        for a in MAINNET.forks
    )
)
WRONG_GENESIS = with_network_change(genesis_validators_root=flip(MAINNET.genesis_validators_root))
ELECTRA_EARLY = with_network_change(
    forks=tuple(
        ForkActivation(a.fork, a.version, min(a.epoch, 200000)) if a.fork >= Fork.DENEB else a
        for a in MAINNET.forks
    )
)
"""Deneb and Electra moved before the vectors' epochs: the wrong fork (gindices, layout) for the data."""


# --- the objects and the store each one applies to ---------------------------------------------------------------------


def get_object(mainnet: MainnetVectors, name: str) -> AnyUpdate:
    if name == "finality":
        return mainnet.finality
    if name == "optimistic":
        return mainnet.optimistic
    return mainnet.updates[int(name.removeprefix("update"))]


def store_for(mainnet: MainnetVectors, name: str) -> LightClientStore:
    """The store the object legitimately applies to."""
    if name.startswith("update"):
        return mainnet.store_before(int(name.removeprefix("update")))
    return mainnet.store_before(6)


def skipped_period_store(mainnet: MainnetVectors, name: str) -> LightClientStore:
    """A store two periods behind the object's signature period (or ahead of it, for update 0)."""
    if name == "update0":
        return mainnet.store_before(3)
    if name == "update1":
        return mainnet.store_before(0)  # next committee unknown, period 862; update 1 is signed in 863
    if name.startswith("update"):
        return mainnet.store_before(int(name.removeprefix("update")) - 1)
    return mainnet.store_before(4)


def process(
    store: LightClientStore,
    obj: AnyUpdate,
    keys: SyncCommitteeKeyCache,
    network: NetworkConfig = MAINNET,
    current_slot: int = CURRENT_SLOT,
) -> None:
    if isinstance(obj, LightClientFinalityUpdate):
        obj = convert_finality_update(obj, network)
    elif isinstance(obj, LightClientOptimisticUpdate):
        obj = convert_optimistic_update(obj, network)
    process_light_client_update(store, obj, current_slot, network, keys)


# --- tamperings -------------------------------------------------------------------------------------------------------------


def replace_header(obj: Any, name: str, change: Callable[[LightClientHeader], LightClientHeader]) -> Any:
    return dataclasses.replace(obj, **{name: change(getattr(obj, name))})


def clear_one_participant(obj: AnyUpdate) -> AnyUpdate:
    bits = bytearray(obj.sync_aggregate.sync_committee_bits)
    first = obj.sync_aggregate.participant_indices()[0]
    bits[first // 8] &= ~(1 << (first % 8))
    return dataclasses.replace(
        obj, sync_aggregate=dataclasses.replace(obj.sync_aggregate, sync_committee_bits=bytes(bits))
    )


def add_one_participant(obj: AnyUpdate) -> AnyUpdate:
    bits = bytearray(obj.sync_aggregate.sync_committee_bits)
    signed = set(obj.sync_aggregate.participant_indices())
    absent = [i for i in range(len(bits) * 8) if i not in signed]
    if not absent:  # full participation: drop one instead, still a wrong participant set
        return clear_one_participant(obj)
    bits[absent[0] // 8] |= 1 << (absent[0] % 8)
    return dataclasses.replace(
        obj, sync_aggregate=dataclasses.replace(obj.sync_aggregate, sync_committee_bits=bytes(bits))
    )


def no_participants(obj: AnyUpdate) -> AnyUpdate:
    size = len(obj.sync_aggregate.sync_committee_bits)
    return dataclasses.replace(
        obj, sync_aggregate=dataclasses.replace(obj.sync_aggregate, sync_committee_bits=bytes(size))
    )


def flip_signature(obj: AnyUpdate) -> AnyUpdate:
    aggregate = obj.sync_aggregate
    return dataclasses.replace(
        obj,
        sync_aggregate=dataclasses.replace(
            aggregate, sync_committee_signature=flip(aggregate.sync_committee_signature, 40)
        ),
    )


def flip_branch_node(branch: tuple[bytes, ...], index: int = 1) -> tuple[bytes, ...]:
    return branch[:index] + (flip(branch[index]),) + branch[index + 1 :]


def swap_committee_keys(obj: Any) -> Any:
    committee = obj.next_sync_committee
    keys = list(committee.pubkeys)
    keys[0], keys[1] = keys[1], keys[0]
    return dataclasses.replace(obj, next_sync_committee=dataclasses.replace(committee, pubkeys=tuple(keys)))


HAS_FINALITY = {f"update{i}" for i in range(6)} | {"finality"}
HAS_NEXT_COMMITTEE = {f"update{i}" for i in range(6)}

# name -> (applies to, tamper, expected error); network/store/slot overrides are handled in the test.
TAMPERINGS: dict[str, tuple[set[str], Callable[[Any], Any], type[EthereumProofError]]] = {
    "signature byte": (set(OBJECTS), flip_signature, InvalidSyncAggregateSignature),
    "participant removed": (set(OBJECTS), clear_one_participant, InvalidSyncAggregateSignature),
    "participant added": (set(OBJECTS), add_one_participant, InvalidSyncAggregateSignature),
    "no participants": (set(OBJECTS), no_participants, InsufficientParticipation),
    "attested proposer index": (
        set(OBJECTS),
        lambda o: replace_header(
            o,
            "attested_header",
            lambda h: dataclasses.replace(
                h, beacon=dataclasses.replace(h.beacon, proposer_index=h.beacon.proposer_index + 1)
            ),
        ),
        InvalidSyncAggregateSignature,
    ),
    "attested receipts root": (
        set(OBJECTS),
        lambda o: replace_header(
            o,
            "attested_header",
            lambda h: dataclasses.replace(
                h, execution=dataclasses.replace(h.execution, receipts_root=flip(h.execution.receipts_root))
            ),
        ),
        InvalidExecutionBranch,
    ),
    "attested execution branch": (
        set(OBJECTS),
        lambda o: replace_header(
            o,
            "attested_header",
            lambda h: dataclasses.replace(h, execution_branch=flip_branch_node(h.execution_branch)),
        ),
        InvalidExecutionBranch,
    ),
    "attested blob gas before Deneb": (
        set(OBJECTS),
        lambda o: replace_header(
            o,
            "attested_header",
            lambda h: dataclasses.replace(h, execution=dataclasses.replace(h.execution, blob_gas_used=1)),
        ),
        InvalidLightClientHeader,
    ),
    "finality branch": (
        HAS_FINALITY,
        lambda o: dataclasses.replace(o, finality_branch=flip_branch_node(o.finality_branch)),
        InvalidFinalityBranch,
    ),
    "finalized state root": (
        HAS_FINALITY,
        lambda o: replace_header(
            o,
            "finalized_header",
            lambda h: dataclasses.replace(
                h, beacon=dataclasses.replace(h.beacon, state_root=flip(h.beacon.state_root))
            ),
        ),
        InvalidFinalityBranch,
    ),
    "finalized block number": (
        HAS_FINALITY,
        lambda o: replace_header(
            o,
            "finalized_header",
            lambda h: dataclasses.replace(
                h, execution=dataclasses.replace(h.execution, block_number=h.execution.block_number + 1)
            ),
        ),
        InvalidExecutionBranch,
    ),
    "finalized header without branch": (
        HAS_FINALITY,
        lambda o: dataclasses.replace(o, finality_branch=(b"\x00" * 32,) * len(o.finality_branch)),
        InvalidFinalizedHeader,
    ),
    "next committee branch": (
        HAS_NEXT_COMMITTEE,
        lambda o: dataclasses.replace(
            o, next_sync_committee_branch=flip_branch_node(o.next_sync_committee_branch)
        ),
        InvalidNextSyncCommitteeBranch,
    ),
    "next committee keys swapped": (HAS_NEXT_COMMITTEE, swap_committee_keys, InvalidNextSyncCommitteeBranch),
    "next committee without branch": (
        HAS_NEXT_COMMITTEE - {"update0"},
        lambda o: dataclasses.replace(o, next_sync_committee_branch=(b"\x00" * 32,) * 5),
        InvalidNextSyncCommittee,
    ),
    "signature slot not after attested": (
        set(OBJECTS),
        lambda o: dataclasses.replace(o, signature_slot=o.attested_header.beacon.slot),
        InvalidSlotOrder,
    ),
}

CASES = [(obj, name) for name, (applies, _, _) in TAMPERINGS.items() for obj in OBJECTS if obj in applies]


@pytest.mark.parametrize(("obj_name", "tampering"), CASES, ids=[f"{o}-{t}" for o, t in CASES])
def test_tampered_object_is_rejected(
    mainnet: MainnetVectors, mainnet_keys: SyncCommitteeKeyCache, obj_name: str, tampering: str
) -> None:
    _, tamper, expected = TAMPERINGS[tampering]
    store = store_for(mainnet, obj_name)
    before = copy.copy(store)
    obj = get_object(mainnet, obj_name)
    process(copy.copy(store), obj, mainnet_keys)  # the untouched object is accepted by this store
    with pytest.raises(expected) as error:
        process(store, tamper(obj), mainnet_keys)
    assert error.value.check == type(error.value).check
    assert error.value.check in str(error.value)
    assert store == before, "a rejected update must leave the store unchanged"


@pytest.mark.parametrize("obj_name", OBJECTS)
@pytest.mark.parametrize(
    "network", [WRONG_CAPELLA_VERSION, WRONG_GENESIS], ids=["fork-version", "genesis-root"]
)
def test_wrong_signing_domain_is_rejected(
    mainnet: MainnetVectors, mainnet_keys: SyncCommitteeKeyCache, obj_name: str, network: NetworkConfig
) -> None:
    with pytest.raises(InvalidSyncAggregateSignature) as error:
        process(store_for(mainnet, obj_name), get_object(mainnet, obj_name), mainnet_keys, network=network)
    assert error.value.check == "sync_aggregate_signature"


@pytest.mark.parametrize("obj_name", OBJECTS)
def test_wrong_fork_schedule_is_rejected(
    mainnet: MainnetVectors, mainnet_keys: SyncCommitteeKeyCache, obj_name: str
) -> None:
    """With Deneb/Electra wrongly scheduled, the header's layout and the state's gindices no longer fit."""
    with pytest.raises(EthereumProofError) as error:
        process(
            store_for(mainnet, obj_name), get_object(mainnet, obj_name), mainnet_keys, network=ELECTRA_EARLY
        )
    assert error.value.check in {"execution_branch", "finality_branch", "next_sync_committee_branch"}


@pytest.mark.parametrize("obj_name", OBJECTS)
def test_skipped_period_is_rejected(
    mainnet: MainnetVectors, mainnet_keys: SyncCommitteeKeyCache, obj_name: str
) -> None:
    store = skipped_period_store(mainnet, obj_name)
    with pytest.raises(UnknownSyncCommitteePeriod) as error:
        process(store, get_object(mainnet, obj_name), mainnet_keys)
    assert error.value.check == "sync_committee_period"
    assert "signature_period" in error.value.fields


@pytest.mark.parametrize("obj_name", OBJECTS)
def test_update_from_the_future_is_rejected(
    mainnet: MainnetVectors, mainnet_keys: SyncCommitteeKeyCache, obj_name: str
) -> None:
    obj = get_object(mainnet, obj_name)
    with pytest.raises(InvalidSlotOrder) as error:
        process(store_for(mainnet, obj_name), obj, mainnet_keys, current_slot=obj.signature_slot - 1)
    assert error.value.fields["current_slot"] == obj.signature_slot - 1


def test_replayed_update_is_irrelevant(mainnet: MainnetVectors, mainnet_keys: SyncCommitteeKeyCache) -> None:
    with pytest.raises(IrrelevantUpdate) as error:
        process(mainnet.store_before(1), mainnet.updates[0], mainnet_keys)
    assert error.value.check == "update_relevance"


def test_different_next_committee_within_the_period_is_rejected(
    mainnet: MainnetVectors, mainnet_keys: SyncCommitteeKeyCache
) -> None:
    """Once the next committee is known, an update of the same period cannot replace it, even with a valid branch."""
    update = mainnet.updates[0]
    store = dataclasses.replace(
        mainnet.store_before(1),
        finalized_header=update.finalized_header,  # older than update 0's attested header: the update is relevant
        next_sync_committee=mainnet.updates[
            1
        ].next_sync_committee,  # "known", and not the one update 0 proves
    )
    with pytest.raises(InvalidNextSyncCommittee) as error:
        process(store, update, mainnet_keys)
    assert error.value.check == "next_sync_committee"


# --- bootstrap --------------------------------------------------------------------------------------------------------------


def test_bootstrap_tampering_is_rejected(mainnet: MainnetVectors) -> None:
    bootstrap = mainnet.bootstrap
    branch = flip_branch_node(bootstrap.current_sync_committee_branch)
    with pytest.raises(InvalidCurrentSyncCommitteeBranch):
        initialize_light_client_store(
            mainnet.trusted_root,
            dataclasses.replace(bootstrap, current_sync_committee_branch=branch),
            MAINNET,
        )

    keys = list(bootstrap.current_sync_committee.pubkeys)
    keys[7] = keys[8]
    committee = dataclasses.replace(bootstrap.current_sync_committee, pubkeys=tuple(keys))
    with pytest.raises(InvalidCurrentSyncCommitteeBranch):
        initialize_light_client_store(
            mainnet.trusted_root, dataclasses.replace(bootstrap, current_sync_committee=committee), MAINNET
        )

    header = bootstrap.header
    moved = dataclasses.replace(
        header, beacon=dataclasses.replace(header.beacon, slot=header.beacon.slot + 1)
    )
    with pytest.raises(InvalidTrustedRoot):
        initialize_light_client_store(
            mainnet.trusted_root, dataclasses.replace(bootstrap, header=moved), MAINNET
        )
    # Even trusting the tampered header's own root, its state no longer holds the committee... or the body the payload.
    forged = dataclasses.replace(header, execution=dataclasses.replace(header.execution, gas_used=1))
    with pytest.raises(InvalidExecutionBranch):
        initialize_light_client_store(
            compute_beacon_block_root(forged.beacon), dataclasses.replace(bootstrap, header=forged), MAINNET
        )

    with pytest.raises(InvalidExecutionBranch):  # a Capella payload read with the Deneb layout
        initialize_light_client_store(mainnet.trusted_root, bootstrap, ELECTRA_EARLY)
