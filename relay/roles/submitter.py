"""The submitter role: the only holder of one destination chain's transaction key.

It serves gRPC `DestinationService` for the relayer:

- `Deliver`: one batch of verified messages under one checkpoint and certificate becomes one
  transaction (`DestinationChain.submit`, which skips ids already delivered). Each message's
  outcome: DELIVERED, ALREADY_DELIVERED (nothing sent for it), RECIPIENT_REVERTED (with the
  decoded reason; still deliverable), REJECTED (the Gateway refused the proof; the reason
  starts with the error name, e.g. `InvalidSignature: ...`) or PAUSED (the Gateway's guardian
  or owner paused delivery from the origin: nothing was sent, the relayer asks again later).
- `SubmitHandover`: a hand-over certificate becomes the gateway's `handover` transaction, unless
  the gateway's committee of that origin is already at its epoch (nothing sent).
- `SubmitLightClientUpdate`, `DeliverByReceipt` (a light-client origin, `chain.light_client_origins`):
  an update becomes the origin's `EthereumLightClient.submitUpdate` (nothing sent when it is no
  longer needed), a receipt-proof batch one `EthereumInbox.deliverFromEthereumBatch`, with the
  same transaction machinery and per-message outcomes as `Deliver`.
- `GetDelivered`, `GetStatus`: reads.

Status codes: INVALID_ARGUMENT for a malformed request (bad lengths, a message for another
domain, a nonce the checkpoint does not cover); UNAVAILABLE for every transient failure (RPC
down, nonce race, fee spike, no receipt yet: the relayer retries with backoff);
FAILED_PRECONDITION for a permanent one. Serves grpc.health.v1 and reflection, and `/metrics`,
`/healthz`, `/readyz` over HTTP when configured. The key never leaves this process and never
appears in logs.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import grpc

from relay.chains import DestinationChain, HandoverDestination
from relay.chains import registry as chain_registry
from relay.chains.lightclient import LightClientDestination
from relay.chains.registry import ChainConfig
from relay.config import GrpcRoleConfig, SecretRef
from relay.errors import (
    DeliveryPaused,
    DestinationMismatch,
    IndexOutOfRange,
    InvalidProof,
    MalformedEncoding,
    OriginMismatch,
    PermanentError,
    RelayError,
    TransientError,
)
from relay.roles.service import ServedRole
from relay.rpc.convert import any_handover_certificate_from_proto, deliver_request_from_proto
from relay.rpc.convert_lightclient import deliver_by_receipt_from_proto, light_client_update_from_proto
from relay.rpc.limits import CallLimits, shorten_details
from relay.rpc.server import GrpcServer, split_address, start_grpc_server
from relay.v1 import destination_pb2, destination_pb2_grpc
from relay.verify.message import Message

log = logging.getLogger(__name__)

SERVICE_NAME = "relay.v1.DestinationService"
STATUS_INTERVAL_SECONDS = 5.0
_OUTCOME = destination_pb2.DeliveryOutcome


class SubmitterConfig(GrpcRoleConfig):
    """`relay submitter --config FILE`: which chain, which transaction key, where to serve (and
    `tls`, see `relay.config.GrpcRoleConfig`: its DestinationService requires a client certificate)."""

    chain: ChainConfig
    # The destination chain's transaction key (hex secp256k1), from a file or the environment.
    key: SecretRef
    listen: str = "127.0.0.1:50061"
    # host:port for /metrics, /healthz, /readyz; None: no HTTP endpoint.
    metrics_listen: str | None = None


def light_client_destination(destination: DestinationChain) -> LightClientDestination | None:
    """`destination` as a `LightClientDestination`, None if it serves no light-client origin."""
    if callable(getattr(destination, "submit_light_client_update", None)) and callable(
        getattr(destination, "deliver_by_receipt", None)
    ):
        return destination  # type: ignore[return-value]
    return None


def _reason(error: RelayError) -> str:
    # Status details and per-message reasons may quote the request: bounded, like every status detail.
    return shorten_details(f"{error.reason}: {error}")


# Unary calls served at once: a relayer keeps up to `relay.relayer.deliver.MAX_BATCHES_IN_FLIGHT`
# deliveries waiting here, with room left for its status probes and reads.
DELIVERY_CALLS = 32
MAX_DELIVERY_ITEMS = 1000  # messages in one Deliver (the relayer's max_batch is at most this)
MAX_DELIVERED_KEYS = 10_000  # keys in one GetDelivered
MAX_SIGNERS_BYTES = 1024  # a signer bitfield of more than 8192 members is not a committee's
LIGHT_CLIENT_LOCK_STRIPES = 64  # light-client update locks (origins apart, bounded)


class DestinationServicer(destination_pb2_grpc.DestinationServiceServicer):
    """gRPC DestinationService over a `DestinationChain`.

    Every request is validated before it reaches the chain: malformed or over-long input
    (`MAX_DELIVERY_ITEMS`, `MAX_DELIVERED_KEYS`, `MAX_SIGNERS_BYTES`) is `INVALID_ARGUMENT`.
    """

    def __init__(self, destination: DestinationChain, metrics: Any = None) -> None:
        self.destination = destination
        self.metrics = metrics
        # One hand-over at a time: a second caller with the same certificate then finds the
        # committee already there instead of paying for a transaction that reverts.
        self._handover_lock = threading.Lock()
        # One light-client update per origin at a time (the next sees the first landed); origins
        # apart (striped: bounded whatever origins callers name), so one origin's slow transaction
        # does not hold back another's updates.
        self._light_client_locks = [threading.Lock() for _ in range(LIGHT_CLIENT_LOCK_STRIPES)]

    def _require_this_destination(self, message: Message) -> None:
        """`DestinationMismatch` for a message addressed to another chain than this one."""
        if message.destination != self.destination.domain:
            raise DestinationMismatch(
                "message for another destination",
                id=message.id,
                destination=message.destination,
                expected=self.destination.domain,
            )

    def Deliver(self, request: Any, context: grpc.ServicerContext) -> destination_pb2.DeliverResponse:  # noqa: N802
        """One transaction for the batch; per-message outcomes (see the module docstring)."""
        try:
            if len(request.items) > MAX_DELIVERY_ITEMS:
                raise MalformedEncoding(
                    "too many messages in one delivery", count=len(request.items), limit=MAX_DELIVERY_ITEMS
                )
            if len(request.certificate.signers) > MAX_SIGNERS_BYTES:
                raise MalformedEncoding(
                    "certificate.signers is longer than any committee's bitfield",
                    length=len(request.certificate.signers),
                    limit=MAX_SIGNERS_BYTES,
                )
            checkpoint, certificate, items = deliver_request_from_proto(request)
            for item in items:
                self._require_this_destination(item.message)
                if item.message.origin != checkpoint.origin:
                    raise OriginMismatch("message of another origin than its checkpoint", id=item.message.id)
                if item.message.nonce > checkpoint.index:
                    raise IndexOutOfRange(
                        "message not covered by the checkpoint",
                        id=item.message.id,
                        nonce=item.message.nonce,
                        index=checkpoint.index,
                    )
        except (MalformedEncoding, DestinationMismatch, OriginMismatch, IndexOutOfRange) as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, _reason(error))
        ids = [item.message.id for item in items]
        try:
            batch = self.destination.submit(checkpoint, certificate, items)
        except InvalidProof as error:
            log.warning(
                "destination gateway rejected a delivery",
                extra={
                    "reason": error.reason,
                    "error": str(error),
                    "messages": len(ids),
                    "origin": checkpoint.origin,
                    "index": checkpoint.index,
                },
            )
            if self.metrics is not None:
                self.metrics.record_rejection(checkpoint.origin, error)
            return self._all(ids, _OUTCOME.DELIVERY_OUTCOME_REJECTED, _reason(error))
        except DeliveryPaused as error:
            # Not a failure: the gateway's guardian or owner paused this origin. Nothing was sent;
            # the relayer keeps the messages waiting and asks again later.
            log.info(
                "destination gateway has paused delivery from this origin; nothing sent",
                extra={"origin": checkpoint.origin, "messages": len(ids)},
            )
            return self._all(ids, _OUTCOME.DELIVERY_OUTCOME_PAUSED, _reason(error))
        except TransientError as error:
            log.warning("delivery failed transiently", extra={"reason": error.reason, "error": str(error)})
            context.abort(grpc.StatusCode.UNAVAILABLE, _reason(error))
        except PermanentError as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, _reason(error))
        if batch.transaction_hash:
            log.info(
                "delivery mined",
                extra={
                    "transaction": batch.transaction_hash,
                    "block": batch.block_number,
                    "gas_used": batch.gas_used,
                    "delivered": len(batch.delivered),
                    "failed": len(batch.failed),
                    "messages": len(ids),
                },
            )
        return self._report(ids, batch)

    def GetDelivered(  # noqa: N802
        self, request: Any, context: grpc.ServicerContext
    ) -> destination_pb2.GetDeliveredResponse:
        """Whether each (origin, nonce) was delivered, in request order."""
        if len(request.keys) > MAX_DELIVERED_KEYS:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"at most {MAX_DELIVERED_KEYS} keys per GetDelivered (got {len(request.keys)})",
            )
        keys = [(key.origin, key.nonce) for key in request.keys]
        try:
            flags = self.destination.delivered(keys)
        except TransientError as error:
            context.abort(grpc.StatusCode.UNAVAILABLE, _reason(error))
        return destination_pb2.GetDeliveredResponse(delivered=flags)

    def SubmitHandover(  # noqa: N802
        self, request: Any, context: grpc.ServicerContext
    ) -> destination_pb2.SubmitHandoverResponse:
        """Send the gateway's `handover` for a certificate unless its committee is already there.

        The submitter does not need to trust the caller: the gateway verifies the certificate
        (and every proof of possession); a refused one costs only the simulation.
        """
        destination = self.destination
        if not isinstance(destination, HandoverDestination):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this destination cannot submit hand-overs")
            raise AssertionError("unreachable: abort raises")  # pragma: no cover
        try:
            certificate = any_handover_certificate_from_proto(request)
        except MalformedEncoding as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, _reason(error))
        try:
            with self._handover_lock:
                transaction_hash, epoch = destination.submit_handover(certificate)
        except InvalidProof as error:
            log.warning(
                "destination gateway refused a hand-over",
                extra={"reason": error.reason, "error": str(error), "origin": certificate.proposal.origin},
            )
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, _reason(error))
        except TransientError as error:
            context.abort(grpc.StatusCode.UNAVAILABLE, _reason(error))
        except PermanentError as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, _reason(error))
        return destination_pb2.SubmitHandoverResponse(transaction_hash=transaction_hash, epoch=epoch)

    def _light_client_lock(self, origin: int) -> threading.Lock:
        return self._light_client_locks[origin % LIGHT_CLIENT_LOCK_STRIPES]

    def SubmitLightClientUpdate(  # noqa: N802
        self, request: Any, context: grpc.ServicerContext
    ) -> destination_pb2.SubmitLightClientUpdateResponse:
        """Send `submitUpdate` to the origin's light client unless it no longer needs the update.

        The submitter trusts no caller: the light client verifies the update on-chain, a refused
        one costs only the simulation, and the address is the submitter's own config's."""
        destination = light_client_destination(self.destination)
        if destination is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this destination serves no light-client origin")
            raise AssertionError("unreachable: abort raises")  # pragma: no cover
        try:
            origin, update = light_client_update_from_proto(request)
        except MalformedEncoding as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, _reason(error))
        try:
            with self._light_client_lock(origin):
                transaction_hash, stored = destination.submit_light_client_update(origin, update)
        except InvalidProof as error:
            log.warning(
                "destination light client refused an update",
                extra={"reason": error.reason, "error": str(error), "origin": origin},
            )
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, _reason(error))
        except TransientError as error:
            context.abort(grpc.StatusCode.UNAVAILABLE, _reason(error))
        except PermanentError as error:
            code = grpc.StatusCode.FAILED_PRECONDITION
            if error.reason == "UnknownLightClientOrigin":
                code = grpc.StatusCode.INVALID_ARGUMENT
            context.abort(code, _reason(error))
        return destination_pb2.SubmitLightClientUpdateResponse(
            transaction_hash=transaction_hash,
            latest_execution_block_number=stored.latest_block,
            finalized_slot=stored.finalized_slot,
        )

    def DeliverByReceipt(  # noqa: N802
        self, request: Any, context: grpc.ServicerContext
    ) -> destination_pb2.DeliverResponse:
        """One `deliverFromEthereumBatch` for a light-client origin's batch; outcomes as `Deliver`."""
        destination = light_client_destination(self.destination)
        if destination is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this destination serves no light-client origin")
            raise AssertionError("unreachable: abort raises")  # pragma: no cover
        try:
            origin, proofs, deliveries = deliver_by_receipt_from_proto(request)
            for delivery in deliveries:
                self._require_this_destination(delivery.message)
        except (MalformedEncoding, DestinationMismatch) as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, _reason(error))
        ids = [d.message.id for d in deliveries]
        try:
            batch = destination.deliver_by_receipt(origin, proofs, deliveries)
        except InvalidProof as error:
            log.warning(
                "destination inbox rejected a receipt-proof delivery",
                extra={"reason": error.reason, "error": str(error), "messages": len(ids), "origin": origin},
            )
            if self.metrics is not None:
                self.metrics.record_rejection(origin, error)
            return self._all(ids, _OUTCOME.DELIVERY_OUTCOME_REJECTED, _reason(error))
        except DeliveryPaused as error:
            return self._all(ids, _OUTCOME.DELIVERY_OUTCOME_PAUSED, _reason(error))
        except TransientError as error:
            context.abort(grpc.StatusCode.UNAVAILABLE, _reason(error))
        except PermanentError as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, _reason(error))
        return self._report(ids, batch)

    @staticmethod
    def _all(ids: list[bytes], outcome: Any, reason: str) -> destination_pb2.DeliverResponse:
        return destination_pb2.DeliverResponse(
            results=[destination_pb2.DeliveryResult(id=i, outcome=outcome, reason=reason) for i in ids]
        )

    @staticmethod
    def _report(ids: list[bytes], batch: Any) -> destination_pb2.DeliverResponse:
        """Each id's outcome in a mined batch: delivered, its recipient reverted, or delivered before."""
        delivered = set(batch.delivered)
        results = []
        for message_id in ids:
            if message_id in delivered:
                outcome, reason = _OUTCOME.DELIVERY_OUTCOME_DELIVERED, ""
            elif message_id in batch.failed:
                # The outcome already says who failed; the reason is the recipient's.
                outcome, reason = _OUTCOME.DELIVERY_OUTCOME_RECIPIENT_REVERTED, batch.failed[message_id]
            else:
                outcome, reason = _OUTCOME.DELIVERY_OUTCOME_ALREADY_DELIVERED, ""
            results.append(destination_pb2.DeliveryResult(id=message_id, outcome=outcome, reason=reason))
        return destination_pb2.DeliverResponse(
            transaction_hash=batch.transaction_hash,
            block_number=batch.block_number,
            gas_used=batch.gas_used,
            results=results,
            effective_gas_price=min(batch.effective_gas_price, 2**64 - 1),
        )

    def GetStatus(self, request: Any, context: grpc.ServicerContext) -> destination_pb2.DestinationStatus:  # noqa: N802
        """Chain head, the account's next nonce and its balance."""
        try:
            status = self.destination.status()
        except TransientError as error:
            context.abort(grpc.StatusCode.UNAVAILABLE, _reason(error))
        return destination_pb2.DestinationStatus(
            domain=status.domain,
            head=status.head,
            nonce=status.nonce,
            balance=str(status.balance),
            account=status.account,
        )


