"""Hostile sources on the real devnet: a message that does not decode, and a lying RPC endpoint.

- A body over the verifier's limit, dispatched through the real Gateway, becomes a malformed leaf:
  REJECTED (MalformedMessage), and the messages after it are delivered.
- The relayer reads alpha from two endpoints, one behind a loopback proxy that changes log bodies,
  omits logs and serves stale blocks: alpha halts (the `RelaySourceHalted` alert fires in the real
  Prometheus), beta's direction keeps flowing, nothing is rejected or delivered wrongly, and
  everything is delivered once the proxy tells the truth again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from relay.client import send
from relay.tools.devnet import Devnet
from relay.tools.prometheus import PrometheusServer
from relay.verify.message import MAX_BODY_LENGTH
from tests.rpc_proxy import RpcProxy
from tests.waiting import eventually

from .test_devnet import wait_states


@pytest.fixture(scope="module")
def prometheus(devnet: Devnet) -> Iterator[PrometheusServer]:
    server = devnet.start_prometheus()
    try:
        yield server
    finally:
        server.stop()
        devnet.prometheus = None


def test_an_oversized_dispatch_is_refused_on_chain_and_the_messages_after_it_are_delivered(
    devnet: Devnet,
) -> None:
    """The attack of issue 8 (one oversized body halting the origin for good) is refused at the
    source: the client refuses it before sending, the Gateway reverts it with BodyTooLarge, and the
    route keeps flowing. (A Dispatch that does not decode anyway, from an older Gateway, becomes a
    rejected leaf: tests/conformance/test_adapters.py and tests/integration/test_relayer.py.)"""
    from web3 import exceptions as web3_errors

    from adapters.evm import deploy
    from adapters.evm.errors import decode_contract_error, revert_data
    from relay.client import BodyTooLarge
    from relay.verify.message import address_to_bytes32

    alpha, beta = devnet.chains
    client = devnet.client()
    received = devnet.received(beta.domain)
    body = b"x" * (MAX_BODY_LENGTH + 1)
    with pytest.raises(BodyTooLarge):
        send(alpha.rpc_url, alpha.gateway, devnet.user_key, beta.domain, beta.counter, body)
    sender = deploy.TransactionSender(alpha.rpc_url, devnet.user_key)
    gateway = deploy.contract(sender.endpoint.web3, "Gateway", alpha.gateway)
    dispatch = gateway.functions.dispatch(beta.domain, address_to_bytes32(beta.counter), body)
    with pytest.raises((web3_errors.ContractLogicError, web3_errors.ContractCustomError)) as refused:
        dispatch.estimate_gas({"from": sender.account.address})
    assert decode_contract_error(revert_data(refused.value)).name == "BodyTooLarge"
    after = devnet.send(alpha.name, beta.name, 3, "after-oversized")
    views = wait_states(client, after, {"delivered"}, timeout=120)
    assert all(views[i].state == "delivered" for i in after)
    assert devnet.received(beta.domain) == received + 3
    print("oversized dispatch refused on-chain (BodyTooLarge); 3 after it delivered")


def on(method: str, change: Callable[[list[Any], Any], Any]) -> Callable[[str, list[Any], Any], Any]:
    return lambda m, params, result: change(params, result) if m == method else result


def tamper_data(_params: list[Any], logs: Any) -> Any:
    return [{**entry, "data": entry["data"][:-2] + "ff"} for entry in logs]


def omit_last(_params: list[Any], logs: Any) -> Any:
    return logs[:-1]


def stale_block(params: list[Any], block: Any) -> Any:
    if block is None or params[0] in ("finalized", "latest", "safe"):
        return block
    return {**block, "hash": "0x" + "0e" * 32}


def test_a_lying_source_endpoint_halts_its_origin_fires_the_alert_and_loses_nothing(
    devnet: Devnet, prometheus: PrometheusServer
) -> None:
    alpha, beta = devnet.chains
    assert devnet.run_dir is not None
    path = devnet.run_dir / "configs" / "relayer.json"
    original = path.read_text()
    client = devnet.client()
    received = {chain.domain: devnet.received(chain.domain) for chain in devnet.chains}
    rejected = sum(1 for _ in client.list_messages(states=["rejected"]))

    def alert(state: str) -> list[dict[str, Any]]:
        return [
            a
            for a in prometheus.alerts()
            if a["labels"].get("alertname") == "RelaySourceHalted"
            and a["labels"].get("chain") == alpha.name
            and a["state"] == state
        ]

    def halted() -> float | None:
        return prometheus.scalar(f'max(relay_source_halted{{chain="{alpha.name}"}})')

    with RpcProxy(alpha.rpc_url) as proxy:
        config = json.loads(original)
        for source in config["sources"]:
            if source["chain"]["name"] == alpha.name:
                source["chain"]["rpc_urls"] = [alpha.rpc_url, proxy.url]
        path.write_text(json.dumps(config, indent=2))
        try:
            devnet.terminate("relayer")
            devnet.restart("relayer")
            proxy.rewrite = on("eth_getLogs", tamper_data)
            lied_about = devnet.send(alpha.name, beta.name, 3, "lied-about")
            other_way = devnet.send(beta.name, alpha.name, 3, "other-way")
            wait_states(client, other_way, {"delivered"}, timeout=120)  # the other origin flows
            eventually(lambda: halted() == 1, 60, "relay_source_halted == 1 for alpha")
            for lie in (on("eth_getLogs", omit_last), on("eth_getBlockByNumber", stale_block)):
                proxy.rewrite = lie
                for _ in range(3):
                    assert all(
                        v.state not in ("rejected", "delivered") for v in client.get_many(lied_about).values()
                    )
                    eventually(lambda: halted() == 1, 30, "alpha still halted")
            proxy.rewrite = on("eth_getLogs", tamper_data)
            firing = eventually(lambda: alert("firing"), 150, "RelaySourceHalted firing for alpha")
            assert firing[0]["labels"]["severity"] == "critical"
            proxy.rewrite = None  # the endpoints agree again
            views = wait_states(client, lied_about, {"delivered"}, timeout=120)
            assert all(v.state == "delivered" for v in views.values())
            eventually(lambda: halted() == 0, 60, "alpha resumed")
            assert devnet.received(beta.domain) == received[beta.domain] + 3
            assert devnet.received(alpha.domain) == received[alpha.domain] + 3
            assert sum(1 for _ in client.list_messages(states=["rejected"])) == rejected
            print(f"alpha halted, alert fired ({len(firing)}), then {len(lied_about)} delivered once")
        finally:
            path.write_text(original)
            devnet.terminate("relayer")
            devnet.restart("relayer")
