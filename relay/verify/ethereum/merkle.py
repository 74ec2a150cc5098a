"""SSZ Merkle branches and the generalized indices the light client proves against.

A generalized index (gindex) names a node of a binary Merkle tree: the root is 1, the children
of node `g` are `2g` and `2g + 1`. Its depth is `floorlog2(gindex)` and its position in that layer
`gindex - 2**depth`. The beacon state grew past 32 fields in Electra, so the state proofs there
are one level deeper; the beacon block body did not, so the execution payload keeps gindex 25.
"""

from __future__ import annotations

from collections.abc import Sequence

from relay.verify.ethereum.config import Fork
from relay.verify.ethereum.containers import ZERO_ROOT
from relay.verify.ethereum.ssz import sha256

EXECUTION_PAYLOAD_GINDEX = 25
"""`get_generalized_index(BeaconBlockBody, "execution_payload")`, Capella and later."""

FINALIZED_ROOT_GINDEX = 105
CURRENT_SYNC_COMMITTEE_GINDEX = 54
NEXT_SYNC_COMMITTEE_GINDEX = 55
"""`BeaconState` paths `finalized_checkpoint.root`, `current_sync_committee`, `next_sync_committee` (Altair to Deneb)."""

FINALIZED_ROOT_GINDEX_ELECTRA = 169
CURRENT_SYNC_COMMITTEE_GINDEX_ELECTRA = 86
NEXT_SYNC_COMMITTEE_GINDEX_ELECTRA = 87
"""The same paths from Electra on (the state has more than 32 fields)."""


def floorlog2(value: int) -> int:
    """The depth of generalized index `value`."""
    if value < 1:
        raise ValueError("floorlog2 of a non-positive number")
    return value.bit_length() - 1


def get_subtree_index(gindex: int) -> int:
    """The position of `gindex` in its layer."""
    return gindex % 2 ** floorlog2(gindex)


def finalized_root_gindex_at_fork(fork: Fork) -> int:
    """The gindex of the finalized checkpoint root in a state of `fork`."""
    return FINALIZED_ROOT_GINDEX_ELECTRA if fork >= Fork.ELECTRA else FINALIZED_ROOT_GINDEX


def current_sync_committee_gindex_at_fork(fork: Fork) -> int:
    """The gindex of the current sync committee in a state of `fork`."""
    return CURRENT_SYNC_COMMITTEE_GINDEX_ELECTRA if fork >= Fork.ELECTRA else CURRENT_SYNC_COMMITTEE_GINDEX


def next_sync_committee_gindex_at_fork(fork: Fork) -> int:
    """The gindex of the next sync committee in a state of `fork`."""
    return NEXT_SYNC_COMMITTEE_GINDEX_ELECTRA if fork >= Fork.ELECTRA else NEXT_SYNC_COMMITTEE_GINDEX


def compute_merkle_root_from_branch(leaf: bytes, branch: Sequence[bytes], index: int) -> bytes:
    """Hash `leaf` up along `branch` (siblings from the bottom); bit `i` of `index` puts the node on the right."""
    value = leaf
    for depth, sibling in enumerate(branch):
        if index >> depth & 1:
            value = sha256(sibling + value)
        else:
            value = sha256(value + sibling)
    return value


def is_valid_merkle_branch(leaf: bytes, branch: Sequence[bytes], depth: int, index: int, root: bytes) -> bool:
    """The spec's `is_valid_merkle_branch`: exactly `depth` siblings lead from `leaf` to `root`."""
    if len(branch) != depth:
        return False
    return compute_merkle_root_from_branch(leaf, branch, index) == root


def is_valid_normalized_merkle_branch(leaf: bytes, branch: Sequence[bytes], gindex: int, root: bytes) -> bool:
    """The spec's `is_valid_normalized_merkle_branch`: a branch padded at the top with zero hashes.

    Electra's light-client types carry branches as long as the deepest fork needs; the extra
    leading entries must be zero. A branch shorter than the gindex's depth is invalid.
    """
    depth = floorlog2(gindex)
    extra = len(branch) - depth
    if extra < 0:
        return False
    if any(node != ZERO_ROOT for node in branch[:extra]):
        return False
    return is_valid_merkle_branch(leaf, branch[extra:], depth, get_subtree_index(gindex), root)
