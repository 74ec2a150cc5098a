"""The on-chain light client and inbox follow the simulated beacon chain over a real anvil chain.

One anvil holds both ends: a source Gateway (domain 31337) that dispatches real messages, and a
destination Gateway (domain 31338) with an `EthereumLightClient` initialised from the simulation's
bootstrap and an `EthereumInbox` enrolled as the source's verifier. Updates from the simulation
(through its HTTP API, as the relayer reads them) are submitted as transactions; a message is then
delivered by a receipt proof against the stored header, and forged or weak updates are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from adapters.ethereum import onchain_client
from adapters.ethereum.beacon_api import FINALITY_UPDATE_PATH, bootstrap_path, updates_path
from adapters.ethereum.inbox import deploy_inbox, inbox_contract
from adapters.ethereum.receipt_proofs import (
    build_receipt_proof,
    dispatch_logs,
    encode_receipt_proof,
    header_walk,
)
from adapters.ethereum.transport import HttpBeaconTransport, HttpExecutionTransport
from adapters.evm import deploy
from adapters.evm.anvil import DEV_PRIVATE_KEYS, AnvilProcess
from relay.tools.beacon_sim.chain import SimulatedBeaconChain, simulated_preset
from relay.tools.beacon_sim.server import BeaconApiServer
from relay.verify.bls import get_backend
from relay.verify.ethereum.codec import parse_bootstrap, parse_finality_update, parse_updates

SOURCE, DESTINATION = 31337, 31338
PERIOD = 32  # slots per sync-committee period of the simulation (4 epochs of 8)


@dataclass
class Scene:
    rpc_url: str
    execution: HttpExecutionTransport
    chain: SimulatedBeaconChain
    beacon: HttpBeaconTransport
    owner: deploy.TransactionSender
    source: deploy.Deployment
    destination: deploy.Deployment
    light_client: str
    inbox: str
    dispatch_receipt: dict


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    with AnvilProcess(SOURCE) as anvil:
        source = deploy.deploy(anvil.rpc_url, DEV_PRIVATE_KEYS[0], SOURCE)
        destination = deploy.deploy(anvil.rpc_url, DEV_PRIVATE_KEYS[0], DESTINATION)
        owner = deploy.TransactionSender(anvil.rpc_url, DEV_PRIVATE_KEYS[0])
        user = deploy.TransactionSender(anvil.rpc_url, DEV_PRIVATE_KEYS[2])
        (receipt,) = user.wait(
            deploy.send_counter_messages(user, source.counter, DESTINATION, destination.counter, [b"hi"])
        )
        execution = HttpExecutionTransport(anvil.rpc_url)
        chain = SimulatedBeaconChain.follow(
            execution, get_backend("blst"), preset=simulated_preset(epochs_per_sync_committee_period=4)
        )
        # Automined blocks come faster than one a second; the light client reads the time from
        # block timestamps, so move anvil's clock past every simulated slot before mining on.
        deploy.rpc_request(anvil.rpc_url, "evm_increaseTime", [hex(3600)])
        deploy.rpc_request(anvil.rpc_url, "anvil_mine", [hex(PERIOD + 16)])
        with BeaconApiServer(chain) as server:
            beacon = HttpBeaconTransport(server.url)
            root = chain.block_root(8)
            bootstrap = parse_bootstrap(beacon.get(bootstrap_path(root)), chain.preset)
            light_client = onchain_client.deploy_light_client(
                owner.web3, owner, bootstrap, chain.network, root
            )
            inbox = deploy_inbox(owner, destination.gateway, light_client, SOURCE, source.gateway)
            yield Scene(
                anvil.rpc_url,
                execution,
                chain,
                beacon,
                owner,
                source,
                destination,
                light_client,
                inbox,
                dict(
                    execution.call(
                        "eth_getTransactionReceipt", ["0x" + bytes(receipt["transactionHash"]).hex()]
                    )
                ),
            )


def contract(scene: Scene):
    return onchain_client.light_client_contract(scene.owner.web3, scene.light_client)


def test_forged_update_is_refused_on_chain(scene: Scene) -> None:
    with pytest.raises(onchain_client.LightClientRefused) as refused:
        onchain_client.submit_update(
            scene.owner.web3,
            scene.owner,
            scene.light_client,
            scene.chain.update(30, 31, forged=True),
            scene.chain.network,
        )
    assert refused.value.fields["error"] == "InvalidSyncAggregateSignature"


def test_update_below_two_thirds_does_not_finalize(scene: Scene) -> None:
    with pytest.raises(onchain_client.LightClientRefused) as refused:
        onchain_client.submit_update(
            scene.owner.web3,
            scene.owner,
            scene.light_client,
            scene.chain.update(30, 31, participation=0.5),
            scene.chain.network,
        )
    assert refused.value.fields["error"] == "NoSupermajority"


def test_light_client_follows_and_the_inbox_delivers_a_real_dispatch(scene: Scene) -> None:
    chain, network = scene.chain, scene.chain.network
    lc = contract(scene)
    # Period 0's update (80% signed) learns the next committee; period 1's crosses into it.
    for update in parse_updates(scene.beacon.get(updates_path(0, 2)), chain.preset):
        onchain_client.submit_update(scene.owner.web3, scene.owner, scene.light_client, update, network)
    assert lc.functions.currentPeriod().call() == 1
    deploy.rpc_request(scene.rpc_url, "anvil_mine", [hex(8), hex(1)])  # one more epoch finalized
    finality = parse_finality_update(scene.beacon.get(FINALITY_UPDATE_PATH), chain.preset)
    onchain_client.submit_update(scene.owner.web3, scene.owner, scene.light_client, finality, network)
    stored = lc.functions.latestExecutionBlockNumber().call()
    assert stored == finality.finalized_header.execution.block_number
    anvil_block = scene.execution.call("eth_getBlockByNumber", [hex(stored), False])
    block_hash, receipts_root = lc.functions.executionHeader(stored).call()
    assert "0x" + bytes(block_hash).hex() == anvil_block["hash"]
    assert "0x" + bytes(receipts_root).hex() == anvil_block["receiptsRoot"]

    # The message's block is below the stored one: the proof walks the parent hashes down to it.
    receipt = scene.dispatch_receipt
    number = int(receipt["blockNumber"], 16)
    blocks = [
        scene.execution.call("eth_getBlockByNumber", [hex(n), False]) for n in range(stored, number - 1, -1)
    ]
    receipts = scene.execution.call("eth_getBlockReceipts", [hex(number)])
    (log,) = dispatch_logs(receipt, scene.source.gateway)
    proof = build_receipt_proof(receipts, log.transaction_index, stored, headers=header_walk(blocks))
    before = deploy.counter_received(scene.rpc_url, scene.destination.counter)
    # Estimated: a long header walk is mostly calldata, which send_delivery's fixed budget leaves out.
    call = inbox_contract(scene.owner, scene.inbox).functions.deliverFromEthereum(
        encode_receipt_proof(proof), log.log_index, 200_000
    )
    gas = int(call.estimate_gas({"from": scene.owner.address}))
    scene.owner.wait([scene.owner.send_call(call, gas + gas // 4)])
    assert deploy.counter_received(scene.rpc_url, scene.destination.counter) == before + 1
