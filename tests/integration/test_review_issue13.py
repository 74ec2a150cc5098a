"""Review of issue 13 (attacker's view): the on-chain light client's key handling at its edges.

One anvil, one light client per scenario (the synthetic Electra chain of 32 members). Each
tampered update is tried by `eth_call` on the contract's real state and must be refused with the
named error; the untampered one must pass (so every refusal is the tamper's, not the setup's).

- A member's y that names the negated key: the other root, written as that root plus p (still 48
  bytes, and "larger" than (p - 1) / 2, so it carries the sign flag of a larger-root key). A
  precompile that reduced field elements would accept it and sum -pk; EIP-2537 refuses
  non-canonical elements, and so must the contract.
- y = 0 and two members' y swapped.
- Exactly half signing (16 of 32: the participants' keys are summed) and one more (17: the
  aggregate minus 15): the signature verifies on both paths (NoSupermajority comes after it), and a
  participation bit moved to a member who did not sign fails the signature whichever path.
- The aggregate key's y of a committee the update teaches (the negated one, plus p, zero) and a
  member key of that committee changed (its root then differs from the state's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from web3 import Web3

from adapters.ethereum import onchain_client
from adapters.evm.anvil import DEV_PRIVATE_KEYS, AnvilProcess
from adapters.evm.deploy import TransactionSender
from relay.verify.bls import get_backend
from relay.verify.ethereum.config import Fork
from tests.integration.lightclient_chain import LightClientChain
from tests.unit.ethereum.synthetic import Scenario, make_scenario

pytestmark = [pytest.mark.anvil]

P = onchain_client.FIELD_MODULUS
HALF_P = (P - 1) // 2
KEY = onchain_client.KEY_LENGTH
SIZE = 32
# argument positions of EthereumLightClient.Update
NEXT_COMMITTEE, BITS, SIGNER_KEY_YS = 4, 6, 9


@pytest.fixture(scope="module")
def chain() -> Iterator[LightClientChain]:
    with AnvilProcess(chain_id=31337) as anvil:
        yield LightClientChain(
            w3=Web3(Web3.HTTPProvider(anvil.rpc_url)),
            owner=TransactionSender(anvil.rpc_url, DEV_PRIVATE_KEYS[0]),
            stranger=TransactionSender(anvil.rpc_url, DEV_PRIVATE_KEYS[1]),
        )


Refusal = Callable[[Scenario, Callable[[list[Any]], None] | None], str | None]


@pytest.fixture(scope="module")
def refusal(chain: LightClientChain) -> Refusal:
    deployed: dict[int, tuple[str, Any]] = {}

    def refuse(scenario: Scenario, change: Callable[[list[Any]], None] | None = None) -> str | None:
        key = id(scenario)
        if key not in deployed:
            address = onchain_client.deploy_light_client(
                chain.w3, chain.owner, scenario.bootstrap, scenario.network
            )
            deployed[key] = (address, onchain_client.light_client_contract(chain.w3, address))
        address, contract = deployed[key]
        args = list(onchain_client.prepare_update(chain.w3, contract, scenario.update, scenario.network))
        if change is not None:
            change(args)
        return chain.refusal(address, "submitUpdate", (tuple(args),))

    return refuse


@pytest.fixture(scope="module")
def scenarios() -> dict[str, Scenario]:
    blst = get_backend("blst")
    return {
        "most": make_scenario(blst, Fork.ELECTRA, participants=list(range(3, 29))),  # 26: aggregate - 6
        "half": make_scenario(blst, Fork.ELECTRA, participants=list(range(0, 32, 2))),  # 16: sum of 16
        "half+1": make_scenario(blst, Fork.ELECTRA, participants=list(range(17))),  # 17: aggregate - 15
    }


def ys_of(args: list[Any]) -> list[int]:
    data = bytes(args[SIGNER_KEY_YS])
    return [int.from_bytes(data[i : i + KEY], "big") for i in range(0, len(data), KEY)]


def set_ys(args: list[Any], ys: list[int]) -> None:
    args[SIGNER_KEY_YS] = b"".join(y.to_bytes(KEY, "big") for y in ys)


def test_untampered_updates_pass_or_miss_only_the_supermajority(
    refusal: Refusal, scenarios: dict[str, Scenario]
) -> None:
    assert refusal(scenarios["most"], None) is None
    # The signature verified (it is checked before the supermajority) on both sides of half.
    assert refusal(scenarios["half"], None) == "NoSupermajority"
    assert refusal(scenarios["half+1"], None) == "NoSupermajority"


@pytest.mark.parametrize("name", ["most", "half", "half+1"])
def test_a_y_naming_the_negated_key_is_refused_even_written_above_p(
    refusal: Refusal, scenarios: dict[str, Scenario], name: str
) -> None:
    probe: list[list[int]] = []
    refusal(scenarios[name], lambda args: probe.append(ys_of(args)))
    (ys,) = probe
    larger = [i for i, y in enumerate(ys) if y > HALF_P]
    assert larger, "the scenario sums at least one key whose y is the larger root"
    index = larger[0]

    def negated_above_p(args: list[Any]) -> None:  # (p - y) + p: -pk if reduced mod p; flag still "larger"
        changed = ys_of(args)
        changed[index] = (P - changed[index]) + P
        assert changed[index] < 1 << (8 * KEY)
        set_ys(args, changed)

    def zero(args: list[Any]) -> None:
        changed = ys_of(args)
        changed[index] = 0
        set_ys(args, changed)

    def swapped(args: list[Any]) -> None:
        changed = ys_of(args)
        changed[0], changed[1] = changed[1], changed[0]
        set_ys(args, changed)

    assert refusal(scenarios[name], negated_above_p) == "InvalidSyncCommitteeKey"
    assert refusal(scenarios[name], zero) == "InvalidSyncCommitteeKey"
    assert refusal(scenarios[name], swapped) == "InvalidSyncCommitteeKey"


@pytest.mark.parametrize("name", ["half", "half+1"])
def test_a_participation_bit_moved_to_a_non_signer_fails_the_signature(
    refusal: Refusal, scenarios: dict[str, Scenario], name: str
) -> None:
    scenario = scenarios[name]
    signer = scenario.participants[0]
    absent = next(i for i in range(SIZE) if i not in scenario.participants)

    def moved(args: list[Any]) -> None:
        bits = bytearray(args[BITS])
        bits[signer >> 3] &= ~(1 << (signer & 7)) & 0xFF
        bits[absent >> 3] |= 1 << (absent & 7)
        args[BITS] = bytes(bits)
        keys = [bytes(k) for k in scenario.committee.committee.pubkeys]
        args[SIGNER_KEY_YS] = onchain_client.compute_signer_key_ys(bytes(bits), keys)

    assert refusal(scenario, moved) == "InvalidSyncAggregateSignature"


def test_the_taught_committees_aggregate_y_and_keys_are_checked(
    refusal: Refusal, scenarios: dict[str, Scenario]
) -> None:
    scenario = scenarios["most"]
    aggregate_y = slice((SIZE + 1) * KEY, (SIZE + 2) * KEY)

    def with_aggregate_y(value: Callable[[int], int]) -> Callable[[list[Any]], None]:
        def change(args: list[Any]) -> None:
            committee = bytearray(args[NEXT_COMMITTEE])
            assert len(committee) == (SIZE + 2) * KEY, "the update teaches the next committee"
            y = int.from_bytes(committee[aggregate_y], "big")
            committee[aggregate_y] = value(y).to_bytes(KEY, "big")
            args[NEXT_COMMITTEE] = bytes(committee)

        return change

    def member_changed(args: list[Any]) -> None:
        committee = bytearray(args[NEXT_COMMITTEE])
        committee[KEY - 1] ^= 1
        args[NEXT_COMMITTEE] = bytes(committee)

    assert refusal(scenario, with_aggregate_y(lambda y: P - y)) == "InvalidSyncCommitteeKey"
    assert refusal(scenario, with_aggregate_y(lambda y: (P - y) + P if y > HALF_P else y + P)) in {
        "InvalidSyncCommitteeKey"
    }
    assert refusal(scenario, with_aggregate_y(lambda y: 0)) == "InvalidSyncCommitteeKey"
    assert refusal(scenario, member_changed) == "InvalidNextSyncCommitteeBranch"
