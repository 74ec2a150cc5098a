"""The depth-32 incremental Merkle tree of message ids.

The same tree as Hyperlane's MerkleTreeHook and Ethereum's deposit contract: keccak256 of
left || right, empty leaves zero, zero subtrees by repeated hashing. `MerkleTree` keeps every
leaf (the relayer needs branches for any index); `IncrementalTree` keeps only the 32-entry frontier
the contract keeps, for computing roots cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence

import sha3

from relay.errors import IndexOutOfRange, InvalidMerkleProof, MalformedEncoding
from relay.verify.hashing import hash_pair

_keccak = sha3.keccak_256

TREE_DEPTH = 32
MAX_LEAVES = 2**TREE_DEPTH - 1


def _zero_hashes() -> tuple[bytes, ...]:
    zeros = [b"\x00" * 32]
    for _ in range(TREE_DEPTH):
        zeros.append(hash_pair(zeros[-1], zeros[-1]))
    return tuple(zeros)


ZERO_HASHES = _zero_hashes()


def compute_root_from_branch(leaf: bytes, branch: Sequence[bytes], index: int) -> bytes:
    """Return the root reached by hashing `leaf` up `branch` at position `index` (pure, no checks)."""
    # The hot loop of every delivery: locals only, one C call per level.
    keccak = _keccak
    node = leaf
    path = index
    for sibling in branch:
        node = keccak(sibling + node).digest() if path & 1 else keccak(node + sibling).digest()
        path >>= 1
    return node


def verify_branch(leaf: bytes, branch: Sequence[bytes], index: int, root: bytes) -> None:
    """Raise `InvalidMerkleProof` unless `branch` proves `leaf` at `index` under `root`."""
    if len(leaf) != 32 or len(root) != 32:
        raise MalformedEncoding("leaf and root must be 32 bytes", leaf=leaf, root=root)
    if len(branch) != TREE_DEPTH or not all(len(node) == 32 for node in branch):
        raise MalformedEncoding("a branch is 32 hashes of 32 bytes", length=len(branch), depth=TREE_DEPTH)
    if not 0 <= index <= MAX_LEAVES:
        raise IndexOutOfRange("leaf index outside the tree", index=index, maximum=MAX_LEAVES)
    computed = compute_root_from_branch(leaf, branch, index)
    if computed != root:
        raise InvalidMerkleProof(
            "branch does not lead to the root", leaf=leaf, index=index, root=root, computed=computed
        )


class IncrementalTree:
    """The contract's O(depth) tree: a frontier of 32 nodes, insert and root, no branches."""

    def __init__(self) -> None:
        self._frontier: list[bytes] = [b"\x00" * 32] * TREE_DEPTH
        self.count = 0

    @classmethod
    def from_frontier(cls, count: int, frontier: Sequence[bytes]) -> IncrementalTree:
        """The tree of `count` leaves whose frontier is `frontier` (as the contract stores it)."""
        if not 0 <= count <= MAX_LEAVES:
            raise IndexOutOfRange("no such tree size", count=count, maximum=MAX_LEAVES)
        if len(frontier) != TREE_DEPTH or not all(len(node) == 32 for node in frontier):
            raise MalformedEncoding("a frontier is 32 hashes of 32 bytes", length=len(frontier))
        tree = cls()
        tree._frontier = [bytes(node) for node in frontier]
        tree.count = count
        return tree

    @property
    def frontier(self) -> tuple[bytes, ...]:
        """The 32 nodes the tree keeps: at level i, the last complete left subtree of height i."""
        return tuple(self._frontier)

    def copy(self) -> IncrementalTree:
        """An independent copy (to extend tentatively)."""
        return IncrementalTree.from_frontier(self.count, self._frontier)

    def insert(self, leaf: bytes) -> int:
        """Append `leaf`; return its index."""
        if self.count >= MAX_LEAVES:
            raise IndexOutOfRange("Merkle tree is full", count=self.count)
        index = self.count
        self.count += 1
        size = self.count
        node = leaf
        for level in range(TREE_DEPTH):
            if size & 1:
                self._frontier[level] = node
                return index
            node = hash_pair(self._frontier[level], node)
            size >>= 1
        return index  # unreachable for count < 2**32

    def root(self) -> bytes:
        """Return the root over the leaves inserted so far."""
        node = ZERO_HASHES[0]
        size = self.count
        for level in range(TREE_DEPTH):
            if (size >> level) & 1:
                node = hash_pair(self._frontier[level], node)
            else:
                node = hash_pair(node, ZERO_HASHES[level])
        return node


