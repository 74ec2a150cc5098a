"""`EvmFinalitySource`: the source Gateway's (root, count) at the chain's finalized block.

What an attestor signs must be final, and must not rest on one RPC endpoint's word: the
finalized block is the `finalized` tag (or `confirmations` below the head) as the *lowest* of
all configured endpoints reports it, and every endpoint must return the same block hash, count
and root at that block, read by block hash (EIP-1898) so a reorg between calls cannot mix two
chains. Any disagreement raises `EndpointsDisagree` and the attestor signs nothing this round.
"""

from __future__ import annotations

import logging

from hexbytes import HexBytes

from adapters.evm.config import EvmCompatibleChainConfig
from adapters.evm.rpc import EvmEndpoint, checksum_address, endpoints_for, gateway_abi
from relay.errors import RpcUnavailable, TransientError
from relay.metrics import RelayMetrics

log = logging.getLogger(__name__)


class EndpointsDisagree(TransientError):
    """The chain's RPC endpoints report different blocks or gateway state at the finalized height."""


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
