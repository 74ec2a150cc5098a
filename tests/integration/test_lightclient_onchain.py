"""The on-chain light client walks the real mainnet vectors and refuses every tampering the Python one does.

One anvil and one deployment: the walk initialises the contract from the mainnet bootstrap,
submits the six updates (across sync periods) and the finality update as transactions, and ends
at the Python light client's finalized header. At each state on the way it tries, by `eth_call`
on that very state, every tampered object of tests/unit/ethereum/test_tampering.py that applies
there (imported, so the two sets cannot drift), the wrong signing domains and fork schedule
(one storage word overridden), skipped periods, updates from the future and a replay, and
records the contract's error name. The tests then compare those names with the Python errors.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from web3 import Web3
from web3.logs import DISCARD

from adapters.ethereum import onchain_client
from adapters.evm.anvil import DEV_PRIVATE_KEYS, AnvilProcess
from adapters.evm.deploy import TransactionSender
from relay.verify.bls import get_backend
from relay.verify.ethereum.codec import (
    parse_bootstrap,
    parse_finality_update,
    parse_optimistic_update,
    parse_updates,
)
from relay.verify.ethereum.committee_keys import SyncCommitteeKeyCache
from relay.verify.ethereum.config import MAINNET, Fork, NetworkConfig
from relay.verify.ethereum.containers import (
    LightClientUpdate,
    SyncAggregate,
    SyncCommittee,
    compute_beacon_block_root,
    compute_sync_committee_root,
)
from relay.verify.ethereum.light_client_store import LightClientStore
from relay.verify.ethereum.signing import compute_sync_committee_signing_root
from relay.verify.ethereum.sync_protocol import (
    LightClient,
    convert_finality_update,
    process_light_client_update,
)
from relay.verify.ethereum.validation import initialize_light_client_store
from tests.integration.lightclient_chain import (
    GENESIS_TIME_SLOT,
    GENESIS_VALIDATORS_ROOT_SLOT,
    LightClientChain,
    fork_slot,
    fork_word,
    with_genesis_time,
)
from tests.unit.ethereum.conftest import CURRENT_SLOT, MAINNET_LC, MainnetVectors, read_json
from tests.unit.ethereum.synthetic import (
    Scenario,
    make_committee,
    make_light_client_header,
    make_scenario,
    make_state,
)
from tests.unit.ethereum.test_tampering import (
    CASES,
    ELECTRA_EARLY,
    OBJECTS,
    TAMPERINGS,
    WRONG_CAPELLA_VERSION,
    WRONG_GENESIS,
    flip,
    flip_branch_node,
    get_object,
    skipped_period_store,
    store_for,
)

NETWORKS = {
    "fork-version": WRONG_CAPELLA_VERSION,
    "genesis-root": WRONG_GENESIS,
    "fork-schedule": ELECTRA_EARLY,
}


@pytest.fixture(scope="module")
def chain() -> Iterator[LightClientChain]:
    with AnvilProcess(chain_id=31337) as anvil:
        yield LightClientChain(
            w3=Web3(Web3.HTTPProvider(anvil.rpc_url)),
            owner=TransactionSender(anvil.rpc_url, DEV_PRIVATE_KEYS[0]),
            stranger=TransactionSender(anvil.rpc_url, DEV_PRIVATE_KEYS[1]),
        )


@pytest.fixture(scope="module")
def vectors() -> MainnetVectors:
    """The mainnet vectors and the Python store before each update (as tests/unit/ethereum/conftest.py)."""
    preset = MAINNET.preset
    keys = SyncCommitteeKeyCache(get_backend("blst"), capacity=16)
    bootstrap = parse_bootstrap(read_json(MAINNET_LC / "bootstrap.json"), preset)
    updates = parse_updates(read_json(MAINNET_LC / "updates.json"), preset)
    trusted_root = compute_beacon_block_root(bootstrap.header.beacon)
    store = initialize_light_client_store(trusted_root, bootstrap, MAINNET)
    stores = [copy.copy(store)]
    for update in updates:
        process_light_client_update(store, update, CURRENT_SLOT, MAINNET, keys)
        stores.append(copy.copy(store))
    return MainnetVectors(
        bootstrap=bootstrap,
        trusted_root=trusted_root,
        updates=updates,
        finality=parse_finality_update(read_json(MAINNET_LC / "finality.json"), preset),
        optimistic=parse_optimistic_update(read_json(MAINNET_LC / "optimistic.json"), preset),
        stores=stores,
    )


def state_index(vectors: MainnetVectors, store: LightClientStore) -> int:
    """Which state of the walk (0: bootstrap, k: after update k-1) a store of the Python tests is."""
    return next(k for k, candidate in enumerate(vectors.stores) if candidate == store)


def network_overrides(chain: LightClientChain, address: str, network: NetworkConfig) -> dict[int, int]:
    """Storage words that make the deployed (mainnet) contract stand for one initialised with `network`."""
    overrides = {}
    if network.genesis_validators_root != MAINNET.genesis_validators_root:
        overrides[GENESIS_VALIDATORS_ROOT_SLOT] = int.from_bytes(network.genesis_validators_root, "big")
    for index, (wrong, right) in enumerate(zip(network.forks, MAINNET.forks, strict=True)):
        if wrong != right:
            layout = onchain_client.fork_layout(wrong.fork)
            overrides[fork_slot(index)] = fork_word(wrong.epoch, wrong.version, layout)
    return overrides


@dataclass
class Probe:
    """One call to try at one state of the walk."""

    key: str
    state: int
    obj: Callable[[], Any]
    overrides: Callable[[], dict[int, int]] = field(default=lambda: {})


@dataclass
class Walk:
    address: str
    refusals: dict[str, str | None]
    finalized: list[tuple[int, int, bytes, bytes]]
    """After each transaction: finalized slot, latest execution block, its block hash and receipts root."""
    gas: list[int]


@pytest.fixture(scope="module")
def walk(chain: LightClientChain, vectors: MainnetVectors) -> Walk:
    address = onchain_client.deploy_light_client(chain.w3, chain.owner, vectors.bootstrap, MAINNET)
    contract = onchain_client.light_client_contract(chain.w3, address)
    probes = _plan(chain, address, vectors)
    refusals: dict[str, str | None] = {}
    finalized = []
    gas = []

    def record() -> None:
        number = int(contract.functions.latestExecutionBlockNumber().call())
        block_hash, receipts_root = contract.functions.executionHeader(number).call()
        finalized.append((int(contract.functions.finalizedSlot().call()), number, block_hash, receipts_root))

    record()
    for state in range(7):
        for probe in (p for p in probes if p.state == state):
            args = onchain_client.prepare_update(chain.w3, contract, probe.obj(), MAINNET)
            refusals[probe.key] = chain.refusal(address, "submitUpdate", (args,), overrides=probe.overrides())
        update = vectors.updates[state] if state < 6 else vectors.finality
        receipt = onchain_client.submit_update(chain.w3, chain.owner, address, update, MAINNET)
        gas.append(int(receipt["gasUsed"]))
        record()
    # The optimistic update (no finality proof) at the final state, after the finality update.
    args = onchain_client.prepare_update(chain.w3, contract, vectors.optimistic, MAINNET)
    refusals["optimistic-untampered-after-finality"] = chain.refusal(address, "submitUpdate", (args,))
    return Walk(address, refusals, finalized, gas)


def _plan(chain: LightClientChain, address: str, vectors: MainnetVectors) -> list[Probe]:
    def state_for(name: str) -> int:
        return state_index(vectors, store_for(vectors, name))

    probes = []
    for name in OBJECTS:
        state = state_for(name)
        probes.append(Probe(f"{name}-untampered", state, lambda n=name: get_object(vectors, n)))
        for label, network in NETWORKS.items():
            probes.append(
                Probe(
                    f"{name}-network-{label}",
                    state,
                    lambda n=name: get_object(vectors, n),
                    lambda net=network: network_overrides(chain, address, net),
                )
            )
        skipped = state_index(vectors, skipped_period_store(vectors, name))
        probes.append(Probe(f"{name}-skipped-period", skipped, lambda n=name: get_object(vectors, n)))
        probes.append(
            Probe(
                f"{name}-from-the-future",
                state,
                lambda n=name: get_object(vectors, n),
                lambda n=name: _future_overrides(chain, address, get_object(vectors, n).signature_slot),
            )
        )
    for obj, tampering in CASES:
        tamper = TAMPERINGS[tampering][1]
        probes.append(
            Probe(f"{obj}-{tampering}", state_for(obj), lambda o=obj, t=tamper: t(get_object(vectors, o)))
        )
    probes.append(Probe("update0-replayed", 1, lambda: vectors.updates[0]))
    return probes


def _future_overrides(chain: LightClientChain, address: str, signature_slot: int) -> dict[int, int]:
    """A genesis time that puts the chain's clock a slot before `signature_slot`."""
    now = int(chain.w3.eth.get_block("latest")["timestamp"])
    genesis = now - (signature_slot - 1) * MAINNET.seconds_per_slot + MAINNET.seconds_per_slot // 2
    return {GENESIS_TIME_SLOT: with_genesis_time(chain.storage_word(address, GENESIS_TIME_SLOT), genesis)}


