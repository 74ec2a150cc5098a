"""The one way every role serves gRPC: a thread-pool server with the metrics interceptor, the
role's services, grpc.health.v1 and reflection, bound to its configured address.

Every server takes its message-size cap and its per-kind call limits from `relay.rpc.limits`: the
pool has a thread for each admitted stream and unary call, so streams never starve unary calls,
and a call over its kind's limit or a message over the size cap gets `RESOURCE_EXHAUSTED`.

The attestor, the submitter and the relayer all start their servers here, so they share the same
interceptor, health semantics and bind errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc

from relay.errors import ConfigurationError
from relay.health import add_grpc_health_and_reflection
from relay.metrics import MetricsInterceptor, RelayMetrics
from relay.rpc.limits import MESSAGE_SIZE_OPTIONS, CallLimits, ConcurrencyInterceptor


def split_address(address: str) -> tuple[str, int]:
    """('host', port) of 'host:port'; `ConfigurationError` if it is not one."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigurationError("listen address must be host:port", address=address)
    return host, int(port)


def bind(server: grpc.Server, address: str) -> int:
    """Bind `server` to `address` (insecure, loopback or cluster network); return the bound port."""
    split_address(address)
    port = server.add_insecure_port(address)
    if port == 0:
        raise ConfigurationError("cannot listen on the address", address=address)
    return port


@dataclass
class GrpcServer:
    """A started role server: the server, its bound port and its health servicer."""

    server: grpc.Server
    port: int
    health: Any  # grpc_health.v1.health.HealthServicer

    def stop(self, grace: float) -> None:
        """Mark every service NOT_SERVING, then stop; calls in progress get `grace` seconds."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait(grace + 1)


def start_grpc_server(
    listen: str,
    metrics: RelayMetrics,
    register: Callable[[grpc.Server], None],
    service_names: Iterable[str],
    *,
    limits: CallLimits,
    thread_prefix: str,
) -> GrpcServer:
    """Build a server, add the role's services (`register`), health and reflection, bind and start it.

    The pool has `limits.pool_threads` threads; calls over `limits` are refused (and counted by
    the metrics interceptor, which sees every call first) with `RESOURCE_EXHAUSTED`.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=limits.pool_threads, thread_name_prefix=thread_prefix),
        interceptors=[MetricsInterceptor(metrics), ConcurrencyInterceptor(limits)],
        options=MESSAGE_SIZE_OPTIONS,
    )
    register(server)
    health = add_grpc_health_and_reflection(server, list(service_names))
    port = bind(server, listen)
    server.start()
    return GrpcServer(server, port, health)