class Submitter(ServedRole):
    """The role: the gRPC server, the HTTP health endpoints and a status refresher."""

    stop_grace = 5.0  # a delivery in progress gets this long to finish

    def __init__(self, config: SubmitterConfig, *, destination: DestinationChain | None = None) -> None:
        from prometheus_client import CollectorRegistry

        from relay.metrics import RelayMetrics

        self.config = config
        self.registry = CollectorRegistry()
        self.metrics = RelayMetrics(self.registry)
        self.destination = destination or chain_registry.create_destination(
            config.chain, config.key.reveal(), self.metrics
        )
        self.stopping = threading.Event()
        self.grpc_port = 0
        self.last_status_at = 0.0
        self._grpc: GrpcServer | None = None
        self._health: Any = None

    def start(self) -> Submitter:
        """Start the gRPC server (and the HTTP endpoints) in background threads."""
        from relay.health import HealthServer

        def register(server: grpc.Server) -> None:
            destination_pb2_grpc.add_DestinationServiceServicer_to_server(
                DestinationServicer(self.destination, self.metrics), server
            )

        served = start_grpc_server(
            self.config.listen,
            self.metrics,
            register,
            [SERVICE_NAME],
            limits=CallLimits(streams=4, unary=DELIVERY_CALLS),
            thread_prefix="submitter-grpc",
            tls=self.config.tls,  # mutual TLS: only the relayer (a certificate of our CA) may call
        )
        self._grpc, self.grpc_port = served, served.port
        if self.config.metrics_listen:
            host, port = split_address(self.config.metrics_listen)
            self._health = HealthServer(self.registry, host, port, readiness=self.readiness).start()
        log.info(
            "submitter serving",
            extra={
                "destination": self.config.chain.domain,
                "account": self.destination.account,
                "grpc": f"{split_address(self.config.listen)[0]}:{self.grpc_port}",
                "metrics": self.config.metrics_listen,
            },
        )
        return self

    def readiness(self) -> tuple[bool, str]:
        """Ready while the destination chain answered the last status read."""
        if not self.last_status_at or time.monotonic() - self.last_status_at > 3 * STATUS_INTERVAL_SECONDS:
            return False, "destination chain not reachable recently"
        return True, "destination chain reachable"

    def run_loop(self) -> None:
        """Refresh the balance/nonce metrics (and readiness) until `stop()`."""
        while not self.stopping.is_set():
            if self._health is not None:
                self._health.heartbeat()
            try:
                self.destination.status()
                self.last_status_at = time.monotonic()
            except RelayError as error:
                log.warning("destination status read failed", extra={"reason": error.reason})
            self.stopping.wait(STATUS_INTERVAL_SECONDS)
