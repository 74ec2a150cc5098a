"""Gas on a real anvil chain: the body limit, paying on the source, exact gas on the destination.

- Source: `MAX_BODY_LENGTH` (the same constant as relay.verify.message), quotes from the owner's
  gas oracle, `dispatchWithGas` / `payForGas` with refunds, underpayment, unknown ids, claims.
- Destination: the recipient gets exactly the gas its delivery names. The issue-8 repro (a
  `handle` whose external call needs ~460k gas) is delivered on the first attempt with a limit of
  600k and the transaction gas from eth_estimateGas; a recipient that burns its gas gets exactly
  its limit and stays deliverable; a submitter that sends too little gas gets the whole
  transaction reverted (InsufficientGasForRecipient), nothing marked delivered.
- `relay.client.send` with `gas_limit` and `body_file`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from adapters.evm.anvil import ANVIL_PATH, DEV_PRIVATE_KEYS
from adapters.evm.build import SOLCJS_PATH
from adapters.evm.gas import deploy_contract
from relay import client
from relay.errors import ConfigurationError
from relay.relayer.sizing import compute_delivery_overhead
from relay.verify.hashing import keccak256
from relay.verify.message import HEADER_LENGTH, MAX_BODY_LENGTH, address_to_bytes32
from tests.integration.gateway_bridge import (
    DESTINATION,
    ORIGIN,
    Bridge,
    account,
    assert_reverts,
    checkpoint_digest,
    decode_error,
    events,
    transact,
)

pytestmark = [pytest.mark.anvil]

GAS_PRICE = 10**9  # 1 gwei on the destination
EXCHANGE_RATE = 2 * 10**10  # a destination unit is worth two source units


@pytest.fixture(autouse=True, scope="module")
def _tools_installed() -> None:
    """Fail (never skip) without the chain tools: a skipped contract suite would hide a broken setup."""
    if not (ANVIL_PATH.exists() and SOLCJS_PATH.exists()):
        pytest.fail("anvil/solcjs missing: run `make tools` (scripts/install-tools.sh)")


@pytest.fixture
def paying(bridge: Bridge) -> Bridge:
    """The bridge with a gas oracle for DESTINATION on the source Gateway."""
    transact(bridge.w3, bridge.source.functions.setGasOracle(DESTINATION, GAS_PRICE, EXCHANGE_RATE))
    return bridge


def quote(gas_limit: int) -> int:
    return gas_limit * GAS_PRICE * EXCHANGE_RATE // 10**10


def hostile(bridge: Bridge) -> Contract:
    return deploy_contract(bridge.w3, "HostileRecipient", bridge.destination.address)


def fee(receipt: Any) -> int:
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def pay(w3: Web3, call: Any, value: int, sender: str | None = None) -> Any:
    """Send a payable call with `value`; the receipt (which must succeed)."""
    receipt = w3.eth.wait_for_transaction_receipt(
        call.transact({"from": sender or account(w3, 0), "value": value})
    )
    assert receipt["status"] == 1
    return receipt


def paid_dispatch(bridge: Bridge, body: bytes, gas_limit: int, value: int, sender: str) -> tuple[Any, bytes]:
    """dispatchWithGas to the Counter from `sender`; returns (receipt, id)."""
    call = bridge.source.functions.dispatchWithGas(
        DESTINATION, address_to_bytes32(bridge.counter.address), body, gas_limit
    )
    receipt = bridge.w3.eth.wait_for_transaction_receipt(call.transact({"from": sender, "value": value}))
    assert receipt["status"] == 1
    (dispatched,) = events(bridge.source, "Dispatch", receipt)
    bridge.tree.insert(bytes(dispatched["id"]))
    return receipt, bytes(dispatched["id"])


# ---------------------------------------------------------------- body limit


def test_the_body_limit_is_one_constant_on_chain_and_off(bridge: Bridge) -> None:
    assert bridge.source.functions.MAX_BODY_LENGTH().call() == MAX_BODY_LENGTH == 65536
    recipient = address_to_bytes32(bridge.counter.address)
    too_large = bridge.source.functions.dispatch(DESTINATION, recipient, bytes(MAX_BODY_LENGTH + 1))
    assert_reverts(bridge.source, too_large, "BodyTooLarge", MAX_BODY_LENGTH + 1, MAX_BODY_LENGTH)
    paid = bridge.source.functions.dispatchWithGas(DESTINATION, recipient, bytes(MAX_BODY_LENGTH + 1), 1)
    assert_reverts(bridge.source, paid, "BodyTooLarge", MAX_BODY_LENGTH + 1, MAX_BODY_LENGTH)
    assert bridge.source.functions.count().call() == 0
    message, _ = bridge.send(b"\xff" * MAX_BODY_LENGTH)  # the limit itself is accepted
    assert len(message) == 77 + MAX_BODY_LENGTH


# ---------------------------------------------------------------- paying on the source


def test_quotes_follow_the_owners_oracle(bridge: Bridge) -> None:
    gateway, owner, stranger = bridge.source, account(bridge.w3, 0), account(bridge.w3, 1)
    assert_reverts(gateway, gateway.functions.quoteGasPayment(DESTINATION, 1), "NoGasOracle", DESTINATION)
    set_oracle = gateway.functions.setGasOracle(DESTINATION, GAS_PRICE, EXCHANGE_RATE)
    assert_reverts(gateway, set_oracle, "NotOwner", stranger, sender=stranger)
    (event,) = events(gateway, "GasOracleSet", transact(bridge.w3, set_oracle))
    assert (event["destination"], event["gasPrice"], event["exchangeRate"]) == (
        DESTINATION,
        GAS_PRICE,
        EXCHANGE_RATE,
    )
    assert gateway.functions.owner().call() == owner
    assert gateway.functions.quoteGasPayment(DESTINATION, 100_000).call() == quote(100_000) == 2 * 10**14
    assert gateway.functions.gasOracleOf(DESTINATION).call() == [GAS_PRICE, EXCHANGE_RATE]
    assert_reverts(gateway, gateway.functions.quoteGasPayment(3, 1), "NoGasOracle", 3)
    too_much = gateway.functions.quoteGasPayment(DESTINATION, 2**96)
    assert_reverts(gateway, too_much, "GasLimitTooLarge", 2**96, 2**96 - 1)
    # An exchange rate of zero removes the entry.
    transact(bridge.w3, gateway.functions.setGasOracle(DESTINATION, GAS_PRICE, 0))
    assert_reverts(gateway, gateway.functions.quoteGasPayment(DESTINATION, 1), "NoGasOracle", DESTINATION)


def test_dispatch_with_gas_records_the_payment_and_refunds_the_excess(paying: Bridge) -> None:
    w3, gateway, user = paying.w3, paying.source, account(paying.w3, 1)
    required = quote(300_000)
    recipient = address_to_bytes32(paying.counter.address)
    underpaid = gateway.functions.dispatchWithGas(DESTINATION, recipient, b"cheap", 300_000)
    assert_reverts(gateway, underpaid, "InsufficientGasPayment", required, required - 1, value=required - 1)
    no_oracle = gateway.functions.dispatchWithGas(3, recipient, b"nowhere", 300_000)
    assert_reverts(gateway, no_oracle, "NoGasOracle", 3, value=required)

    before = w3.eth.get_balance(user)
    receipt, message_id = paid_dispatch(paying, b"paid", 300_000, required + 12_345, user)
    (payment,) = events(gateway, "GasPayment", receipt)
    assert (bytes(payment["id"]), payment["destination"], payment["gasLimit"], payment["payment"]) == (
        message_id,
        DESTINATION,
        300_000,
        required,
    )
    assert before - w3.eth.get_balance(user) == required + fee(receipt)  # the excess came back
    assert w3.eth.get_balance(gateway.address) == required
    assert gateway.functions.gasPaid(message_id).call() == [300_000, required]


def test_top_ups_add_up_and_only_for_dispatched_ids(paying: Bridge) -> None:
    gateway, user = paying.source, account(paying.w3, 1)
    message, _ = paying.send(b"unpaid at first")
    message_id = keccak256(message)
    assert gateway.functions.gasPaid(message_id).call() == [0, 0]
    receipt = pay(
        paying.w3, gateway.functions.payForGas(message_id, DESTINATION, 100_000), quote(100_000) + 1, user
    )
    (payment,) = events(gateway, "GasPayment", receipt)
    assert (bytes(payment["id"]), payment["gasLimit"], payment["payment"]) == (
        message_id,
        100_000,
        quote(100_000),
    )
    pay(paying.w3, gateway.functions.payForGas(message_id, DESTINATION, 50_000), quote(50_000))
    assert gateway.functions.gasPaid(message_id).call() == [150_000, quote(150_000)]

    unknown = b"\x42" * 32
    assert_reverts(
        gateway, gateway.functions.payForGas(unknown, DESTINATION, 1), "UnknownMessage", unknown, value=10**18
    )
    elsewhere = gateway.functions.payForGas(message_id, 3, 1)
    assert_reverts(gateway, elsewhere, "GasDestinationMismatch", message_id, DESTINATION, 3, value=10**18)
    short = gateway.functions.payForGas(message_id, DESTINATION, 10_000)
    assert_reverts(gateway, short, "InsufficientGasPayment", quote(10_000), 0)
    overflow = gateway.functions.payForGas(message_id, DESTINATION, 2**96 - 1)
    # The quote for 2^96 - 1 gas is beyond any balance; the total would not fit the record either.
    with pytest.raises(ContractCustomError):
        overflow.call({"value": 0})
    assert gateway.functions.gasPaid(message_id).call() == [150_000, quote(150_000)]


def test_a_refund_the_caller_refuses_reverts_only_its_own_call(paying: Bridge) -> None:
    w3, gateway = paying.w3, paying.source
    caller = deploy_contract(w3, "HostileRecipient", gateway.address)  # it has no receive function
    dispatch = gateway.functions.dispatchWithGas(
        DESTINATION, address_to_bytes32(paying.counter.address), b"refund me", 100_000
    )
    data = dispatch._encode_transaction_data()
    refusing = caller.functions.callGateway(data)
    assert_reverts(gateway, refusing, "RefundFailed", caller.address, 1, value=quote(100_000) + 1)
    assert gateway.functions.count().call() == 0
    # Paying the exact quote needs no refund: the same caller dispatches, and others are unaffected.
    receipt = pay(w3, refusing, quote(100_000))
    (payment,) = events(gateway, "GasPayment", receipt)
    assert payment["payment"] == quote(100_000)
    paid_dispatch(paying, b"someone else", 100_000, quote(100_000) + 5, account(w3, 1))
    assert gateway.functions.count().call() == 2


def test_the_owner_claims_the_payments(paying: Bridge) -> None:
    w3, gateway = paying.w3, paying.source
    stranger, treasury = account(w3, 1), account(w3, 3)
    paid_dispatch(paying, b"one", 100_000, quote(100_000), stranger)
    paid_dispatch(paying, b"two", 200_000, quote(200_000) + 7, stranger)
    total = quote(300_000)
    assert w3.eth.get_balance(gateway.address) == total
    claim = gateway.functions.claimGasPayments(treasury)
    assert_reverts(gateway, claim, "NotOwner", stranger, sender=stranger)
    refusing = hostile(paying).address
    assert_reverts(gateway, gateway.functions.claimGasPayments(refusing), "ClaimFailed", refusing, total)
    before = w3.eth.get_balance(treasury)
    (claimed,) = events(gateway, "GasPaymentsClaimed", transact(w3, claim))
    assert (claimed["to"], claimed["amount"]) == (treasury, total)
    assert w3.eth.get_balance(treasury) - before == total
    assert w3.eth.get_balance(gateway.address) == 0


# ---------------------------------------------------------------- exact gas on the destination


def test_the_issue_repro_is_delivered_on_the_first_attempt(bridge: Bridge) -> None:
    """A handle whose external call needs ~460k gas; the delivery names 600k; the transaction's gas
    is eth_estimateGas's answer, no margin. Before: the estimate settled on a failing limit."""
    w3, recipient = bridge.w3, hostile(bridge)
    transact(w3, recipient.functions.setInnerCallGas(460_000))
    message, nonce = bridge.send(b"needs 460k", recipient=recipient.address)
    call = bridge.process(message, nonce, gas_limit=600_000)
    estimate = call.estimate_gas()
    receipt = w3.eth.wait_for_transaction_receipt(call.transact({"gas": estimate}))
    assert receipt["status"] == 1
    assert [bytes(e["id"]) for e in events(bridge.destination, "Delivered", receipt)] == [keccak256(message)]
    assert recipient.functions.handled().call() == 1

    # Named too little gas, the same recipient fails softly and is delivered later with more.
    message, nonce = bridge.send(b"needs 460k too", recipient=recipient.address)
    receipt = transact(w3, bridge.process(message, nonce, gas_limit=300_000))
    (failed,) = events(bridge.destination, "DeliveryFailed", receipt)
    assert bytes(failed["reason"]).hex() == "4e487b71" + f"{0x11:064x}"  # Panic: its own underflow
    assert not bridge.destination.functions.delivered(ORIGIN, nonce).call()
    receipt = transact(w3, bridge.process(message, nonce, gas_limit=600_000))
    assert len(events(bridge.destination, "Delivered", receipt)) == 1
    assert recipient.functions.handled().call() == 2


