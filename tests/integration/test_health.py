"""The health server over real HTTP on 127.0.0.1, and gRPC health + reflection on a real server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from prometheus_client import CollectorRegistry

from relay.health import HealthServer, add_grpc_health_and_reflection
from relay.metrics import RelayMetrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(server: HealthServer, path: str) -> tuple[int, str, str]:
    url = f"http://127.0.0.1:{server.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


@pytest.fixture()
def setup() -> Iterator[tuple[HealthServer, RelayMetrics, FakeClock, dict[str, object]]]:
    registry = CollectorRegistry()
    metrics = RelayMetrics(registry)
    clock = FakeClock()
    state: dict[str, object] = {"ready": (False, "watcher alpha 40 blocks behind (max 10)")}

    def readiness() -> tuple[bool, str]:
        value = state["ready"]
        if isinstance(value, Exception):
            raise value
        return value  # type: ignore[return-value]

    server = HealthServer(registry, "127.0.0.1", 0, readiness=readiness, stale_after=15, clock=clock)
    with server:
        yield server, metrics, clock, state


def test_binds_an_ephemeral_port_and_serves_metrics(
    setup: tuple[HealthServer, RelayMetrics, FakeClock, dict],
) -> None:
    server, metrics, _, _ = setup
    assert server.port > 0 and server.host == "127.0.0.1"
    metrics.queue_depth.labels("1", "2").set(5)
    status, content_type, body = get(server, "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    assert 'relay_queue_depth{destination="2",origin="1"} 5.0' in body
    assert "# TYPE relay_grpc_server_requests_total counter" in body


def test_healthz_follows_the_heartbeat(setup: tuple[HealthServer, RelayMetrics, FakeClock, dict]) -> None:
    server, _, clock, _ = setup
    status, _, body = get(server, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    clock.now += 16  # the loop stopped beating for longer than stale_after
    status, content_type, body = get(server, "/healthz")
    assert status == 503 and content_type == "application/json"
    assert json.loads(body) == {"status": "stale", "heartbeat_age_seconds": 16.0, "stale_after_seconds": 15}
    server.heartbeat()
    assert get(server, "/healthz")[0] == 200


def test_readyz_reports_the_role_check_and_its_reason(
    setup: tuple[HealthServer, RelayMetrics, FakeClock, dict],
) -> None:
    server, _, _, state = setup
    status, _, body = get(server, "/readyz")
    assert status == 503
    assert json.loads(body) == {"ready": False, "detail": "watcher alpha 40 blocks behind (max 10)"}
    state["ready"] = (True, "synced")
    status, _, body = get(server, "/readyz")
    assert (status, json.loads(body)) == (200, {"ready": True, "detail": "synced"})
    state["ready"] = ConnectionError("rpc down")
    status, _, body = get(server, "/readyz")
    assert status == 503 and "ConnectionError: rpc down" in json.loads(body)["detail"]
    assert get(server, "/nope")[0] == 404


def test_default_readiness_is_not_ready() -> None:
    with HealthServer(CollectorRegistry()) as server:
        status, _, body = get(server, "/readyz")
    assert status == 503
    assert json.loads(body) == {"ready": False, "detail": "role has not registered a readiness check"}


def test_grpc_health_and_reflection() -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = add_grpc_health_and_reflection(server, ["relay.v1.AttestationService"])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", "relay.v1.AttestationService"):
                reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            servicer.set("relay.v1.AttestationService", health_pb2.HealthCheckResponse.NOT_SERVING)
            reply = health.Check(
                health_pb2.HealthCheckRequest(service="relay.v1.AttestationService"), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING

            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            responses = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
            listed = {s.name for s in responses[0].list_services_response.service}
            assert {"relay.v1.AttestationService", "grpc.health.v1.Health"} <= listed
    finally:
        server.stop(grace=None)
