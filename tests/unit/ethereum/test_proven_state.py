"""The `ethereum`-mode attestor survives time: a durable proven state, a checkpoint start, any distance.

- a restart from `state_file` resumes without replaying a header or a receipt;
- a start (and a walk resumed after a restart) far more than 8,192 blocks below the finalized
  block works (the old in-memory window of 8,192 ancestors made it fail for ever);
- a corrupt, edited or foreign state file is refused with a `ConfigurationError` naming the file;
- an enrolled checkpoint (count, root, frontier) starts the tree without its history, and a
  frontier that does not give the root is refused.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.ethereum.attestation import EnrolledCheckpoint, MissingMessages, ProvenTreeFinalitySource
from adapters.ethereum.beacon_api import FINALITY_UPDATE_PATH, OPTIMISTIC_UPDATE_PATH
from adapters.ethereum.source import EthereumFinalitySource
from adapters.ethereum.transport import ResponseNotFound
from relay.errors import ConfigurationError
from relay.verify.bls import BlsBackend
from relay.verify.ethereum.config import Fork
from relay.verify.ethereum.dispatch import ProvenMessage, compute_stand_in
from relay.verify.merkle import IncrementalTree, MerkleTree

from .synthetic import ORIGIN_DOMAIN, Scenario, make_scenario
from .test_finality_source import replay, scenario_recording, scenario_source


@pytest.fixture(scope="module")
def scenario(blst: BlsBackend) -> Scenario:
    return make_scenario(blst, Fork.DENEB)


def proven_root(scenario: Scenario, *numbers: int) -> bytes:
    return MerkleTree([m.id for n in numbers for m in scenario.blocks[n].messages]).root()


def test_a_restart_resumes_from_the_state_file_without_replay(
    tmp_path: Path, scenario: Scenario, blst: BlsBackend
) -> None:
    state_file = tmp_path / "state.json"
    first = ProvenTreeFinalitySource(
        scenario_source(replay(tmp_path, scenario_recording(scenario)), scenario, blst),
        domain=ORIGIN_DOMAIN,
        start_block=98,
        state_file=str(state_file),
    )
    state = first.finalized_checkpoint_state()
    assert state == (proven_root(scenario, 99, 100), 2)

    # The restarted source may only ask for the newest finality update: no bootstrap, no header, no receipt.
    recording = scenario_recording(scenario)
    recording = {"beacon": {FINALITY_UPDATE_PATH: recording["beacon"][FINALITY_UPDATE_PATH]}, "execution": []}
    transport = replay(tmp_path, recording)
    restarted = ProvenTreeFinalitySource(
        scenario_source(transport, scenario, blst),
        domain=ORIGIN_DOMAIN,
        start_block=98,
        state_file=str(state_file),
    )
    assert restarted.finalized_checkpoint_state() == state
    assert restarted.next_block == 101
    assert [path for _, path in transport.requests] == [FINALITY_UPDATE_PATH, OPTIMISTIC_UPDATE_PATH]
    assert restarted.leaves(0, 2) == [m.id for n in (99, 100) for m in scenario.blocks[n].messages]
    assert IncrementalTree.from_frontier(2, restarted.frontier()).root() == state[0]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda doc: doc["body"]["tree"].__setitem__("count", 3), "checksum mismatch"),
        (lambda doc: doc.__setitem__("version", 99), "unsupported version"),
        (lambda doc: doc["identity"].__setitem__("domain", 2), "another chain"),
        (lambda doc: doc.__setitem__("format", "something else"), "not an ethereum attestor state file"),
    ],
    ids=["edited", "future-version", "foreign", "other-format"],
)
def test_a_tampered_or_foreign_state_file_is_refused(
    tmp_path: Path, scenario: Scenario, blst: BlsBackend, edit: Any, message: str
) -> None:
    state_file = tmp_path / "state.json"
    ProvenTreeFinalitySource(
        scenario_source(replay(tmp_path, scenario_recording(scenario)), scenario, blst),
        domain=ORIGIN_DOMAIN,
        start_block=98,
        state_file=str(state_file),
    ).finalized_checkpoint_state()
    document = json.loads(state_file.read_text())
    edit(document)
    state_file.write_text(json.dumps(document))
    with pytest.raises(ConfigurationError, match=message) as caught:
        ProvenTreeFinalitySource(
            scenario_source(replay(tmp_path, scenario_recording(scenario)), scenario, blst),
            domain=ORIGIN_DOMAIN,
            start_block=98,
            state_file=str(state_file),
        )
    assert str(state_file) in str(caught.value) and "backup" in str(caught.value)


def test_a_corrupt_state_file_and_a_consistent_forgery_are_refused(
    tmp_path: Path, scenario: Scenario, blst: BlsBackend
) -> None:
    from adapters.ethereum import state as state_module

    state_file = tmp_path / "state.json"

    def source() -> ProvenTreeFinalitySource:
        return ProvenTreeFinalitySource(
            scenario_source(replay(tmp_path, scenario_recording(scenario)), scenario, blst),
            domain=ORIGIN_DOMAIN,
            start_block=98,
            state_file=str(state_file),
        )

    source().finalized_checkpoint_state()
    good = state_file.read_text()
    state_file.write_text(good[: len(good) // 2])  # a torn write (what the atomic rename prevents)
    with pytest.raises(ConfigurationError, match="not readable JSON"):
        source()
    # A forger who recomputes the checksum but breaks the finalized header's execution branch.
    document = json.loads(good)
    header = document["body"]["light_client"]["finalized_header"]
    header["execution"]["receipts_root"] = "0x" + "ab" * 32
    document["checksum"] = state_module._checksum(document["identity"], document["body"])
    state_file.write_text(json.dumps(document))
    with pytest.raises(ConfigurationError, match="contents do not check out"):
        source()


class ChainNode:
    """An execution node serving a synthetic chain from memory, counting the headers asked for."""

    def __init__(self, scenario: Scenario) -> None:
        self.blocks = scenario.blocks
        self.headers: list[int] = []

    def call(self, method: str, params: Any) -> Any:
        number = int(params[0], 16)
        if method == "eth_getBlockByNumber":
            self.headers.append(number)
            return self.blocks[number].header_json
        if method == "eth_getBlockReceipts":
            return self.blocks[number].receipts_json
        raise ResponseNotFound("not served", method=method)


@pytest.fixture(scope="module")
def long_scenario(blst: BlsBackend) -> Scenario:
    # The finalized block is 9,100; 9,000 empty blocks lie below the first message.
    return make_scenario(blst, Fork.DENEB, offset=9000, history=9000)


def long_source(
    tmp_path: Path, scenario: Scenario, blst: BlsBackend, node: ChainNode
) -> EthereumFinalitySource:
    beacon = replay(tmp_path, scenario_recording(scenario))
    source = scenario_source(beacon, scenario, blst)
    source.execution = node
    return source


def test_a_start_far_beyond_8192_blocks_works_and_resumes_mid_walk(
    tmp_path: Path, long_scenario: Scenario, blst: BlsBackend
) -> None:
    state_file = tmp_path / "state.json"
    node = ChainNode(long_scenario)
    first = ProvenTreeFinalitySource(
        long_source(tmp_path, long_scenario, blst, node),
        domain=ORIGIN_DOMAIN,
        start_block=98,
        state_file=str(state_file),
        headers_per_poll=5000,
    )
    assert first.poll_once() == 0  # one bounded step of the walk, saved
    assert first.state.walk is not None and node.headers == list(range(9099, 4099, -1))

    node.headers.clear()
    restarted = ProvenTreeFinalitySource(
        long_source(tmp_path, long_scenario, blst, node),
        domain=ORIGIN_DOMAIN,
        start_block=98,
        state_file=str(state_file),
        headers_per_poll=5000,
    )
    state = restarted.finalized_checkpoint_state()
    assert state == (proven_root(long_scenario, 9099, 9100), 2)
    assert node.headers == list(range(4099, 97, -1)), "the walk goes on where it stopped"
    assert restarted.next_block == 9101 and restarted.finalized_block - 98 > 8192


def test_an_enrolled_checkpoint_starts_without_history(
    tmp_path: Path, long_scenario: Scenario, blst: BlsBackend
) -> None:
    # The Gateway had one message (nonce 0, in block 9,099) at finalized block 9,099.
    first_id = long_scenario.blocks[9099].messages[0].id
    tree = IncrementalTree()
    tree.insert(first_id)
    checkpoint = EnrolledCheckpoint(block=9099, count=1, root=tree.root(), frontier=tree.frontier)
    node = ChainNode(long_scenario)
    source = ProvenTreeFinalitySource(
        long_source(tmp_path, long_scenario, blst, node),
        domain=ORIGIN_DOMAIN,
        start_block=0,
        checkpoint=checkpoint,
    )
    assert source.finalized_checkpoint_state() == (proven_root(long_scenario, 9099, 9100), 2)
    assert node.headers == [], "only the finalized block itself is proven: no history replayed"
    assert source.leaves(1, 2) == [long_scenario.blocks[9100].messages[0].id]

    wrong = EnrolledCheckpoint(block=9099, count=1, root=b"\x01" * 32, frontier=tree.frontier)
    with pytest.raises(ConfigurationError, match="frontier does not give the root"):
        ProvenTreeFinalitySource(
            long_source(tmp_path, long_scenario, blst, node),
            domain=ORIGIN_DOMAIN,
            start_block=0,
            checkpoint=wrong,
        )
    # A checkpoint whose count is behind the chain (a message skipped) is caught at the next message.
    behind = EnrolledCheckpoint(
        block=9099, count=0, root=IncrementalTree().root(), frontier=IncrementalTree().frontier
    )
    with pytest.raises(MissingMessages):
        ProvenTreeFinalitySource(
            long_source(tmp_path, long_scenario, blst, node),
            domain=ORIGIN_DOMAIN,
            start_block=0,
            checkpoint=behind,
        ).finalized_checkpoint_state()


def test_a_proven_leaf_whose_message_does_not_decode_keeps_the_tree_gapless(
    tmp_path: Path, scenario: Scenario, blst: BlsBackend
) -> None:
    """A Dispatch the light client proves but whose message does not decode is still the Gateway's
    leaf: the attestor inserts the id the log names, so the tree stays the Gateway's tree."""
    source = scenario_source(replay(tmp_path, scenario_recording(scenario)), scenario, blst)
    prove = source.prove_messages_in
    malformed: list[bytes] = []

    def prove_with_a_malformed_first(block: Any) -> list[ProvenMessage]:
        proven = list(prove(block))
        if proven and not malformed:
            real = proven[0]
            stand_in = compute_stand_in(
                b"", real.message.nonce, real.message.origin, real.message.destination
            )
            proven[0] = dataclasses.replace(
                real, message=stand_in, malformed_reason="MalformedEncoding: body too long", leaf_id=real.id
            )
            malformed.append(real.id)
        return proven

    source.prove_messages_in = prove_with_a_malformed_first  # type: ignore[method-assign]
    attestor_view = ProvenTreeFinalitySource(source, domain=ORIGIN_DOMAIN, start_block=98)
    assert attestor_view.finalized_checkpoint_state() == (proven_root(scenario, 99, 100), 2)
    assert malformed and malformed[0] in attestor_view.proven_ids
