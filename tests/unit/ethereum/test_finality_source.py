"""`EthereumFinalitySource` through `ReplayTransport`: real mainnet beacon data, and a built chain with Dispatch logs.

Recordings are written to a temporary folder and reference the shared vectors with `$file`
rather than copying them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.ethereum.beacon_api import (
    FINALITY_UPDATE_PATH,
    OPTIMISTIC_UPDATE_PATH,
    bootstrap_path,
    updates_path,
)
from adapters.ethereum.source import BlockNotFinalized, EthereumFinalitySource
from adapters.ethereum.transport import ReplayTransport, ResponseNotFound
from relay.verify.bls import BlsBackend
from relay.verify.ethereum.codec import to_versioned_json
from relay.verify.ethereum.config import MAINNET, Fork
from relay.verify.ethereum.containers import LightClientFinalityUpdate, compute_beacon_block_root
from relay.verify.ethereum.errors import InvalidHeaderChain, InvalidReceiptsRoot, InvalidTrustedRoot

from .conftest import CURRENT_SLOT, EXECUTION, MAINNET_LC, MainnetVectors, read_json
from .synthetic import GATEWAY, ORIGIN_DOMAIN, Scenario, make_scenario


def replay(tmp_path: Path, recording: dict[str, Any]) -> ReplayTransport:
    path = tmp_path / "recording.json"
    path.write_text(json.dumps(recording))
    return ReplayTransport.from_file(path)


# --- real mainnet beacon data ---------------------------------------------------------------------------------------------


def mainnet_recording(trusted_root: bytes, execution: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "description": "mainnet light-client vectors served as a beacon node would",
        "beacon": {
            bootstrap_path(trusted_root): {"$file": str(MAINNET_LC / "bootstrap.json")},
            updates_path(862, 6): {"$file": str(MAINNET_LC / "updates.json")},
            FINALITY_UPDATE_PATH: {"$file": str(MAINNET_LC / "finality.json")},
            OPTIMISTIC_UPDATE_PATH: {"$file": str(MAINNET_LC / "optimistic.json")},
        },
        "execution": execution or [],
    }


def mainnet_source(
    transport: ReplayTransport, trusted_root: bytes, blst: BlsBackend
) -> EthereumFinalitySource:
    return EthereumFinalitySource(
        transport,
        transport,
        network=MAINNET,
        trusted_block_root=trusted_root,
        gateway=GATEWAY,
        backend=blst,
        clock=lambda: MAINNET.genesis_time + CURRENT_SLOT * MAINNET.seconds_per_slot,
    )


def test_sync_from_a_replayed_beacon_node(tmp_path: Path, mainnet: MainnetVectors, blst: BlsBackend) -> None:
    transport = replay(tmp_path, mainnet_recording(mainnet.trusted_root))
    source = mainnet_source(transport, mainnet.trusted_root, blst)
    report = source.sync()
    assert report.finalized_header == mainnet.finality.finalized_header
    assert report.optimistic_header == mainnet.optimistic.attested_header
    assert [kind for kind, _ in report.outcomes] == ["update"] * 6 + ["finality_update", "optimistic_update"]
    assert transport.requests == [
        ("GET", bootstrap_path(mainnet.trusted_root)),
        ("GET", updates_path(862, 6)),
        ("GET", FINALITY_UPDATE_PATH),
        ("GET", OPTIMISTIC_UPDATE_PATH),
    ]
    # Synced: the next committee is known, so a second round only asks for the latest headers.
    transport.requests.clear()
    again = source.sync()
    assert again.finalized_header == report.finalized_header
    assert transport.requests == [("GET", FINALITY_UPDATE_PATH), ("GET", OPTIMISTIC_UPDATE_PATH)]


def test_finalized_block_without_dispatch_needs_no_receipts(
    tmp_path: Path, mainnet: MainnetVectors, blst: BlsBackend
) -> None:
    transport = replay(tmp_path, mainnet_recording(mainnet.trusted_root))
    source = mainnet_source(transport, mainnet.trusted_root, blst)
    finalized = mainnet.finality.finalized_header.execution.block_number
    result = source.poll(finalized)
    assert (result.messages, result.next_block, result.finalized_block_number) == (
        [],
        finalized + 1,
        finalized,
    )
    assert not [r for r in transport.requests if r[0] != "GET"], "the proven bloom rules the block out"


def test_rpc_serving_an_unrelated_block_is_caught(
    tmp_path: Path, mainnet: MainnetVectors, blst: BlsBackend
) -> None:
    """The execution RPC answers with real block 21,925,176 for the finalized block's parent: not its parent."""
    parent = mainnet.finality.finalized_header.execution.block_number - 1
    execution = [
        {
            "method": "eth_getBlockByNumber",
            "params": [hex(parent), False],
            "result": {"$file": str(EXECUTION / "block.json")},
        }
    ]
    transport = replay(tmp_path, mainnet_recording(mainnet.trusted_root, execution))
    with pytest.raises(InvalidHeaderChain) as error:
        mainnet_source(transport, mainnet.trusted_root, blst).poll(parent)
    assert error.value.check == "header_chain"


