"""What an attestor in `ethereum` mode signs: a Merkle root built only from proven messages.

`ProvenTreeFinalitySource` implements `relay.chains.FinalitySource` on top of
`EthereumFinalitySource`: every poll syncs the light client from its trusted checkpoint, proves the
Gateway's Dispatch logs of newly finalized blocks with receipt proofs, and appends their ids to its
own copy of the Gateway's incremental tree, in nonce order. The (root, count) it reports is
therefore never read from an RPC endpoint: a lying node can stall it, not make it sign.

The tree must see every message from nonce 0, so `start_block` must be at or before the Gateway's
deployment; a gap in the nonces raises `MissingMessages` instead of signing a wrong root.
"""

from __future__ import annotations

from adapters.ethereum.source import EthereumFinalitySource
from relay.errors import InvalidProof
from relay.verify.merkle import IncrementalTree
from relay.verify.message import address_to_bytes32


class MissingMessages(InvalidProof):
    """A proven message's nonce is not the next leaf: earlier messages were never proven."""


class ProvenTreeFinalitySource:
    """An attestor's finality source that trusts nothing but its light client."""

    def __init__(self, source: EthereumFinalitySource, *, domain: int, start_block: int) -> None:
        self.source = source
        self.domain = domain
        self.gateway = address_to_bytes32(source.gateway)
        self.next_block = start_block
        self.finalized_block = -1
        self._tree = IncrementalTree()
        self.proven_ids: list[bytes] = []

    def poll_once(self) -> int:
        """Prove the next range of finalized blocks; return how many messages were added."""
        result = self.source.poll(self.next_block)
        added = 0
        for proven in result.messages:
            message = proven.message
            if message.origin != self.domain:
                continue  # proven, but not from the origin this attestor speaks for
            if message.nonce != self._tree.count:
                raise MissingMessages(
                    "proven message is not the next leaf of the gateway's tree",
                    nonce=message.nonce,
                    expected=self._tree.count,
                    block=proven.block_number,
                )
            # A malformed leaf (its message does not decode) is a leaf all the same: no gap.
            self._tree.insert(proven.id)
            self.proven_ids.append(proven.id)
            added += 1
        self.next_block = result.next_block
        self.finalized_block = result.finalized_block_number
        return added

    def finalized_checkpoint_state(self) -> tuple[bytes, int] | None:
        """(root, count) over every message proven so far, catching up on finalized blocks first."""
        while True:
            before = self.next_block
            self.poll_once()
            if self.next_block == before or self.next_block > self.finalized_block:
                break
        if self._tree.count == 0:
            return None
        return self._tree.root(), self._tree.count
