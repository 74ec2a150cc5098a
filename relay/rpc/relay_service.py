"""`relay.v1.RelayService` over gRPC: dApps track messages, operators retry and watch lag.

The servicer is a thin translation layer over a `RelayApi` (the relayer implements it): it decodes
and validates requests (`INVALID_ARGUMENT` for malformed ids or filters), converts records to
`MessageStatus`, and maps domain errors to status codes (`NOT_FOUND`, `FAILED_PRECONDITION`,
`PERMISSION_DENIED` without the operator token, `RESOURCE_EXHAUSTED` for a watcher that fell
behind). Repeated fields are bounded (`MAX_WATCH_IDS`, `MAX_FILTER_STATES`), page sizes are clamped
to `MAX_PAGE_SIZE`; how many calls run at once is bounded by the server (`relay.rpc.limits`).

Operator calls (those that take the operator token: `RetryMessage`) are accepted only on a
connection that is TLS and carries a client certificate verified by the relayer's CA, that is on
the operator port (`operator_listen`, mutual TLS); `verify_operator_call` refuses them with
`PERMISSION_DENIED` and a message naming the operator port on the public port (server TLS only)
and on any plaintext connection (`insecure_plaintext`, development), before the token is even
compared: the token is never accepted where it could have crossed the network in the clear.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn, Protocol

import grpc

from relay.errors import EpochMismatch, InvalidProof, MalformedEncoding
from relay.handover import HandoverCertificate
from relay.handover_ecdsa import EcdsaHandoverCertificate
from relay.lifecycle import MessageState, StaleState
from relay.rpc import convert
from relay.rpc.limits import shorten_details
from relay.rpc.tls import has_client_certificate, is_tls_connection
from relay.store.base import MessageFilter, MessageRecord, Store
from relay.v1 import relay_service_pb2, relay_service_pb2_grpc

SERVICE_NAME = "relay.v1.RelayService"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
WATCH_SNAPSHOT_LIMIT = 2_000  # pending messages a new watch stream starts with, newest first
MAX_WATCH_IDS = 1000  # ids one WatchMessages may name; more is INVALID_ARGUMENT (watch all instead)
MAX_FILTER_STATES = 64  # states one ListMessages may name (there are 9; repeats are refused beyond this)


class WatchInbox(Protocol):
    """A subscription's queue of changed ids (`None` ends the stream) and its overflow flag."""

    inbox: queue.Queue[bytes | None]
    overflowed: bool


class ChainProgress(Protocol):
    """A source chain's progress, as `ListChains` reports it."""

    @property
    def domain(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def head(self) -> int: ...

    @property
    def finalized(self) -> int: ...

    @property
    def cursor(self) -> int: ...

    @property
    def lag_blocks(self) -> int: ...

    @property
    def lag_seconds(self) -> float: ...


class RelayApi(Protocol):
    """What the servicer needs from the relayer."""

    @property
    def store(self) -> Store: ...

    @property
    def stopping(self) -> bool: ...

    def subscribe(self, ids: Sequence[bytes] = ()) -> Any: ...

    def unsubscribe(self, subscriber: Any) -> None: ...

    def retry_message(self, message_id: bytes, *, force: bool = False) -> MessageRecord: ...

    def chain_statuses(self) -> Sequence[ChainProgress]: ...

    def check_operator_token(self, token: str) -> bool: ...

    def submit_handover(
        self, certificate: HandoverCertificate | EcdsaHandoverCertificate
    ) -> tuple[int, Sequence[Any]]: ...


def add_relay_service(server: grpc.Server, api: RelayApi) -> None:
    """Serve `RelayService` over `api` on `server` (the relayer's composition root calls this)."""
    relay_service_pb2_grpc.add_RelayServiceServicer_to_server(RelayServicer(api), server)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, shorten_details(details))
    raise RuntimeError("grpc abort returned")  # pragma: no cover - abort always raises


def _invalid(context: grpc.ServicerContext, error: Exception) -> NoReturn:
    _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))


PLAINTEXT_OPERATOR_REFUSAL = (
    "{method} is an operator call and this connection is plaintext: the operator token is accepted "
    "only over mutual TLS, on the relayer's operator port (operator_listen)"
)
PUBLIC_OPERATOR_REFUSAL = (
    "{method} is an operator call: call it on the relayer's operator port (operator_listen) with a "
    "client certificate; this public port serves dApps and dashboards and refuses operator calls"
)


def verify_operator_call(context: grpc.ServicerContext, relayer: RelayApi, token: str, method: str) -> None:
    """Abort with PERMISSION_DENIED unless the call came over mutual TLS with the operator token.

    Every operator call (one taking the operator token) starts with this (see the module docstring).
    """
    if not is_tls_connection(context):
        _abort(context, grpc.StatusCode.PERMISSION_DENIED, PLAINTEXT_OPERATOR_REFUSAL.format(method=method))
    if not has_client_certificate(context):
        _abort(context, grpc.StatusCode.PERMISSION_DENIED, PUBLIC_OPERATOR_REFUSAL.format(method=method))
    if not relayer.check_operator_token(token):
        _abort(context, grpc.StatusCode.PERMISSION_DENIED, f"{method} needs the operator token")


