"""The relayer reads gas payments from every source endpoint and counts the least any reports.

A lying source endpoint (a loopback proxy in front of the real anvil) that inflates `gasPaid`
cannot make the relayer deliver an unpaid message at the operator's cost: with two endpoints the
truthful zero wins. One endpoint down is tolerated only when `rpc_quorum` allows it.
"""

from __future__ import annotations

from typing import Any

import pytest

from relay.chains.registry import create_payment_reader
from relay.errors import RpcUnavailable
from relay.metrics import RelayMetrics
from tests.chains import Chains
from tests.rpc_proxy import RpcProxy

LIE = "0x" + (10**9).to_bytes(32, "big").hex() + (10**18).to_bytes(32, "big").hex()


def inflate_gas_paid(method: str, params: list[Any], result: Any) -> Any:
    return LIE if method == "eth_call" else result


def test_a_lying_endpoint_cannot_inflate_a_payment(chains: Chains) -> None:
    from prometheus_client import CollectorRegistry

    (unpaid,) = chains.send(1, "unpaid-")
    metrics = RelayMetrics(CollectorRegistry())
    with RpcProxy(chains.source.rpc_url) as liar:
        liar.rewrite = inflate_gas_paid
        alone = create_payment_reader(chains.source_chain(rpc_urls=[liar.url]), metrics)
        assert alone.gas_paid([unpaid]) == [(10**9, 10**18)]  # the lie itself reaches the reader
        both = create_payment_reader(chains.source_chain(rpc_urls=[chains.source.rpc_url, liar.url]), metrics)
        assert both.gas_paid([unpaid]) == [(0, 0)]  # the truthful endpoint's zero wins
        counted = metrics.registry.get_sample_value(
            "relay_source_disagreements_total", {"chain": "source", "method": "gasPaid"}
        )
        assert counted == 1  # and the disagreement is counted, not silent


def test_an_endpoint_down_is_tolerated_only_within_the_quorum(chains: Chains) -> None:
    from prometheus_client import CollectorRegistry

    (message,) = chains.send(1, "quorum-")
    metrics = RelayMetrics(CollectorRegistry())
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    strict = create_payment_reader(chains.source_chain(rpc_urls=[chains.source.rpc_url, dead]), metrics)
    with pytest.raises(RpcUnavailable, match="too few source endpoints"):
        strict.gas_paid([message])
    lenient = create_payment_reader(
        chains.source_chain(rpc_urls=[chains.source.rpc_url, dead], rpc_quorum=1), metrics
    )
    assert lenient.gas_paid([message]) == [(0, 0)]


@pytest.mark.parametrize(
    "method, lie",
    [
        ("eth_gasPrice", "0x0"),
        ("eth_getBlockByNumber", {"gasLimit": "0x1"}),
        ("eth_getBlockByNumber", {"gasLimit": "0x" + "f" * 20}),
    ],
    ids=["zero gas price", "tiny block gas limit", "huge block gas limit"],
)
def test_gas_market_answers_no_chain_could_mean_are_refused(chains: Chains, method: str, lie: Any) -> None:
    """A zero gas price would switch the payment check off; a tiny block gas limit would split
    every batch into single messages. Such answers read as unavailable, never as facts."""
    from prometheus_client import CollectorRegistry

    from relay.chains.registry import create_gas_market_reader

    def rewrite(called: str, params: list[Any], result: Any) -> Any:
        if called != method:
            return result
        return {**result, **lie} if isinstance(lie, dict) and isinstance(result, dict) else lie

    with RpcProxy(chains.destination.rpc_url) as liar:
        liar.rewrite = rewrite
        market = create_gas_market_reader(
            chains.destination_chain(rpc_urls=[liar.url]), RelayMetrics(CollectorRegistry())
        )
        read = market.gas_price if method == "eth_gasPrice" else market.block_gas_limit
        with pytest.raises(RpcUnavailable):
            read()
    honest = create_gas_market_reader(chains.destination_chain(), RelayMetrics(CollectorRegistry()))
    assert honest.gas_price() > 0 and honest.block_gas_limit() >= 5_000_000