# --- the walk ------------------------------------------------------------------------------------------------------


def test_walk_ends_at_the_python_light_clients_finalized_header(walk: Walk, vectors: MainnetVectors) -> None:
    store = copy.copy(vectors.stores[6])
    keys = SyncCommitteeKeyCache(get_backend("blst"))
    process_light_client_update(
        store, convert_finality_update(vectors.finality, MAINNET), CURRENT_SLOT, MAINNET, keys
    )
    python_headers = [vectors.stores[k].finalized_header for k in range(7)] + [store.finalized_header]
    assert len(walk.finalized) == len(python_headers)
    for (slot, number, block_hash, receipts_root), header in zip(walk.finalized, python_headers, strict=True):
        assert slot == header.beacon.slot
        assert number == header.execution.block_number
        assert block_hash == header.execution.block_hash
        assert receipts_root == header.execution.receipts_root
    assert walk.finalized[-1][0] == vectors.finality.finalized_header.beacon.slot


def test_every_untampered_object_is_accepted_where_it_applies(walk: Walk) -> None:
    """So that each refusal below is caused by its tampering, not by the state it was tried at."""
    for name in OBJECTS:
        expected = "FinalityProofRequired" if name == "optimistic" else None
        assert walk.refusals[f"{name}-untampered"] == expected, name


