"""The relayer's status page, as a person sees it: a real relayer, real HTTP, headless Chromium.

The relayer runs over the fakes of test_relayer.py (fake source chain and watcher, attestors and a
destination served over real gRPC) with a second, lagging source chain. `/api/status` is checked
as JSON; then Chromium loads `/`, runs its JavaScript (which fetches `/api/status`) and the test
reads the rendered DOM: chain names and lag, shortened message ids, state badges, transaction
links, the "last updated" line, and the error banner when the API fails. A screenshot is taken as
well. Chromium comes from scripts/install-chromium.sh (Debian's package) when it is missing.
"""

from __future__ import annotations

import json
import logging
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from relay.chains import Cursor, CursorStore, WatchUpdate
from relay.chains.registry import ChainConfig
from relay.health import HealthServer
from relay.lifecycle import MessageState
from relay.relayer import Relayer
from relay.status.api import render_status_page
from relay.v1 import attestation_pb2_grpc, destination_pb2_grpc
from relay.verify.message import Message
from tests.integration.test_relayer import (
    DESTINATION,
    ORIGIN,
    FakeAttestor,
    FakeChain,
    FakeDestination,
    FakeWatcher,
    GrpcServer,
    World,
)

S = MessageState
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
LAGGING_DOMAIN = 3
LAGGING_HEAD, LAGGING_FINALIZED, LAGGING_CURSOR = 500, 480, 100
ALPHA_EXPLORER = "https://alpha.example/tx/{tx}"


# --- fixtures -----------------------------------------------------------------------------------


class LaggingWatcher:
    """A source whose watcher is stuck at block 100 while the chain has finalized block 480."""

    def __init__(self, cursors: CursorStore, domain: int) -> None:
        self.cursors = cursors
        self.domain = domain

    def poll(self) -> WatchUpdate:
        cursor = Cursor(LAGGING_CURSOR, LAGGING_CURSOR.to_bytes(32, "big"))
        self.cursors.save_cursor(self.domain, cursor)
        return WatchUpdate(head_block=LAGGING_HEAD, finalized_block=LAGGING_FINALIZED, cursor=cursor)

    def block_hash(self, number: int) -> bytes | None:
        return number.to_bytes(32, "big") if number <= LAGGING_HEAD else None


@dataclass
class Scene:
    """A served relayer with messages in several states."""

    relayer: Relayer
    delivered: list[Message]
    parked: Message
    observed: Message
    retrying: Message

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.relayer.metrics_port}"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    chain = FakeChain()
    attestors = [FakeAttestor(chain, i) for i in range(4)]
    servers = [
        GrpcServer(a, attestation_pb2_grpc.add_AttestationServiceServicer_to_server) for a in attestors
    ]
    destination = FakeDestination()
    destination_server = GrpcServer(
        destination, destination_pb2_grpc.add_DestinationServiceServicer_to_server
    )
    yield World(chain, attestors, servers, destination, destination_server, tmp_path / "relayer.db")
    for server in [*servers, destination_server]:
        server.stop()