def test_a_gas_burning_recipient_gets_exactly_its_limit_and_stays_deliverable(bridge: Bridge) -> None:
    w3, recipient = bridge.w3, hostile(bridge)
    transact(w3, recipient.functions.setBurnGas(True))
    message, nonce = bridge.send(b"burn", recipient=recipient.address)
    used = {}
    for gas_limit in (100_000, 400_000):
        receipt = transact(w3, bridge.process(message, nonce, gas_limit=gas_limit))
        (failed,) = events(bridge.destination, "DeliveryFailed", receipt)
        reason = decode_error(bridge.destination, bytes(failed["reason"]))
        assert reason == ("RecipientOutOfGas", (gas_limit,))
        assert not bridge.destination.functions.delivered(ORIGIN, nonce).call()
        used[gas_limit] = int(receipt["gasUsed"])
    # Everything but the recipient's share is the same in both transactions.
    assert abs(used[400_000] - used[100_000] - 300_000) < 1_000
    transact(w3, recipient.functions.setBurnGas(False))
    receipt = transact(w3, bridge.process(message, nonce, gas_limit=100_000))
    assert len(events(bridge.destination, "Delivered", receipt)) == 1


def test_too_little_transaction_gas_reverts_the_whole_delivery(bridge: Bridge) -> None:
    w3, recipient = bridge.w3, hostile(bridge)
    transact(w3, recipient.functions.setInnerCallGas(460_000))
    message, nonce = bridge.send(b"starve me", recipient=recipient.address)
    call = bridge.process(message, nonce, gas_limit=600_000)
    with pytest.raises(ContractCustomError) as raised:
        call.call({"gas": 550_000})
    name, (message_id, gas_limit, gas_left) = decode_error(
        bridge.destination, bytes.fromhex(str(raised.value.data)[2:])
    )
    assert (name, message_id, gas_limit) == ("InsufficientGasForRecipient", keccak256(message), 600_000)
    assert gas_left < 600_000 + 600_000 // 63
    receipt = w3.eth.wait_for_transaction_receipt(call.transact({"gas": 550_000}))
    assert receipt["status"] == 0
    assert not bridge.destination.functions.delivered(ORIGIN, nonce).call()
    assert recipient.functions.handled().call() == 0
    assert call.estimate_gas() > 600_000 * 64 // 63  # what a submitter using the estimate sends