def test_optimistic_update_is_refused_for_lack_of_finality(walk: Walk) -> None:
    """The contract keeps finalized headers only: a valid update without a finality proof changes nothing."""
    assert walk.refusals["optimistic-untampered"] == "FinalityProofRequired"
    assert walk.refusals["optimistic-untampered-after-finality"] == "FinalityProofRequired"


@pytest.mark.parametrize(("obj_name", "tampering"), CASES, ids=[f"{o}-{t}" for o, t in CASES])
def test_tampered_object_is_refused_on_chain(walk: Walk, obj_name: str, tampering: str) -> None:
    expected = TAMPERINGS[tampering][2].__name__
    assert walk.refusals[f"{obj_name}-{tampering}"] == expected


@pytest.mark.parametrize("obj_name", OBJECTS)
@pytest.mark.parametrize("network", ["fork-version", "genesis-root"])
def test_wrong_signing_domain_is_refused_on_chain(walk: Walk, obj_name: str, network: str) -> None:
    assert walk.refusals[f"{obj_name}-network-{network}"] == "InvalidSyncAggregateSignature"


@pytest.mark.parametrize("obj_name", OBJECTS)
def test_wrong_fork_schedule_is_refused_on_chain(walk: Walk, obj_name: str) -> None:
    assert walk.refusals[f"{obj_name}-network-fork-schedule"] in {
        "InvalidExecutionBranch",
        "InvalidFinalityBranch",
        "InvalidNextSyncCommitteeBranch",
    }


@pytest.mark.parametrize("obj_name", OBJECTS)
def test_skipped_period_is_refused_on_chain(walk: Walk, obj_name: str) -> None:
    assert walk.refusals[f"{obj_name}-skipped-period"] == "UnknownSyncCommitteePeriod"


@pytest.mark.parametrize("obj_name", OBJECTS)
def test_update_from_the_future_is_refused_on_chain(walk: Walk, obj_name: str) -> None:
    assert walk.refusals[f"{obj_name}-from-the-future"] == "InvalidSlotOrder"


def test_replayed_update_is_refused_on_chain(walk: Walk) -> None:
    assert walk.refusals["update0-replayed"] == "IrrelevantUpdate"


