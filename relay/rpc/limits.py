"""The resource bounds of every gRPC server and client of the relay, in one place.

- **Message size.** `MAX_MESSAGE_BYTES` caps what a server receives and what a client sends or
  receives; the servers (`relay.rpc.server`) and the clients (`relay.rpc.clients`,
  `relay.client`) take their options from here, so the two ends never disagree. A request over
  the cap is refused by gRPC itself with `RESOURCE_EXHAUSTED` before any handler runs.
- **Concurrency.** gRPC's synchronous server runs every call, a stream for its whole life, on a
  pool thread. `CallLimits` splits the pool: at most `streams` streaming calls and at most `unary`
  unary calls run at once, each kind under its own semaphore, and the pool has a thread for every
  admitted call plus a few to answer the refused ones. So streams (status watchers) can never
  take the threads that operator calls and queries need. A call over its kind's limit is refused
  at once with `RESOURCE_EXHAUSTED`; it never waits for a slot.
- **Undecodable requests.** Bytes that do not parse as the method's request message are answered
  `INVALID_ARGUMENT` (gRPC itself would say INTERNAL, which reads as a crash of the server).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""The largest gRPC message any role sends or accepts (16 MiB): a delivery batch is bounded below it."""

MESSAGE_SIZE_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]
"""Channel and server options that apply `MAX_MESSAGE_BYTES`."""

MAX_DETAILS_CHARS = 1000
"""Status details are cut to this: they travel in trailers (8 KiB by default) and may quote hostile input."""


def shorten_details(details: str) -> str:
    """`details` cut to `MAX_DETAILS_CHARS`, marked as cut."""
    if len(details) <= MAX_DETAILS_CHARS:
        return details
    return details[: MAX_DETAILS_CHARS - 20] + f"... ({len(details)} chars)"


REFUSAL_THREADS = 4
"""Pool threads beyond the admitted calls, so that a refusal never waits behind them."""


# Health checks answer whatever the other calls hold: the role's own readiness (and Kubernetes'
# gRPC probes) must not be something a client can switch off by filling every slot.
UNLIMITED_METHODS = frozenset({"/grpc.health.v1.Health/Check"})


@dataclass(frozen=True)
class CallLimits:
    """How many streaming and unary calls one server runs at once (each kind its own pool share)."""

    streams: int = 32
    unary: int = 16

    def __post_init__(self) -> None:
        if self.streams < 1 or self.unary < 1:
            raise ValueError(f"call limits must be >= 1 (streams={self.streams}, unary={self.unary})")

    @property
    def pool_threads(self) -> int:
        """Threads the server's pool needs so every admitted call has one, and refusals too."""
        return self.streams + self.unary + REFUSAL_THREADS


class _Undecodable:
    """What a request deserializer returns for bytes that are not a valid request message."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as error:  # noqa: BLE001 - any parse failure is the caller's malformed input
            return _Undecodable(error)

    return parse


class ConcurrencyInterceptor(grpc.ServerInterceptor):
    """Admits at most `limits.streams` streaming and `limits.unary` unary calls at once.

    Every method counts, the role's own and grpc.health.v1 / reflection alike: a server streaming
    or client streaming call is a stream for its whole life. Over the limit the call ends with
    `RESOURCE_EXHAUSTED` before its handler runs. `on_refused(method)` hears each refusal. A
    request that does not decode ends with `INVALID_ARGUMENT`, before its handler runs too.
    """

    def __init__(self, limits: CallLimits, on_refused: Callable[[str], None] | None = None) -> None:
        self.limits = limits
        self._streams = threading.BoundedSemaphore(limits.streams)
        self._unary = threading.BoundedSemaphore(limits.unary)
        self._on_refused = on_refused

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Wrap the handler so it runs only with a slot of its kind."""
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        if method in UNLIMITED_METHODS:
            return handler  # readiness probes: no client can use up their slots
        serialize = (_tolerant(handler.request_deserializer), handler.response_serializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._admit_unary(method, "unary", self._unary, handler.unary_unary), *serialize
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._admit_unary(method, "stream", self._streams, handler.stream_unary), *serialize
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._admit_stream(method, handler.unary_stream), *serialize
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._admit_stream(method, handler.stream_stream), *serialize
            )
        return handler

    def _refuse(self, method: str, kind: str, context: grpc.ServicerContext) -> NoReturn:
        if self._on_refused is not None:
            self._on_refused(method)
        limit = self.limits.streams if kind == "stream" else self.limits.unary
        context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"this server already runs {limit} {kind} calls, its limit; try again later",
        )
        raise RuntimeError("grpc abort returned")  # pragma: no cover - abort always raises

    def _admit_unary(
        self,
        method: str,
        kind: str,
        slots: threading.BoundedSemaphore,
        behavior: Callable[[Any, grpc.ServicerContext], Any],
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            _verify_decoded(request, context)
            if not slots.acquire(blocking=False):
                self._refuse(method, kind, context)
            try:
                return behavior(request, context)
            finally:
                slots.release()

        return handle

    def _admit_stream(
        self, method: str, behavior: Callable[[Any, grpc.ServicerContext], Iterator[Any]]
    ) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
        slots = self._streams

        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            _verify_decoded(request, context)
            if not slots.acquire(blocking=False):
                self._refuse(method, "stream", context)
            try:
                yield from behavior(request, context)
            finally:
                slots.release()

        return handle


def _verify_decoded(request: Any, context: grpc.ServicerContext) -> None:
    # A client-streaming request is an iterator whose items decode as they arrive; an item that
    # does not decode reaches its handler as an `_Undecodable` and fails there on its fields.
    if isinstance(request, _Undecodable):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request does not decode: {request.error}")


# --- light-client origins (DestinationService.SubmitLightClientUpdate / DeliverByReceipt) ----------

MAX_LIGHT_CLIENT_UPDATE_BYTES = 1 << 20
"""A light-client update's ABI arguments: a 512-member committee is under 100 KiB; 1 MiB is ample."""

MAX_RECEIPT_PROOFS = 1000
"""Distinct receipt proofs in one DeliverByReceipt (at most one per message)."""

MAX_RECEIPT_DELIVERIES = 1000
"""Messages in one DeliverByReceipt (like Deliver's items)."""

MAX_PROOF_NODES = 64
"""Trie nodes in one receipt proof: a receipts trie keyed by a transaction index is a few levels deep."""

MAX_PROOF_HEADERS = 8193
"""RLP headers of a receipt proof's parent-hash walk (the relayer walks at most 8192 blocks)."""

MAX_PROOF_ELEMENT_BYTES = 1 << 20
"""One trie node or header: a receipt leaf holds the receipt's logs; 1 MiB bounds any real one."""
