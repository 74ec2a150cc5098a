"""OriginTree: the contiguous prefix of stored ids from nonce 0, derived from the store."""

from __future__ import annotations

import threading

from relay.relayer.tree import OriginTree
from relay.store import Store
from relay.verify.merkle import MerkleTree, verify_branch

from .helpers import ORIGIN, make_message, observe

MESSAGES = [make_message(n) for n in range(6)]
IDS = [m.id for m in MESSAGES]


def store_nonces(store: Store, *nonces: int) -> None:
    store.insert_observed([observe(MESSAGES[n]) for n in nonces], 1.0)


def test_rebuild_stops_at_the_first_missing_nonce(store: Store) -> None:
    store_nonces(store, 0, 1, 3, 4)
    tree = OriginTree(store, ORIGIN)
    tree.rebuild()
    assert tree.count == 2
    with tree.view() as view:
        assert view.root() == MerkleTree(IDS[:2]).root()


def test_extend_continues_once_the_gap_is_filled(store: Store) -> None:
    store_nonces(store, 0, 1, 3)
    tree = OriginTree(store, ORIGIN)
    tree.rebuild()
    store_nonces(store, 4)
    tree.extend()
    assert tree.count == 2  # nonce 2 is still missing: 3 and 4 wait
    store_nonces(store, 2)
    tree.extend()
    assert tree.count == 5
    with tree.view() as view:
        assert view.root() == MerkleTree(IDS[:5]).root()


def test_extend_is_idempotent_and_matches_a_rebuild(store: Store) -> None:
    tree = OriginTree(store, ORIGIN)
    store_nonces(store, 0, 1)
    tree.extend()
    tree.extend()
    store_nonces(store, 2)
    tree.extend()
    rebuilt = OriginTree(store, ORIGIN)
    rebuilt.rebuild()
    assert tree.count == rebuilt.count == 3
    with tree.view() as a, rebuilt.view() as b:
        assert a.root() == b.root() == MerkleTree(IDS[:3]).root()


def test_only_the_own_origin_is_in_the_tree(store: Store) -> None:
    store.insert_observed([observe(make_message(0, origin=7)), observe(MESSAGES[0])], 1.0)
    tree = OriginTree(store, ORIGIN)
    tree.rebuild()
    assert tree.count == 1
    with tree.view() as view:
        assert view.leaf(0) == IDS[0]


def test_rebuild_drops_leaves_whose_messages_were_orphaned(store: Store) -> None:
    store_nonces(store, 0, 1, 2)
    tree = OriginTree(store, ORIGIN)
    tree.rebuild()
    assert tree.count == 3
    removed, refused = store.remove_orphans([IDS[1]])
    assert removed == [IDS[1]] and refused == []
    tree.rebuild()
    assert tree.count == 1


def test_final_leaves_is_capped_by_the_lowest_observed_nonce(store: Store) -> None:
    store_nonces(store, 0, 1, 2, 3)  # blocks 1..4
    tree = OriginTree(store, ORIGIN)
    tree.rebuild()
    assert tree.count == 4 and tree.final_leaves() == 0
    store.mark_final(ORIGIN, 2, 2.0)  # nonces 0 and 1
    assert tree.final_leaves() == 2
    store.mark_final(ORIGIN, 4, 3.0)
    assert tree.final_leaves() == 4


def test_final_leaves_never_exceeds_the_tree(store: Store) -> None:
    store_nonces(store, 0, 1, 3)
    store.mark_final(ORIGIN, 10, 2.0)  # everything stored is FINAL, but nonce 2 is missing
    tree = OriginTree(store, ORIGIN)
    tree.rebuild()
    assert tree.final_leaves() == 2


def test_branch_proves_a_leaf_under_an_earlier_root(store: Store) -> None:
    store_nonces(store, 0, 1, 2, 3, 4)
    tree = OriginTree(store, ORIGIN)
    tree.rebuild()
    branch = tree.branch(1, 3)
    verify_branch(IDS[1], branch, 1, MerkleTree(IDS[:3]).root())


def test_a_view_holds_the_tree_still(store: Store) -> None:
    store_nonces(store, 0)
    tree = OriginTree(store, ORIGIN)
    tree.rebuild()
    store_nonces(store, 1)
    extender = threading.Thread(target=tree.extend)
    with tree.view() as view:
        extender.start()
        extender.join(timeout=0.1)
        assert extender.is_alive(), "extend() ran while a view was held"
        assert view.count == 1
    extender.join(timeout=5)
    assert tree.count == 2