def test_refused_transaction_reverts_and_changes_nothing(
    chain: LightClientChain, walk: Walk, vectors: MainnetVectors
) -> None:
    """A refused update sent as a real transaction reverts; the finalized header stays."""
    contract = onchain_client.light_client_contract(chain.w3, walk.address)
    before = int(contract.functions.finalizedSlot().call())
    args = onchain_client.prepare_update(chain.w3, contract, vectors.finality, MAINNET)
    transaction_hash = chain.owner.send_call(contract.functions.submitUpdate(args), 2_000_000)
    (receipt,) = chain.owner.wait([transaction_hash], require_success=False)
    assert receipt["status"] == 0
    assert int(contract.functions.finalizedSlot().call()) == before
    with pytest.raises(onchain_client.LightClientRefused) as error:
        onchain_client.submit_update(chain.w3, chain.owner, walk.address, vectors.finality, MAINNET)
    assert error.value.fields["error"] == "StaleUpdate"


# --- bootstrap and ownership ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh(chain: LightClientChain) -> str:
    """A deployed light client nobody has initialised."""
    artifact = onchain_client.load_artifact(onchain_client.CONTRACT_NAME)
    (receipt,) = chain.owner.wait(
        [chain.owner.send({"data": artifact["bytecode"], "gas": onchain_client.DEPLOY_GAS})]
    )
    return str(receipt["contractAddress"])


def test_bootstrap_tampering_is_refused_on_chain(
    chain: LightClientChain, fresh: str, vectors: MainnetVectors
) -> None:
    bootstrap = vectors.bootstrap
    root = vectors.trusted_root

    def refusal(tampered: Any, network: NetworkConfig = MAINNET, trusted: bytes = root) -> str | None:
        return chain.refusal(fresh, "initialize", onchain_client.encode_bootstrap(tampered, network, trusted))

    assert refusal(bootstrap) is None
    branch = flip_branch_node(bootstrap.current_sync_committee_branch)
    assert (
        refusal(dataclasses.replace(bootstrap, current_sync_committee_branch=branch))
        == "InvalidCurrentSyncCommitteeBranch"
    )
    keys = list(bootstrap.current_sync_committee.pubkeys)
    keys[7] = keys[8]
    committee = dataclasses.replace(bootstrap.current_sync_committee, pubkeys=tuple(keys))
    assert (
        refusal(dataclasses.replace(bootstrap, current_sync_committee=committee))
        == "InvalidCurrentSyncCommitteeBranch"
    )
    header = bootstrap.header
    moved = dataclasses.replace(
        header, beacon=dataclasses.replace(header.beacon, slot=header.beacon.slot + 1)
    )
    assert refusal(dataclasses.replace(bootstrap, header=moved)) == "InvalidTrustedRoot"
    forged = dataclasses.replace(header, execution=dataclasses.replace(header.execution, gas_used=1))
    assert (
        refusal(
            dataclasses.replace(bootstrap, header=forged), trusted=compute_beacon_block_root(forged.beacon)
        )
        == "InvalidExecutionBranch"
    )
    assert refusal(bootstrap, network=ELECTRA_EARLY) == "InvalidExecutionBranch"
    aggregate = bytearray(onchain_client.encode_committee(bootstrap.current_sync_committee))
    aggregate[-1] ^= 1  # the aggregate key's y no longer on the curve
    args = list(onchain_client.encode_bootstrap(bootstrap, MAINNET))
    args[3] = bytes(aggregate)
    assert chain.refusal(fresh, "initialize", tuple(args)) == "InvalidSyncCommitteeKey"
    args[3] = bytes(aggregate[:-48]) + flip(bytes(48), 0)
    assert chain.refusal(fresh, "initialize", tuple(args)) == "InvalidSyncCommitteeKey"


def test_only_the_owner_initialises_once(
    chain: LightClientChain, fresh: str, walk: Walk, vectors: MainnetVectors
) -> None:
    args = onchain_client.encode_bootstrap(vectors.bootstrap, MAINNET)
    assert chain.refusal(fresh, "initialize", args, sender=chain.stranger.address) == "NotOwner"
    assert chain.refusal(walk.address, "initialize", args) == "AlreadyInitialized"
    assert (
        chain.refusal(walk.address, "setForceUpdateEnabled", (True,), sender=chain.stranger.address)
        == "NotOwner"
    )


