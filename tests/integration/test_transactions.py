"""Delivery transactions that land, on real anvil with automine off (blocks mined by the test).

A base-fee spike leaves a delivery underpriced: it is replaced (same nonce, bumped fees) and the
replacement is reported. A fee cap holds the bump back: a typed transient error. A dropped
transaction is sent again under a re-read nonce without waiting out the receipt timeout, also
when it leaves a gap below another one. A flaky RPC (500, 429, dropped connections on the first
requests of each read the submitter does) does not fail the delivery.

These tests start their own pair of chains: they change the destination's mining and base fee.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from adapters.evm import deploy
from adapters.evm.errors import FeeCapReached
from adapters.evm.submitter import EvmDestination
from relay.chains import DeliveryItem
from relay.metrics import RelayMetrics
from tests.chains import SUBMITTER, Chains, all_source_messages, certify, running_chains
from tests.flaky_rpc import FlakyRpcProxy
from tests.waiting import eventually

pytestmark = pytest.mark.anvil

GWEI = 10**9
SPIKE = 100 * GWEI


@pytest.fixture(scope="module")
def own_chains() -> Iterator[Chains]:
    with running_chains() as started:
        yield started


def rpc(chains: Chains, method: str, *params: Any) -> Any:
    return deploy.rpc_request(chains.destination.rpc_url, method, list(params))


@pytest.fixture
def manual_mining(own_chains: Chains) -> Iterator[Chains]:
    """The destination with automine off; afterwards the pool emptied, automine on, base fee low."""
    rpc(own_chains, "evm_setAutomine", False)
    try:
        yield own_chains
    finally:
        rpc(own_chains, "anvil_dropAllTransactions")
        rpc(own_chains, "anvil_setNextBlockBaseFeePerGas", hex(GWEI))
        rpc(own_chains, "evm_setAutomine", True)
        rpc(own_chains, "evm_mine")


def pool(chains: Chains, account: str) -> dict[int, dict[str, Any]]:
    """The account's transactions in the destination's pool, by nonce."""
    content = rpc(chains, "txpool_content")
    found: dict[int, dict[str, Any]] = {}
    for section in ("pending", "queued"):
        for sender, by_nonce in (content.get(section) or {}).items():
            if sender.lower() == account.lower():
                for nonce, transaction in by_nonce.items():
                    found[int(nonce)] = transaction
    return found


def one_item(chains: Chains, prefix: str) -> tuple[Any, Any, list[DeliveryItem]]:
    (message_id,) = chains.send(1, prefix)
    messages = all_source_messages(chains)
    checkpoint, certificate, tree = certify(chains, messages)
    message = next(m for m in messages if m.id == message_id)
    return checkpoint, certificate, [DeliveryItem(message, tree.branch(message.nonce))]


def destination(
    chains: Chains, registry: CollectorRegistry, rpc_url: str = "", **submission: Any
) -> EvmDestination:
    chain = chains.destination_chain(submission=submission, **({"rpc_urls": [rpc_url]} if rpc_url else {}))
    return EvmDestination(chain, SUBMITTER, metrics=RelayMetrics(registry))


def events(registry: CollectorRegistry, event: str) -> float:
    value = registry.get_sample_value(
        "relay_submitter_transaction_events_total", {"chain": "destination", "event": event}
    )
    return value or 0.0


def test_a_stuck_delivery_is_replaced_with_bumped_fees_and_the_mined_version_reported(
    manual_mining: Chains,
) -> None:
    chains = manual_mining
    checkpoint, certificate, items = one_item(chains, "stuck")
    registry = CollectorRegistry()
    target = destination(chains, registry, stuck_after=0.3, receipt_timeout=60)
    with ThreadPoolExecutor(1) as executor:
        future = executor.submit(target.submit, checkpoint, certificate, items)
        first = eventually(lambda: pool(chains, target.account), 20, "the delivery in the pool")
        (nonce,) = first
        first_fee = int(first[nonce]["maxFeePerGas"], 16)
        first_tip = int(first[nonce]["maxPriorityFeePerGas"], 16)
        # No block is mined: after two replacements (each >= 12.5 % more), mine one.
        replaced = eventually(
            lambda: (
                (t := pool(chains, target.account).get(nonce))
                and int(t["maxFeePerGas"], 16) >= first_fee * 1.125**2
                and t
            ),
            20,
            "two fee bumps under the same nonce",
        )
        rpc(chains, "evm_mine")
        batch = future.result(timeout=30)
    assert batch.delivered == [items[0].message.id]
    mined = "0x" + batch.transaction_hash.hex()
    assert mined != first[nonce]["hash"]
    assert int(rpc(chains, "eth_getTransactionReceipt", mined)["status"], 16) == 1
    transaction = rpc(chains, "eth_getTransactionByHash", mined)
    assert int(transaction["nonce"], 16) == nonce
    assert int(transaction["maxFeePerGas"], 16) >= int(replaced["maxFeePerGas"], 16)
    assert int(transaction["maxPriorityFeePerGas"], 16) >= first_tip * 1.125**2
    assert events(registry, "fee_bump") >= 2
    assert rpc(chains, "eth_getTransactionReceipt", first[nonce]["hash"]) is None  # never mined


def test_a_delivery_underpriced_by_a_base_fee_spike_lands_priced_above_it(manual_mining: Chains) -> None:
    """anvil evicts a transaction the spiked block could not include (geth would keep it and the
    bump above would replace it): the submitter sees it gone and sends it again, priced above."""
    chains = manual_mining
    checkpoint, certificate, items = one_item(chains, "spike")
    registry = CollectorRegistry()
    target = destination(chains, registry, stuck_after=0.5, receipt_timeout=60)
    with ThreadPoolExecutor(1) as executor:
        future = executor.submit(target.submit, checkpoint, certificate, items)
        first = eventually(lambda: pool(chains, target.account), 20, "the delivery in the pool")
        (nonce,) = first
        assert int(first[nonce]["maxFeePerGas"], 16) < SPIKE
        rpc(chains, "anvil_setNextBlockBaseFeePerGas", hex(SPIKE))
        rpc(chains, "evm_mine")
        assert rpc(chains, "eth_getTransactionReceipt", first[nonce]["hash"]) is None  # left out
        eventually(
            lambda: int(pool(chains, target.account).get(nonce, {}).get("maxFeePerGas", "0x0"), 16) >= SPIKE,
            20,
            "the delivery priced above the spiked base fee, under the same nonce",
        )
        rpc(chains, "evm_mine")
        batch = future.result(timeout=30)
    assert batch.delivered == [items[0].message.id]
    transaction = rpc(chains, "eth_getTransactionByHash", "0x" + batch.transaction_hash.hex())
    assert int(transaction["nonce"], 16) == nonce and int(transaction["maxFeePerGas"], 16) >= SPIKE


def test_a_bump_beyond_the_fee_cap_keeps_waiting_then_fails_transiently(manual_mining: Chains) -> None:
    chains = manual_mining
    checkpoint, certificate, items = one_item(chains, "capped")
    base = int(rpc(chains, "eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
    first_fee = 2 * base + int(rpc(chains, "eth_maxPriorityFeePerGas"), 16)
    cap = first_fee * 6 // 5  # room for one bump of 12.5 %, not two
    registry = CollectorRegistry()
    target = destination(chains, registry, stuck_after=0.3, receipt_timeout=4, max_fee_per_gas_cap=cap)
    with ThreadPoolExecutor(1) as executor:
        future = executor.submit(target.submit, checkpoint, certificate, items)
        with pytest.raises(FeeCapReached) as capped:
            future.result(timeout=30)
    assert capped.value.fields["cap"] == cap and len(capped.value.fields["transactions"]) == 2
    assert events(registry, "fee_bump") == 1 and events(registry, "fee_cap") == 1
    (waiting,) = pool(chains, target.account).values()  # still there, waiting at the cap
    assert first_fee < int(waiting["maxFeePerGas"], 16) <= cap
    assert target.delivered([(items[0].message.origin, items[0].message.nonce)]) == [False]


def test_a_base_fee_above_the_cap_sends_nothing_and_fails_transiently(manual_mining: Chains) -> None:
    chains = manual_mining
    checkpoint, certificate, items = one_item(chains, "above-cap")
    rpc(chains, "anvil_setNextBlockBaseFeePerGas", hex(SPIKE))
    rpc(chains, "evm_mine")
    registry = CollectorRegistry()
    target = destination(chains, registry, max_fee_per_gas_cap=SPIKE // 2)
    with pytest.raises(FeeCapReached):
        target.submit(checkpoint, certificate, items)
    assert pool(chains, target.account) == {}  # no nonce held by a transaction that cannot be mined
    assert events(registry, "fee_cap") == 1


def test_a_dropped_delivery_is_sent_again_under_a_reread_nonce_without_a_receipt_timeout(
    manual_mining: Chains,
) -> None:
    chains = manual_mining
    checkpoint, certificate, items = one_item(chains, "dropped")
    registry = CollectorRegistry()
    # A receipt timeout longer than the test waits: recovering by timing out would fail it.
    target = destination(chains, registry, stuck_after=0.5, receipt_timeout=120)
    with ThreadPoolExecutor(1) as executor:
        future = executor.submit(target.submit, checkpoint, certificate, items)
        first = eventually(lambda: pool(chains, target.account), 20, "the delivery in the pool")
        (nonce,) = first
        rpc(chains, "anvil_dropTransaction", first[nonce]["hash"])
        resent = eventually(
            lambda: {
                n: t for n, t in pool(chains, target.account).items() if t["hash"] != first[nonce]["hash"]
            },
            20,
            "the delivery sent again",
        )
        assert list(resent) == [nonce]  # the re-read nonce, not the stale next one
        rpc(chains, "evm_mine")
        batch = future.result(timeout=30)
    assert batch.delivered == [items[0].message.id]
    assert events(registry, "dropped") == 1
    # The next delivery needs no recovery: its nonce is the chain's.
    rpc(chains, "evm_setAutomine", True)
    checkpoint, certificate, more = one_item(chains, "after-drop")
    assert target.submit(checkpoint, certificate, more).delivered == [more[0].message.id]


def test_a_dropped_delivery_below_another_fills_the_nonce_gap(manual_mining: Chains) -> None:
    chains = manual_mining
    chains.send(2, "gap")
    messages = all_source_messages(chains)
    checkpoint, certificate, tree = certify(chains, messages)
    first_item, second_item = (DeliveryItem(m, tree.branch(m.nonce)) for m in messages[-2:])
    registry = CollectorRegistry()
    target = destination(chains, registry, stuck_after=0.5, receipt_timeout=120)
    with ThreadPoolExecutor(2) as executor:
        low = executor.submit(target.submit, checkpoint, certificate, [first_item])
        lower = eventually(lambda: pool(chains, target.account), 20, "the first delivery in the pool")
        high = executor.submit(target.submit, checkpoint, certificate, [second_item])
        both = eventually(
            lambda: len(pool(chains, target.account)) == 2 and pool(chains, target.account),
            20,
            "both deliveries in the pool",
        )
        (gap,) = lower
        rpc(chains, "anvil_dropTransaction", both[gap]["hash"])
        eventually(
            lambda: pool(chains, target.account).get(gap, {}).get("hash") not in (None, both[gap]["hash"]),
            20,
            "the gap filled by the lost delivery sent again",
        )
        rpc(chains, "evm_mine")
        assert low.result(timeout=30).delivered == [first_item.message.id]
        assert high.result(timeout=30).delivered == [second_item.message.id]


@pytest.mark.parametrize("mode", ["500", "429", "drop"])
def test_a_flaky_rpc_does_not_fail_a_delivery(own_chains: Chains, mode: str) -> None:
    chains = own_chains
    checkpoint, certificate, items = one_item(chains, f"flaky-{mode}")
    faults = {
        "eth_call": 2,
        "eth_estimateGas": 2,
        "eth_getBlockByNumber": 2,
        "eth_getTransactionCount": 2,
        "eth_chainId": 2,
        "eth_sendRawTransaction": 2,
        "eth_getTransactionReceipt": 2,
    }
    registry = CollectorRegistry()
    with FlakyRpcProxy(chains.destination.rpc_url, faults, mode=mode) as proxy:
        target = destination(chains, registry, rpc_url=proxy.url)
        batch = target.submit(checkpoint, certificate, items)
    assert batch.delivered == [items[0].message.id]
    assert proxy.injected == faults, "every planned fault was injected"
    retried = registry.get_sample_value("relay_retries_total", {"policy": "submitter_read"})
    assert retried == sum(faults.values())


def test_a_parked_message_delivered_by_someone_else_is_found_delivered_on_chain(
    own_chains: Chains, tmp_path: Any
) -> None:
    """The relayer's keyless reader (through the chain registry) sees another party's delivery."""
    from relay.chains.registry import create_delivery_reader
    from relay.relayer.gauges import Gauges
    from relay.relayer.outcomes import Outcomes
    from relay.retry import BackoffSchedule
    from relay.store import Transition, open_store
    from tests.chains import DESTINATION, SOURCE
    from tests.unit.relayer.helpers import S, checkpoint_over, make_source, store_verified

    chains = own_chains
    checkpoint, certificate, items = one_item(chains, "parked")
    messages = all_source_messages(chains)
    store = open_store(str(tmp_path / "relayer.db"))
    try:
        metrics = RelayMetrics(CollectorRegistry())
        store_verified(
            store, make_source(store, domain=SOURCE), messages, checkpoint_over(messages, origin=SOURCE)
        )
        target = items[0].message
        store.apply_transition(
            Transition(target.id, S.VERIFIED, S.PARKED, {"last_error": "AttemptsExhausted"}), 0.0
        )
        outcomes = Outcomes(store, metrics, time_now, BackoffSchedule(), Gauges(store, metrics, time_now))
        reader = create_delivery_reader(chains.destination_chain(), metrics)
        assert reader.domain == DESTINATION
        assert outcomes.find_delivered_on_chain(DESTINATION, reader) == []
        # Someone else (another submitter) delivers it.
        EvmDestination(chains.destination_chain(), SUBMITTER).submit(checkpoint, certificate, items)
        assert outcomes.find_delivered_on_chain(DESTINATION, reader) == [target.id]
        record = store.get(target.id)
        assert record is not None and record.state is S.DELIVERED
    finally:
        store.close()


def time_now() -> float:
    import time

    return time.time()


def test_two_concurrent_deliveries_of_one_message_report_it_delivered_once_not_failed(
    manual_mining: Chains,
) -> None:
    """Two submits of the same message race (both simulate before either is mined): the second
    transaction reverts on-chain with AlreadyDelivered. That is reported as already delivered, not
    as a failure, and the message ran once."""
    chains = manual_mining
    checkpoint, certificate, items = one_item(chains, "raced")
    target = destination(chains, CollectorRegistry(), stuck_after=30, receipt_timeout=120)
    with ThreadPoolExecutor(2) as executor:
        first = executor.submit(target.submit, checkpoint, certificate, items)
        eventually(lambda: len(pool(chains, target.account)) == 1, 20, "the first delivery in the pool")
        second = executor.submit(target.submit, checkpoint, certificate, items)
        eventually(lambda: len(pool(chains, target.account)) == 2, 20, "both deliveries in the pool")
        rpc(chains, "evm_mine")
        batches = [first.result(timeout=30), second.result(timeout=30)]
    message_id = items[0].message.id
    assert sorted(len(b.delivered) for b in batches) == [0, 1]  # delivered by exactly one transaction
    assert all(message_id not in b.failed for b in batches)  # and the loser is not a failure
    assert target.delivered([(items[0].message.origin, items[0].message.nonce)]) == [True]
