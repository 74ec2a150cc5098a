"""The guardian's pause on real chains: messages from a paused origin wait (PAUSED, no attempt
counted, nothing parked, no transaction sent), are tried again every `retry.paused_recheck`
seconds, and are delivered exactly once after the owner unpauses, with no operator action on the
relayer."""

from __future__ import annotations

import time

import pytest

from adapters.evm.admin import GatewayAdmin
from relay import errors
from relay.tools.devnet import Devnet
from tests.e2e.test_devnet import scrape, wait_states
from tests.waiting import eventually, metric_value

pytestmark = [pytest.mark.anvil, pytest.mark.timeout(600)]


def test_a_paused_origin_holds_messages_until_the_owner_unpauses(devnet: Devnet) -> None:
    client = devnet.client()
    alpha, beta = devnet.chain("alpha"), devnet.chain("beta")
    owner = GatewayAdmin(beta.rpc_url, devnet.deployer_key, beta.gateway)
    before = devnet.received("beta")
    paused_before = metric_value(scrape(devnet, "relayer"), "relay_deliveries_paused_total")
    owner.pause_delivery(alpha.domain)
    try:
        ids = devnet.send("alpha", "beta", 5, "while-paused")
        wait_states(client, ids, {"paused"}, timeout=120)
        # Re-checked while the pause lasts (each try is refused again), never failed or parked.
        eventually(
            lambda: (
                metric_value(scrape(devnet, "relayer"), "relay_deliveries_paused_total")
                >= paused_before + 3 * len(ids)
            ),
            60,
            "paused deliveries re-checked three times",
            interval=0.5,
        )
        try:
            views = client.get_many(ids)
        except errors.RpcUnavailable:
            views = {}
        for view in views.values():
            assert view.state in ("paused", "verified", "submitted"), view
            assert view.attempts == 0, view
        assert devnet.received("beta") == before
    finally:
        owner.unpause_delivery(alpha.domain)
    unpaused_at = time.monotonic()
    views = wait_states(client, ids, {"delivered"}, timeout=120)
    assert {v.state for v in views.values()} == {"delivered"}
    assert devnet.received("beta") - before == len(ids)  # exactly once each
    assert time.monotonic() - unpaused_at < 120