class RelayServicer(relay_service_pb2_grpc.RelayServiceServicer):
    """`relay.v1.RelayService` over a `RelayApi`."""

    def __init__(self, relayer: RelayApi) -> None:
        self.relayer = relayer

    def GetMessage(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC names
        try:
            message_id = convert.message_id_from_bytes(request.id)
        except MalformedEncoding as error:
            _invalid(context, error)
        record = self.relayer.store.get(message_id)
        if record is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"message 0x{message_id.hex()} was never observed")
        return convert.message_status_to_proto(record)

    def ListMessages(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            if len(request.states) > MAX_FILTER_STATES:
                raise MalformedEncoding(
                    "too many states in the filter", count=len(request.states), limit=MAX_FILTER_STATES
                )
            states = frozenset(convert.state_from_proto(s) for s in request.states)
            size = request.page_size or DEFAULT_PAGE_SIZE
            where = MessageFilter(states=states, origin=request.origin, destination=request.destination)
            page = self.relayer.store.list_messages(where, min(size, MAX_PAGE_SIZE), request.page_token)
        except (MalformedEncoding, ValueError) as error:
            _invalid(context, error)
        return relay_service_pb2.ListMessagesResponse(
            messages=[convert.message_status_to_proto(r) for r in page.records],
            next_page_token=page.next_token,
        )

    def WatchMessages(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        try:
            if len(request.ids) > MAX_WATCH_IDS:
                raise MalformedEncoding(
                    "too many ids to watch; watch every message instead",
                    count=len(request.ids),
                    limit=MAX_WATCH_IDS,
                )
            ids = [convert.message_id_from_bytes(i, "ids") for i in request.ids]
        except MalformedEncoding as error:
            _invalid(context, error)
        relayer = self.relayer
        subscriber: WatchInbox = relayer.subscribe(ids)
        try:
            last: dict[bytes, tuple[MessageState, float]] = {}

            def status(record: MessageRecord) -> Any:
                last[record.id] = (record.state, record.updated_at)
                return convert.message_status_to_proto(record)

            # The current state first: the given ids, or every message still in flight.
            if ids:
                current = [r for r in (relayer.store.get(i) for i in ids) if r is not None]
            else:
                # The newest pending messages, at most WATCH_SNAPSHOT_LIMIT: a flood of held (UNPAID)
                # messages must not make every stream load them all into memory. Older ones are
                # still reported when they change, and ListMessages pages through the rest.
                current = []
                token = ""
                pending = frozenset(s for s in MessageState if s.is_pending)
                while len(current) < WATCH_SNAPSHOT_LIMIT:
                    size = min(MAX_PAGE_SIZE, WATCH_SNAPSHOT_LIMIT - len(current))
                    page = relayer.store.list_messages(MessageFilter(states=pending), size, token)
                    current.extend(page.records)
                    token = page.next_token
                    if not token:
                        break
                current.reverse()
            for record in current:
                yield status(record)
            while context.is_active() and not relayer.stopping:
                if subscriber.overflowed:
                    _abort(
                        context,
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        "watcher fell too far behind; watch again",
                    )
                try:
                    message_id = subscriber.inbox.get(timeout=0.5)
                except queue.Empty:
                    continue
                if message_id is None:
                    return
                changed = relayer.store.get(message_id)
                if changed is None or last.get(changed.id) == (changed.state, changed.updated_at):
                    continue
                yield status(changed)
        finally:
            relayer.unsubscribe(subscriber)

    def RetryMessage(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        verify_operator_call(context, self.relayer, request.operator_token, "RetryMessage")
        try:
            message_id = convert.message_id_from_bytes(request.id)
        except MalformedEncoding as error:
            _invalid(context, error)
        try:
            record = self.relayer.retry_message(message_id, force=request.force)
        except LookupError:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"message 0x{message_id.hex()} was never observed")
        except StaleState as error:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(error))
        return convert.message_status_to_proto(record)

    def SubmitHandover(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        verify_operator_call(context, self.relayer, request.operator_token, "SubmitHandover")
        try:
            certificate = convert.any_handover_certificate_from_proto(request)
        except MalformedEncoding as error:
            _invalid(context, error)
        try:
            epoch, submissions = self.relayer.submit_handover(certificate)
        except LookupError:
            _abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"origin {certificate.proposal.origin} is not watched by this relayer",
            )
        except EpochMismatch as error:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, shorten_details(f"{error.reason}: {error}"))
        except InvalidProof as error:
            _invalid(context, error)
        return relay_service_pb2.SubmitHandoverRelayResponse(
            epoch=epoch,
            submissions=[
                relay_service_pb2.HandoverSubmission(
                    destination=s.destination,
                    transaction_hash=s.transaction_hash,
                    epoch=s.epoch,
                    error=shorten_details(s.error),
                )
                for s in submissions
            ],
        )

    def ListChains(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return relay_service_pb2.ListChainsResponse(
            chains=[
                relay_service_pb2.ChainStatus(
                    domain=c.domain,
                    name=c.name,
                    head=c.head,
                    finalized=c.finalized,
                    cursor=c.cursor,
                    lag_blocks=c.lag_blocks,
                    lag_seconds=c.lag_seconds,
                )
                for c in self.relayer.chain_statuses()
            ]
        )
