"""A small Python client for dApps: send a message, then follow it to delivery.

```python
from relay.client import RelayClient, send
from relay.rpc.tls import ClientTls

message_id = send(rpc_url, gateway, private_key, destination=31338, recipient="0x…", body=b"hi",
                  gas_limit=200_000)  # quoted and paid on the source chain
status = RelayClient("relay.example:50070", tls=ClientTls(ca="ca.crt")).wait_delivered(message_id, timeout=60)
```

`RelayClient` speaks TLS (`relay.rpc.tls.ClientTls`: the CA that signed the relayer's certificate,
and a client certificate and key for the relayer's operator port); plaintext only with
`insecure=True`, for development relayers running with `insecure_plaintext`.

`send` dispatches through the source Gateway with web3 (imported lazily, so importing this
module stays light), paying for the recipient's gas when given a gas limit; `RelayClient` talks to the relayer's gRPC `RelayService`. Statuses come
back as `MessageView`s with plain Python fields (state as a lowercase name, e.g. "delivered").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from relay.errors import ConfigurationError, NotYetAvailable, PermanentError, RpcUnavailable
from relay.relayer.sizing import compute_delivery_overhead
from relay.v1 import relay_service_pb2, relay_service_pb2_grpc, types_pb2
from relay.verify.message import HEADER_LENGTH, MAX_BODY_LENGTH, address_to_bytes32

if TYPE_CHECKING:
    from relay.rpc.tls import TlsFiles

TERMINAL_STATES = frozenset({"delivered", "rejected", "parked"})
# Waiting for more ids than this reads them with ListMessages rather than one GetMessage each.
LIST_THRESHOLD = 50


class BodyTooLarge(ConfigurationError):
    """The body is longer than the Gateway accepts (MAX_BODY_LENGTH); refused before sending."""


class NoGasOracle(ConfigurationError):
    """The source Gateway has no gas prices for the destination, so it cannot quote a payment."""


def read_body(body: bytes | str | None = None, body_file: str | Path | None = None) -> bytes:
    """The message body from exactly one of `body` (bytes, or text as UTF-8) and `body_file`.

    Raises `BodyTooLarge` above MAX_BODY_LENGTH, the limit the Gateway enforces on-chain.
    """
    if (body is None) == (body_file is None):
        raise ConfigurationError("give exactly one of a body and a body file")
    if body_file is not None:
        path = Path(body_file)
        try:
            with path.open("rb") as handle:
                # One byte more than the limit is enough to tell it is too large.
                payload = handle.read(MAX_BODY_LENGTH + 1)
                size = path.stat().st_size
        except OSError as error:
            raise ConfigurationError("body file unreadable", file=str(path), cause=error.strerror) from error
        if len(payload) > MAX_BODY_LENGTH:
            raise BodyTooLarge(
                f"body file is larger than the Gateway's limit of {MAX_BODY_LENGTH} bytes",
                file=str(path),
                length=size,
                max=MAX_BODY_LENGTH,
            )
    else:
        payload = body.encode() if isinstance(body, str) else bytes(body)  # type: ignore[arg-type]
    if len(payload) > MAX_BODY_LENGTH:
        raise BodyTooLarge(
            f"body is larger than the Gateway's limit of {MAX_BODY_LENGTH} bytes",
            length=len(payload),
            max=MAX_BODY_LENGTH,
        )
    return payload


def send(
    rpc_url: str,
    gateway: str,
    private_key: str,
    destination: int,
    recipient: str,
    body: bytes | str | None = None,
    *,
    body_file: str | Path | None = None,
    gas_limit: int | None = None,
    timeout: float = 60.0,
) -> bytes:
    """Dispatch a body to `recipient` on domain `destination`; wait for the receipt; return the id.

    The body is `body` (bytes, or text sent as UTF-8) or the bytes of `body_file`, never both; one
    over MAX_BODY_LENGTH raises `BodyTooLarge` before anything is sent. With `gas_limit`, the
    message goes through `dispatchWithGas` paying for `gas_limit` gas of the recipient's `handle`
    plus the delivery's own cost for this message (`relay.relayer.sizing.compute_delivery_overhead`,
    which the relayer's gas policy requires): the Gateway's quote for that total is read first and
    paid with the dispatch
    (`NoGasOracle` if the Gateway has no prices for the destination). Without it, nothing is paid.
    """
    from web3 import exceptions as web3_errors

    from adapters.evm.deploy import TransactionSender, contract, dispatched_ids
    from adapters.evm.errors import decode_contract_error, revert_data

    payload = read_body(body, body_file)
    if gas_limit is not None and (isinstance(gas_limit, bool) or not 0 < gas_limit < 2**64):
        raise ConfigurationError("gas limit must be a positive integer below 2^64", gas_limit=gas_limit)
    sender = TransactionSender(rpc_url, private_key)
    functions = contract(sender.web3, "Gateway", gateway).functions
    target = address_to_bytes32(recipient)
    value = 0
    if gas_limit is None:
        call = functions.dispatch(destination, target, payload)
    else:
        gas_limit += compute_delivery_overhead(HEADER_LENGTH + len(payload))
        quote = functions.quoteGasPayment(destination, gas_limit)
        try:
            value = int(sender.endpoint.read("eth_call", lambda: quote.call()))
        except (web3_errors.ContractCustomError, web3_errors.ContractLogicError) as error:
            decoded = decode_contract_error(revert_data(error))
            if decoded.name == "NoGasOracle":
                raise NoGasOracle(
                    "the source Gateway has no gas oracle for the destination; it cannot take payment",
                    gateway=gateway,
                    destination=destination,
                ) from error
            raise ConfigurationError("quoteGasPayment reverted", reason=decoded.describe()) from error
        call = functions.dispatchWithGas(destination, target, payload, gas_limit)
    fields = {"from": sender.address, "value": value}
    gas = int(sender.endpoint.read("eth_estimateGas", lambda: call.estimate_gas(fields)))
    transaction = {"to": call.address, "data": call._encode_transaction_data(), "gas": gas * 5 // 4 + 20_000}
    (receipt,) = sender.wait([sender.send({**transaction, "value": value})], timeout=timeout)
    ids = dispatched_ids(receipt, gateway)
    if len(ids) != 1:
        raise PermanentError("dispatch receipt holds no Dispatch event of the gateway", gateway=gateway)
    return ids[0]


@dataclass(frozen=True)
class MessageView:
    """One message's status, as RelayService reports it."""

    id: bytes
    state: str
    origin: int
    destination: int
    nonce: int
    attempts: int
    last_error: str
    source_block: int
    source_transaction: bytes
    destination_transaction: bytes
    observed_at: float
    updated_at: float
    delivered_at: float

    @property
    def is_terminal(self) -> bool:
        """Whether the relayer will not move it again by itself (delivered, rejected, parked)."""
        return self.state in TERMINAL_STATES

    @classmethod
    def from_proto(cls, status: relay_service_pb2.MessageStatus) -> MessageView:
        """Convert a `relay.v1.MessageStatus`."""
        name = types_pb2.MessageState.Name(status.state).removeprefix("MESSAGE_STATE_").lower()
        message = status.message
        return cls(
            id=bytes(message.id),
            state=name,
            origin=message.origin,
            destination=message.destination,
            nonce=message.nonce,
            attempts=status.attempts,
            last_error=status.last_error,
            source_block=status.source_block,
            source_transaction=bytes(status.source_transaction),
            destination_transaction=bytes(status.destination_transaction),
            observed_at=status.observed_at,
            updated_at=status.updated_at,
            delivered_at=status.delivered_at,
        )


