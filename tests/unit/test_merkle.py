"""The depth-32 Merkle tree against Hyperlane's vectors: every root and all 51 proofs."""

from __future__ import annotations

import pytest

from relay.errors import IndexOutOfRange, InvalidMerkleProof, MalformedEncoding
from relay.verify.hashing import keccak256
from relay.verify.merkle import ZERO_HASHES, IncrementalTree, MerkleTree, verify_branch
from tests.conftest import hex_bytes, load_vector

CASES = load_vector("hyperlane/merkle.json")


def _eip191(text: str) -> bytes:
    raw = text.encode()
    return keccak256(b"\x19Ethereum Signed Message:\n" + str(len(raw)).encode() + raw)


def test_vector_file_has_51_proofs() -> None:
    assert sum(len(case["proofs"]) for case in CASES) == 51


@pytest.mark.parametrize("case", CASES, ids=[c["testName"] for c in CASES])
def test_roots_and_every_proof(case: dict) -> None:
    tree, incremental = MerkleTree(), IncrementalTree()
    for text in case["leaves"]:
        leaf = _eip191(text)
        assert tree.insert(leaf) == incremental.insert(leaf)
    expected_root = hex_bytes(case["expectedRoot"])
    assert tree.root() == expected_root
    assert incremental.root() == expected_root
    for proof in case["proofs"]:
        index, leaf = proof["index"], hex_bytes(proof["leaf"])
        path = [hex_bytes(node) for node in proof["path"]]
        assert tree.leaf(index) == leaf
        assert tree.branch(index) == path
        verify_branch(leaf, path, index, expected_root)


def test_single_proof_vector() -> None:
    data = load_vector("hyperlane/proof.json")
    proof = data["proof"]
    path = [hex_bytes(node) for node in proof["path"]]
    verify_branch(hex_bytes(proof["leaf"]), path, proof["index"], hex_bytes(data["root"]))


def test_empty_tree_root_is_the_zero_subtree() -> None:
    assert MerkleTree().root() == ZERO_HASHES[32]
    assert IncrementalTree().root() == ZERO_HASHES[32]


def test_root_at_earlier_size_serves_old_checkpoints() -> None:
    leaves = [keccak256(bytes([i])) for i in range(37)]
    tree = MerkleTree(leaves)
    for size in (1, 2, 5, 16, 17, 36, 37):
        assert tree.root_at(size) == MerkleTree(leaves[:size]).root()
        for index in (0, size // 2, size - 1):
            verify_branch(leaves[index], tree.branch(index, size), index, tree.root_at(size))


class TestRejections:
    tree = MerkleTree([keccak256(bytes([i])) for i in range(9)])

    def _proof(self) -> tuple[bytes, list[bytes], int, bytes]:
        return self.tree.leaf(5), self.tree.branch(5), 5, self.tree.root()

    def test_flipped_leaf_bit(self) -> None:
        leaf, branch, index, root = self._proof()
        with pytest.raises(InvalidMerkleProof) as caught:
            verify_branch(bytes([leaf[0] ^ 1]) + leaf[1:], branch, index, root)
        assert caught.value.index == 5

    @pytest.mark.parametrize("level", [0, 3, 31])
    def test_flipped_sibling(self, level: int) -> None:
        leaf, branch, index, root = self._proof()
        branch[level] = bytes([branch[level][0] ^ 0x80]) + branch[level][1:]
        with pytest.raises(InvalidMerkleProof):
            verify_branch(leaf, branch, index, root)

    def test_wrong_index_and_root(self) -> None:
        leaf, branch, index, root = self._proof()
        with pytest.raises(InvalidMerkleProof):
            verify_branch(leaf, branch, 4, root)
        with pytest.raises(InvalidMerkleProof):
            verify_branch(leaf, branch, index, keccak256(root))

    def test_malformed_inputs(self) -> None:
        leaf, branch, index, root = self._proof()
        with pytest.raises(MalformedEncoding):
            verify_branch(leaf, branch[:31], index, root)
        with pytest.raises(MalformedEncoding):
            verify_branch(leaf[:31], branch, index, root)
        with pytest.raises(IndexOutOfRange):
            verify_branch(leaf, branch, 2**32, root)
        with pytest.raises(IndexOutOfRange):
            self.tree.branch(9)