def test_bootstrap_for_another_root_is_refused(
    tmp_path: Path, mainnet: MainnetVectors, blst: BlsBackend
) -> None:
    other_root = compute_beacon_block_root(mainnet.updates[0].finalized_header.beacon)
    recording = mainnet_recording(mainnet.trusted_root)
    recording["beacon"][bootstrap_path(other_root)] = recording["beacon"].pop(
        bootstrap_path(mainnet.trusted_root)
    )
    transport = replay(tmp_path, recording)
    with pytest.raises(InvalidTrustedRoot):
        mainnet_source(transport, other_root, blst).sync()


# --- a built chain with Gateway messages -------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[Fork.DENEB, Fork.ELECTRA], ids=["deneb", "electra"])
def scenario(request: pytest.FixtureRequest, blst: BlsBackend) -> Scenario:
    return make_scenario(blst, request.param)


def scenario_recording(scenario: Scenario, *, block_receipts: bool = True) -> dict[str, Any]:
    update = scenario.update
    finality = LightClientFinalityUpdate(
        update.attested_header,
        update.finalized_header,
        update.finality_branch,
        update.sync_aggregate,
        update.signature_slot,
    )
    blocks = scenario.blocks
    execution: list[dict[str, Any]] = [
        {"method": "eth_getBlockByNumber", "params": [hex(n), False], "result": blocks[n].header_json}
        for n in (98, 99, 100)
    ]
    for n in (98, 99, 100):
        if block_receipts:
            execution.append(
                {"method": "eth_getBlockReceipts", "params": [hex(n)], "result": blocks[n].receipts_json}
            )
        else:
            execution.append(
                {
                    "method": "eth_getBlockReceipts",
                    "params": [hex(n)],
                    "error": {"code": -32601, "message": "the method eth_getBlockReceipts does not exist"},
                }
            )
            execution.extend(
                {
                    "method": "eth_getTransactionReceipt",
                    "params": [receipt["transactionHash"]],
                    "result": receipt,
                }
                for receipt in blocks[n].receipts_json
            )
    return {
        "beacon": {
            bootstrap_path(scenario.trusted_root): to_versioned_json(scenario.bootstrap, scenario.fork),
            updates_path(0, 1): [to_versioned_json(update, scenario.fork)],
            FINALITY_UPDATE_PATH: to_versioned_json(finality, scenario.fork),
        },
        "execution": execution,
    }


def scenario_source(
    transport: ReplayTransport, scenario: Scenario, blst: BlsBackend
) -> EthereumFinalitySource:
    network = scenario.network
    return EthereumFinalitySource(
        transport,
        transport,
        network=network,
        trusted_block_root=scenario.trusted_root,
        gateway=GATEWAY,
        origin_domain=ORIGIN_DOMAIN,
        backend=blst,
        clock=lambda: network.genesis_time + 26 * network.seconds_per_slot,
    )


