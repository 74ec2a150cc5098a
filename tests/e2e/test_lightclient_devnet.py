"""`relay devnet --source-mode lightclient` end to end: no attestors, an on-chain light client, exactly once.

One devnet run (its own, module-scoped): alpha's real anvil blocks are signed by a simulated beacon
chain (known sync-committee keys), beta's Gateway verifies alpha with an `EthereumLightClient` and
an `EthereumInbox`, and the relayer and beta's submitter are the only relay processes. Messages
sent on alpha, in two rounds the second of which lies in the next sync-committee period, must be
delivered on beta exactly once (one `Delivered` per id, the recipient's counter up by exactly as
many), and an update signed by the wrong keys must be refused on-chain with the contract's typed
error while the genuine one with the same content is not. About 55 s (two rounds of finality).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from adapters.ethereum import onchain_client
from adapters.evm import deploy
from adapters.evm.rpc import DELIVERED_TOPIC
from relay.tools.devnet import Devnet, DevnetOptions
from tests.waiting import eventually

pytestmark = [pytest.mark.anvil, pytest.mark.timeout(240)]

MESSAGES = 4  # per round
DELIVERY_TIMEOUT = 120.0  # finality on the simulated chain lags 2-3 epochs of 8 one-second slots


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    options = DevnetOptions(
        run_root=tmp_path_factory.mktemp("lightclient-devnet"),
        source_mode="lightclient",
        max_batch=100,
        retry_base_delay=0.1,
        retry_max_delay=5.0,
        # 24-slot periods: the second round of messages lies in the next period, so the relayer must
        # carry the on-chain light client across a committee change to deliver it.
        lightclient_period_epochs=3,
    )
    network = Devnet(options).start()
    try:
        yield network
    finally:
        network.stop()


def delivered_ids(devnet: Devnet) -> Counter[bytes]:
    """How many `Delivered` events beta's Gateway emitted per message id."""
    beta = devnet.chains[1]
    sender = deploy.TransactionSender(beta.rpc_url, devnet.user_key)
    logs = sender.web3.eth.get_logs(
        {
            "address": sender.web3.to_checksum_address(beta.gateway),
            "fromBlock": 0,
            "topics": [DELIVERED_TOPIC],
        }
    )
    return Counter(bytes(log["topics"][1]) for log in logs)


def test_messages_are_delivered_exactly_once_with_no_attestor(devnet: Devnet) -> None:
    alpha, beta = devnet.chains
    assert sorted(devnet.processes) == ["relayer", "submitter-beta"]  # no attestor, no alpha submitter
    assert devnet.routes == [(alpha, beta)]
    described = devnet.describe()
    assert devnet.lightclient.url in described and devnet.lightclient.inbox in described
    assert "attestor" not in described.replace("no attestors", "")
    chain = devnet.lightclient.chain
    period = chain.preset.slots_per_sync_committee_period
    before = devnet.received(beta.domain)
    first = devnet.send(alpha.domain, beta.domain, MESSAGES)
    statuses = devnet.client().wait_all_delivered(first, timeout=DELIVERY_TIMEOUT)
    # A second round in the next sync-committee period (one slot per block).
    eventually(lambda: chain.head_slot() >= period, 60, "the simulated chain to enter period 1")
    second = devnet.send(alpha.domain, beta.domain, MESSAGES)
    statuses.update(devnet.client().wait_all_delivered(second, timeout=DELIVERY_TIMEOUT))
    ids = first + second
    assert {status.state for status in statuses.values()} == {"delivered"}, statuses
    assert min(statuses[i].source_block for i in second) >= period
    assert devnet.received(beta.domain) - before == 2 * MESSAGES
    counts = delivered_ids(devnet)
    assert all(counts[i] == 1 for i in ids), counts
    # Delivered against headers the on-chain light client stored, from the simulation's updates,
    # after following the committee into the next period.
    light_client = onchain_client.light_client_contract(
        deploy.TransactionSender(beta.rpc_url, devnet.user_key).web3, devnet.lightclient.light_client
    )
    assert light_client.functions.latestExecutionBlockNumber().call() >= max(
        status.source_block for status in statuses.values()
    )
    assert light_client.functions.currentPeriod().call() >= 1


def test_forged_update_is_refused_on_chain(devnet: Devnet) -> None:
    beta = devnet.chains[1]
    chain = devnet.lightclient.chain
    sender = deploy.TransactionSender(beta.rpc_url, devnet.user_key)  # anyone may submit updates
    light_client = onchain_client.light_client_contract(sender.web3, devnet.lightclient.light_client)
    finalized_before = light_client.functions.finalizedSlot().call()
    # Signed in the light client's own period, attesting a newer slot: only the keys are wrong.
    period = light_client.functions.currentPeriod().call()
    signature_slot = min(chain.head_slot(), (period + 1) * chain.preset.slots_per_sync_committee_period - 1)
    forged = chain.update(signature_slot - 1, signature_slot, forged=True)
    assert forged.attested_header.beacon.slot > finalized_before
    with pytest.raises(onchain_client.LightClientRefused) as refused:
        onchain_client.submit_update(
            sender.web3, sender, devnet.lightclient.light_client, forged, chain.network
        )
    assert refused.value.fields["error"] == "InvalidSyncAggregateSignature"
    assert light_client.functions.finalizedSlot().call() == finalized_before
    # The same update signed by the simulated committee passes the signature check.
    genuine = chain.update(signature_slot - 1, signature_slot)
    arguments = onchain_client.prepare_update(sender.web3, light_client, genuine, chain.network)
    try:
        onchain_client.call_or_refuse(light_client.functions.submitUpdate(arguments), sender.address)
    except onchain_client.LightClientRefused as error:
        assert error.fields["error"] == "StaleUpdate"  # valid, but finalizes nothing newer
