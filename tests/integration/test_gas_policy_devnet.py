"""The relayer's gas policy on a real devnet (two anvils, attestor, submitter and relayer processes).

- A message dispatched without payment is held UNPAID with its reason, and delivered once
  `payForGas` tops it up; the route's cost metrics (gas spent, spent, paid) move with it.
- 50 messages of the maximum body (64 KiB) are delivered, as several batches bounded by calldata
  bytes and declared gas.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.evm import deploy
from adapters.evm.anvil import ANVIL_PATH
from adapters.evm.build import SOLCJS_PATH
from relay.relayer.config import BatchingConfig
from relay.relayer.sizing import compute_delivery_overhead, message_bytes, message_gas
from relay.tools.devnet import Devnet, DevnetOptions
from relay.verify.message import HEADER_LENGTH, MAX_BODY_LENGTH, Message, address_to_bytes32
from tests.waiting import eventually, metric_value

pytestmark = [pytest.mark.anvil]

BIG_DISPATCH_GAS = 8_000_000  # a 64 KiB body: calldata floor, log data and the payment record


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    if not (ANVIL_PATH.exists() and SOLCJS_PATH.exists()):
        pytest.fail("anvil/solcjs missing: run `make tools` (scripts/install-tools.sh)")
    options = DevnetOptions(
        run_root=tmp_path_factory.mktemp("gas-policy"),
        block_time=1.0,
        confirmations=1,
        committee_size=1,
        threshold=1,
        retry_base_delay=0.1,
        retry_max_delay=5.0,
    )
    network = Devnet(options).start()
    try:
        yield network
    finally:
        network.stop()


def status(devnet: Devnet) -> dict[str, Any]:
    assert devnet.status_url is not None
    with urllib.request.urlopen(devnet.status_url + "api/status", timeout=10) as response:  # noqa: S310
        return dict(json.loads(response.read()))


def metrics(devnet: Devnet) -> str:
    with urllib.request.urlopen(f"http://{devnet.metrics_addresses['relayer']}/metrics", timeout=10) as r:
        return str(r.read().decode())


def route_cost(devnet: Devnet, origin: int, destination: int) -> dict[str, Any] | None:
    for cost in status(devnet)["costs"]:
        if cost["origin"]["domain"] == origin and cost["destination"]["domain"] == destination:
            return dict(cost)
    return None


def test_an_unpaid_message_is_held_then_delivered_after_a_top_up(devnet: Devnet) -> None:
    alpha, beta = devnet.chains
    client = devnet.client()
    sender = deploy.TransactionSender(alpha.rpc_url, devnet.user_key)
    # Counter.send dispatches without paying.
    [receipt] = sender.wait(
        deploy.send_counter_messages(sender, alpha.counter, beta.domain, beta.counter, [b"free?"])
    )
    [message_id] = deploy.dispatched_ids(receipt, alpha.gateway)

    def held() -> Any:
        view = client.get(message_id)
        return view if view is not None and view.state == "unpaid" else None

    view = eventually(held, 60, "the unpaid message held UNPAID")
    assert view.last_error.startswith("Unpaid: no gas paid for")
    labels = {"origin": str(alpha.domain), "destination": str(beta.domain)}
    assert metric_value(metrics(devnet), "relay_gas_policy_holds_total", {**labels, "reason": "Unpaid"}) >= 1
    eventually(  # the gauges refresh about once a second
        lambda: metric_value(metrics(devnet), "relay_messages", {**labels, "state": "unpaid"}) >= 1,
        10,
        "relay_messages{state=unpaid}",
    )
    before = route_cost(devnet, alpha.domain, beta.domain) or {"gas_spent": 0, "paid": "0", "spent": "0"}

    gateway = deploy.contract(sender.web3, "Gateway", alpha.gateway)
    # Handle gas plus the delivery's own cost for this message (what the gas policy requires).
    top_up = 150_000 + compute_delivery_overhead(HEADER_LENGTH + len(b"free?"))
    quote = int(gateway.functions.quoteGasPayment(beta.domain, top_up).call())
    call = gateway.functions.payForGas(message_id, beta.domain, top_up)
    sender.wait(
        [
            sender.send(
                {"to": call.address, "data": call._encode_transaction_data(), "gas": 200_000, "value": quote}
            )
        ]
    )

    delivered = client.wait_delivered(message_id, timeout=90)
    assert delivered.state == "delivered"
    after = eventually(
        lambda: (
            (c := route_cost(devnet, alpha.domain, beta.domain))
            and int(c["paid"]) >= int(before["paid"]) + quote
            and c
        ),
        30,
        "the route's costs to count the delivery",
    )
    assert after["gas_spent"] > before["gas_spent"]
    assert int(after["spent"]) > int(before["spent"])
    text = metrics(devnet)
    assert metric_value(text, "relay_route_native_paid_total", labels) >= quote
    assert metric_value(text, "relay_route_gas_spent_total", labels) > 0
    assert metric_value(text, "relay_route_native_spent_total", labels) > 0


def test_fifty_maximum_bodies_are_delivered_in_several_batches(devnet: Devnet) -> None:
    alpha, beta = devnet.chains
    client = devnet.client()
    sender = deploy.TransactionSender(alpha.rpc_url, devnet.user_key)
    gateway = deploy.contract(sender.web3, "Gateway", alpha.gateway)
    app = deploy.contract(sender.web3, "Counter", alpha.counter)
    gas_limit = 200_000  # for the handle; each message pays for that plus its delivery overhead
    paid_gas = gas_limit + compute_delivery_overhead(HEADER_LENGTH + MAX_BODY_LENGTH)
    quote = int(gateway.functions.quoteGasPayment(beta.domain, paid_gas).call())
    recipient = address_to_bytes32(beta.counter)
    fees = sender._fees()
    hashes = []
    for n in range(50):
        body = bytes([n + 1]) * MAX_BODY_LENGTH
        call = app.functions.sendWithGas(beta.domain, recipient, body, paid_gas)
        transaction = {
            "to": call.address,
            "data": call._encode_transaction_data(),
            "gas": BIG_DISPATCH_GAS,
            "value": quote,
        }
        hashes.append(sender.send(transaction, fees))
    ids = [
        i
        for receipt in sender.wait(hashes, timeout=180)
        for i in deploy.dispatched_ids(receipt, alpha.gateway)
    ]
    assert len(ids) == 50

    views = client.wait_all_delivered(ids, timeout=300)
    assert {v.state for v in views.values()} == {"delivered"}
    transactions = {v.destination_transaction for v in views.values()}
    # Bounded by declared gas: 15M by default (half of anvil's 30M block) over ~2.9M per message.
    probe = Message.create(
        nonce=0,
        origin=alpha.domain,
        sender=b"\0" * 32,
        destination=beta.domain,
        recipient=recipient,
        body=b"\1" * MAX_BODY_LENGTH,
    )
    bounds = BatchingConfig()

    class Record:
        message = probe

    per_batch = min(
        bounds.max_batch_bytes // message_bytes(Record),  # type: ignore[arg-type]
        bounds.max_batch_gas // message_gas(Record, gas_limit),  # type: ignore[arg-type]
    )
    print(
        f"50 bodies of {MAX_BODY_LENGTH} bytes: {len(transactions)} delivery transactions (<= {per_batch} each)"
    )
    assert len(transactions) >= 50 // per_batch > 1