def parse_message_id(text: str) -> bytes:
    """A 32-byte message id from 0x-hex."""
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise ConfigurationError("message id is not hex", value=text) from None
    if len(raw) != 32:
        raise ConfigurationError("message id must be 32 bytes", length=len(raw))
    return raw


class RelayerUnreachable(RpcUnavailable):
    """No relayer answers at the address: nothing listens there, or it is down or unroutable."""


CONNECT_TIMEOUT = 3.0
"""Seconds `RelayClient` waits for a connection before it reports the relayer unreachable."""


class RelayClient:
    """A client of the relayer's RelayService at `address` (host:port), over TLS with `tls`
    (plaintext only with `insecure=True`).

    Operator calls (`retry`) are accepted only on the relayer's operator port, over mutual TLS:
    give that port's address and a `tls` with a client certificate signed by the relayer's CA.

    A relayer that cannot be reached is reported as such (`RelayerUnreachable`, with the address)
    within `connect_timeout` seconds, not after a whole wait as a message never seen.
    """

    def __init__(
        self,
        address: str,
        *,
        tls: TlsFiles | None = None,
        insecure: bool = False,
        timeout: float = 5.0,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        from relay.rpc.limits import MESSAGE_SIZE_OPTIONS
        from relay.rpc.tls import open_channel

        if (tls is None) == (not insecure):
            raise ConfigurationError(
                "give the relayer's CA (tls) or, for a development relayer, insecure=True; not both"
                if tls is not None
                else "plaintext gRPC is refused: give the relayer's CA (tls), or insecure=True for development"
            )
        self.address = address
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._tls = tls
        self._channel = open_channel(
            address,
            tls,
            options=[
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 1000),
                *MESSAGE_SIZE_OPTIONS,
            ],
        )
        self._stub = relay_service_pb2_grpc.RelayServiceStub(self._channel)

    def verify_reachable(self) -> None:
        """Raise `RelayerUnreachable` unless a connection to the relayer opens within `connect_timeout`."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=self.connect_timeout)
        except grpc.FutureTimeoutError:
            cause = self._connection_failure_cause()
            raise RelayerUnreachable(
                f"no relayer answers at {self.address}" + (f": {cause}" if cause else ""),
                address=self.address,
                waited_seconds=self.connect_timeout,
            ) from None

    def _connection_failure_cause(self) -> str | None:
        """Why a connection does not open, when the TLS handshake says (wrong CA, plaintext, ...)."""
        from relay.rpc.tls import describe_handshake_failure

        try:
            self._stub.ListChains(relay_service_pb2.ListChainsRequest(), timeout=min(1.0, self.timeout))
        except grpc.RpcError as error:
            return describe_handshake_failure(error.details() or "", self._channel.files)
        return None

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> RelayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, message_id: bytes) -> MessageView | None:
        """The message's status; None if the relayer has not observed it (yet)."""
        try:
            status = self._stub.GetMessage(
                relay_service_pb2.GetMessageRequest(id=message_id), timeout=self.timeout
            )
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise RpcUnavailable(
                "RelayService did not answer",
                address=self.address,
                code=error.code().name,
                details=error.details(),
            ) from error
        return MessageView.from_proto(status)

    def list_messages(
        self, states: Iterable[str] = (), origin: int = 0, destination: int = 0, page_size: int = 500
    ) -> Iterator[MessageView]:
        """Every message matching the filter, newest first (follows the pages)."""
        values: list[Any] = [types_pb2.MessageState.Value(f"MESSAGE_STATE_{s.upper()}") for s in states]
        token = ""
        while True:
            response = self._stub.ListMessages(
                relay_service_pb2.ListMessagesRequest(
                    states=values,
                    origin=origin,
                    destination=destination,
                    page_size=page_size,
                    page_token=token,
                ),
                timeout=self.timeout,
            )
            for status in response.messages:
                yield MessageView.from_proto(status)
            token = response.next_page_token
            if not token:
                return

    def retry(self, message_id: bytes, operator_token: str, force: bool = False) -> MessageView:
        """Operator: move a PARKED (or, with `force`, REJECTED) message back to be retried.

        Refused (`ConfigurationError`, nothing sent) unless this client dials with a client
        certificate: the token never crosses the network in the clear, even to a relayer that would
        refuse it.
        """
        from relay.rpc.tls import require_client_certificate

        require_client_certificate(self._tls, "RetryMessage")
        status = self._stub.RetryMessage(
            relay_service_pb2.RetryMessageRequest(id=message_id, operator_token=operator_token, force=force),
            timeout=self.timeout,
        )
        return MessageView.from_proto(status)

    def chains(self) -> list[Any]:
        """The relayer's source chains and their lag (`relay.v1.ChainStatus`)."""
        return list(self._stub.ListChains(relay_service_pb2.ListChainsRequest(), timeout=self.timeout).chains)

    def watch(self, ids: Sequence[bytes] = ()) -> Iterator[MessageView]:
        """A stream of status changes (of `ids`, or of every message), starting with the current ones."""
        for status in self._stub.WatchMessages(relay_service_pb2.WatchMessagesRequest(ids=list(ids))):
            yield MessageView.from_proto(status)

    def wait_delivered(
        self,
        message_id: bytes,
        timeout: float = 120.0,
        on_change: Callable[[MessageView], None] | None = None,
    ) -> MessageView:
        """Poll until the message is delivered; raise if it ends REJECTED/PARKED or time runs out.

        `RelayerUnreachable` at once if no relayer answers at the address when the wait starts, or
        at the deadline if it stopped answering and never came back; a relayer that restarts
        during the wait is waited for.
        """
        self.verify_reachable()
        deadline = time.monotonic() + timeout
        last_state = ""
        unreachable: RpcUnavailable | None = None
        while True:
            try:
                view = self.get(message_id)
                unreachable = None
            except RpcUnavailable as error:
                view = None
                unreachable = error
            if view is not None and view.state != last_state:
                last_state = view.state
                if on_change is not None:
                    on_change(view)
            if view is not None and view.state == "delivered":
                return view
            if view is not None and view.is_terminal:
                raise PermanentError(f"message ended {view.state}", id=message_id, last_error=view.last_error)
            if time.monotonic() > deadline:
                if unreachable is not None:
                    raise RelayerUnreachable(
                        f"the relayer at {self.address} stopped answering",
                        address=self.address,
                        state=last_state or "unseen",
                        seconds=timeout,
                    ) from unreachable
                raise NotYetAvailable(
                    "message not delivered in time",
                    id=message_id,
                    state=last_state or "unseen",
                    seconds=timeout,
                )
            time.sleep(0.25)

    def wait_all_delivered(
        self,
        ids: Sequence[bytes],
        timeout: float = 300.0,
        report: Callable[[dict[str, int], int, int], None] | None = None,
        interval: float = 1.0,
    ) -> dict[bytes, MessageView]:
        """Poll until every id is in a terminal state (or `timeout`); return the last views.

        Survives the relayer being down for a while (a poll that fails is skipped). `report`
        gets (counts by state, delivered, total) after each poll. Many ids are read with one
        paged ListMessages per poll instead of one GetMessage each.
        """
        deadline = time.monotonic() + timeout
        views: dict[bytes, MessageView] = {}
        remaining = list(dict.fromkeys(ids))
        while True:
            try:
                views.update(self.get_many(remaining))
            except RpcUnavailable:
                pass
            remaining = [i for i in remaining if i not in views or not views[i].is_terminal]
            if report is not None:
                counts: dict[str, int] = {}
                for message_id in ids:
                    state = views[message_id].state if message_id in views else "sent"
                    counts[state] = counts.get(state, 0) + 1
                report(counts, counts.get("delivered", 0), len(ids))
            if not remaining or time.monotonic() > deadline:
                return views
            time.sleep(interval)

    def get_many(self, ids: Sequence[bytes]) -> dict[bytes, MessageView]:
        """The status of each id the relayer knows (unknown ids are left out)."""
        if len(ids) <= LIST_THRESHOLD:
            found = {}
            for message_id in ids:
                view = self.get(message_id)
                if view is not None:
                    found[message_id] = view
            return found
        wanted = set(ids)
        found = {}
        try:
            # Newest first: stop paging once every wanted id was seen (a bench waiting for its
            # latest messages reads them, not the whole history of the store, on every poll).
            for view in self.list_messages():
                if view.id in wanted:
                    found[view.id] = view
                    if len(found) == len(wanted):
                        break
            return found
        except grpc.RpcError as error:
            raise RpcUnavailable(
                "RelayService did not answer", address=self.address, code=error.code().name
            ) from error