def test_force_update_is_off_by_default(chain: LightClientChain, walk: Walk, vectors: MainnetVectors) -> None:
    contract = onchain_client.light_client_contract(chain.w3, walk.address)
    assert contract.functions.forceUpdateEnabled().call() is False
    args = onchain_client.prepare_update(chain.w3, contract, vectors.finality, MAINNET)
    assert chain.refusal(walk.address, "forceUpdate", (args,)) == "ForceUpdateDisabled"
    assert chain.refusal(walk.address, "forceUpdate", (args,), sender=chain.stranger.address) == "NotOwner"


def test_updates_before_initialisation_are_refused(
    chain: LightClientChain, fresh: str, vectors: MainnetVectors
) -> None:
    args = onchain_client.encode_update(
        vectors.updates[0], MAINNET, None, include_next_sync_committee_keys=True
    )
    assert chain.refusal(fresh, "submitUpdate", (args,)) == "NotInitialized"


# --- Electra layout, partial participation, keys supplied by the relayer, force update (built chain) --------------


@dataclass
class ElectraChain:
    full: Scenario
    most: Scenario
    """26 of 32 signed: the signers' key is the aggregate minus 6 keys."""
    few: Scenario
    """10 of 32 signed: the signers' key is the sum of 10 keys; no supermajority."""


@pytest.fixture(scope="module")
def electra() -> ElectraChain:
    blst = get_backend("blst")
    return ElectraChain(
        full=make_scenario(blst, Fork.ELECTRA),
        most=make_scenario(blst, Fork.ELECTRA, participants=list(range(3, 29))),
        few=make_scenario(blst, Fork.ELECTRA, participants=[0, 2, 5, 7, 11, 13, 17, 19, 23, 31]),
    )


def deploy_scenario(chain: LightClientChain, scenario: Scenario) -> tuple[str, Any]:
    address = onchain_client.deploy_light_client(chain.w3, chain.owner, scenario.bootstrap, scenario.network)
    return address, onchain_client.light_client_contract(chain.w3, address)


def test_electra_layout_partial_participation_and_relayer_keys(
    chain: LightClientChain, electra: ElectraChain
) -> None:
    network = electra.full.network
    address, contract = deploy_scenario(chain, electra.full)
    assert contract.functions.currentPeriod().call() == 0
    assert contract.functions.hasNextSyncCommittee().call() is False

    def refusal(update: Any, change: Callable[[list[Any]], None] | None = None) -> str | None:
        args = list(onchain_client.prepare_update(chain.w3, contract, update, network))
        if change is not None:
            change(args)
        return chain.refusal(address, "submitUpdate", (tuple(args),))

    assert refusal(electra.most.update) is None
    assert refusal(electra.few.update) == "NoSupermajority"  # the signature (sum of 10 keys) verified first

    def other_root(args: list[Any]) -> None:  # the other square root: right curve point, wrong sign flag
        y = int.from_bytes(args[9][:48], "big")
        args[9] = (onchain_client.FIELD_MODULUS - y).to_bytes(48, "big") + args[9][48:]

    def off_curve(args: list[Any]) -> None:
        args[9] = (int.from_bytes(args[9][:48], "big") + 1).to_bytes(48, "big") + args[9][48:]

    def one_short(args: list[Any]) -> None:
        args[9] = args[9][:-48]

    def keys_left_out(args: list[Any]) -> None:  # the update must bring the keys of the committee it teaches
        args[3], args[4] = compute_sync_committee_root(electra.full.next_committee.committee), b""

    def bits_too_long(args: list[Any]) -> None:
        args[6] = args[6] + b"\xff"

    assert refusal(electra.most.update, keys_left_out) == "MissingSyncCommitteeKeys"
    assert refusal(electra.most.update, bits_too_long) == "InvalidParticipationBits"
    assert refusal(electra.most.update, other_root) == "InvalidSyncCommitteeKey"
    assert refusal(electra.most.update, off_curve) == "InvalidSyncCommitteeKey"
    assert refusal(electra.most.update, one_short) == "InvalidSignerKeys"
    assert refusal(electra.few.update, other_root) == "InvalidSyncCommitteeKey"

    receipt = onchain_client.submit_update(chain.w3, chain.owner, address, electra.most.update, network)
    block = electra.full.blocks[100]
    client = LightClient.from_bootstrap(
        electra.full.trusted_root, electra.full.bootstrap, network, get_backend("blst")
    )
    client.process_update(electra.most.update, 30)
    assert contract.functions.finalizedSlot().call() == client.finalized_header.beacon.slot == 16
    assert contract.functions.latestExecutionBlockNumber().call() == 100
    assert contract.functions.executionHeader(100).call() == [
        block.payload.block_hash,
        block.payload.receipts_root,
    ]
    assert contract.functions.hasNextSyncCommittee().call() is True
    stored = contract.events.SyncCommitteeStored().process_receipt(receipt, errors=DISCARD)
    expected_root = compute_sync_committee_root(electra.full.next_committee.committee)
    assert [(e["args"]["period"], e["args"]["root"]) for e in stored] == [(1, expected_root)]
    assert contract.functions.syncCommitteeRoot(1).call() == expected_root
    headers = contract.events.HeaderFinalized().process_receipt(receipt, errors=DISCARD)
    assert [(h["args"]["slot"], h["args"]["executionBlockNumber"]) for h in headers] == [(16, 100)]

    # Within period 0 the next committee is known: an update proving another one is refused.
    assert refusal(same_period_update(electra.full, electra.full.next_committee.committee)) == "StaleUpdate"
    other = make_committee(get_backend("blst"), "another next committee").committee
    assert refusal(same_period_update(electra.full, other)) == "InvalidNextSyncCommittee"


