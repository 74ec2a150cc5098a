"""gRPC implementations of the relayer's peer Protocols (`relay.peers`).

`GrpcAttestorClient` and `GrpcSubmitterClient` are the only relayer code that builds or reads
generated `relay.v1` messages. Every gRPC failure leaves here typed: a code that says "try again
later" (`TRANSIENT_CODES`) becomes `relay.errors.RpcUnavailable`, any other `PermanentError`.
Their channels are opened by `relay.rpc.tls.open_channel` with the relayer's TLS files (mutual TLS;
None only with `insecure_plaintext`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from relay.chains import DeliveryItem
from relay.chains.lightclient import HeaderUpdate, ReceiptDelivery, ReceiptProof
from relay.errors import OriginMismatch, PermanentError, RelayError, RpcUnavailable
from relay.handover import HandoverCertificate, HandoverProposal, HandoverSignature
from relay.handover_ecdsa import (
    EcdsaHandoverCertificate,
    EcdsaHandoverProposal,
    EcdsaHandoverSignature,
    ecdsa_signature_from_answer,
)
from relay.peers import AttestorIdentity, DeliveryOutcome, DeliveryReport, DeliveryResult, PartialSignature
from relay.rpc import convert
from relay.rpc.convert_lightclient import deliver_by_receipt_to_proto, light_client_update_to_proto
from relay.rpc.limits import MESSAGE_SIZE_OPTIONS
from relay.rpc.tls import TlsFiles, open_channel
from relay.v1 import attestation_pb2, attestation_pb2_grpc, destination_pb2, destination_pb2_grpc
from relay.verify.committee import Checkpoint, QuorumCertificate

# gRPC codes that say "try again later"; any other failure code is permanent for that request.
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)

# Reconnect quickly to a peer that comes back: gRPC's default backoff grows to two minutes. The
# message-size cap is the servers' own (`relay.rpc.limits`), so both ends agree on it.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    *MESSAGE_SIZE_OPTIONS,
]

_OUTCOMES = {
    destination_pb2.DeliveryOutcome.DELIVERY_OUTCOME_DELIVERED: DeliveryOutcome.DELIVERED,
    destination_pb2.DeliveryOutcome.DELIVERY_OUTCOME_ALREADY_DELIVERED: DeliveryOutcome.ALREADY_DELIVERED,
    destination_pb2.DeliveryOutcome.DELIVERY_OUTCOME_RECIPIENT_REVERTED: DeliveryOutcome.RECIPIENT_REVERTED,
    destination_pb2.DeliveryOutcome.DELIVERY_OUTCOME_REJECTED: DeliveryOutcome.REJECTED,
    destination_pb2.DeliveryOutcome.DELIVERY_OUTCOME_PAUSED: DeliveryOutcome.PAUSED,
}


def classify_rpc_error(error: grpc.RpcError, peer: str, method: str) -> RelayError:
    """Classify a gRPC failure: transient codes become `RpcUnavailable`, the rest `PermanentError`."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    if code in TRANSIENT_CODES:
        return RpcUnavailable(f"{method} failed", peer=peer, code=code.name, details=details)
    return PermanentError(f"{method} refused", peer=peer, code=code.name, details=details)


class GrpcAttestorClient:
    """An attestor's `AttestationService`, as the relayer asks it."""

    def __init__(self, address: str, tls: TlsFiles | None) -> None:
        self.address = address
        self._channel = open_channel(address, tls, options=CHANNEL_OPTIONS)
        self._stub = attestation_pb2_grpc.AttestationServiceStub(self._channel)

    def get_checkpoint(self, origin: int, min_index: int, timeout: float) -> PartialSignature | None:
        """The attestor's signature at or after `min_index` (None: not signed that far yet)."""
        request = attestation_pb2.GetCheckpointRequest(origin=origin, min_index=min_index)
        try:
            response = self._stub.GetCheckpoint(request, timeout=timeout)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None  # not signed that far yet: a normal answer, not a failure
            raise classify_rpc_error(error, self.address, "GetCheckpoint") from error
        partial = convert.partial_signature_from_proto(response)
        if partial.checkpoint.origin != origin:
            raise OriginMismatch(
                "attestor signed another origin", origin=partial.checkpoint.origin, expected=origin
            )
        return partial

    def get_identity(self, timeout: float) -> AttestorIdentity:
        """Who the attestor says it is."""
        try:
            identity = self._stub.GetIdentity(attestation_pb2.GetIdentityRequest(), timeout=timeout)
        except grpc.RpcError as error:
            raise classify_rpc_error(error, self.address, "GetIdentity") from error
        return AttestorIdentity(
            int(identity.origin),
            int(identity.signer_index),
            # An ECDSA member is named by its address, as in its checkpoint signatures.
            bytes(identity.signer_address or identity.public_key),
            epoch=int(identity.epoch),
            member=not identity.not_member,
            proof_of_possession=bytes(identity.proof_of_possession),
        )

    def sign_handover(
        self, proposal: HandoverProposal, operator_token: str, timeout: float
    ) -> HandoverSignature:
        """The attestor's signature over the hand-over of `proposal` (it checks it first)."""
        request = attestation_pb2.SignHandoverRequest(
            proposal=convert.proposal_to_proto(proposal), operator_token=operator_token
        )
        try:
            answer = self._stub.SignHandover(request, timeout=timeout)
        except grpc.RpcError as error:
            raise classify_rpc_error(error, self.address, "SignHandover") from error
        return HandoverSignature(
            origin=int(answer.origin),
            epoch=int(answer.epoch),
            signer_index=int(answer.signer_index),
            public_key=bytes(answer.public_key),
            signature=bytes(answer.signature),
            current_committee_hash=bytes(answer.current_committee_hash),
            next_committee_hash=bytes(answer.next_committee_hash),
        )

    def sign_ecdsa_handover(
        self, proposal: EcdsaHandoverProposal, operator_token: str, timeout: float
    ) -> EcdsaHandoverSignature:
        """An ECDSA attestor's EIP-191 signature over the hand-over of `proposal` (it checks it first)."""
        request = attestation_pb2.SignHandoverRequest(
            ecdsa_proposal=convert.ecdsa_proposal_to_proto(proposal), operator_token=operator_token
        )
        try:
            answer = self._stub.SignHandover(request, timeout=timeout)
        except grpc.RpcError as error:
            raise classify_rpc_error(error, self.address, "SignHandover") from error
        return ecdsa_signature_from_answer(
            int(answer.origin),
            int(answer.epoch),
            int(answer.signer_index),
            bytes(answer.signer_address),
            bytes(answer.ecdsa_signature),
            bytes(answer.current_committee_hash),
            bytes(answer.next_committee_hash),
        )

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