@pytest.fixture
def scene(world: World, caplog: pytest.LogCaptureFixture) -> Iterator[Scene]:
    caplog.set_level(logging.INFO, logger="relay.relayer")
    alpha = world.config().sources[0].model_dump(mode="json")
    gamma = {**alpha, "chain": {**alpha["chain"], "name": "gamma", "domain": LAGGING_DOMAIN}}
    config = world.config(
        sources=[alpha, gamma],
        destinations=[{"domain": DESTINATION, "submitter": world.destination_server.address, "name": "beta"}],
        metrics_listen="127.0.0.1:0",
        explorers={str(ORIGIN): ALPHA_EXPLORER},  # keys as they come from RELAY_* variables
        ready_max_lag_blocks=10,
        # A RETRYING message must stay RETRYING while the page is looked at.
        retry={"base_delay": 3600, "max_delay": 3600},
    )

    def watchers(chain: ChainConfig, cursors: CursorStore) -> Any:
        if chain.domain == LAGGING_DOMAIN:
            return LaggingWatcher(cursors, chain.domain)
        return FakeWatcher(world.chain, cursors, chain.domain)

    relayer = Relayer(config, watcher_factory=watchers, registry=CollectorRegistry()).open()
    try:
        delivered = [world.chain.dispatch(f"hello {n}".encode()) for n in range(3)]
        parked = world.chain.dispatch(b"reverts")
        world.destination.reverting.add(parked.id)
        relayer.run_once()
        world.destination.unavailable = True
        retrying = world.chain.dispatch(b"destination down")
        relayer.run_once()
        observed = world.chain.dispatch(b"not final yet", finalize=False)
        relayer.run_once()
        relayer.start()
        yield Scene(relayer, delivered, parked, observed, retrying)
    finally:
        relayer.stop()