def same_period_update(scenario: Scenario, next_committee: SyncCommittee) -> LightClientUpdate:
    """Attested at slot 32 (period 0), finalizing the scenario's slot-16 header, proving `next_committee`."""
    network = scenario.network
    finalized = scenario.update.finalized_header
    state = make_state(
        32,
        network,
        scenario.committee.committee,
        next_committee,
        compute_beacon_block_root(finalized.beacon),
        2,
    )
    attested = make_light_client_header(32, state.root, scenario.blocks[101].payload, network)
    signers = list(range(32))
    signing_root = compute_sync_committee_signing_root(attested.beacon, 33, network)
    return LightClientUpdate(
        attested_header=attested,
        next_sync_committee=next_committee,
        next_sync_committee_branch=state.next_branch,
        finalized_header=finalized,
        finality_branch=state.finality_branch,
        sync_aggregate=SyncAggregate(
            b"\xff" * 4, scenario.committee.sign(get_backend("blst"), signing_root, signers)
        ),
        signature_slot=33,
    )


def test_force_update_applies_a_minority_update_only_once_enabled(
    chain: LightClientChain, electra: ElectraChain
) -> None:
    network = electra.few.network
    address, contract = deploy_scenario(chain, electra.few)
    args = onchain_client.prepare_update(chain.w3, contract, electra.few.update, network)
    assert chain.refusal(address, "forceUpdate", (args,)) == "ForceUpdateDisabled"
    chain.owner.wait([chain.owner.send_call(contract.functions.setForceUpdateEnabled(True), 100_000)])
    assert chain.refusal(address, "forceUpdate", (args,), sender=chain.stranger.address) == "NotOwner"
    assert (
        chain.refusal(address, "submitUpdate", (args,)) == "NoSupermajority"
    )  # the normal path never forces
    chain.owner.wait([chain.owner.send_call(contract.functions.forceUpdate(args), 3_000_000)])
    assert contract.functions.finalizedSlot().call() == 16
    assert contract.functions.hasNextSyncCommittee().call() is True


def test_deneb_layout_on_chain(chain: LightClientChain) -> None:
    """Deneb: the 17-field payload header with the shallower (pre-Electra) state branches."""
    scenario = make_scenario(get_backend("blst"), Fork.DENEB)
    address, contract = deploy_scenario(chain, scenario)
    onchain_client.submit_update(chain.w3, chain.owner, address, scenario.update, scenario.network)
    block = scenario.blocks[100]
    assert contract.functions.finalizedSlot().call() == 16
    assert contract.functions.executionHeader(100).call() == [
        block.payload.block_hash,
        block.payload.receipts_root,
    ]
    # Branches padded to a deeper fork's length (normalized): the extra leading nodes must be zero.
    branch = scenario.update.finality_branch
    for padding, expected in ((b"\x00" * 32, "StaleUpdate"), (b"\x01" * 32, "InvalidFinalityBranch")):
        padded = dataclasses.replace(scenario.update, finality_branch=(padding, *branch))
        args = onchain_client.prepare_update(chain.w3, contract, padded, scenario.network)
        assert chain.refusal(address, "submitUpdate", (args,)) == expected