class _PendingGrpcDelivery:
    """A `Deliver` call running as a gRPC future."""

    def __init__(self, call: Any, peer: str) -> None:
        self._call = call
        self._peer = peer

    def wait(self, timeout: float) -> DeliveryReport | None:
        try:
            response = self._call.result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return None
        except grpc.RpcError as error:
            raise classify_rpc_error(error, self._peer, "Deliver") from error
        return report_from_proto(response)

    def cancel(self) -> None:
        self._call.cancel()


def report_from_proto(response: destination_pb2.DeliverResponse) -> DeliveryReport:
    """A `DeliverResponse` as a `DeliveryReport` (unknown outcome codes become UNSPECIFIED)."""
    results = {
        bytes(r.id): DeliveryResult(_OUTCOMES.get(r.outcome, DeliveryOutcome.UNSPECIFIED), r.reason)
        for r in response.results
    }
    return DeliveryReport(
        bytes(response.transaction_hash),
        int(response.block_number),
        int(response.gas_used),
        results,
        effective_gas_price=int(response.effective_gas_price),
    )


class GrpcSubmitterClient:
    """A destination submitter's `DestinationService`, as the relayer asks it."""

    def __init__(self, address: str, tls: TlsFiles | None) -> None:
        self.address = address
        self._channel = open_channel(address, tls, options=CHANNEL_OPTIONS)
        self._stub = destination_pb2_grpc.DestinationServiceStub(self._channel)

    def deliver(
        self,
        checkpoint: Checkpoint,
        certificate: QuorumCertificate,
        items: Sequence[DeliveryItem],
        timeout: float,
    ) -> _PendingGrpcDelivery:
        """Start `Deliver` for `items`; wait on the returned handle."""
        request = convert.deliver_request_to_proto(checkpoint, certificate, items)
        return _PendingGrpcDelivery(self._stub.Deliver.future(request, timeout=timeout), self.address)

    def submit_handover(
        self, certificate: HandoverCertificate | EcdsaHandoverCertificate, timeout: float
    ) -> tuple[bytes, int]:
        """`SubmitHandover`: (transaction hash or b"", the gateway's epoch of the origin afterwards)."""
        if isinstance(certificate, EcdsaHandoverCertificate):
            request = destination_pb2.SubmitHandoverRequest(
                ecdsa_handover=convert.ecdsa_handover_certificate_to_proto(certificate)
            )
        else:
            request = destination_pb2.SubmitHandoverRequest(
                handover=convert.handover_certificate_to_proto(certificate)
            )
        try:
            answer = self._stub.SubmitHandover(request, timeout=timeout)
        except grpc.RpcError as error:
            raise classify_rpc_error(error, self.address, "SubmitHandover") from error
        return bytes(answer.transaction_hash), int(answer.epoch)

    def submit_light_client_update(
        self, origin: int, update: HeaderUpdate, timeout: float
    ) -> tuple[bytes, int]:
        """`SubmitLightClientUpdate`: (transaction hash or b"", the light client's latest stored
        execution block afterwards)."""
        request = light_client_update_to_proto(origin, update)
        try:
            answer = self._stub.SubmitLightClientUpdate(request, timeout=timeout)
        except grpc.RpcError as error:
            raise classify_rpc_error(error, self.address, "SubmitLightClientUpdate") from error
        return bytes(answer.transaction_hash), int(answer.latest_execution_block_number)

    def deliver_by_receipt(
        self,
        origin: int,
        proofs: Sequence[ReceiptProof],
        deliveries: Sequence[ReceiptDelivery],
        timeout: float,
    ) -> _PendingGrpcDelivery:
        """Start `DeliverByReceipt`; wait on the returned handle."""
        request = deliver_by_receipt_to_proto(origin, proofs, deliveries)
        return _PendingGrpcDelivery(
            self._stub.DeliverByReceipt.future(request, timeout=timeout), self.address
        )

    def probe(self, timeout: float) -> bool:
        """Whether `GetStatus` gets any answer (an error status is an answer too)."""
        try:
            self._stub.GetStatus(destination_pb2.GetStatusRequest(), timeout=timeout)
        except grpc.RpcError as error:
            return error.code() not in TRANSIENT_CODES
        return True

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()