@pytest.mark.parametrize("block_receipts", [True, False], ids=["eth_getBlockReceipts", "per-transaction"])
def test_poll_proves_the_dispatched_messages(
    tmp_path: Path, scenario: Scenario, blst: BlsBackend, block_receipts: bool
) -> None:
    transport = replay(tmp_path, scenario_recording(scenario, block_receipts=block_receipts))
    source = scenario_source(transport, scenario, blst)
    result = source.poll(98)
    assert [p.message for p in result.messages] == scenario.blocks[99].messages + scenario.blocks[
        100
    ].messages
    assert [(p.block_number, p.transaction_index, p.log_index) for p in result.messages] == [
        (99, 1, 1),
        (100, 1, 1),
    ]
    assert result.messages[0].block_hash == scenario.blocks[99].payload.block_hash
    assert (result.next_block, result.finalized_block_number) == (101, 100)
    called = {(method, tuple(params)) for method, params in transport.requests if method != "GET"}
    assert ("eth_getBlockReceipts", ("0x62",)) not in called, "block 98's proven bloom rules it out"
    if not block_receipts:
        assert any(method == "eth_getTransactionReceipt" for method, _ in called)
    # Nothing new is finalized: the next poll proves nothing and keeps the cursor.
    later = source.poll(101)
    assert (later.messages, later.next_block) == ([], 101)
    with pytest.raises(BlockNotFinalized):
        source.prove_block(101)


def test_lying_execution_rpc_yields_no_message(tmp_path: Path, scenario: Scenario, blst: BlsBackend) -> None:
    recording = scenario_recording(scenario)
    forged = copy.deepcopy(recording)
    receipts = next(
        e for e in forged["execution"] if e["method"] == "eth_getBlockReceipts" and e["params"] == ["0x63"]
    )
    log = receipts["result"][1]["logs"][1]
    log["data"] = log["data"][:-2] + "ff"
    with pytest.raises(InvalidReceiptsRoot):
        scenario_source(replay(tmp_path, forged), scenario, blst).poll(99)

    forged = copy.deepcopy(recording)
    header = next(
        e
        for e in forged["execution"]
        if e["method"] == "eth_getBlockByNumber" and e["params"] == ["0x63", False]
    )
    header["result"]["gasUsed"] = hex(int(header["result"]["gasUsed"], 16) + 1)
    with pytest.raises(InvalidHeaderChain):
        scenario_source(replay(tmp_path, forged), scenario, blst).poll(99)


def test_missing_recording_is_reported(tmp_path: Path, scenario: Scenario, blst: BlsBackend) -> None:
    recording = scenario_recording(scenario)
    recording["execution"] = [e for e in recording["execution"] if e["params"] != ["0x63", False]]
    with pytest.raises(ResponseNotFound) as error:
        scenario_source(replay(tmp_path, recording), scenario, blst).poll(99)
    assert error.value.fields["method"] == "eth_getBlockByNumber"


def test_recording_references_files(tmp_path: Path) -> None:
    (tmp_path / "body.json").write_text(json.dumps({"data": 1}))
    transport = replay(
        tmp_path,
        {
            "beacon": {"/x": {"$file": "body.json"}},
            "execution": [
                {"method": "m", "params": [1], "result": {"$file": "body.json"}},
                {"method": "gone", "params": [], "error": {"code": -32000, "message": "boom"}},
            ],
        },
    )
    assert transport.get("/x") == {"data": 1}
    assert transport.call("m", [1]) == {"data": 1}
    with pytest.raises(ResponseNotFound):
        transport.get("/y")
    from adapters.ethereum.transport import RpcCallFailed

    with pytest.raises(RpcCallFailed):
        transport.call("gone", [])
    assert read_json(tmp_path / "body.json") == {"data": 1}
