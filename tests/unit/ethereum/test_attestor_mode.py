"""The attestor's `ethereum` mode: the root it would sign is built only from proven messages."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from adapters.ethereum.attestation import MissingMessages, ProvenTreeFinalitySource
from relay.chains.registry import ChainConfig, parse_chain_config
from relay.config import StrictModel
from relay.verify.bls import BlsBackend
from relay.verify.ethereum.config import Fork
from relay.verify.ethereum.errors import InvalidReceiptsRoot
from relay.verify.merkle import MerkleTree

from .synthetic import ORIGIN_DOMAIN, Scenario, make_scenario
from .test_finality_source import replay, scenario_recording, scenario_source


@pytest.fixture(scope="module")
def scenario(blst: BlsBackend) -> Scenario:
    return make_scenario(blst, Fork.DENEB)


def test_root_covers_exactly_the_proven_messages(
    tmp_path: Path, scenario: Scenario, blst: BlsBackend
) -> None:
    source = ProvenTreeFinalitySource(
        scenario_source(replay(tmp_path, scenario_recording(scenario)), scenario, blst),
        domain=ORIGIN_DOMAIN,
        start_block=98,
    )
    state = source.finalized_checkpoint_state()
    proven = scenario.blocks[99].messages + scenario.blocks[100].messages  # block 101 is not final
    assert state == (MerkleTree([m.id for m in proven]).root(), 2)
    assert source.proven_ids == [m.id for m in proven]
    # Nothing new is final: the same state, no new leaves.
    assert source.finalized_checkpoint_state() == state


def test_a_lying_node_makes_it_refuse_not_sign(tmp_path: Path, scenario: Scenario, blst: BlsBackend) -> None:
    forged = copy.deepcopy(scenario_recording(scenario))
    receipts = next(
        e for e in forged["execution"] if e["method"] == "eth_getBlockReceipts" and e["params"] == ["0x63"]
    )
    log = receipts["result"][1]["logs"][1]
    log["data"] = log["data"][:-2] + "ff"
    source = ProvenTreeFinalitySource(
        scenario_source(replay(tmp_path, forged), scenario, blst), domain=ORIGIN_DOMAIN, start_block=98
    )
    with pytest.raises(InvalidReceiptsRoot):
        source.finalized_checkpoint_state()
    assert source.proven_ids == []


def test_starting_after_the_first_message_is_refused(
    tmp_path: Path, scenario: Scenario, blst: BlsBackend
) -> None:
    source = ProvenTreeFinalitySource(
        scenario_source(replay(tmp_path, scenario_recording(scenario)), scenario, blst),
        domain=ORIGIN_DOMAIN,
        start_block=100,  # skips block 99 and its nonce 0
    )
    with pytest.raises(MissingMessages) as caught:
        source.finalized_checkpoint_state()
    assert (caught.value.nonce, caught.value.expected) == (1, 0)


def test_ethereum_kind_needs_a_light_client_section() -> None:
    from relay.config import load_config
    from relay.errors import ConfigurationError

    class Section(StrictModel):
        chain: ChainConfig

    with pytest.raises(ConfigurationError, match="chain.light_client: Field required"):
        load_config(
            Section,
            None,
            {},
            {
                "chain": {
                    "name": "eth",
                    "domain": 1,
                    "kind": "ethereum",
                    "rpc_urls": ["http://127.0.0.1:1"],
                    "gateway": "0x" + "11" * 20,
                }
            },
        )


def test_registry_builds_the_light_client_source_from_config(
    tmp_path: Path, mainnet, blst: BlsBackend
) -> None:  # type: ignore[no-untyped-def]
    """`kind: ethereum` through the adapter registry, replaying real mainnet beacon answers."""
    import json

    from prometheus_client import CollectorRegistry

    from relay.chains.registry import create_finality_source
    from relay.metrics import RelayMetrics
    from relay.verify.ethereum.config import MAINNET

    from .conftest import CURRENT_SLOT
    from .test_finality_source import mainnet_recording

    recording = tmp_path / "mainnet.json"
    recording.write_text(json.dumps(mainnet_recording(mainnet.trusted_root)))
    finalized = mainnet.finality.finalized_header.execution.block_number
    chain = parse_chain_config(
        {
            "name": "ethereum",
            "domain": 1,
            "kind": "ethereum",
            "rpc_urls": ["http://127.0.0.1:1"],
            "gateway": "0x" + "42" * 20,
            "start_block": finalized,
            "light_client": {
                "trusted_block_root": "0x" + mainnet.trusted_root.hex(),
                "replay_file": str(recording),
                "bls_backend": "blst",
                "fixed_time": MAINNET.genesis_time + CURRENT_SLOT * MAINNET.seconds_per_slot,
            },
        }
    )
    source = create_finality_source(chain, RelayMetrics(CollectorRegistry()))
    assert isinstance(source, ProvenTreeFinalitySource)
    # The finalized block has no Dispatch (its proven bloom says so): nothing to sign, nothing asked of the RPC.
    assert source.finalized_checkpoint_state() is None
    assert source.finalized_block == finalized and source.next_block == finalized + 1
    assert source.source.light_client.store.finalized_header == mainnet.finality.finalized_header


def test_the_finality_source_and_the_relayers_origin_read_one_light_client_section() -> None:
    """Both light-client views of a `kind: ethereum` chain take the same nodes, network and trust."""
    from prometheus_client import CollectorRegistry

    from adapters.ethereum.lightclient_origin import EthereumLightClientOrigin
    from adapters.ethereum.transport import HttpBeaconTransport, HttpExecutionTransport
    from relay.chains.registry import create_finality_source, create_light_client_origin
    from relay.metrics import RelayMetrics
    from relay.verify.ethereum.config import MAINNET

    chain = parse_chain_config(
        {
            "name": "ethereum",
            "domain": 11,
            "kind": "ethereum",
            "rpc_urls": ["http://127.0.0.1:1", "http://127.0.0.1:2"],
            "gateway": "0x" + "42" * 20,
            "light_client": {
                "trusted_block_root": "0x" + "07" * 32,
                "beacon_url": "http://127.0.0.1:3/",
                "fixed_time": 1_750_000_000,
            },
        }
    )
    metrics = RelayMetrics(CollectorRegistry())
    finality = create_finality_source(chain, metrics)
    origin = create_light_client_origin(chain, metrics)
    assert isinstance(finality, ProvenTreeFinalitySource)
    assert isinstance(origin, EthereumLightClientOrigin)
    for view in (finality.source, origin):
        assert isinstance(view.beacon, HttpBeaconTransport) and view.beacon.base_url == "http://127.0.0.1:3"
        assert isinstance(view.execution, HttpExecutionTransport)
        assert view.execution.url == "http://127.0.0.1:1"  # no execution_url: the first rpc_urls
        assert view.network is MAINNET
        assert view.trusted_block_root == b"\x07" * 32 and view.gateway == b"\x42" * 20
        assert view.origin_domain == 11
        assert view.clock() == 1_750_000_000  # fixed_time replaces the wall clock


def _attestor_config(gateway: bytes) -> object:
    from relay.roles.attestor import AttestorConfig

    return AttestorConfig.model_validate(
        {
            "chain": {
                "name": "ethereum",
                "domain": ORIGIN_DOMAIN,
                "kind": "ethereum",
                "rpc_urls": ["http://127.0.0.1:1"],
                "gateway": "0x" + gateway.hex(),
                "start_block": 98,
                "light_client": {"trusted_block_root": "0x" + "00" * 32},
            },
            "bls_key": {"value": hex(12345)},
            "signer_index": 0,
            "epoch": 1,
            "insecure_plaintext": True,
        }
    )


def test_the_attestor_signs_exactly_what_the_light_client_proved(
    tmp_path: Path, scenario: Scenario, blst: BlsBackend
) -> None:
    """The real attestor role over the light-client source: its signed checkpoint covers only proven leaves."""
    from relay.roles.attestor import Attestor
    from relay.verify.committee import Checkpoint, sign_checkpoint
    from relay.verify.message import address_to_bytes32

    from .synthetic import GATEWAY

    finality = ProvenTreeFinalitySource(
        scenario_source(replay(tmp_path, scenario_recording(scenario)), scenario, blst),
        domain=ORIGIN_DOMAIN,
        start_block=98,
    )
    attestor = Attestor(_attestor_config(GATEWAY), finality=finality, backend=blst)  # type: ignore[arg-type]
    signed = attestor.poll_once()
    assert signed is not None
    proven = scenario.blocks[99].messages + scenario.blocks[100].messages
    expected = Checkpoint(
        ORIGIN_DOMAIN, address_to_bytes32(GATEWAY), 1, MerkleTree([m.id for m in proven]).root(), 1
    )
    assert signed.checkpoint == expected
    assert signed.signature == sign_checkpoint(12345, expected, blst)
    assert attestor.poll_once() is None  # nothing new proven: nothing new signed


def test_the_attestor_signs_nothing_when_a_node_lies(
    tmp_path: Path, scenario: Scenario, blst: BlsBackend
) -> None:
    from relay.roles.attestor import Attestor

    from .synthetic import GATEWAY

    forged = copy.deepcopy(scenario_recording(scenario))
    receipts = next(
        e for e in forged["execution"] if e["method"] == "eth_getBlockReceipts" and e["params"] == ["0x63"]
    )
    log = receipts["result"][1]["logs"][1]
    log["data"] = log["data"][:-2] + "ff"
    finality = ProvenTreeFinalitySource(
        scenario_source(replay(tmp_path, forged), scenario, blst), domain=ORIGIN_DOMAIN, start_block=98
    )
    attestor = Attestor(_attestor_config(GATEWAY), finality=finality, backend=blst)  # type: ignore[arg-type]
    with pytest.raises(InvalidReceiptsRoot):
        attestor.poll_once()
    assert attestor.ledger.last_signed_index == -1
