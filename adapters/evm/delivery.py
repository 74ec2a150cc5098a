"""Whether messages were delivered on an EVM destination: the Gateway's `delivered(origin, nonce)`.

Shared by the submitter (which asks before it pays for a delivery) and the relayer's read-only
`EvmDeliveryReader` (a `relay.chains.DeliveryReader`), which confirms a submitter's "delivered"
on the chain itself and finds parked messages that someone else delivered. It holds no key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi import encode as abi_encode

from adapters.evm.calldata import DELIVERED_SELECTOR
from adapters.evm.config import EvmCompatibleChainConfig
from adapters.evm.fees import ChainRead
from adapters.evm.rpc import EvmEndpoint, checksum_address, endpoints_for
from relay import errors
from relay.metrics import RelayMetrics

MAX_KEYS_PER_REQUEST = 500  # eth_calls in one JSON-RPC batch (nodes cap batch sizes)


def read_delivered(
    endpoint: EvmEndpoint, gateway: str, keys: Sequence[tuple[int, int]], read: ChainRead
) -> list[bool]:
    """`delivered(origin, nonce)` of `gateway` for each key, in order, in JSON-RPC batches.

    `read(method, operation)` runs each batch under the caller's retry policy. A malformed or
    partial answer is `RpcUnavailable` (retried): a flag is never guessed.
    """
    flags: list[bool] = []
    for start in range(0, len(keys), MAX_KEYS_PER_REQUEST):
        chunk = keys[start : start + MAX_KEYS_PER_REQUEST]

        def read_chunk(chunk: Sequence[tuple[int, int]] = chunk) -> list[bool]:
            return _read_batch(endpoint, gateway, chunk)

        flags.extend(read("eth_call", read_chunk))
    return flags


def _read_batch(endpoint: EvmEndpoint, gateway: str, keys: Sequence[tuple[int, int]]) -> list[bool]:
    # Calldata by hand and one raw JSON-RPC batch: web3's contract layer and request middleware
    # cost milliseconds of Python per call, seconds for a large batch.
    requests = [
        (
            "eth_call",
            [
                {
                    "to": gateway,
                    "data": "0x"
                    + (DELIVERED_SELECTOR + abi_encode(["uint32", "uint32"], [origin, nonce])).hex(),
                },
                "latest",
            ],
        )
        for origin, nonce in keys
    ]
    provider: Any = endpoint.web3.provider
    responses = provider.make_batch_request(requests)
    if not isinstance(responses, list) or len(responses) != len(keys):
        raise errors.RpcUnavailable("malformed batch answer to eth_call", answer=str(responses)[:200])
    flags = []
    for response in responses:  # web3 orders a batch's answers by request id
        if not isinstance(response, dict) or "error" in response or "result" not in response:
            error = response.get("error") if isinstance(response, dict) else response
            raise errors.RpcUnavailable("eth_call failed in a batch", error=str(error)[:200])
        try:
            flags.append(int(str(response["result"]), 16) != 0)
        except ValueError as error:
            raise errors.RpcUnavailable(
                "eth_call answered a non-hex result", result=str(response["result"])[:80]
            ) from error
    return flags


class EvmDeliveryReader:
    """The relayer's read-only view of one EVM destination Gateway (`relay.chains.DeliveryReader`).

    Reads go to the first configured endpoint under `CHAIN_READ`; a node that does not answer is
    `RpcUnavailable`, and the caller treats the delivery as not (yet) confirmed.
    """

    def __init__(self, chain: EvmCompatibleChainConfig, metrics: RelayMetrics | None = None) -> None:
        self.domain = chain.domain
        self.endpoint = endpoints_for(chain, metrics)[0]
        self.gateway = checksum_address(chain.gateway, "gateway address")

    def delivered(self, keys: Sequence[tuple[int, int]]) -> list[bool]:
        """Whether each (origin, nonce) is marked delivered by the Gateway at the latest block."""
        if not keys:
            return []
        return read_delivered(self.endpoint, self.gateway, keys, self.endpoint.read)
