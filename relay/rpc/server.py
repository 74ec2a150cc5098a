"""The one way every role serves gRPC: a thread-pool server with the metrics interceptor, the
role's services, grpc.health.v1 and reflection, bound to its configured address.

Every server takes its message-size cap and its per-kind call limits from `relay.rpc.limits`: the
pool has a thread for each admitted stream and unary call, so streams never starve unary calls,
and a call over its kind's limit or a message over the size cap gets `RESOURCE_EXHAUSTED`.

The attestor, the submitter and the relayer all start their servers here, so they share the same
interceptor, health semantics and bind errors, and the same transport security (`relay.rpc.tls`):
with `tls`, every listener is TLS with certificates reloaded when their files change, and requires
a client certificate signed by the CA (mutual TLS) unless `require_client_certificate=False` (the
relayer's public RelayService port). `operator_listen` adds a second port to the same server that
always requires a client certificate (the relayer's operator port). `tls=None` is plaintext, which
the role configs allow only with `insecure_plaintext`.
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
from relay.rpc.tls import TlsFiles, server_credentials


def split_address(address: str) -> tuple[str, int]:
    """('host', port) of 'host:port'; `ConfigurationError` if it is not one."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigurationError("listen address must be host:port", address=address)
    return host, int(port)


def bind(
    server: grpc.Server, address: str, tls: TlsFiles | None, *, require_client_certificate: bool = True
) -> int:
    """Bind `server` to `address`, TLS with `tls` (plaintext with None); return the bound port."""
    split_address(address)
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        credentials = server_credentials(tls, require_client_certificate=require_client_certificate)
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise ConfigurationError("cannot listen on the address", address=address)
    return port


@dataclass
class GrpcServer:
    """A started role server: the server, its bound port and its health servicer."""

    server: grpc.Server
    port: int
    health: Any  # grpc_health.v1.health.HealthServicer
    operator_port: int = 0  # the port of `operator_listen` (0: none)

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
    tls: TlsFiles | None,
    require_client_certificate: bool = True,
    operator_listen: str | None = None,
) -> GrpcServer:
    """Build a server, add the role's services (`register`), health and reflection, bind and start it.

    Transport security as the module docstring says: `tls` (None: plaintext) for `listen`, with or
    without `require_client_certificate`; `operator_listen` (needs `tls`) always mutual TLS.

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
    port = bind(server, listen, tls, require_client_certificate=require_client_certificate)
    operator_port = 0
    if operator_listen is not None:
        if tls is None:
            raise ConfigurationError(
                "operator_listen needs tls (operator calls are served over mutual TLS only)"
            )
        operator_port = bind(server, operator_listen, tls, require_client_certificate=True)
    server.start()
    return GrpcServer(server, port, health, operator_port)