def test_a_batch_gives_each_recipient_its_own_limit(bridge: Bridge) -> None:
    w3, burner = bridge.w3, hostile(bridge)
    transact(w3, burner.functions.setBurnGas(True))
    sent = [
        bridge.send(b"to the counter"),
        bridge.send(b"burn", recipient=burner.address),
        bridge.send(b"again"),
    ]
    checkpoint = bridge.checkpoint()
    bitfield, signature = bridge.certify(checkpoint_digest(checkpoint))
    call = bridge.destination.functions.processBatch(
        checkpoint,
        bitfield,
        signature,
        [m for m, _ in sent],
        [bridge.tree.branch(n) for _, n in sent],
        [150_000, 70_000, 150_000],
    )
    receipt = transact(w3, call)
    assert [e["nonce"] for e in events(bridge.destination, "Delivered", receipt)] == [0, 2]
    (failed,) = events(bridge.destination, "DeliveryFailed", receipt)
    assert decode_error(bridge.destination, bytes(failed["reason"])) == ("RecipientOutOfGas", (70_000,))
    assert bridge.counter.functions.received().call() == 2


# ---------------------------------------------------------------- the dApp client


def test_client_send_quotes_and_pays_and_reads_a_body_file(paying: Bridge, tmp_path: Path) -> None:
    w3, gateway = paying.w3, paying.source
    rpc_url = str(w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    key = DEV_PRIVATE_KEYS[-1]
    body_file = tmp_path / "body.bin"
    body_file.write_bytes(bytes(range(256)) * 4)
    message_id = client.send(
        rpc_url,
        gateway.address,
        key,
        DESTINATION,
        paying.counter.address,
        body_file=body_file,
        gas_limit=250_000,
    )
    # The client pays for the handle gas plus the delivery's own cost for this message.
    paid_gas = 250_000 + compute_delivery_overhead(HEADER_LENGTH + len(body_file.read_bytes()))
    assert gateway.functions.gasPaid(message_id).call() == [paid_gas, quote(paid_gas)]
    unpaid = client.send(rpc_url, gateway.address, key, DESTINATION, paying.counter.address, b"free")
    assert gateway.functions.gasPaid(unpaid).call() == [0, 0]
    assert gateway.functions.count().call() == 2

    with pytest.raises(client.NoGasOracle, match="no gas oracle"):
        client.send(rpc_url, gateway.address, key, 3, paying.counter.address, b"x", gas_limit=1)
    body_file.write_bytes(bytes(MAX_BODY_LENGTH + 1))
    with pytest.raises(client.BodyTooLarge, match="65536") as raised:
        client.send(rpc_url, gateway.address, key, DESTINATION, paying.counter.address, body_file=body_file)
    assert raised.value.fields["length"] == MAX_BODY_LENGTH + 1
    with pytest.raises(client.BodyTooLarge):
        client.send(rpc_url, gateway.address, key, DESTINATION, paying.counter.address, "é" * 40_000)
    with pytest.raises(ConfigurationError, match="exactly one"):
        client.send(
            rpc_url, gateway.address, key, DESTINATION, paying.counter.address, b"x", body_file=body_file
        )
    for bad in (0, -1, 2**64):
        with pytest.raises(ConfigurationError, match="gas limit"):
            client.send(
                rpc_url, gateway.address, key, DESTINATION, paying.counter.address, b"x", gas_limit=bad
            )
    assert gateway.functions.count().call() == 2  # nothing refused was sent
