"""What an attestor in `ethereum` mode signs: a Merkle root built only from proven messages.

`ProvenTreeFinalitySource` implements `relay.chains.FinalitySource` (and `TreeHistory`) on top of
`EthereumFinalitySource`: every poll syncs the light client from its trusted checkpoint, proves the
Gateway's Dispatch logs of newly finalized blocks with receipt proofs, and appends their ids to its
own copy of the Gateway's incremental tree, in nonce order. The (root, count) it reports is
therefore never read from an RPC endpoint: a lying node can stall it, not make it sign.

Newly finalized blocks `[next_block, F]` are proven by one walk down the parent hashes from the
finalized block F (a `HeaderWalk`), at most `headers_per_poll` headers per step and resumable, so
any distance works (the old in-memory window of 8,192 ancestors made a start or a restart more
than 8,192 blocks behind the finalized block fail for ever). Only blocks whose proven bloom may
hold a Dispatch are kept for their receipts. When the walk reaches the bottom, the chain must join
the last block proven before (its hash), or the walk is refused as `InvalidHeaderChain`.

The tree starts either empty at `start_block` (which must be at or before the Gateway's
deployment: a gap in the nonces raises `MissingMessages` instead of signing a wrong root) or from
an enrolled checkpoint (`EnrolledCheckpoint`: the Gateway's count, root and frontier after a
finalized block, which the operator vouches for like the trusted block root; the frontier must
rebuild the root). With a `state_file` the proven state survives restarts (`adapters.ethereum.state`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from adapters.ethereum.source import EthereumFinalitySource, ProvenBlock
from adapters.ethereum.state import (
    RECENT_LEAVES,
    HeaderWalk,
    ProvenState,
    StateIdentity,
    WalkBlock,
    load_state,
    save_state,
)
from relay.errors import ConfigurationError, InvalidProof, PermanentError
from relay.verify.ethereum.errors import InvalidHeaderChain
from relay.verify.merkle import IncrementalTree
from relay.verify.message import address_to_bytes32

ZERO_HASH = b"\x00" * 32


class MissingMessages(InvalidProof):
    """A proven message's nonce is not the next leaf: earlier messages were never proven."""


class LeavesUnavailable(PermanentError):
    """Leaves asked for are older than the ids this source keeps (`RECENT_LEAVES`)."""


@dataclass(frozen=True)
class EnrolledCheckpoint:
    """The Gateway's tree after finalized execution block `block`: where proving starts instead of nonce 0."""

    block: int
    count: int
    root: bytes
    frontier: tuple[bytes, ...]

    def tree(self) -> IncrementalTree:
        """The tree, checked: its frontier must rebuild its root."""
        tree = IncrementalTree.from_frontier(self.count, self.frontier)
        if tree.root() != self.root:
            raise ConfigurationError(
                "light_client.checkpoint: the frontier does not give the root; read count, root and the "
                "32 branch slots of the Gateway at the same block",
                block=self.block,
                count=self.count,
                root=self.root,
                computed=tree.root(),
            )
        return tree


