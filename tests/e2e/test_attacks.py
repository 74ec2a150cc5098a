"""Issue 8's attacks, side by side with normal traffic, on the real devnet (real anvils, real processes).

While both directions carry normal, paid traffic, an attacker on alpha:
- dispatches a body over MAX_BODY_LENGTH: refused by the client and by the Gateway (BodyTooLarge);
- pays for 150k gas to a recipient that burns all the gas it gets: the recipient gets exactly its
  150k, the delivery fails with RecipientOutOfGas and the message is PARKED (still deliverable);
- pays for 600k gas to a legitimate recipient whose `handle` needs about 460k (the issue's repro):
  delivered on the first attempt;
- sends to a recipient that reverts (a Counter set to fail): PARKED with its revert reason;
- sends to an address with no code: PARKED (RecipientNotContract);
- dispatches without paying: held UNPAID with the reason, never delivered at the operator's cost;
- pays for 1 gas with a maximum body (the review's drain: the calldata alone costs the submitter
  millions of gas): held UNPAID as Underpaid, since a payment must cover the delivery overhead.

Every normal message is delivered exactly once (counted by the recipients and by the Delivered
events), every attack message ends in the state the design says, and the test prints the counts.
"""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any

import pytest

from relay.client import BodyTooLarge, send
from relay.tools.devnet import Devnet
from relay.verify.message import MAX_BODY_LENGTH

from .test_devnet import delivered_events, wait_states

NORMAL_EACH_WAY = 10


def deploy_on(devnet: Devnet, chain_name: str, artifact: str, *args: Any) -> Any:
    """Deploy a test contract on a devnet chain from anvil's first (unlocked) account."""
    from web3 import HTTPProvider, Web3

    from adapters.evm.gas import deploy_contract

    web3 = Web3(HTTPProvider(devnet.chain(chain_name).rpc_url))
    web3.eth.default_account = web3.eth.accounts[0]
    return deploy_contract(web3, artifact, *args)


def transact(contract_call: Any) -> None:
    """Send a call from the default account and wait until it is mined."""
    web3 = contract_call.w3
    receipt = web3.eth.wait_for_transaction_receipt(contract_call.transact(), timeout=30)
    assert receipt["status"] == 1


def dispatch_paying_for(devnet: Devnet, gas_limit: int, body: bytes) -> bytes:
    """`dispatchWithGas` straight to alpha's Gateway (no client help), paying the quote for `gas_limit`."""
    from adapters.evm import deploy
    from relay.verify.message import address_to_bytes32

    alpha, beta = devnet.chains
    sender = deploy.TransactionSender(alpha.rpc_url, devnet.user_key)
    gateway = deploy.contract(sender.web3, "Gateway", alpha.gateway)
    quote = int(gateway.functions.quoteGasPayment(beta.domain, gas_limit).call())
    call = gateway.functions.dispatchWithGas(beta.domain, address_to_bytes32(beta.counter), body, gas_limit)
    transaction = {
        "to": call.address,
        "data": call._encode_transaction_data(),
        "gas": 3_000_000,
        "value": quote,
    }
    (receipt,) = sender.wait([sender.send(transaction)])
    (message_id,) = deploy.dispatched_ids(receipt, alpha.gateway)
    return message_id


def test_attacks_side_by_side_with_normal_traffic(devnet: Devnet) -> None:
    alpha, beta = devnet.chains
    client = devnet.client()
    before = {chain.name: devnet.received(chain.name) for chain in devnet.chains}

    burner = deploy_on(devnet, beta.name, "HostileRecipient", beta.gateway)
    transact(burner.functions.setBurnGas(True))
    needy = deploy_on(devnet, beta.name, "HostileRecipient", beta.gateway)
    transact(needy.functions.setInnerCallGas(460_000))
    reverting = deploy_on(devnet, beta.name, "Counter", beta.gateway)
    transact(reverting.functions.setFailing(True))
    no_code = "0x" + "5a" * 20

    def attack(recipient: str, body: bytes, gas_limit: int | None) -> bytes:
        return send(
            alpha.rpc_url, alpha.gateway, devnet.user_key, beta.domain, recipient, body, gas_limit=gas_limit
        )

    normal = devnet.send(alpha.name, beta.name, NORMAL_EACH_WAY, "normal")
    with pytest.raises(BodyTooLarge):
        attack(beta.counter, b"x" * (MAX_BODY_LENGTH + 1), 100_000)
    burned = attack(burner.address, b"burn", 150_000)
    repro = attack(needy.address, b"needs 460k", 600_000)
    reverted = attack(reverting.address, b"revert", 100_000)
    nowhere = attack(no_code, b"nobody home", 100_000)
    unpaid = attack(beta.counter, b"free ride", None)
    one_gas = dispatch_paying_for(devnet, 1, b"y" * MAX_BODY_LENGTH)
    normal += devnet.send(beta.name, alpha.name, NORMAL_EACH_WAY, "normal")

    views = wait_states(client, normal, {"delivered"}, timeout=180)
    expected = {
        burned: "parked",
        repro: "delivered",
        reverted: "parked",
        nowhere: "parked",
        unpaid: "unpaid",
        one_gas: "unpaid",
    }
    views.update(wait_states(client, list(expected), {"delivered", "parked", "unpaid"}, timeout=120))
    ends = {message_id: views[message_id].state for message_id in expected}
    assert ends == expected, {k.hex()[:8]: (v, views[k].last_error) for k, v in ends.items()}
    assert views[repro].attempts == 0  # delivered on the first attempt
    assert "RecipientOutOfGas" in views[burned].last_error
    assert "FailingOnPurpose" in views[reverted].last_error
    assert "RecipientNotContract" in views[nowhere].last_error
    assert views[unpaid].last_error.startswith("Unpaid")  # the reason it is held is visible
    assert views[one_gas].last_error.startswith("Underpaid")

    # Exactly once: the recipients' counters and the Delivered events agree.
    assert devnet.received(beta.name) - before[beta.name] == NORMAL_EACH_WAY
    assert devnet.received(alpha.name) - before[alpha.name] == NORMAL_EACH_WAY
    events = {**delivered_events(beta), **delivered_events(alpha)}
    assert all(events[m] == 1 for m in [*normal, repro])
    assert all(events.get(m, 0) == 0 for m in (burned, reverted, nowhere, unpaid, one_gas))
    assert int(needy.functions.handled().call()) == 1

    counts = Tally(views[m].state for m in normal)
    print(
        f"normal: {dict(counts)} of {len(normal)}; attacks: oversized refused on-chain, "
        + ", ".join(
            f"{name} {ends[m]}"
            for name, m in [
                ("burner", burned),
                ("repro", repro),
                ("reverting", reverted),
                ("no code", nowhere),
                ("unpaid", unpaid),
                ("1 gas for 64 KiB", one_gas),
            ]
        )
    )
