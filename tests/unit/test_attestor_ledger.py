"""The attestor never signs two roots for one index, nor a root off the tree it signed, across restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relay.errors import ConfigurationError
from relay.roles.attestor import AttestorIdentity, CheckpointLedger, FinalityConflict
from relay.roles.ledger import InconsistentTreeSource, NonExtendingRoot
from relay.verify.bls import get_backend
from relay.verify.committee import Checkpoint, sign_checkpoint
from relay.verify.merkle import IncrementalTree, MerkleTree

BLS = get_backend("blst")
SECRET = 424242
IDENTITY = AttestorIdentity(
    7, b"\x01" * 32, 1, 0, BLS.secret_to_public_key(SECRET), BLS.prove_possession(SECRET)
)
ROOT_A, ROOT_B, ROOT_C = b"\xaa" * 32, b"\xbb" * 32, b"\xcc" * 32


def ledger(log: Path | None) -> CheckpointLedger:
    return CheckpointLedger(IDENTITY, SECRET, BLS, history=2, signed_log=str(log) if log else None)


def test_signs_each_new_final_state_once() -> None:
    book = ledger(None)
    first = book.apply_final_state(ROOT_A, 3)
    assert first is not None and first.checkpoint.index == 2
    assert first.signature == sign_checkpoint(SECRET, Checkpoint(7, b"\x01" * 32, 1, ROOT_A, 2), BLS)
    assert book.apply_final_state(ROOT_A, 3) is None  # nothing new
    assert book.apply_final_state(ROOT_B, 5) is not None


def test_a_changed_root_at_a_signed_index_is_refused_even_beyond_the_kept_history() -> None:
    book = ledger(None)
    for count, root in ((1, ROOT_A), (2, ROOT_B), (3, ROOT_C)):  # history=2: index 0 falls out of the deque
        book.apply_final_state(root, count)
    with pytest.raises(FinalityConflict):
        book.apply_final_state(ROOT_B, 1)


def test_the_signed_log_survives_a_restart(tmp_path: Path) -> None:
    log = tmp_path / "signed.jsonl"
    book = ledger(log)
    book.apply_final_state(ROOT_A, 4)
    assert [json.loads(line)["index"] for line in log.read_text().splitlines()] == [3]
    restarted = ledger(log)
    with pytest.raises(FinalityConflict) as caught:
        restarted.apply_final_state(ROOT_B, 4)  # the same index, another root: equivocation refused
    assert caught.value.index == 3
    again = restarted.apply_final_state(ROOT_A, 4)  # the same root again is fine
    assert again is not None and again.checkpoint.root == ROOT_A
    assert len(log.read_text().splitlines()) == 1  # not recorded twice


def test_a_corrupt_or_self_contradicting_log_stops_the_attestor(tmp_path: Path) -> None:
    log = tmp_path / "signed.jsonl"
    log.write_text("not json\n")
    with pytest.raises(ConfigurationError, match="corrupt"):
        ledger(log)
    entry = {"origin": 7, "epoch": 1, "index": 3}
    log.write_text(
        json.dumps({**entry, "root": ROOT_A.hex()})
        + "\n"
        + json.dumps({**entry, "root": ROOT_B.hex()})
        + "\n"
    )
    with pytest.raises(FinalityConflict):
        ledger(log)
    # Entries of another origin or epoch are not this identity's concern.
    log.write_text(json.dumps({"origin": 8, "epoch": 1, "index": 3, "root": ROOT_B.hex()}) + "\n")
    assert ledger(log).apply_final_state(ROOT_A, 4) is not None


# --- extension: a new root must be the signed tree plus new leaves ---------------------------------


class History:
    """A finality source's tree history over a list of leaves (a fake of `relay.chains.TreeHistory`)."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.tree_leaves = list(leaves)

    def state(self, count: int) -> tuple[bytes, int]:
        return MerkleTree(self.tree_leaves[:count]).root(), count

    def leaves(self, first: int, end: int) -> list[bytes]:
        return self.tree_leaves[first:end]

    def frontier(self) -> list[bytes]:
        tree = IncrementalTree()
        for leaf in self.tree_leaves:
            tree.insert(leaf)
        return list(tree.frontier)


