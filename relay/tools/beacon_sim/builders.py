"""Builders of a self-consistent beacon chain: networks, committees with known keys, headers, states.

Shared by the simulated beacon chain (`relay.tools.beacon_sim.chain`), the on-chain light client's
gas bench (`adapters.ethereum.lightclient_gas`) and the tests' synthetic chain
(tests/unit/ethereum/synthetic.py), so all build exactly what the light client proves:

- a network with every fork up to a chosen one active from genesis;
- sync committees whose secret keys are derived from a seed (so anyone can sign for them);
- a beacon block body committing to an execution payload header at gindex 25;
- a beacon state reduced to the leaves the light client proves (the finalized checkpoint and the
  current and next sync committees at their Deneb or Electra generalized indices);
- sync aggregates signed over the real signing root.

Only the proven fields are real; every other leaf is a deterministic filler.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from relay.verify.bls import CURVE_ORDER, BlsBackend
from relay.verify.ethereum import ssz
from relay.verify.ethereum.config import MINIMAL_PRESET, Fork, ForkActivation, NetworkConfig, Preset
from relay.verify.ethereum.containers import (
    ZERO_ROOT,
    BeaconBlockHeader,
    ExecutionPayloadHeader,
    LightClientHeader,
    SyncAggregate,
    SyncCommittee,
    compute_execution_payload_root,
    compute_sync_committee_root,
)
from relay.verify.ethereum.signing import compute_sync_committee_signing_root

SYNTHETIC_GENESIS_VALIDATORS_ROOT = hashlib.sha256(b"synthetic genesis").digest()


def make_network(
    fork: Fork,
    preset: Preset = MINIMAL_PRESET,
    *,
    name: str | None = None,
    genesis_validators_root: bytes = SYNTHETIC_GENESIS_VALIDATORS_ROOT,
    genesis_time: int = 1_700_000_000,
    seconds_per_slot: int = 6,
) -> NetworkConfig:
    """A network of `preset` with every fork up to `fork` active from genesis (versions `vv 00 00 42`)."""
    forks = [ForkActivation(f, bytes([f.value, 0, 0, 0x42]), 0) for f in Fork if f <= fork]
    return NetworkConfig(
        name=name or f"synthetic-{fork.name.lower()}",
        preset=preset,
        genesis_validators_root=genesis_validators_root,
        forks=tuple(forks),
        genesis_time=genesis_time,
        seconds_per_slot=seconds_per_slot,
    )


def filler(label: str, index: int) -> bytes:
    """A deterministic 32-byte stand-in for a field nobody proves."""
    return hashlib.sha256(f"{label}/{index}".encode()).digest()


def tree_branch(leaves: list[bytes], index: int) -> tuple[bytes, tuple[bytes, ...]]:
    """The root of `leaves` (a power of two) and the branch of leaf `index`, bottom up."""
    layer = list(leaves)
    branch = []
    while len(layer) > 1:
        branch.append(layer[index ^ 1])
        layer = [ssz.sha256(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
        index //= 2
    return layer[0], tuple(branch)


# --- committees -------------------------------------------------------------------------------------------------


@dataclass
class Committee:
    """A sync committee with its secret keys."""

    secrets: list[int]
    committee: SyncCommittee

    def sign(self, backend: BlsBackend, message: bytes, participants: list[int]) -> bytes:
        """The aggregate signature of `participants` over `message` (one signature by the summed key)."""
        secret = sum(self.secrets[i] for i in participants) % CURVE_ORDER
        return backend.sign(secret, message)


def make_committee(
    backend: BlsBackend, seed: str, size: int = MINIMAL_PRESET.sync_committee_size
) -> Committee:
    """`size` members with secret keys derived from `seed` (anyone who knows the seed can sign)."""
    secrets = [
        int.from_bytes(hashlib.sha256(f"{seed}/{i}".encode()).digest(), "big") % CURVE_ORDER
        for i in range(size)
    ]
    pubkeys = tuple(backend.secret_to_public_key(secret) for secret in secrets)
    aggregate = backend.secret_to_public_key(sum(secrets) % CURVE_ORDER)
    return Committee(secrets, SyncCommittee(pubkeys=pubkeys, aggregate_pubkey=aggregate))


def participation_bits(participants: list[int], size: int) -> bytes:
    """The SSZ bitvector with the bits of `participants` set (bit `i` is `bits[i // 8] >> (i % 8)`)."""
    bits = bytearray((size + 7) // 8)
    for i in participants:
        bits[i // 8] |= 1 << (i % 8)
    return bytes(bits)


def make_sync_aggregate(
    backend: BlsBackend,
    committee: Committee,
    attested: BeaconBlockHeader,
    signature_slot: int,
    network: NetworkConfig,
    participants: list[int],
) -> SyncAggregate:
    """`participants` of `committee` signing `attested` as a block at `signature_slot` would include it."""
    signing_root = compute_sync_committee_signing_root(attested, signature_slot, network)
    return SyncAggregate(
        participation_bits(participants, len(committee.secrets)),
        committee.sign(backend, signing_root, participants),
    )


# --- beacon headers and states -----------------------------------------------------------------------------------------


def make_light_client_header(
    slot: int,
    state_root: bytes,
    execution: ExecutionPayloadHeader,
    network: NetworkConfig,
    parent_root: bytes | None = None,
) -> LightClientHeader:
    """A header whose body commits to `execution` at gindex 25 (parent root a filler unless given)."""
    fork = network.compute_fork_at_slot(slot)
    leaves = [filler(f"body/{slot}", i) for i in range(16)]
    leaves[9] = compute_execution_payload_root(execution, fork, network.preset.max_extra_data_bytes)
    body_root, branch = tree_branch(leaves, 9)
    beacon = BeaconBlockHeader(
        slot=slot,
        proposer_index=slot % 7,
        parent_root=filler("parent", slot) if parent_root is None else parent_root,
        state_root=state_root,
        body_root=body_root,
    )
    return LightClientHeader(beacon=beacon, execution=execution, execution_branch=branch)


@dataclass
class State:
    """A beacon state reduced to the leaves the light client proves."""

    root: bytes
    finality_branch: tuple[bytes, ...]
    current_branch: tuple[bytes, ...]
    next_branch: tuple[bytes, ...]


def make_state(
    slot: int,
    network: NetworkConfig,
    current: SyncCommittee,
    next_: SyncCommittee,
    finalized_root: bytes,
    finalized_epoch: int,
    *,
    current_root: bytes | None = None,
    next_root: bytes | None = None,
) -> State:
    """A state with the finalized checkpoint (field 20) and the sync committees (fields 22, 23).

    `current_root` / `next_root` may pass the committees' roots when the caller has them cached.
    """
    fork = network.compute_fork_at_slot(slot)
    width = 64 if fork >= Fork.ELECTRA else 32
    leaves = [filler(f"state/{slot}", i) for i in range(width)]
    epoch_chunk = ssz.uint_chunk(finalized_epoch)
    leaves[20] = ssz.sha256(epoch_chunk + finalized_root)
    leaves[22] = compute_sync_committee_root(current) if current_root is None else current_root
    leaves[23] = compute_sync_committee_root(next_) if next_root is None else next_root
    root, checkpoint_branch = tree_branch(leaves, 20)
    _, current_branch = tree_branch(leaves, 22)
    _, next_branch = tree_branch(leaves, 23)
    return State(root, (epoch_chunk, *checkpoint_branch), current_branch, next_branch)


GENESIS_CHECKPOINT_ROOT = ZERO_ROOT
"""The finalized checkpoint root of a state before anything after genesis is final (as in the spec)."""
