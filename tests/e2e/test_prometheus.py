"""A real Prometheus scraping the running devnet: what it sees agrees with the relay, and the
quorum alert goes pending when two attestors of one origin stop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relay.tools.devnet import Devnet
from relay.tools.prometheus import PrometheusServer
from tests.waiting import eventually

from .test_devnet import stopped, wait_states


@pytest.fixture(scope="module")
def prometheus(devnet: Devnet) -> Iterator[PrometheusServer]:
    server = devnet.start_prometheus()
    try:
        yield server
    finally:
        server.stop()
        devnet.prometheus = None


def relay_delivered_count(devnet: Devnet) -> int:
    """The relayer's own count of delivered messages, through RelayService (all pages)."""
    return sum(1 for _ in devnet.client().list_messages(states=["delivered"]))


def test_prometheus_scrapes_every_role(devnet: Devnet, prometheus: PrometheusServer) -> None:
    expected = set(devnet.metrics_addresses)
    up = eventually(
        lambda: (lambda seen: seen if set(seen) == expected and all(seen.values()) else None)(
            prometheus.targets_up()
        ),
        30,
        "every role scraped and up",
    )
    assert set(up) == expected and len(expected) == 11  # relayer, 2 submitters, 8 attestors


def test_delivered_count_seen_by_prometheus_equals_the_relays_own(
    devnet: Devnet, prometheus: PrometheusServer
) -> None:
    client = devnet.client()
    ids = devnet.send("alpha", "beta", 4, "prometheus") + devnet.send("beta", "alpha", 4, "prometheus")
    wait_states(client, ids, {"delivered"}, timeout=90)
    own = relay_delivered_count(devnet)
    assert own >= 8

    def agree() -> float | None:
        seen = prometheus.scalar('sum(relay_messages{job="relay", state="delivered"})')
        return seen if seen == own else None

    assert eventually(agree, 30, f"PromQL delivered count == relay's own {own}") == own


def test_two_attestors_down_make_the_quorum_alert_pending(
    devnet: Devnet, prometheus: PrometheusServer
) -> None:
    alpha = devnet.chain("alpha")

    def quorum_alert(state: str) -> list[dict]:
        return [
            a
            for a in prometheus.alerts()
            if a["labels"].get("alertname") == "RelayAttestorQuorumLost"
            and a["labels"].get("origin") == str(alpha.domain)
            and a["state"] == state
        ]

    assert not quorum_alert("pending") and not quorum_alert("firing")
    with stopped(devnet, "attestor-alpha-0", "attestor-alpha-1"):
        pending = eventually(lambda: quorum_alert("pending"), 45, "RelayAttestorQuorumLost pending for alpha")
        assert pending[0]["labels"]["severity"] == "critical"
        reachable = prometheus.scalar(f'relay_attestor_quorum_reachable_weight{{origin="{alpha.domain}"}}')
        threshold = prometheus.scalar(f'relay_attestor_quorum_threshold_weight{{origin="{alpha.domain}"}}')
        assert reachable == 2 and threshold == 3
    # Both back: the relayer sees the quorum again and the alert clears.
    eventually(
        lambda: not quorum_alert("pending") and not quorum_alert("firing") or None,
        45,
        "RelayAttestorQuorumLost cleared after the attestors returned",
    )
