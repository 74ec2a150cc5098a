"""The relayer's copy of each source gateway's Merkle tree, kept in memory and synced from the store.

Leaf index equals nonce: the tree holds the contiguous prefix of stored message ids from nonce 0.
The store is the truth; the tree is derived from it and can be rebuilt at any time (on start, and
whenever a reorg removed stored messages). It grows by `extend()` after new messages are stored,
and stops at the first missing nonce until that message is stored too. Readers (verification,
delivery threads) take a consistent view with `view()`; see docs/adr/0002-in-memory-tree.md. A
Dispatch whose message does not decode is a leaf too (a malformed leaf, stored under the id its log
names), so it never leaves a gap: docs/adr/0005-gapless-tree-and-source-quorum.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from relay.lifecycle import MessageState
from relay.store.base import Store
from relay.verify.merkle import MerkleTree

log = logging.getLogger("relay.relayer")


class OriginTree:
    """One origin's tree of message ids, derived from `store` (leaf index == nonce)."""

    def __init__(self, store: Store, domain: int, name: str = "") -> None:
        self._store = store
        self.domain = domain
        self.name = name or str(domain)
        self._lock = threading.RLock()
        self._tree = MerkleTree()

    @property
    def count(self) -> int:
        """How many leaves (from nonce 0) the tree holds."""
        with self._lock:
            return self._tree.count

    @contextmanager
    def view(self) -> Iterator[MerkleTree]:
        """The current tree, held still (no rebuild or extension) for the duration of the block."""
        with self._lock:
            yield self._tree

    def rebuild(self) -> None:
        """Replace the tree with the stored ids in nonce order, up to the first missing nonce."""
        leaves: list[bytes] = []
        for nonce, message_id in self._store.message_ids_by_nonce(self.domain):
            if nonce != len(leaves):
                log.warning(
                    "gap in the source's nonces: messages past it wait for the missing ones",
                    extra={"chain": self.name, "origin": self.domain, "missing_nonce": len(leaves)},
                )
                break
            leaves.append(message_id)
        with self._lock:
            self._tree = MerkleTree(leaves)

    def extend(self) -> None:
        """Append the stored ids that continue the tree (nonce == count), in order."""
        with self._lock:
            tree = self._tree
            for nonce, message_id in self._store.message_ids_by_nonce(self.domain, tree.count):
                if nonce != tree.count:
                    break
                tree.insert(message_id)

    def final_leaves(self) -> int:
        """How many leaves (from nonce 0) the relayer holds and knows to be final."""
        count = self.count
        lowest_observed = self._store.lowest_nonce(self.domain, MessageState.OBSERVED)
        return count if lowest_observed is None else min(count, lowest_observed)

    def branch(self, index: int, count: int) -> list[bytes]:
        """The Merkle branch of leaf `index` in the tree of the first `count` leaves."""
        with self._lock:
            return list(self._tree.branch(index, count))
