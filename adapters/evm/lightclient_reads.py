"""Keyless reads of a destination's `EthereumLightClient` of one origin (`relay.chains.lightclient.LightClientReader`).

The views and their names are fixed by the issue-13 decisions (`finalizedSlot`,
`latestExecutionBlockNumber`, `executionHeader(uint64)`, `currentPeriod`, `hasNextSyncCommittee`),
so their ABI is written here rather than read from the compiled artifact: the relayer needs no
contract build. The address comes from the destination chain's `light_client_origins`.
Reads go to the first endpoint under `CHAIN_READ`; a node that does not answer, or answers
something that does not decode, is `RpcUnavailable` (retried next pass, never guessed).
"""

from __future__ import annotations

from typing import Any

from web3 import exceptions as web3_errors

from adapters.evm.config import EvmCompatibleChainConfig
from adapters.evm.rpc import checksum_address, endpoints_for
from relay.chains.lightclient import StoredHeaders
from relay.errors import ConfigurationError, RpcUnavailable
from relay.metrics import RelayMetrics

ZERO_HASH = bytes(32)


def _view(name: str, outputs: list[str], inputs: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "stateMutability": "view",
        "inputs": [{"name": f"a{i}", "type": t} for i, t in enumerate(inputs or [])],
        "outputs": [{"name": f"r{i}", "type": t} for i, t in enumerate(outputs)],
    }


LIGHT_CLIENT_VIEWS_ABI = [
    _view("finalizedSlot", ["uint64"]),
    _view("latestExecutionBlockNumber", ["uint64"]),
    _view("executionHeader", ["bytes32", "bytes32"], ["uint64"]),
    _view("currentPeriod", ["uint64"]),
    _view("hasNextSyncCommittee", ["bool"]),
]


class EvmLightClientReader:
    """One destination chain's light client of `origin`, read without a key."""

    def __init__(
        self, chain: EvmCompatibleChainConfig, origin: int, metrics: RelayMetrics | None = None
    ) -> None:
        settings = chain.light_client_origins.get(origin)
        if settings is None:
            raise ConfigurationError(
                "no light client of this origin in the destination's light_client_origins",
                destination=chain.domain,
                origin=origin,
            )
        self.origin = origin
        self.endpoint = endpoints_for(chain, metrics)[0]
        self.address = checksum_address(settings.light_client, "light client address")
        self.contract = self.endpoint.web3.eth.contract(address=self.address, abi=LIGHT_CLIENT_VIEWS_ABI)

    def _read(self, name: str, *args: Any) -> Any:
        function = getattr(self.contract.functions, name)(*args)
        try:
            return self.endpoint.read("eth_call", function.call)
        except (web3_errors.Web3Exception, ValueError, OverflowError) as error:
            raise RpcUnavailable(
                "light client view did not answer", view=name, address=self.address, cause=str(error)[:200]
            ) from error

    def stored_headers(self) -> StoredHeaders:
        """The light client's latest execution block, finalized slot, period and next-committee flag."""
        return StoredHeaders(
            int(self._read("latestExecutionBlockNumber")),
            int(self._read("finalizedSlot")),
            int(self._read("currentPeriod")),
            bool(self._read("hasNextSyncCommittee")),
        )

    def execution_header(self, block_number: int) -> tuple[bytes, bytes] | None:
        """(block hash, receipts root) stored for `block_number`; None if not stored (zeros)."""
        block_hash, receipts_root = self._read("executionHeader", block_number)
        if bytes(block_hash) == ZERO_HASH:
            return None
        return bytes(block_hash), bytes(receipts_root)
