"""Signing domains: what binds a sync-committee signature to one chain and one fork.

A signature signs `hash_tree_root(SigningData(object_root, domain))`, where the domain mixes the
domain type, the fork version and the genesis validators root. A signature made for another
chain, another fork or another purpose therefore never verifies here.
"""

from __future__ import annotations

from relay.verify.ethereum.config import DOMAIN_SYNC_COMMITTEE, NetworkConfig
from relay.verify.ethereum.containers import (
    BeaconBlockHeader,
    compute_beacon_block_root,
    compute_fork_data_root,
    compute_signing_data_root,
)


def compute_domain(domain_type: bytes, fork_version: bytes, genesis_validators_root: bytes) -> bytes:
    """The spec's `compute_domain`: the domain type followed by 28 bytes of the fork data root."""
    return domain_type + compute_fork_data_root(fork_version, genesis_validators_root)[:28]


def compute_signing_root(object_root: bytes, domain: bytes) -> bytes:
    """The spec's `compute_signing_root` from an object's root."""
    return compute_signing_data_root(object_root, domain)


def compute_sync_committee_fork_version(signature_slot: int, network: NetworkConfig) -> bytes:
    """The fork version a sync aggregate included at `signature_slot` was signed with.

    Committee members sign the block of the slot before the one that includes their aggregate,
    so the fork is the one at `signature_slot - 1` (the fork boundary case).
    """
    fork_version_slot = max(signature_slot, 1) - 1
    return network.compute_fork_version(network.compute_epoch_at_slot(fork_version_slot))


def compute_sync_committee_signing_root(
    attested_header: BeaconBlockHeader, signature_slot: int, network: NetworkConfig
) -> bytes:
    """The 32 bytes a sync aggregate over `attested_header`, included at `signature_slot`, signs."""
    fork_version = compute_sync_committee_fork_version(signature_slot, network)
    domain = compute_domain(DOMAIN_SYNC_COMMITTEE, fork_version, network.genesis_validators_root)
    return compute_signing_root(compute_beacon_block_root(attested_header), domain)
