"""The consensus objects of the light-client sync protocol and their `hash_tree_root`s.

The same Python types serve Capella, Deneb and Electra (and later forks that keep these
shapes): an `ExecutionPayloadHeader` always has the Deneb blob-gas fields, which must be zero
before Deneb, and its root is computed with the layout of the fork the header's slot is in,
exactly as the spec's `get_lc_execution_root` does. Objects are immutable; a store replaces them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.verify.ethereum import ssz
from relay.verify.ethereum.config import Fork

ZERO_ROOT = b"\x00" * 32
EMPTY_PUBLIC_KEY = b"\x00" * 48
EMPTY_SIGNATURE = b"\x00" * 96


@dataclass(frozen=True)
class BeaconBlockHeader:
    """A beacon block header; its root is the block root the chain signs and references."""

    slot: int = 0
    proposer_index: int = 0
    parent_root: bytes = ZERO_ROOT
    state_root: bytes = ZERO_ROOT
    body_root: bytes = ZERO_ROOT


@dataclass(frozen=True)
class ExecutionPayloadHeader:
    """The execution block a beacon block carries, summarised (Capella layout plus Deneb's blob gas)."""

    parent_hash: bytes = ZERO_ROOT
    fee_recipient: bytes = b"\x00" * 20
    state_root: bytes = ZERO_ROOT
    receipts_root: bytes = ZERO_ROOT
    logs_bloom: bytes = b"\x00" * 256
    prev_randao: bytes = ZERO_ROOT
    block_number: int = 0
    gas_limit: int = 0
    gas_used: int = 0
    timestamp: int = 0
    extra_data: bytes = b""
    base_fee_per_gas: int = 0
    block_hash: bytes = ZERO_ROOT
    transactions_root: bytes = ZERO_ROOT
    withdrawals_root: bytes = ZERO_ROOT
    blob_gas_used: int = 0
    excess_blob_gas: int = 0


EXECUTION_BRANCH_DEPTH = 4


@dataclass(frozen=True)
class LightClientHeader:
    """A beacon header with the execution payload header it commits to, and the proof of that."""

    beacon: BeaconBlockHeader = field(default_factory=BeaconBlockHeader)
    execution: ExecutionPayloadHeader = field(default_factory=ExecutionPayloadHeader)
    execution_branch: tuple[bytes, ...] = (ZERO_ROOT,) * EXECUTION_BRANCH_DEPTH


@dataclass(frozen=True)
class SyncCommittee:
    """The 512 (mainnet) validators that sign the chain's head for one period, by BLS public key."""

    pubkeys: tuple[bytes, ...]
    aggregate_pubkey: bytes


@dataclass(frozen=True)
class SyncAggregate:
    """Which committee members signed (`sync_committee_bits`, SSZ bitvector bytes) and their signature."""

    sync_committee_bits: bytes
    sync_committee_signature: bytes

    def participant_indices(self) -> list[int]:
        """Positions in the committee whose bit is set (bit `i` is `bits[i // 8] >> (i % 8) & 1`)."""
        bits = self.sync_committee_bits
        return [i for i in range(len(bits) * 8) if bits[i >> 3] >> (i & 7) & 1]

    def participant_count(self) -> int:
        """How many committee members signed."""
        return sum(byte.bit_count() for byte in self.sync_committee_bits)


@dataclass(frozen=True)
class LightClientBootstrap:
    """A trusted header with the sync committee of its period and the proof that it is in its state."""

    header: LightClientHeader
    current_sync_committee: SyncCommittee
    current_sync_committee_branch: tuple[bytes, ...]


@dataclass(frozen=True)
class LightClientUpdate:
    """A signed header, possibly with a finalized header and the next period's committee."""

    attested_header: LightClientHeader
    next_sync_committee: SyncCommittee | None
    next_sync_committee_branch: tuple[bytes, ...]
    finalized_header: LightClientHeader
    finality_branch: tuple[bytes, ...]
    sync_aggregate: SyncAggregate
    signature_slot: int


@dataclass(frozen=True)
class LightClientFinalityUpdate:
    """A signed header and the finalized header its state commits to."""

    attested_header: LightClientHeader
    finalized_header: LightClientHeader
    finality_branch: tuple[bytes, ...]
    sync_aggregate: SyncAggregate
    signature_slot: int


@dataclass(frozen=True)
class LightClientOptimisticUpdate:
    """A signed header without finality: what the chain's head looks like now."""

    attested_header: LightClientHeader
    sync_aggregate: SyncAggregate
    signature_slot: int


# --- predicates -------------------------------------------------------------------------------------------


def is_zero_branch(branch: tuple[bytes, ...]) -> bool:
    """True for an absent proof, which the spec encodes as a branch of zero hashes."""
    return all(node == ZERO_ROOT for node in branch)


def is_empty_sync_committee(committee: SyncCommittee | None) -> bool:
    """True for an absent committee (None, or the all-zero `SyncCommittee()` of the spec)."""
    if committee is None:
        return True
    return committee.aggregate_pubkey == EMPTY_PUBLIC_KEY and all(
        key == EMPTY_PUBLIC_KEY for key in committee.pubkeys
    )


def is_empty_light_client_header(header: LightClientHeader) -> bool:
    """True for the all-zero `LightClientHeader()` that stands for "no finalized header"."""
    return (
        header.beacon == BeaconBlockHeader()
        and header.execution == ExecutionPayloadHeader()
        and is_zero_branch(header.execution_branch)
    )


# --- hash_tree_root -----------------------------------------------------------------------------------------


def compute_beacon_block_root(header: BeaconBlockHeader) -> bytes:
    """`hash_tree_root(BeaconBlockHeader)`: the block root."""
    return ssz.merkleize(
        [
            ssz.uint_chunk(header.slot),
            ssz.uint_chunk(header.proposer_index),
            header.parent_root,
            header.state_root,
            header.body_root,
        ]
    )


def compute_sync_committee_root(committee: SyncCommittee) -> bytes:
    """`hash_tree_root(SyncCommittee)`."""
    # A 48-byte key is two chunks: its root is one hash of the key padded to 64 bytes.
    padding = b"\x00" * 16
    pubkeys_root = ssz.merkleize([ssz.sha256(key + padding) for key in committee.pubkeys])
    return ssz.sha256(pubkeys_root + ssz.sha256(committee.aggregate_pubkey + padding))


def compute_execution_payload_chunks(
    execution: ExecutionPayloadHeader, fork: Fork, max_extra_data_bytes: int = 32
) -> list[bytes]:
    """The SSZ chunks of an `ExecutionPayloadHeader` in the layout of `fork` (Capella or later).

    15 chunks at Capella; 17 from Deneb on (the blob-gas fields appended, which later forks keep).
    """
    if fork < Fork.CAPELLA:
        raise ValueError("execution payload headers in light-client headers start at Capella")
    chunks = [
        execution.parent_hash,
        ssz.root_of_byte_vector(execution.fee_recipient),
        execution.state_root,
        execution.receipts_root,
        ssz.root_of_byte_vector(execution.logs_bloom),
        execution.prev_randao,
        ssz.uint_chunk(execution.block_number),
        ssz.uint_chunk(execution.gas_limit),
        ssz.uint_chunk(execution.gas_used),
        ssz.uint_chunk(execution.timestamp),
        ssz.root_of_byte_list(execution.extra_data, max_extra_data_bytes),
        ssz.uint_chunk(execution.base_fee_per_gas, 32),
        execution.block_hash,
        execution.transactions_root,
        execution.withdrawals_root,
    ]
    if fork >= Fork.DENEB:
        chunks += [ssz.uint_chunk(execution.blob_gas_used), ssz.uint_chunk(execution.excess_blob_gas)]
    return chunks


def compute_execution_payload_root(
    execution: ExecutionPayloadHeader, fork: Fork, max_extra_data_bytes: int = 32
) -> bytes:
    """`hash_tree_root(ExecutionPayloadHeader)` in the layout of `fork` (Capella or later)."""
    return ssz.merkleize(compute_execution_payload_chunks(execution, fork, max_extra_data_bytes))


def compute_signing_data_root(object_root: bytes, domain: bytes) -> bytes:
    """`hash_tree_root(SigningData(object_root, domain))`: what a BLS signature signs."""
    return ssz.sha256(object_root + domain)


def compute_fork_data_root(current_version: bytes, genesis_validators_root: bytes) -> bytes:
    """`hash_tree_root(ForkData(current_version, genesis_validators_root))`."""
    return ssz.sha256(ssz.root_of_byte_vector(current_version) + genesis_validators_root)
