"""The HTTP operability endpoints every role serves: `/metrics`, `/healthz`, `/readyz`.

`HealthServer` runs a stdlib `ThreadingHTTPServer` in a daemon thread, so it keeps answering
while the role's own loop is busy or stuck (which is exactly when `/healthz` must say so):

- `/metrics`: the Prometheus text format of the injected `CollectorRegistry`.
- `/healthz`: 200 while the role's loop is alive, i.e. `heartbeat()` was called within
  `stale_after` seconds; 503 once the heartbeat is stale (Kubernetes then restarts the pod).
- `/readyz`: 200 only when the role's readiness callable returns `(True, detail)`, e.g. "synced
  within the allowed lag"; 503 with a JSON reason otherwise, or if the callable raises.
- extra `routes` a role adds (the relayer's status page at `/` and `/api/status`): each path maps
  to a callable returning `(status, content type, body)`; a raising route answers 500 with the
  error as JSON, so a broken page never takes the probes down with it.

Bind to port 0 to let the kernel pick a free port; `server.port` reports it.

`add_grpc_health_and_reflection(server, service_names)` adds the standard gRPC health service
(grpc.health.v1) and server reflection to a role's gRPC server; `GrpcServingProbe` asks that
service over loopback, so a role's `/readyz` can say whether its gRPC server really answers
(`/healthz` stays about the process).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

# Readiness: (ready, detail); detail is a short human reason, e.g. "watcher 3 blocks behind".
ReadinessCheck = Callable[[], tuple[bool, str]]

# An extra GET route: () -> (HTTP status, Content-Type, body).
Route = Callable[[], tuple[int, str, bytes]]

# The operability endpoints; extra routes cannot shadow them (probes must mean the same everywhere).
BUILTIN_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


def _not_ready_yet() -> tuple[bool, str]:
    return False, "role has not registered a readiness check"


class HealthServer:
    """`/metrics`, `/healthz` and `/readyz` (plus any extra `routes`) over HTTP in a background thread.

    `heartbeat()` is the role's "my loop is still turning" signal; call it once per loop
    iteration. The server starts healthy (heartbeat at construction) so a slow start does not
    count as a hang until `stale_after` has passed. `routes` maps a path (query string ignored)
    to a `Route`; a path among `BUILTIN_PATHS` is rejected with `ValueError`.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        readiness: ReadinessCheck = _not_ready_yet,
        stale_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        routes: Mapping[str, Route] | None = None,
    ) -> None:
        shadowed = sorted(BUILTIN_PATHS & set(routes or {}))
        if shadowed:
            raise ValueError(f"extra routes cannot replace the built-in endpoints {shadowed}")
        self.registry = registry
        self.routes: dict[str, Route] = dict(routes or {})
        self.readiness = readiness
        self.stale_after = stale_after
        self._clock = clock
        self._last_beat = clock()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The address the server is bound to."""
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The bound port (the kernel's choice when constructed with port 0)."""
        return int(self._httpd.server_address[1])

    def heartbeat(self) -> None:
        """Record that the role's loop is alive now."""
        self._last_beat = self._clock()

    def is_alive(self) -> tuple[bool, float]:
        """Whether the last heartbeat is recent enough, and its age in seconds."""
        age = self._clock() - self._last_beat
        return age <= self.stale_after, age

    def check_ready(self) -> tuple[bool, str]:
        """Run the readiness callable; a raising check counts as not ready, with the error as reason."""
        try:
            ready, detail = self.readiness()
        except Exception as error:  # noqa: BLE001 - any failure of the check means "not ready"
            return False, f"readiness check failed: {type(error).__name__}: {error}"
        return bool(ready), str(detail)

    def start(self) -> HealthServer:
        """Serve in a daemon thread; returns self so `HealthServer(...).start()` reads naturally."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"health-http-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_for(server: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(server.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                alive, age = server.is_alive()
                body = {
                    "status": "ok" if alive else "stale",
                    "heartbeat_age_seconds": round(age, 3),
                    "stale_after_seconds": server.stale_after,
                }
                self._send_json(200 if alive else 503, body)
            elif path == "/readyz":
                ready, detail = server.check_ready()
                self._send_json(200 if ready else 503, {"ready": ready, "detail": detail})
            elif path in server.routes:
                self._serve_route(server.routes[path])
            else:
                self._send_json(404, {"error": "not found", "path": path})

        def _serve_route(self, route: Route) -> None:
            try:
                status, content_type, payload = route()
            except Exception as error:  # noqa: BLE001 - a failing page must not kill the server thread
                self._send_json(500, {"error": f"{type(error).__name__}: {error}"})
                return
            self._send(status, payload, content_type)

        def _send_json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            # Probes hit these endpoints every few seconds; access logs would drown the role's own logs.
            return

    return Handler


def add_grpc_health_and_reflection(server: Any, service_names: Iterable[str]) -> Any:
    """Add grpc.health.v1 and server reflection to a `grpc.Server`; return the health servicer.

    Every name in `service_names` (full names, e.g. `relay.v1.AttestationService`) and the overall
    server ("") are marked SERVING; a role flips them with
    `servicer.set(name, HealthCheckResponse.NOT_SERVING)` when it stops being ready.
    """
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection

    names = list(service_names)
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for name in ["", *names]:
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection([*names, health_name, reflection.SERVICE_NAME], server)
    return servicer


class GrpcServingProbe:
    """Whether a role's own gRPC server answers, by real calls over loopback, cached briefly.

    `check()` makes a grpc.health.v1 `Check` (a unary call, exempt from the per-kind call limits,
    see `relay.rpc.limits`) with a `timeout` deadline against `address`. So a stopped or wedged
    server reads as not ready, while clients that hold every watch-stream slot do not: readiness
    is not something an unauthenticated client can switch off (the refusals are counted in
    `relay_grpc_server_refused_total` instead). The verdict is reused for `cache_for` seconds.
    `channel` is the role's own channel to `address` (`relay.rpc.tls.open_channel`, with its TLS
    files); the probe closes it.
    """

    def __init__(
        self,
        address: str,
        *,
        channel: Any,
        timeout: float = 1.0,
        cache_for: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.cache_for = cache_for
        self._clock = clock
        self._channel = channel
        self._lock = threading.Lock()
        self._verdict: tuple[bool, str] | None = None
        self._checked_at = 0.0

    def check(self) -> tuple[bool, str]:
        """(answers, detail), from the cache if it is younger than `cache_for` seconds."""
        with self._lock:
            now = self._clock()
            if self._verdict is None or now - self._checked_at >= self.cache_for:
                self._verdict = self._probe()
                self._checked_at = self._clock()
            return self._verdict

    def _probe(self) -> tuple[bool, str]:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._channel)
        request = health_pb2.HealthCheckRequest()
        try:
            answer = stub.Check(request, timeout=self.timeout)
        except grpc.RpcError as error:
            return False, f"gRPC server at {self.address} does not answer: {error.code().name}"
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            return False, f"gRPC server at {self.address} is not serving"
        return True, f"gRPC server at {self.address} answers"

    def close(self) -> None:
        """Close the loopback channel."""
        self._channel.close()
