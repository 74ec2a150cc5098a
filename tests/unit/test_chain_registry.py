"""The chain registry: each family's config model in one union on `kind`, metrics injected at construction."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from relay.chains import ChainConfigBase, Cursor
from relay.chains.registry import (
    CHAIN_FAMILIES,
    ChainConfig,
    create_destination,
    create_finality_source,
    create_watcher,
    parse_chain_config,
)
from relay.config import StrictModel, load_config
from relay.errors import ConfigurationError, RpcUnavailable
from relay.metrics import RelayMetrics

GATEWAY = "0x" + "ab" * 20
DEAD_RPC = "http://127.0.0.1:9"  # nothing listens on the discard port: connection refused at once
CHAIN = {"name": "alpha", "domain": 7, "rpc_urls": [DEAD_RPC], "gateway": GATEWAY}
DEV_KEY = "0x" + "01" * 32


class Section(StrictModel):
    chain: ChainConfig


class MemoryCursors:
    def __init__(self) -> None:
        self.cursors: dict[int, Cursor] = {}

    def load_cursor(self, domain: int) -> Cursor | None:
        return self.cursors.get(domain)

    def save_cursor(self, domain: int, cursor: Cursor) -> None:
        self.cursors[domain] = cursor


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_a_chain_without_kind_is_an_evm_chain_with_its_gateway_left_padded() -> None:
    from adapters.evm.config import EvmChainConfig

    chain = parse_chain_config(CHAIN)
    assert isinstance(chain, EvmChainConfig) and chain.kind == "evm"
    assert chain.gateway_bytes32() == b"\x00" * 12 + bytes.fromhex("ab" * 20)
    assert isinstance(parse_chain_config({**CHAIN, "kind": "evm"}), EvmChainConfig)


def test_each_kind_gets_its_own_model() -> None:
    from adapters.ethereum.config import EthereumChainConfig

    chain = parse_chain_config(
        {**CHAIN, "kind": "ethereum", "light_client": {"trusted_block_root": "0x" + "00" * 32}}
    )
    assert isinstance(chain, EthereumChainConfig) and chain.light_client.beacon_url
    assert set(CHAIN_FAMILIES) == {"evm", "ethereum"}


def test_an_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="unknown chain kind 'cosmos'; known kinds: ethereum, evm"):
        load_config(Section, None, {}, {"chain": {**CHAIN, "kind": "cosmos"}})


@pytest.mark.parametrize("kind", [["evm"], {"evm": 1}, 7, None, True])
def test_a_kind_that_is_not_a_string_is_a_configuration_error(kind: object) -> None:
    """From YAML or a RELAY_*__KIND variable a kind can be any value: a clear error, never a TypeError."""
    with pytest.raises(ConfigurationError, match="unknown chain kind"):
        load_config(Section, None, {}, {"chain": {**CHAIN, "kind": kind}})


def test_a_gateway_without_0x_is_accepted_and_normalised() -> None:
    chain = parse_chain_config({**CHAIN, "gateway": "ab" * 20})
    assert chain.gateway == "0x" + "ab" * 20 and chain.gateway_bytes32() == b"\x00" * 12 + b"\xab" * 20


def test_errors_name_the_key_path_the_operator_wrote_not_the_union_tag() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_config(Section, None, {}, {"chain": {**CHAIN, "gateway": "0x1234"}})
    assert "chain.gateway: Value error, gateway must be a 20-byte hex address" in str(caught.value)
    with pytest.raises(ConfigurationError) as caught:
        load_config(Section, None, {}, {"chain": {**CHAIN, "kind": "ethereum"}})
    assert "chain.light_client: Field required" in str(caught.value)
    with pytest.raises(ConfigurationError) as caught:
        load_config(Section, None, {}, {"chain": {**CHAIN, "light_client": {"trusted_block_root": "0x"}}})
    assert "chain.light_client: Extra inputs are not permitted" in str(
        caught.value
    )  # only kind ethereum has it


def test_common_checks_hold_for_every_family() -> None:
    for kind in CHAIN_FAMILIES:
        extra = {"light_client": {"trusted_block_root": "0x" + "00" * 32}} if kind == "ethereum" else {}
        with pytest.raises(ValidationError, match="domain must be a u32"):
            parse_chain_config({**CHAIN, "kind": kind, "domain": 2**32, **extra})
        with pytest.raises(ValidationError, match="rpc_urls needs at least one endpoint"):
            parse_chain_config({**CHAIN, "kind": kind, "rpc_urls": [], **extra})


def test_the_base_config_cannot_be_built_without_a_family() -> None:
    with pytest.raises(TypeError):
        ChainConfigBase(name="alpha", domain=7, kind="evm", rpc_urls=[DEAD_RPC], gateway=GATEWAY)  # type: ignore[abstract]


def test_the_watcher_counts_rpc_calls_and_errors_on_the_metrics_it_was_built_with() -> None:
    registry = CollectorRegistry()
    watcher = create_watcher(parse_chain_config(CHAIN), MemoryCursors(), RelayMetrics(registry))
    with pytest.raises(RpcUnavailable):
        watcher.poll()
    calls = sample(registry, "relay_rpc_calls_total", chain="alpha", method="eth_blockNumber")
    assert calls == 3  # the CHAIN_READ policy's three attempts, each counted
    assert sample(registry, "relay_rpc_errors_total", chain="alpha", method="eth_blockNumber") == calls
    assert sample(registry, "relay_retries_total", policy="chain_read") == 2


def test_finality_sources_and_destinations_get_the_metrics_too() -> None:
    registry = CollectorRegistry()
    metrics = RelayMetrics(registry)
    chain = parse_chain_config({**CHAIN, "confirmations": 1})
    with pytest.raises(RpcUnavailable):
        create_finality_source(chain, metrics).finalized_checkpoint_state()
    destination = create_destination(chain, DEV_KEY, metrics)
    with pytest.raises(RpcUnavailable):
        destination.delivered([(1, 0)])
    assert sample(registry, "relay_rpc_calls_total", chain="alpha", method="eth_blockNumber") == 3
    assert (
        sum(
            sample(registry, "relay_rpc_errors_total", chain="alpha", method=method)
            for method in ("eth_call", "eth_blockNumber")
        )
        >= 4
    )


@pytest.mark.parametrize("kind", ["evm", "ethereum"])
def test_payment_and_gas_market_readers_exist_for_every_family_and_count_rpc_calls(kind: str) -> None:
    from relay.chains.registry import create_gas_market_reader, create_payment_reader

    registry = CollectorRegistry()
    metrics = RelayMetrics(registry)
    data: dict[str, object] = {**CHAIN, "kind": kind}
    if kind == "ethereum":
        data["light_client"] = {"beacon_url": "http://127.0.0.1:9", "trusted_block_root": "0x" + "00" * 32}
    chain = parse_chain_config(data)
    with pytest.raises(RpcUnavailable):
        create_payment_reader(chain, metrics).gas_paid([b"\x01" * 32])
    market = create_gas_market_reader(chain, metrics)
    with pytest.raises(RpcUnavailable):
        market.gas_price()
    with pytest.raises(RpcUnavailable):
        market.block_gas_limit()
    assert sample(registry, "relay_rpc_errors_total", chain="alpha", method="eth_call") >= 1
    assert sample(registry, "relay_rpc_errors_total", chain="alpha", method="eth_gasPrice") >= 1


def test_gas_paid_answers_are_decoded_strictly() -> None:
    from adapters.evm.economics import decode_gas_paid

    assert decode_gas_paid("0x" + (5).to_bytes(32, "big").hex() + (7).to_bytes(32, "big").hex()) == (5, 7)
    top = "0x" + "ff" * 64  # the largest values the ABI can carry decode, never wrap
    assert decode_gas_paid(top) == (2**256 - 1, 2**256 - 1)
    for hostile in ("0x", "0x" + "00" * 63, "0x" + "00" * 65, "0xzz", None, 12):
        with pytest.raises(RpcUnavailable):
            decode_gas_paid(hostile)


def test_loading_every_role_config_imports_no_chain_library() -> None:
    code = (
        "import sys\n"
        "import relay.roles.attestor, relay.roles.submitter, relay.relayer\n"
        "from relay.chains.registry import parse_chain_config\n"
        f"parse_chain_config({CHAIN!r})\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('web3', 'eth_abi', 'eth_account'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
