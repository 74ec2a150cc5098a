"""The simulated beacon chain over a real anvil chain, read by the real Python light client over HTTP.

One anvil per module: a Gateway dispatches real messages, blocks are mined past two sync-committee
periods, and `EthereumFinalitySource` (the `ethereum` attestor's verifier, trusting only a block
root) syncs from the simulation's beacon API and proves the Dispatch logs from anvil's receipts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from adapters.ethereum.source import EthereumFinalitySource
from adapters.ethereum.transport import HttpBeaconTransport, HttpExecutionTransport, ResponseNotFound
from adapters.evm import deploy
from adapters.evm.anvil import DEV_PRIVATE_KEYS, AnvilProcess
from relay.errors import RpcUnavailable
from relay.tools.beacon_sim.chain import (
    SimulatedBeaconChain,
    SimulationDiverged,
    network_spec_config,
    simulated_preset,
)
from relay.tools.beacon_sim.server import BeaconApiServer
from relay.verify.bls import BlsBackend, get_backend
from relay.verify.ethereum.config import network_config_from_spec
from relay.verify.ethereum.errors import InvalidSyncAggregateSignature
from relay.verify.ethereum.sync_protocol import LightClient

PERIOD_EPOCHS = 4  # 32-slot periods: two of them cost anvil 64 blocks
FAR_FUTURE = 4_000_000_000.0  # anvil_mine stamps blocks ahead of the wall clock; verify at a later time


@dataclass
class Scene:
    anvil: AnvilProcess
    execution: HttpExecutionTransport
    chain: SimulatedBeaconChain
    server: BeaconApiServer
    gateway: str
    message_ids: list[bytes]
    message_blocks: list[int]


@pytest.fixture(scope="module")
def blst() -> BlsBackend:
    return get_backend("blst")


@pytest.fixture(scope="module")
def scene(blst: BlsBackend) -> Iterator[Scene]:
    with AnvilProcess(31337) as anvil:
        deployment = deploy.deploy(anvil.rpc_url, DEV_PRIVATE_KEYS[0], 31337)
        sender = deploy.TransactionSender(anvil.rpc_url, DEV_PRIVATE_KEYS[2])
        recipient = "0x" + "22" * 20
        hashes = deploy.send_counter_messages(sender, deployment.counter, 31338, recipient, [b"one", b"two"])
        receipts = sender.wait(hashes)
        ids = [i for receipt in receipts for i in deploy.dispatched_ids(receipt, deployment.gateway)]
        blocks = [int(receipt["blockNumber"]) for receipt in receipts]
        deploy.rpc_request(anvil.rpc_url, "anvil_mine", [hex(3 * 32)])
        execution = HttpExecutionTransport(anvil.rpc_url)
        chain = SimulatedBeaconChain.follow(
            execution, blst, preset=simulated_preset(epochs_per_sync_committee_period=PERIOD_EPOCHS)
        )
        with BeaconApiServer(chain) as server:
            yield Scene(anvil, execution, chain, server, deployment.gateway, ids, blocks)


def source(scene: Scene, trusted_slot: int = 0) -> EthereumFinalitySource:
    return EthereumFinalitySource(
        HttpBeaconTransport(scene.server.url),
        scene.execution,
        network=scene.chain.network,
        trusted_block_root=scene.chain.block_root(trusted_slot),
        gateway=bytes.fromhex(scene.gateway[2:]),
        origin_domain=31337,
        clock=lambda: FAR_FUTURE,
    )


def test_light_client_follows_the_simulation_and_proves_real_dispatches(scene: Scene) -> None:
    ethereum = source(scene)
    result = ethereum.poll(0)
    # Two periods crossed: the committee changed twice, each change proven by the previous committee.
    assert ethereum.light_client.current_period() == 2
    finalized = ethereum.light_client.finalized_header.execution
    anvil_block = scene.execution.call("eth_getBlockByNumber", [hex(finalized.block_number), False])
    assert "0x" + finalized.block_hash.hex() == anvil_block["hash"]
    assert "0x" + finalized.receipts_root.hex() == anvil_block["receiptsRoot"]
    assert [m.message.id for m in result.messages] == scene.message_ids
    assert [m.block_number for m in result.messages] == scene.message_blocks
    assert [m.message.nonce for m in result.messages] == [0, 1]


def test_payload_header_is_anvils_header(scene: Scene) -> None:
    block = scene.message_blocks[0]
    payload = scene.chain.block(block).header.execution
    header = scene.execution.call("eth_getBlockByNumber", [hex(block), False])
    assert payload.block_number == block
    assert "0x" + payload.block_hash.hex() == header["hash"]
    assert "0x" + payload.parent_hash.hex() == header["parentHash"]
    assert "0x" + payload.state_root.hex() == header["stateRoot"]
    assert "0x" + payload.receipts_root.hex() == header["receiptsRoot"]
    assert "0x" + payload.logs_bloom.hex() == header["logsBloom"]
    assert payload.timestamp == int(header["timestamp"], 16)


def test_forged_update_is_refused(scene: Scene, blst: BlsBackend) -> None:
    chain = scene.chain
    client = LightClient.from_bootstrap(
        chain.block_root(0), chain.bootstrap(chain.block_root(0)), chain.network, blst
    )
    forged = chain.update(30, 31, forged=True)
    with pytest.raises(InvalidSyncAggregateSignature):
        client.process_update(forged, 1_000_000)
    assert client.finalized_header.beacon.slot == 0
    outcome = client.process_update(chain.update(30, 31), 1_000_000)
    assert outcome.finalized_advanced and outcome.next_sync_committee_learned


def test_participation_decides_finality(scene: Scene, blst: BlsBackend) -> None:
    chain = scene.chain
    root = chain.block_root(0)
    client = LightClient.from_bootstrap(root, chain.bootstrap(root), chain.network, blst)
    weak = chain.update(30, 31, participation=0.5)  # 16 of 32: below 2/3
    assert weak.sync_aggregate.participant_count() == 16
    outcome = client.process_update(weak, 1_000_000)
    assert not outcome.finalized_advanced
    strong = chain.update(30, 31, participation=0.8)
    assert strong.sync_aggregate.participant_count() == 26
    assert client.process_update(strong, 1_000_000).finalized_advanced


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/eth/v1/beacon/light_client/updates?start_period=-1&count=1", 400),
        ("/eth/v1/beacon/light_client/updates?start_period=0&count=" + "9" * 40, 400),
        ("/eth/v1/beacon/light_client/updates?start_period=0&count=1&count=2", 400),
        ("/eth/v1/beacon/light_client/updates?start_period=0&count=1&extra=1", 400),
        ("/eth/v1/beacon/light_client/updates?start_period=99999999999999&count=1", 400),
        ("/eth/v1/beacon/light_client/bootstrap/0x1234", 400),
        ("/eth/v1/beacon/light_client/bootstrap/0x" + "ab" * 32, 404),
        ("/eth/v1/beacon/light_client/finality_update?x=1", 400),
        ("/eth/v1/beacon/light_client/nothing", 404),
        ("/eth/v1/beacon/state", 404),
    ],
)
def test_bad_requests_get_typed_answers(scene: Scene, path: str, status: int) -> None:
    beacon = HttpBeaconTransport(scene.server.url)
    expected = ResponseNotFound if status == 404 else RpcUnavailable
    with pytest.raises(expected) as raised:
        beacon.get(path)
    if status != 404:
        assert raised.value.fields["status"] == status


def test_updates_stop_at_the_head_and_are_capped(scene: Scene) -> None:
    beacon = HttpBeaconTransport(scene.server.url)
    body = beacon.get("/eth/v1/beacon/light_client/updates?start_period=0&count=1000")
    head = scene.chain.head_slot()
    assert len(body) == head // 32 + 1
    assert body[0]["version"] == "electra"
    genesis = beacon.get("/eth/v1/beacon/genesis")["data"]
    assert int(genesis["genesis_time"]) == scene.chain.network.genesis_time


def test_mainnet_sized_committee(blst: BlsBackend, scene: Scene) -> None:
    chain = SimulatedBeaconChain(
        scene.execution,
        dataclasses.replace(scene.chain.network, preset=simulated_preset(committee_size=512)),
        blst,
        participation=0.8,
    )
    root = chain.block_root(8)
    client = LightClient.from_bootstrap(root, chain.bootstrap(root), chain.network, blst)
    update = chain.update(62, 63)
    assert update.sync_aggregate.participant_count() == 410
    assert len(update.next_sync_committee.pubkeys if update.next_sync_committee else ()) == 512
    assert client.process_update(update, 1_000_000).finalized_advanced


def test_a_reorg_below_the_followed_head_is_refused(blst: BlsBackend) -> None:
    with AnvilProcess(31337) as anvil:
        snapshot = deploy.rpc_request(anvil.rpc_url, "evm_snapshot")
        deploy.rpc_request(anvil.rpc_url, "anvil_mine", ["0x4"])
        chain = SimulatedBeaconChain.follow(HttpExecutionTransport(anvil.rpc_url), blst)
        assert chain.head_slot() == 4
        deploy.rpc_request(anvil.rpc_url, "evm_revert", [snapshot])
        deploy.rpc_request(anvil.rpc_url, "anvil_mine", ["0x6", "0x7"])
        with pytest.raises(SimulationDiverged):
            chain.head_slot()


def test_network_config_round_trips_through_a_spec_config(scene: Scene) -> None:
    """What the devnet writes for the relayer's `network_config` reads back as the same network."""
    network = scene.chain.network
    spec = yaml.safe_load(yaml.safe_dump(network_spec_config(network)))
    read = network_config_from_spec(
        spec, genesis_validators_root=network.genesis_validators_root, name=network.name
    )
    assert read == network
    assert read.preset.epochs_per_sync_committee_period == PERIOD_EPOCHS


def test_a_forging_beacon_node_is_caught_over_http(scene: Scene) -> None:
    """With `serve_forged` the API hands out updates signed by the wrong keys; the verifier refuses them."""
    scene.chain.serve_forged = True
    try:
        with pytest.raises(InvalidSyncAggregateSignature):
            source(scene).sync()
    finally:
        scene.chain.serve_forged = False
    assert source(scene).sync().finalized_header.beacon.slot > 0