class MerkleTree:
    """A depth-32 tree that keeps every level, so it can serve a branch for any leaf.

    Memory is about 2 × 32 bytes per leaf. `root()` and `branch()` cost O(depth); `root_at(count)`
    answers for an earlier size (a checkpoint taken before later leaves were added).
    """

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[] for _ in range(TREE_DEPTH)]
        for leaf in leaves:
            self.insert(leaf)

    @property
    def count(self) -> int:
        """Number of leaves inserted."""
        return len(self._levels[0])

    def insert(self, leaf: bytes) -> int:
        """Append `leaf` (32 bytes); return its index."""
        if len(leaf) != 32:
            raise MalformedEncoding("a leaf is 32 bytes", length=len(leaf))
        if self.count >= MAX_LEAVES:
            raise IndexOutOfRange("Merkle tree is full", count=self.count)
        index = self.count
        self._levels[0].append(bytes(leaf))
        position = index
        node = bytes(leaf)
        for level in range(1, TREE_DEPTH):
            # The parent of a left child is provisional (its right sibling is still empty); it is
            # stored only when complete, i.e. when this node is a right child.
            if position & 1 == 0:
                break
            node = hash_pair(self._levels[level - 1][position - 1], node)
            position >>= 1
            self._levels[level].append(node)
        return index

    def _node(self, level: int, position: int, count: int) -> bytes:
        """The node at (level, position) in the tree holding the first `count` leaves."""
        width = 1 << level
        first = position * width
        if first >= count:
            return ZERO_HASHES[level]
        if first + width <= count:
            return self._levels[level][position] if level < TREE_DEPTH else self._full(level, position)
        left = self._node(level - 1, 2 * position, count)
        right = self._node(level - 1, 2 * position + 1, count)
        return hash_pair(left, right)

    def _full(self, level: int, position: int) -> bytes:  # pragma: no cover - 2**32 leaves
        raise IndexOutOfRange("tree level out of range", level=level, position=position)

    def root_at(self, count: int) -> bytes:
        """Return the root of the tree as it was when it held `count` leaves."""
        if not 0 <= count <= self.count:
            raise IndexOutOfRange("no such tree size", count=count, leaves=self.count)
        node = self._node(TREE_DEPTH - 1, 0, count) if count else ZERO_HASHES[TREE_DEPTH - 1]
        right = self._node(TREE_DEPTH - 1, 1, count)
        return hash_pair(node, right)

    def root(self) -> bytes:
        """Return the current root."""
        return self.root_at(self.count)

    def branch(self, index: int, count: int | None = None) -> list[bytes]:
        """Return the 32 siblings proving leaf `index` in the tree of `count` leaves (default: now)."""
        size = self.count if count is None else count
        if not 0 <= index < size <= self.count:
            raise IndexOutOfRange("leaf not in tree", index=index, leaves=size)
        siblings = []
        position = index
        for level in range(TREE_DEPTH):
            siblings.append(self._node(level, position ^ 1, size))
            position >>= 1
        return siblings

    def leaf(self, index: int) -> bytes:
        """Return the leaf at `index`."""
        if not 0 <= index < self.count:
            raise IndexOutOfRange("leaf not in tree", index=index, leaves=self.count)
        return self._levels[0][index]