class ProvenTreeFinalitySource:
    """An attestor's finality source that trusts nothing but its light client."""

    def __init__(
        self,
        source: EthereumFinalitySource,
        *,
        domain: int,
        start_block: int,
        state_file: str | None = None,
        checkpoint: EnrolledCheckpoint | None = None,
        headers_per_poll: int = 2048,
    ) -> None:
        self.source = source
        self.domain = domain
        self.gateway = address_to_bytes32(source.gateway)
        self.headers_per_poll = headers_per_poll
        self.finalized_block = -1
        self.state_path = Path(state_file) if state_file else None
        network = source.network
        self._identity = StateIdentity(network.name, network.genesis_validators_root, source.gateway, domain)
        loaded = load_state(self.state_path, self._identity, network) if self.state_path else None
        if loaded is not None:
            self.state = loaded
            if loaded.store is not None:
                source.restore(loaded.store)
        elif checkpoint is not None:
            tree = checkpoint.tree()
            self.state = ProvenState(None, tree, tree.count, [], next_block=checkpoint.block + 1)
        else:
            self.state = ProvenState(None, IncrementalTree(), 0, [], next_block=start_block)

    @property
    def next_block(self) -> int:
        """The first execution block not proven yet."""
        return self.state.next_block

    @property
    def proven_ids(self) -> list[bytes]:
        """The ids proven most recently (up to `RECENT_LEAVES`), oldest first."""
        return list(self.state.recent)

    # --- proving ----------------------------------------------------------------------------------

    def poll_once(self, *, sync: bool = True) -> int:
        """Sync, then walk (a bounded step) and prove the newly finalized blocks; return messages added."""
        if sync:
            self.source.sync()
        client = self.source.light_client
        self.state.store = client.store
        finalized = client.finalized_header.execution
        self.finalized_block = finalized.block_number
        state = self.state
        if state.walk is None:
            if finalized.block_hash == ZERO_HASH or finalized.block_number < state.next_block:
                self._save()
                return 0
            top = ProvenBlock(
                finalized.block_number,
                finalized.block_hash,
                finalized.parent_hash,
                finalized.receipts_root,
                finalized.logs_bloom,
            )
            state.walk = HeaderWalk(
                top=top.number,
                top_hash=top.block_hash,
                bottom=state.next_block,
                next_number=top.number - 1,
                expected_hash=top.parent_hash,
                candidates=[_walk_block(top)] if self.source.may_contain_dispatch(top) else [],
            )
        walk = state.walk
        self._walk(walk)
        if not walk.done:
            self._save()
            return 0
        added = self._prove_walk(walk)
        self._save()
        return added

    def _walk(self, walk: HeaderWalk) -> None:
        for _ in range(self.headers_per_poll):
            if walk.done:
                return
            block = self.source.fetch_proven_header(walk.next_number, walk.expected_hash)
            if self.source.may_contain_dispatch(block):
                walk.candidates.append(_walk_block(block))
            walk.expected_hash = block.parent_hash
            walk.next_number -= 1

    def _prove_walk(self, walk: HeaderWalk) -> int:
        state = self.state
        last = state.last_block
        if last is not None and last[0] == walk.bottom - 1 and walk.expected_hash != last[1]:
            state.walk = None  # walk again next time: the node may have lied about a header's parent
            raise InvalidHeaderChain(
                "finalized chain does not descend from the last proven block",
                number=last[0],
                proven_hash=last[1],
                parent_hash=walk.expected_hash,
            )
        tree = state.tree.copy()
        new_ids: list[bytes] = []
        for candidate in sorted(walk.candidates, key=lambda c: c.number):
            block = ProvenBlock(
                candidate.number,
                candidate.block_hash,
                ZERO_HASH,
                candidate.receipts_root,
                candidate.logs_bloom,
            )
            for proven in self.source.prove_messages_in(block):
                message = proven.message
                if message.origin != self.domain:
                    continue  # proven, but not from the origin this attestor speaks for
                if message.nonce != tree.count:
                    raise MissingMessages(
                        "proven message is not the next leaf of the gateway's tree",
                        nonce=message.nonce,
                        expected=tree.count,
                        block=proven.block_number,
                    )
                # A malformed leaf (its message does not decode) is a leaf all the same: no gap.
                tree.insert(proven.id)
                new_ids.append(proven.id)
        # Commit only a whole walk: a failure above leaves the tree as it was.
        recent = state.recent + new_ids
        drop = max(0, len(recent) - RECENT_LEAVES)
        state.tree, state.recent, state.recent_first = tree, recent[drop:], state.recent_first + drop
        state.last_block = (walk.top, walk.top_hash)
        state.next_block = walk.top + 1
        state.walk = None
        return len(new_ids)

    def _save(self) -> None:
        if self.state_path is not None:
            save_state(self.state_path, self.state, self._identity, self.source.network)

    # --- FinalitySource and TreeHistory ----------------------------------------------------------------

    def finalized_checkpoint_state(self) -> tuple[bytes, int] | None:
        """(root, count) over every message proven so far, catching up on finalized blocks first."""
        sync = True
        while True:
            before = (self.state.next_block, self.state.walk.next_number if self.state.walk else None)
            self.poll_once(sync=sync)
            sync = False
            after = (self.state.next_block, self.state.walk.next_number if self.state.walk else None)
            caught_up = self.state.walk is None and self.state.next_block > self.finalized_block
            if caught_up or after == before:
                break
        if self.state.tree.count == 0:
            return None
        return self.state.tree.root(), self.state.tree.count

    def leaves(self, first: int, end: int) -> Sequence[bytes]:
        """Ids of leaves `first`..`end - 1` of the proven tree, from the most recent ones kept."""
        state = self.state
        if not state.recent_first <= first <= end <= state.tree.count:
            raise LeavesUnavailable(
                "leaves are not among the recent ids kept",
                first=first,
                end=end,
                kept_from=state.recent_first,
                count=state.tree.count,
            )
        return state.recent[first - state.recent_first : end - state.recent_first]

    def frontier(self) -> Sequence[bytes]:
        """The proven tree's frontier."""
        return self.state.tree.frontier


def _walk_block(block: ProvenBlock) -> WalkBlock:
    return WalkBlock(block.number, block.block_hash, block.receipts_root, block.logs_bloom)
