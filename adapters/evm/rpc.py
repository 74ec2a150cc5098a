"""What the EVM adapter's watcher, finality source and submitter share: JSON-RPC access and the Gateway ABI.

`EvmEndpoint` is one JSON-RPC endpoint whose idempotent reads are retried by the named policy
`CHAIN_READ` (a `relay.retry.CallPolicy`) and whose transport failures always surface as
`relay.errors.RpcUnavailable` (never as a requests/web3 exception, which a retry policy up the
stack could not classify). Below it: the Gateway ABI and its event topics. The factories the
registry calls are in `adapters.evm.adapter`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from eth_typing import ChecksumAddress
from web3 import HTTPProvider, Web3
from web3 import exceptions as web3_errors

from relay.chains import ChainConfigBase
from relay.errors import ConfigurationError, RpcUnavailable
from relay.metrics import RelayMetrics
from relay.retry import CallPolicy

T = TypeVar("T")

RPC_TIMEOUT_SECONDS = 10.0


# --- retries ----------------------------------------------------------------------------------


CHAIN_READ = CallPolicy("chain_read", attempts=3, initial=0.1, maximum=0.5)
"""`chain_read`: one idempotent chain read (block number, logs, eth_call) on `TransientError`.

Schedule: 3 attempts, waiting 0.1 s then 0.2 s: it absorbs a dropped connection or a node
restarting, no more. A longer outage reaches the caller as `RpcUnavailable`, and the caller's
own schedule (the relayer's `watcher_poll`, the attestor's loop, the relayer's per-message
backoff for deliveries) decides what happens next, so retries do not multiply. Transactions are
never sent under this policy: resending is the nonce manager's decision.
"""


# --- one endpoint -----------------------------------------------------------------------------


def is_transport_failure(error: BaseException) -> bool:
    """Whether `error` means "the endpoint did not answer properly" (as opposed to a revert)."""
    if isinstance(error, (web3_errors.ContractLogicError, web3_errors.ContractCustomError)):
        return False
    return isinstance(
        error,
        (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.HTTPError,
            requests.exceptions.ChunkedEncodingError,
            web3_errors.ProviderConnectionError,
            web3_errors.RequestTimedOut,
            web3_errors.TooManyRequests,
            web3_errors.BadResponseFormat,
            json.JSONDecodeError,  # an answer that is not JSON at all (a proxy's error page)
            ConnectionError,
            TimeoutError,
        ),
    )


class EvmEndpoint:
    """One JSON-RPC endpoint of a chain: a `Web3` over HTTP plus the error boundary.

    `read(name, fn)` runs an idempotent read under `CHAIN_READ`; `call(name, fn)` runs
    anything once. Both turn transport failures into `RpcUnavailable(chain, url, method)`.
    """

    def __init__(
        self,
        url: str,
        chain_name: str = "",
        timeout: float = RPC_TIMEOUT_SECONDS,
        metrics: RelayMetrics | None = None,
    ) -> None:
        self.url = url
        self.chain_name = chain_name or url
        # web3's own provider retries are off: one retry layer (CHAIN_READ), not two.
        provider = HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
        self.web3 = Web3(provider)
        self.metrics = metrics

    def call(self, method: str, operation: Callable[[], T]) -> T:
        """Run `operation` once; transport failures become `RpcUnavailable`."""
        if self.metrics is not None:
            self.metrics.rpc_calls.labels(self.chain_name, method).inc()
        try:
            return operation()
        except Exception as error:
            if not is_transport_failure(error):
                raise
            if self.metrics is not None:
                self.metrics.rpc_errors.labels(self.chain_name, method).inc()
            raise RpcUnavailable(
                "chain RPC did not answer",
                chain=self.chain_name,
                url=self.url,
                method=method,
                cause=f"{type(error).__name__}: {error}"[:300],
            ) from error

    def read(self, method: str, operation: Callable[[], T]) -> T:
        """Run the idempotent read `operation` under `CHAIN_READ`."""
        on_retry = None
        if self.metrics is not None:
            counter = self.metrics.retries.labels(CHAIN_READ.name)
            on_retry = lambda _state: counter.inc()  # noqa: E731
        return CHAIN_READ.retrying(on_retry=on_retry)(self.call, method, operation)

    def read_chain(self, method: str, operation: Callable[[], T]) -> T:
        """`read` for a query every healthy node answers (head, headers, logs).

        A JSON-RPC error answer to it can only mean a misbehaving endpoint, so it becomes
        `RpcUnavailable` too (retried, then failed over) instead of escaping as a web3 exception.
        """

        def answered() -> T:
            try:
                return operation()
            except web3_errors.Web3RPCError as error:
                raise RpcUnavailable(
                    "chain RPC answered with an error",
                    chain=self.chain_name,
                    url=self.url,
                    method=method,
                    cause=f"{type(error).__name__}: {error}"[:300],
                ) from error

        return self.read(method, answered)

    def block_number(self) -> int:
        """The head block number."""
        return int(self.read_chain("eth_blockNumber", lambda: self.web3.eth.block_number))

    def block(self, identifier: Any) -> Any:
        """The header of block `identifier` (a number or tag), or None if the chain has none there."""

        def fetch() -> Any:
            try:
                return self.web3.eth.get_block(identifier)
            except web3_errors.BlockNotFound:
                return None

        return self.read_chain("eth_getBlockByNumber", fetch)


def endpoints_for(chain: ChainConfigBase, metrics: RelayMetrics | None = None) -> list[EvmEndpoint]:
    """One `EvmEndpoint` per configured rpc_url of `chain`."""
    return [EvmEndpoint(url, chain.name, metrics=metrics) for url in chain.rpc_urls]


def checksum_address(address: str, what: str = "address") -> ChecksumAddress:
    """`address` in checksum form; `ConfigurationError` if it is not a 20-byte hex address."""
    try:
        return Web3.to_checksum_address(address)
    except ValueError as error:
        raise ConfigurationError(f"invalid {what}", value=address) from error


# --- the Gateway ABI --------------------------------------------------------------------------


@functools.cache
def gateway_abi() -> list[dict[str, Any]]:
    """The Gateway's ABI from the compiled artifact (compiled on first use)."""
    from adapters.evm.build import load_artifact

    abi: list[dict[str, Any]] = load_artifact("Gateway")["abi"]
    return abi


def event_topic(signature: str) -> bytes:
    """topic0 of an event, e.g. `Dispatch(bytes32,uint32,uint32,bytes)`."""
    return bytes(Web3.keccak(text=signature))


DISPATCH_TOPIC = event_topic("Dispatch(bytes32,uint32,uint32,bytes)")
DELIVERED_TOPIC = event_topic("Delivered(bytes32,uint32,uint32)")
DELIVERY_FAILED_TOPIC = event_topic("DeliveryFailed(bytes32,bytes)")
DELIVERY_SKIPPED_TOPIC = event_topic("DeliverySkipped(bytes32)")
