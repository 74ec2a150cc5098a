"""`EvmFinalitySource`: the source Gateway's (root, count) at the chain's finalized block.

What an attestor signs must be final, and must not rest on one RPC endpoint's word: the
finalized block is the `finalized` tag (or `confirmations` below the head) as the *lowest* of
all configured endpoints reports it, and every endpoint must return the same block hash, count
and root at that block, read by block hash (EIP-1898) so a reorg between calls cannot mix two
chains. Any disagreement raises `EndpointsDisagree` and the attestor signs nothing this round.

It is also a `relay.chains.TreeHistory`: `leaves(first, end)` reads the Gateway's `Dispatch` logs
at or below the same finalized block from every endpoint (they must agree), so the attestor can
check that a new root extends the tree it signed before. A leaf is the id in the log's first
topic and its position the nonce in the log's data, whether or not the message body decodes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from hexbytes import HexBytes

from adapters.evm.config import EvmCompatibleChainConfig
from adapters.evm.rpc import DISPATCH_TOPIC, EvmEndpoint, checksum_address, endpoints_for, gateway_abi
from relay.errors import PermanentError, RpcUnavailable, TransientError
from relay.metrics import RelayMetrics

log = logging.getLogger(__name__)


class EndpointsDisagree(TransientError):
    """The chain's RPC endpoints report different blocks or gateway state at the finalized height."""


class LeavesNotFound(PermanentError):
    """The Dispatch logs of some leaves are not at or above the chain's `start_block`."""


