"""The relayer stays live around a slow chain and tells the truth about its gRPC server.

Real relayer, store, gRPC and HTTP servers; the fakes of tests/integration/test_relayer.py stand
for the chains and peers.

- One source's watcher blocks (a hung RPC): the other source's messages are still delivered,
  because every source has its own thread.
- `/readyz` asks the relayer's own gRPC server over loopback: with every stream slot taken, or with
  the server stopped, it answers 503 while `/healthz` (the process) stays 200.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import grpc
import pytest

from relay.chains import CursorStore, WatchUpdate
from relay.chains.registry import ChainConfig
from relay.health import GrpcServingProbe
from relay.lifecycle import MessageState
from relay.v1 import relay_service_pb2, relay_service_pb2_grpc
from tests.integration.test_relayer import FakeWatcher, World, states, world  # noqa: F401
from tests.waiting import eventually

S = MessageState
HUNG_DOMAIN = 77


class HungWatcher:
    """A source whose RPC never answers until the test lets it go."""

    def __init__(self, released: threading.Event) -> None:
        self.released = released
        self.polls = 0
        self.entered = threading.Event()

    def poll(self) -> WatchUpdate:
        self.polls += 1
        self.entered.set()
        self.released.wait()
        raise TimeoutError("the hung RPC finally timed out")

    def block_hash(self, number: int) -> bytes | None:
        return None


def test_a_hung_source_does_not_delay_another_sources_messages(world: World) -> None:  # noqa: F811
    alpha = world.config().sources[0].model_dump(mode="json")
    hung = {**alpha, "chain": {**alpha["chain"], "name": "hung", "domain": HUNG_DOMAIN}}
    released = threading.Event()
    hung_watcher = HungWatcher(released)

    def watchers(chain: ChainConfig, cursors: CursorStore) -> Any:
        if chain.domain == HUNG_DOMAIN:
            return hung_watcher
        return FakeWatcher(world.chain, cursors, chain.domain)

    from relay.relayer import Relayer

    # The hung source comes first: a single loop over the sources would never reach alpha.
    config = world.config(sources=[hung, alpha], batching={"max_batch": 50, "max_wait": 0.05})
    relayer = Relayer(config, watcher_factory=watchers).start()
    try:
        assert hung_watcher.entered.wait(10), "the hung source was never polled"
        sent = [world.chain.dispatch(f"flows {n}".encode()) for n in range(3)]
        eventually(
            lambda: states(relayer).get(S.DELIVERED, 0) == 3, 20, "alpha's messages delivered", interval=0.02
        )
        assert world.destination.executions == Counter({m.id: 1 for m in sent})
        assert hung_watcher.polls == 1  # still stuck in its first poll all along
    finally:
        released.set()
        relayer.stop()


def http_get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback test URL
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_readyz_follows_the_grpc_server_and_healthz_the_process(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from relay.relayer import deliver

    monkeypatch.setattr(deliver, "PROBE_SECONDS", 0.1)
    # The submitter holds the delivery, so the message stays pending and every watch stream gets it.
    world.destination.gate = threading.Event()
    world.chain.dispatch(b"ready?")
    relayer = world.relayer(metrics_listen="127.0.0.1:0", max_watch_streams=4).start()
    base = f"http://127.0.0.1:{relayer.metrics_port}"

    def readyz(expected: int) -> dict[str, Any] | None:
        status, body = http_get(base + "/readyz")
        return body if status == expected else None

    channel = grpc.insecure_channel(relayer.address)
    streams: list[Any] = []
    try:
        eventually(lambda: readyz(200), 15, "/readyz 200")
        stub = relay_service_pb2_grpc.RelayServiceStub(channel)
        for _ in range(4):
            stream = stub.WatchMessages(relay_service_pb2.WatchMessagesRequest(), timeout=60)
            next(stream)  # the pending message: the stream holds its slot
            streams.append(stream)
        # Every stream slot taken by a client: a further stream is refused, but readiness is not
        # something a client can switch off (the health check is exempt from the call limits).
        with pytest.raises(grpc.RpcError) as refused:
            next(stub.WatchMessages(relay_service_pb2.WatchMessagesRequest(), timeout=10))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        probe = GrpcServingProbe(relayer.address, channel=grpc.insecure_channel(relayer.address), cache_for=0)
        assert probe.check()[0] is True
        probe.close()
        assert readyz(200) is not None and http_get(base + "/healthz")[0] == 200
        for stream in streams:
            stream.cancel()

        assert relayer.grpc_server is not None
        relayer.grpc_server.server.stop(0).wait()  # the gRPC server dies; the process and HTTP live on
        body = eventually(lambda: readyz(503), 15, "/readyz 503 with the gRPC server stopped")
        assert "does not answer" in body["detail"]
        status, health = http_get(base + "/healthz")
        assert status == 200 and health["status"] == "ok"
    finally:
        world.destination.gate.set()
        for stream in streams:
            stream.cancel()
        channel.close()
        relayer.stop()


def test_a_watch_stream_starts_with_at_most_the_newest_pending_messages(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A flood of held messages must not make every new watch stream load them all: the snapshot
    is the newest WATCH_SNAPSHOT_LIMIT pending messages; later changes still stream."""
    from relay.rpc import relay_service

    monkeypatch.setattr(relay_service, "WATCH_SNAPSHOT_LIMIT", 3)
    world.destination.gate = threading.Event()  # deliveries held: every message stays pending
    sent = [world.chain.dispatch(f"pending {n}".encode()) for n in range(5)]
    relayer = world.relayer().start()
    channel = grpc.insecure_channel(relayer.address)
    try:
        eventually(lambda: states(relayer).get(MessageState.SUBMITTED, 0) == 5, 20, "5 pending deliveries")
        stream = relay_service_pb2_grpc.RelayServiceStub(channel).WatchMessages(
            relay_service_pb2.WatchMessagesRequest(), timeout=30
        )
        first = [next(stream).message.id for _ in range(3)]
        assert first == [m.id for m in sent[2:]]  # the three newest, oldest of them first
        world.destination.gate.set()  # now they are delivered: the changes stream, older ones too
        changed = {next(stream).message.id for _ in range(5)}
        assert {sent[0].id, sent[1].id} <= changed
        stream.cancel()
    finally:
        world.destination.gate.set()
        channel.close()
        relayer.stop()
