"""Deneb and Electra state layouts, normalized branches, quorum rules and the force update, on a built chain."""

from __future__ import annotations

import dataclasses

import pytest

from relay.verify.bls import BlsBackend, get_backend
from relay.verify.ethereum.config import Fork
from relay.verify.ethereum.containers import ZERO_ROOT
from relay.verify.ethereum.errors import (
    ForceUpdateDisabled,
    InvalidCurrentSyncCommitteeBranch,
    InvalidFinalityBranch,
    InvalidNextSyncCommitteeBranch,
)
from relay.verify.ethereum.sync_protocol import LightClient

from .synthetic import Scenario, make_network, make_scenario


@pytest.fixture(scope="module", params=[Fork.DENEB, Fork.ELECTRA], ids=["deneb", "electra"])
def scenario(request: pytest.FixtureRequest, blst: BlsBackend) -> Scenario:
    return make_scenario(blst, request.param)


def start(scenario: Scenario, backend: BlsBackend, *, allow_force_update: bool = False) -> LightClient:
    return LightClient.from_bootstrap(
        scenario.trusted_root,
        scenario.bootstrap,
        scenario.network,
        backend,
        allow_force_update=allow_force_update,
    )


def test_update_finalizes_the_execution_block(scenario: Scenario, blst: BlsBackend) -> None:
    client = start(scenario, blst)
    outcome = client.process_update(scenario.update, 30)
    assert outcome.finalized_advanced and outcome.next_sync_committee_learned
    assert client.finalized_header.execution == scenario.blocks[100].payload
    assert client.store.next_sync_committee == scenario.next_committee.committee


def test_branch_depths_follow_the_fork(scenario: Scenario, blst: BlsBackend) -> None:
    expected = {Fork.DENEB: (6, 5, 5), Fork.ELECTRA: (7, 6, 6)}[scenario.fork]
    assert (
        len(scenario.update.finality_branch),
        len(scenario.update.next_sync_committee_branch),
        len(scenario.bootstrap.current_sync_committee_branch),
    ) == expected


def test_branch_for_the_other_fork_is_rejected(scenario: Scenario, blst: BlsBackend) -> None:
    """The same data read under the other fork's schedule puts the leaves at other gindices."""
    other = make_network(Fork.DENEB if scenario.fork is Fork.ELECTRA else Fork.ELECTRA)
    with pytest.raises(InvalidCurrentSyncCommitteeBranch):
        LightClient.from_bootstrap(scenario.trusted_root, scenario.bootstrap, other, blst)


def test_normalized_branches(scenario: Scenario, blst: BlsBackend) -> None:
    """Branches padded at the top with zero hashes (Electra's fixed-length form) are accepted; other padding is not."""
    padded = dataclasses.replace(
        scenario.update,
        finality_branch=(ZERO_ROOT, *scenario.update.finality_branch),
        next_sync_committee_branch=(ZERO_ROOT, ZERO_ROOT, *scenario.update.next_sync_committee_branch),
    )
    assert start(scenario, blst).process_update(padded, 30).finalized_advanced
    dirty = dataclasses.replace(padded, finality_branch=(b"\x01" * 32, *scenario.update.finality_branch))
    with pytest.raises(InvalidFinalityBranch):
        start(scenario, blst).process_update(dirty, 30)
    short = dataclasses.replace(
        scenario.update, next_sync_committee_branch=scenario.update.next_sync_committee_branch[1:]
    )
    with pytest.raises(InvalidNextSyncCommitteeBranch):
        start(scenario, blst).process_update(short, 30)


def test_without_quorum_only_the_optimistic_header_moves(blst: BlsBackend) -> None:
    scenario = make_scenario(blst, Fork.DENEB, participants=list(range(20)))  # 20 of 32 < 2/3
    client = start(scenario, blst)
    outcome = client.process_update(scenario.update, 30)
    assert outcome.optimistic_advanced and not outcome.finalized_advanced
    assert client.finalized_header == scenario.bootstrap.header
    assert client.store.best_valid_update == scenario.update
    with pytest.raises(ForceUpdateDisabled):
        client.process_force_update(10_000)
    assert client.finalized_header == scenario.bootstrap.header

    forcing = start(scenario, blst, allow_force_update=True)
    forcing.process_update(scenario.update, 30)
    assert forcing.process_force_update(8 + 64) is False  # not before the update timeout
    assert forcing.process_force_update(8 + 65) is True
    assert forcing.finalized_header == scenario.update.finalized_header


@pytest.mark.slow
def test_py_ecc_agrees_on_the_synthetic_chain(blst: BlsBackend) -> None:
    scenario = make_scenario(blst, Fork.ELECTRA)
    client = start(scenario, get_backend("py_ecc"))
    assert client.process_update(scenario.update, 30).finalized_advanced