LEAVES = [bytes([i]) * 32 for i in range(1, 9)]


def test_a_root_that_extends_the_signed_tree_is_signed(tmp_path: Path) -> None:
    history = History(LEAVES[:3])
    book = ledger(tmp_path / "signed.jsonl")
    assert book.apply_final_state(*history.state(3), history) is not None
    assert book.signed_tree_count == 3
    history.tree_leaves = LEAVES[:7]
    signed = book.apply_final_state(*history.state(7), history)
    assert signed is not None and signed.checkpoint.index == 6
    assert json.loads((tmp_path / "signed.jsonl").read_text().splitlines()[-1])["frontier"]


@pytest.mark.parametrize("rewrite", ["changed leaf below", "changed new leaf is fine", "shorter leaves"])
def test_a_rewritten_history_halts_signing_across_a_restart(tmp_path: Path, rewrite: str) -> None:
    log = tmp_path / "signed.jsonl"
    original = History(LEAVES[:4])
    ledger(log).apply_final_state(*original.state(4), original)
    restarted = ledger(log)  # the frontier of the signed tree comes back from the log
    if rewrite == "changed leaf below":
        # Leaf 2 (already signed) replaced: the new tree of 6 leaves does not contain the signed one.
        forged = History([*LEAVES[:2], b"\xee" * 32, LEAVES[3], *LEAVES[4:6]])
        with pytest.raises(NonExtendingRoot) as caught:
            restarted.apply_final_state(*forged.state(6), forged)
        assert caught.value.signed_count == 4
        assert restarted.last_signed_index == -1
    elif rewrite == "changed new leaf is fine":
        honest = History([*LEAVES[:4], b"\xee" * 32, LEAVES[5]])
        assert restarted.apply_final_state(*honest.state(6), honest) is not None
    else:
        # The source's leaves disagree with its own root: nothing signed, retried (not a halt).
        lying = History(LEAVES[:6])
        root, _ = lying.state(6)
        lying.tree_leaves = LEAVES[:5]
        with pytest.raises(InconsistentTreeSource):
            restarted.apply_final_state(root, 6, lying)


def test_a_source_whose_leaves_hide_a_rewrite_still_fails_the_root(tmp_path: Path) -> None:
    """The worst lie: the source shows leaves that extend the old tree, but its root is of another history."""
    book = ledger(None)
    history = History(LEAVES[:2])
    book.apply_final_state(*history.state(2), history)
    other_root = MerkleTree([b"\xee" * 32, *LEAVES[1:5]]).root()
    history.tree_leaves = LEAVES[:5]
    with pytest.raises(NonExtendingRoot):
        book.apply_final_state(other_root, 5, history)
    # The same size with another root than the signed tree: also a conflict.
    with pytest.raises(FinalityConflict):
        book.apply_final_state(MerkleTree([LEAVES[0], b"\xee" * 32]).root(), 2, history)


def test_a_first_frontier_that_does_not_give_the_root_is_refused() -> None:
    history = History(LEAVES[:3])
    with pytest.raises(InconsistentTreeSource):
        ledger(None).apply_final_state(ROOT_A, 3, history)


def test_an_older_state_signs_nothing_and_a_corrupt_frontier_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "signed.jsonl"
    history = History(LEAVES[:5])
    ledger(log).apply_final_state(*history.state(5), history)
    restarted = ledger(log)
    assert restarted.apply_final_state(*history.state(3), history) is None  # a lagging read
    entry = json.loads(log.read_text())
    entry["frontier"][0] = "11" * 32
    log.write_text(json.dumps(entry) + "\n")
    with pytest.raises(ConfigurationError, match="frontier does not give its root"):
        ledger(log)