class EvmFinalitySource:
    """An attestor's view of what is final on one EVM source chain (`relay.chains.FinalitySource`)."""

    def __init__(
        self,
        chain: EvmCompatibleChainConfig,
        *,
        endpoints: list[EvmEndpoint] | None = None,
        metrics: RelayMetrics | None = None,
    ) -> None:
        self.chain = chain
        self.domain = chain.domain
        address = checksum_address(chain.gateway, "gateway address")
        self._address = address
        self.gateway = chain.gateway_bytes32()
        self._endpoints = endpoints or endpoints_for(chain, metrics)
        self._contracts = [e.web3.eth.contract(address=address, abi=gateway_abi()) for e in self._endpoints]
        self.last_finalized_block = -1
        self._last_state: tuple[bytes, int] | None = None
        self.metrics = metrics

    def finalized_block(self, endpoint: EvmEndpoint) -> int:
        """The endpoint's finalized block number: the tag, or `confirmations` below its head."""
        if self.chain.confirmations > 0:
            return max(endpoint.block_number() - self.chain.confirmations, 0)
        block = endpoint.block("finalized")
        if block is None:
            raise RpcUnavailable("endpoint has no finalized block", url=endpoint.url)
        return int(block["number"])

    def finalized_checkpoint_state(self) -> tuple[bytes, int] | None:
        """(root, count) of the source gateway's tree at the finalized block; None if empty."""
        height = min(self.finalized_block(endpoint) for endpoint in self._endpoints)
        if height == self.last_finalized_block:
            # Nothing new is final; a reorg below the finalized height would be a broken chain.
            return self._last_state
        block = self._endpoints[0].block(height)
        if block is None:
            raise EndpointsDisagree("finalized block vanished", height=height, url=self._endpoints[0].url)
        block_hash = bytes(block["hash"])
        states = [self._state_at(i, block_hash, height) for i in range(len(self._endpoints))]
        if any(state != states[0] for state in states[1:]):
            raise EndpointsDisagree(
                "RPC endpoints disagree on the gateway at the finalized block",
                height=height,
                states={
                    e.url: (s[0].hex() if s[0] else None, s[1])
                    for e, s in zip(self._endpoints, states, strict=True)
                },
            )
        root, count = states[0]
        self.last_finalized_block = height
        self._last_state = (root, count) if count else None
        return self._last_state

    def _state_at(self, index: int, block_hash: bytes, height: int) -> tuple[bytes, int]:
        endpoint, gateway = self._endpoints[index], self._contracts[index]
        at = HexBytes(block_hash)  # a 32-byte identifier: eth_call by block hash (EIP-1898)

        def read() -> tuple[bytes, int]:
            count = int(gateway.functions.count().call(block_identifier=at))
            if count == 0:
                return b"", 0
            root, index_ = gateway.functions.latestCheckpoint().call(block_identifier=at)
            if int(index_) != count - 1:
                raise EndpointsDisagree(
                    "gateway checkpoint index inconsistent with count",
                    count=count,
                    index=int(index_),
                    url=endpoint.url,
                )
            return bytes(root), count

        try:
            return endpoint.read("eth_call", read)
        except EndpointsDisagree:
            raise
        except Exception as error:
            # An endpoint that does not know the block hash has not seen this chain (yet).
            if isinstance(error, RpcUnavailable):
                raise
            raise EndpointsDisagree(
                "endpoint cannot read the gateway at the finalized block",
                url=endpoint.url,
                height=height,
                cause=str(error)[:200],
            ) from error

    # --- TreeHistory -----------------------------------------------------------------------------

    def leaves(self, first: int, end: int) -> list[bytes]:
        """Ids of leaves `first`..`end - 1` of the tree at the last finalized block read.

        Scans `Dispatch` logs backward from that block in windows of `max_block_range`, on every
        endpoint, until the log of nonce `first` is found (or `start_block` is passed: then
        `LeavesNotFound`). Endpoints that disagree raise `EndpointsDisagree` (retried next round).
        """
        if not 0 <= first <= end:
            raise ValueError("need 0 <= first <= end")
        if first == end:
            return []
        top = self.last_finalized_block
        if top < 0:
            raise LeavesNotFound("no finalized state read yet", first=first, end=end)
        found: dict[int, bytes] = {}
        floor = self.chain.start_block
        last = top
        while first not in found:
            if last < floor:
                raise LeavesNotFound(
                    "Dispatch logs of the leaves are not above start_block",
                    first=first,
                    end=end,
                    start_block=floor,
                )
            window_first = max(floor, last - self.chain.max_block_range + 1)
            for nonce, leaf in self._dispatches(window_first, last):
                if first <= nonce < end:
                    if found.get(nonce, leaf) != leaf:
                        raise EndpointsDisagree("two Dispatch logs claim one nonce", nonce=nonce)
                    found[nonce] = leaf
            last = window_first - 1
        if len(found) != end - first:
            raise EndpointsDisagree(
                "Dispatch logs skip nonces below the finalized block",
                first=first,
                end=end,
                missing=[n for n in range(first, end) if n not in found][:8],
            )
        return [found[n] for n in range(first, end)]

    def frontier(self) -> list[bytes]:
        """The frontier of the tree at the last finalized block read, rebuilt from all its leaves."""
        from relay.verify.merkle import IncrementalTree

        count = self._last_state[1] if self._last_state else 0
        tree = IncrementalTree()
        for leaf in self.leaves(0, count):
            tree.insert(leaf)
        return list(tree.frontier)

    def _dispatches(self, first: int, last: int) -> list[tuple[int, bytes]]:
        """(nonce, id) of the Gateway's Dispatch logs in blocks `first..last`; all endpoints agree."""
        answers = [self._dispatches_at(endpoint, first, last) for endpoint in self._endpoints]
        if any(answer != answers[0] for answer in answers[1:]):
            raise EndpointsDisagree(
                "RPC endpoints disagree on the gateway's Dispatch logs",
                first_block=first,
                last_block=last,
                counts={e.url: len(a) for e, a in zip(self._endpoints, answers, strict=True)},
            )
        return answers[0]

    def _dispatches_at(self, endpoint: EvmEndpoint, first: int, last: int) -> list[tuple[int, bytes]]:
        logs = endpoint.read_chain(
            "eth_getLogs",
            lambda: endpoint.web3.eth.get_logs(
                {
                    "address": self._address,
                    "topics": ["0x" + DISPATCH_TOPIC.hex()],
                    "fromBlock": first,
                    "toBlock": last,
                }
            ),
        )
        out = []
        for entry in logs:
            if entry.get("removed"):
                continue
            leaf = _dispatch_leaf(entry.get("topics") or [], bytes(entry.get("data") or b""))
            if leaf is None:
                # Not an event the Gateway's code can emit (wrong shape, id not the message's hash).
                log.warning(
                    "ignoring a malformed Dispatch-topic log",
                    extra={"url": endpoint.url, "block": entry.get("blockNumber")},
                )
                continue
            out.append(leaf)
        return sorted(out)


def _dispatch_leaf(topics: Sequence[bytes], data: bytes) -> tuple[int, bytes] | None:
    """(nonce, id) of a Gateway `Dispatch(id, destination, uint32 nonce, bytes message)` log, or None.

    The id must be the keccak256 of the message bytes and the nonce the one the message carries;
    the body itself need not decode (an oversized or odd body is still a leaf of the tree).
    """
    from relay.verify.hashing import keccak256

    if len(topics) < 2 or len(data) < 96:
        return None
    nonce = int.from_bytes(data[:32], "big")
    offset, length = int.from_bytes(data[32:64], "big"), int.from_bytes(data[64:96], "big")
    message = data[96 : 96 + length]
    if offset != 64 or len(message) != length or len(message) < 5 or nonce >= 2**32:
        return None
    leaf = bytes(topics[1])
    if keccak256(message) != leaf or int.from_bytes(message[1:5], "big") != nonce:
        return None
    return nonce, leaf
