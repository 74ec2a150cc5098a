"""The relayer's keyless view of EVM gas economics: payments on a source, prices on a destination.

`EvmPaymentReader` (a `relay.chains.PaymentReader`) reads the source Gateway's `gasPaid(id)` for
many ids in one JSON-RPC batch of `eth_call`s, on demand: a top-up (`payForGas`) is seen by the
next read. `EvmGasMarketReader` (a `relay.chains.GasMarketReader`) reads `eth_gasPrice` and the
latest block's gas limit. Reads run under `CHAIN_READ`; a node that does not answer, or answers
something malformed, is `RpcUnavailable` (a payment is never guessed). Payments are read from every
configured source endpoint, and each id counts the least any of them reports (at least the source's
`rpc_quorum` must answer): one lying endpoint cannot make the operator pay for an unpaid message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from adapters.evm.config import EvmCompatibleChainConfig
from adapters.evm.rpc import EvmEndpoint, checksum_address, endpoints_for
from relay import errors
from relay.metrics import RelayMetrics
from relay.verify.hashing import keccak256

log = logging.getLogger(__name__)

GAS_PAID_SELECTOR = keccak256(b"gasPaid(bytes32)")[:4]
MIN_BLOCK_GAS_LIMIT = 5_000_000  # below any chain the relay can deliver to (a batch of one needs ~300k+)
MAX_BLOCK_GAS_LIMIT = 2_000_000_000
MAX_IDS_PER_REQUEST = 500  # eth_calls in one JSON-RPC batch (nodes cap batch sizes)


def decode_gas_paid(result: object) -> tuple[int, int]:
    """(gasLimit, payment) from the hex ABI answer of `gasPaid`; `RpcUnavailable` if malformed."""
    text = str(result)
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError as error:
        raise errors.RpcUnavailable("gasPaid answered a non-hex result", result=text[:80]) from error
    if len(raw) != 64:
        raise errors.RpcUnavailable("gasPaid answered a result of the wrong length", length=len(raw))
    return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")


def _read_batch(endpoint: EvmEndpoint, gateway: str, ids: Sequence[bytes]) -> list[tuple[int, int]]:
    requests = [
        ("eth_call", [{"to": gateway, "data": "0x" + (GAS_PAID_SELECTOR + bytes(i)).hex()}, "latest"])
        for i in ids
    ]
    provider: Any = endpoint.web3.provider
    responses = provider.make_batch_request(requests)
    if not isinstance(responses, list) or len(responses) != len(ids):
        raise errors.RpcUnavailable("malformed batch answer to eth_call", answer=str(responses)[:200])
    paid = []
    for response in responses:
        if not isinstance(response, dict) or "error" in response or "result" not in response:
            error = response.get("error") if isinstance(response, dict) else response
            raise errors.RpcUnavailable("eth_call failed in a batch", error=str(error)[:200])
        paid.append(decode_gas_paid(response["result"]))
    return paid


class EvmPaymentReader:
    """`gasPaid(id)` of one EVM source Gateway (`relay.chains.PaymentReader`)."""

    def __init__(self, chain: EvmCompatibleChainConfig, metrics: RelayMetrics | None = None) -> None:
        self.domain = chain.domain
        self.chain_name = chain.name
        self.metrics = metrics
        self.endpoints = endpoints_for(chain, metrics)
        self.quorum = chain.source_quorum()
        self.gateway = checksum_address(chain.gateway, "gateway address")

    def gas_paid(self, ids: Sequence[bytes]) -> list[tuple[int, int]]:
        """(gas limit, payment in wei) paid for each id, in order; (0, 0) where nothing was paid."""
        for message_id in ids:
            if len(message_id) != 32:
                raise ValueError("message ids are 32 bytes")
        answers: list[list[tuple[int, int]]] = []
        failure: errors.RpcUnavailable | None = None
        for endpoint in self.endpoints:
            try:
                answers.append(self._read_all(endpoint, ids))
            except errors.RpcUnavailable as error:
                failure = error
        if len(answers) < self.quorum:
            raise errors.RpcUnavailable(
                "too few source endpoints answered gasPaid",
                answered=len(answers),
                quorum=self.quorum,
                cause=str(failure)[:200],
            )
        if any(answer != answers[0] for answer in answers[1:]):
            # Endpoints differ (one lags a top-up, or lies): counted and logged, never resolved upward.
            if self.metrics is not None:
                self.metrics.source_disagreements.labels(self.chain_name, "gasPaid").inc()
            log.warning(
                "source endpoints disagree on gasPaid; the least is used", extra={"chain": self.chain_name}
            )
        # The least any endpoint reports: a lying endpoint can only hold a message back, never pay it.
        return [(min(a[i][0] for a in answers), min(a[i][1] for a in answers)) for i in range(len(ids))]

    def _read_all(self, endpoint: EvmEndpoint, ids: Sequence[bytes]) -> list[tuple[int, int]]:
        paid: list[tuple[int, int]] = []
        for start in range(0, len(ids), MAX_IDS_PER_REQUEST):
            chunk = ids[start : start + MAX_IDS_PER_REQUEST]

            def read_chunk(chunk: Sequence[bytes] = chunk) -> list[tuple[int, int]]:
                return _read_batch(endpoint, self.gateway, chunk)

            paid.extend(endpoint.read("eth_call", read_chunk))
        return paid


class EvmGasMarketReader:
    """`eth_gasPrice` and the latest block's gas limit of one EVM chain (`relay.chains.GasMarketReader`)."""

    def __init__(self, chain: EvmCompatibleChainConfig, metrics: RelayMetrics | None = None) -> None:
        self.domain = chain.domain
        self.endpoint = endpoints_for(chain, metrics)[0]

    def gas_price(self) -> int:
        """The node's suggested gas price in wei (base fee plus a priority fee on EIP-1559 chains)."""
        price = self.endpoint.read_chain("eth_gasPrice", lambda: self.endpoint.web3.eth.gas_price)
        if not isinstance(price, int) or price <= 0:
            # Zero would switch the payment check off: a price a node cannot mean is no price at all.
            raise errors.RpcUnavailable("eth_gasPrice answered an unusable price", answer=str(price)[:80])
        return price

    def block_gas_limit(self) -> int:
        """The gas limit of the latest block."""
        block = self.endpoint.block("latest")
        limit = block.get("gasLimit") if block is not None else None
        if not isinstance(limit, int) or not MIN_BLOCK_GAS_LIMIT <= limit <= MAX_BLOCK_GAS_LIMIT:
            # Out of any real chain's range: a tiny limit would split every batch into single
            # messages (each paying the whole signature check), a huge one would lift the bound.
            raise errors.RpcUnavailable("the latest block has no usable gas limit", answer=str(limit)[:80])
        return limit