@pytest.fixture(scope="module")
def chromium() -> Path:
    """/usr/bin/chromium, installed by scripts/install-chromium.sh if missing (fail if it cannot be)."""
    if not CHROMIUM.exists():
        result = subprocess.run(
            ["bash", str(ROOT / "scripts" / "install-chromium.sh")],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0 or not CHROMIUM.exists():
            pytest.fail(f"cannot install chromium (exit {result.returncode}): {result.stderr[-2000:]}")
    return CHROMIUM


# --- helpers ------------------------------------------------------------------------------------


def shorten(hex_value: str) -> str:
    """What the page shows for an id or hash (page.html: shorten)."""
    return hex_value[:10] + "…" + hex_value[-6:] if len(hex_value) > 18 else hex_value


def run_chromium(chromium: Path, url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [
        str(chromium),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *extra,
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        pytest.fail(f"chromium exited {result.returncode}: {result.stderr[-2000:]}")
    return result


def render_dom(chromium: Path, url: str, tmp_path: Path) -> str:
    return run_chromium(chromium, url, tmp_path, "--dump-dom").stdout


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    children: list[Element] = field(default_factory=list)

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def find_all(self, tag: str) -> list[Element]:
        found = [self] if self.tag == tag else []
        for child in self.children:
            found.extend(child.find_all(tag))
        return found

    def by_id(self, element_id: str) -> Element:
        for element in self.walk():
            if element.attrs.get("id") == element_id:
                return element
        raise AssertionError(f"no element #{element_id}")

    def walk(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            yield from child.walk()


class _DomParser(HTMLParser):
    VOID = {"meta", "link", "br", "img", "input", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.root = Element("document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.text += data


def parse(html: str) -> Element:
    parser = _DomParser()
    parser.feed(html)
    return parser.root


def get_json(url: str) -> tuple[int, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - fixed local URL
        return response.status, json.loads(response.read())


# --- the tests ------------------------------------------------------------------------------------


def test_api_status_reports_chains_counts_and_recent_messages(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    status, body = get_json(scene.base_url + "/api/status")
    assert status == 200
    chains = {c["name"]: c for c in body["chains"]}
    assert set(chains) == {"alpha", "gamma"}
    assert chains["alpha"]["lag_blocks"] == 0 and not chains["alpha"]["lagging"]
    gamma = chains["gamma"]
    assert (gamma["domain"], gamma["head"], gamma["finalized"], gamma["cursor"]) == (
        LAGGING_DOMAIN,
        LAGGING_HEAD,
        LAGGING_FINALIZED,
        LAGGING_CURSOR,
    )
    assert gamma["lag_blocks"] == LAGGING_FINALIZED - LAGGING_CURSOR and gamma["lagging"]
    assert body["lag_threshold_blocks"] == 10

    assert body["counts"] == {
        **{s.name: 0 for s in S},
        "DELIVERED": 3,
        "PARKED": 1,
        "RETRYING": 1,
        "OBSERVED": 1,
    }
    assert body["totals"] == {"messages": 6, "pending": 2, "delivered": 3, "failed": 1}
    [cost] = body["costs"]
    assert cost["origin"] == {"domain": ORIGIN, "name": "alpha"} and cost["destination"]["name"] == "beta"
    assert cost["delivered"] == 3 and cost["unpaid"] == 0 and cost["paid"] == "0"  # allow_all: nothing read

    messages = {m["id"]: m for m in body["messages"]}
    expected_order = [scene.observed, scene.retrying, scene.parked, *reversed(scene.delivered)]
    assert [m["id"] for m in body["messages"]] == ["0x" + m.id.hex() for m in expected_order]
    first = messages["0x" + scene.delivered[0].id.hex()]
    assert first["state"] == "DELIVERED" and first["nonce"] == 0 and first["attempts"] == 0
    assert first["origin"] == {"domain": ORIGIN, "name": "alpha"}
    assert first["destination"] == {"domain": DESTINATION, "name": "beta"}
    assert first["age_seconds"] is not None and first["age_seconds"] >= 0
    # alpha has an explorer template: a link; beta has none: the plain hash.
    source_hash = first["source_tx"]["hash"]
    assert first["source_tx"]["url"] == ALPHA_EXPLORER.replace("{tx}", source_hash)
    assert first["destination_tx"]["hash"].startswith("0x") and first["destination_tx"]["url"] is None
    parked = messages["0x" + scene.parked.id.hex()]
    assert parked["state"] == "PARKED" and "not today" in parked["last_error"]
    retrying = messages["0x" + scene.retrying.id.hex()]
    assert retrying["state"] == "RETRYING" and retrying["attempts"] == 1 and retrying["last_error"]
    observed = messages["0x" + scene.observed.id.hex()]
    assert observed["state"] == "OBSERVED" and observed["destination_tx"] is None

    # Replicas: this relayer's id and the source leases it holds; every lease's holder, by replica id.
    replica = body["replica"]
    assert replica["id"] == scene.relayer.config.replica_id
    assert f"source/{ORIGIN}" in replica["holds"]
    leases = {lease["name"]: lease for lease in body["leases"]}
    assert leases[f"source/{ORIGIN}"]["holder"] == replica["id"] and leases[f"source/{ORIGIN}"]["live"]
    registration = leases[f"replica/{replica['id']}"]
    assert registration["holder"] == replica["id"]  # the owner's process token is not shown
    assert registration["fence"] >= 1 and registration["expires_in"] > 0

    setup_logs = [record.getMessage() for record in caplog.get_records("setup")]
    assert f"status page: {scene.base_url}/" in setup_logs
    assert scene.relayer.status_url == scene.base_url + "/"


def test_status_page_renders_in_headless_chromium(scene: Scene, chromium: Path, tmp_path: Path) -> None:
    dom = parse(render_dom(chromium, scene.base_url + "/", tmp_path))

    assert "Last updated" in dom.by_id("updated").text
    assert "visible" not in dom.by_id("error").classes()
    assert dom.by_id("total-messages").text.strip().startswith("6")
    assert dom.by_id("total-delivered").text.strip().startswith("3")
    assert dom.by_id("total-parked").text.strip().startswith("1")

    chains = {
        row.find_all("td")[0].text: row
        for row in dom.by_id("chains").find_all("tr")
        if "chain" in row.classes()
    }
    assert set(chains) == {"alpha", "gamma"}
    costs = [row.text for row in dom.by_id("costs").find_all("tr") if "cost" in row.classes()]
    assert len(costs) == 1 and "alpha → beta" in costs[0]
    assert "0 blocks" in chains["alpha"].text and "lagging" not in chains["alpha"].classes()
    assert f"{LAGGING_FINALIZED - LAGGING_CURSOR} blocks" in chains["gamma"].text
    assert "lagging" in chains["gamma"].classes() and "behind" in chains["gamma"].text

    replica = scene.relayer.config.replica_id
    assert f"replica {replica}" in dom.by_id("service").text
    assert f"holding source/{ORIGIN}" in dom.by_id("leases-title").text
    leases = {
        row.attrs["data-lease"]: row
        for row in dom.by_id("leases").find_all("tr")
        if "data-lease" in row.attrs
    }
    assert "own" in leases[f"source/{ORIGIN}"].classes() and "held" in leases[f"source/{ORIGIN}"].text
    assert ":" not in leases[f"replica/{replica}"].find_all("td")[1].text

    rows = {
        row.attrs["data-id"]: row for row in dom.by_id("messages").find_all("tr") if "data-id" in row.attrs
    }
    expected = {
        **{m.id: "DELIVERED" for m in scene.delivered},
        scene.parked.id: "PARKED",
        scene.retrying.id: "RETRYING",
        scene.observed.id: "OBSERVED",
    }
    assert len(rows) == len(expected)
    for message_id, state in expected.items():
        full = "0x" + message_id.hex()
        row = rows[full]
        cells = row.find_all("td")
        assert cells[0].text == shorten(full) and cells[0].attrs["title"] == full
        assert cells[1].text == "alpha → beta"
        badge = next(span for span in row.find_all("span") if "badge" in span.classes())
        assert badge.text == state
        tone = {"DELIVERED": {"good"}, "PARKED": {"bad"}}.get(state, set())
        assert badge.classes() - {"badge"} == tone

    delivered_row = rows["0x" + scene.delivered[0].id.hex()]
    record = scene.relayer.store.get(scene.delivered[0].id)
    assert record is not None
    source_hash = "0x" + record.source_transaction.hex()
    destination_hash = "0x" + record.destination_transaction.hex()
    links = delivered_row.find_all("a")
    assert [(a.attrs["href"], a.text) for a in links] == [
        (ALPHA_EXPLORER.replace("{tx}", source_hash), shorten(source_hash))
    ]
    plain = [s for s in delivered_row.find_all("span") if "tx-hash" in s.classes()]
    assert [(s.attrs["title"], s.text) for s in plain] == [(destination_hash, shorten(destination_hash))]
    assert "not today" in rows["0x" + scene.parked.id.hex()].text

    screenshot = tmp_path / "status.png"
    run_chromium(
        chromium, scene.base_url + "/", tmp_path, f"--screenshot={screenshot}", "--window-size=1280,900"
    )
    assert screenshot.exists() and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_status_page_shows_an_error_banner_when_the_api_fails(chromium: Path, tmp_path: Path) -> None:
    routes = {
        "/": render_status_page,
        "/api/status": lambda: (503, "application/json", b'{"error": "the relayer is not open"}'),
    }
    with HealthServer(CollectorRegistry(), routes=routes) as server:
        dom = parse(render_dom(chromium, f"http://127.0.0.1:{server.port}/", tmp_path))
    banner = dom.by_id("error")
    assert "visible" in banner.classes()
    assert "Cannot load /api/status: HTTP 503" in banner.text
    assert dom.by_id("updated").text == "Not updated yet"


def test_extra_routes_cannot_shadow_probes_and_failures_answer_500() -> None:
    with pytest.raises(ValueError, match="/healthz"):
        HealthServer(CollectorRegistry(), routes={"/healthz": render_status_page})

    def broken() -> tuple[int, str, bytes]:
        raise RuntimeError("boom")

    with HealthServer(CollectorRegistry(), routes={"/broken": broken, "/": render_status_page}) as server:
        with pytest.raises(urllib.error.HTTPError) as failure:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/broken", timeout=5)
        assert failure.value.code == 500 and b"RuntimeError: boom" in failure.value.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/?x=1", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/html")
            assert b"/api/status" in response.read()
        status, body = get_json(f"http://127.0.0.1:{server.port}/healthz")
        assert status == 200 and body["status"] == "ok"
