"""gRPC peer clients: failures leave typed (transient vs permanent), reports convert to domain types."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from relay.errors import OriginMismatch, PermanentError, RpcUnavailable, TransientError
from relay.peers import DeliveryOutcome
from relay.rpc import convert
from relay.rpc.clients import (
    TRANSIENT_CODES,
    GrpcAttestorClient,
    GrpcSubmitterClient,
    classify_rpc_error,
    report_from_proto,
)
from relay.v1 import attestation_pb2_grpc, destination_pb2

from .helpers import ORIGIN, checkpoint_over, make_message, partial

Code = grpc.StatusCode


class StatusError(grpc.RpcError):
    """A gRPC failure with a status code, as a stub raises it."""

    def __init__(self, code: grpc.StatusCode, details: str = "why") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize("code", sorted(TRANSIENT_CODES, key=lambda c: c.name), ids=lambda c: c.name)
def test_transient_codes_become_rpc_unavailable(code: grpc.StatusCode) -> None:
    error = classify_rpc_error(StatusError(code, "try later"), "10.0.0.1:50051", "Deliver")
    assert isinstance(error, RpcUnavailable) and isinstance(error, TransientError)
    assert error.fields == {"peer": "10.0.0.1:50051", "code": code.name, "details": "try later"}


@pytest.mark.parametrize(
    "code",
    [
        Code.NOT_FOUND,
        Code.INVALID_ARGUMENT,
        Code.FAILED_PRECONDITION,
        Code.PERMISSION_DENIED,
        Code.UNAUTHENTICATED,
        Code.UNIMPLEMENTED,
        Code.ALREADY_EXISTS,
        Code.OUT_OF_RANGE,
        Code.DATA_LOSS,
    ],
    ids=lambda c: c.name,
)
def test_other_codes_are_permanent(code: grpc.StatusCode) -> None:
    error = classify_rpc_error(StatusError(code), "peer", "GetCheckpoint")
    assert type(error) is PermanentError and not isinstance(error, TransientError)
    assert error.fields["code"] == code.name and "GetCheckpoint" in str(error)


def test_an_error_without_a_status_is_unknown_and_transient() -> None:
    error = classify_rpc_error(grpc.RpcError("connection reset"), "peer", "Deliver")
    assert isinstance(error, RpcUnavailable) and error.fields["code"] == "UNKNOWN"
    assert error.fields["details"] == "connection reset"


def test_report_from_proto_maps_every_outcome() -> None:
    ids = [make_message(n).id for n in range(6)]
    outcome = destination_pb2.DeliveryOutcome
    codes = [
        outcome.DELIVERY_OUTCOME_DELIVERED,
        outcome.DELIVERY_OUTCOME_ALREADY_DELIVERED,
        outcome.DELIVERY_OUTCOME_RECIPIENT_REVERTED,
        outcome.DELIVERY_OUTCOME_REJECTED,
        outcome.DELIVERY_OUTCOME_UNSPECIFIED,
        99,
    ]  # 99: a code from a newer submitter
    response = destination_pb2.DeliverResponse(
        transaction_hash=b"\xaa" * 32,
        block_number=7,
        gas_used=90_000,
        results=[
            destination_pb2.DeliveryResult(id=i, outcome=c, reason=f"r{n}")
            for n, (i, c) in enumerate(zip(ids, codes, strict=True))
        ],
    )
    report = report_from_proto(response)
    assert (report.transaction_hash, report.block_number, report.gas_used) == (b"\xaa" * 32, 7, 90_000)
    assert [report.results[i].outcome for i in ids] == [
        DeliveryOutcome.DELIVERED,
        DeliveryOutcome.ALREADY_DELIVERED,
        DeliveryOutcome.RECIPIENT_REVERTED,
        DeliveryOutcome.REJECTED,
        DeliveryOutcome.UNSPECIFIED,
        DeliveryOutcome.UNSPECIFIED,
    ]
    assert report.results[ids[2]].reason == "r2"
    assert all(type(k) is bytes for k in report.results)


def test_an_empty_report_has_no_transaction_and_no_results() -> None:
    report = report_from_proto(destination_pb2.DeliverResponse())
    assert report.transaction_hash == b"" and report.results == {}


# --- against a real server on 127.0.0.1 -------------------------------------------------------


class Attestor(attestation_pb2_grpc.AttestationServiceServicer):
    """Answers GetCheckpoint with `answer`: a partial signature, or a status code to abort with."""

    answer: Any = Code.NOT_FOUND

    def GetCheckpoint(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        if isinstance(self.answer, grpc.StatusCode):
            context.abort(self.answer, "scripted")
        return convert.partial_signature_to_proto(self.answer)


@pytest.fixture
def attestor() -> Iterator[tuple[Attestor, GrpcAttestorClient]]:
    servicer = Attestor()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    attestation_pb2_grpc.add_AttestationServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = GrpcAttestorClient(f"127.0.0.1:{port}", None)
    yield servicer, client
    client.close()
    server.stop(0).wait()


def test_the_attestor_client_over_grpc(attestor: tuple[Attestor, GrpcAttestorClient]) -> None:
    servicer, client = attestor
    assert client.get_checkpoint(ORIGIN, 0, 5.0) is None  # NOT_FOUND: not signed that far yet
    servicer.answer = Code.FAILED_PRECONDITION
    with pytest.raises(PermanentError):
        client.get_checkpoint(ORIGIN, 0, 5.0)
    servicer.answer = Code.UNAVAILABLE
    with pytest.raises(RpcUnavailable):
        client.get_checkpoint(ORIGIN, 0, 5.0)
    checkpoint = checkpoint_over([make_message(0)])
    servicer.answer = partial(1, checkpoint)
    assert client.get_checkpoint(ORIGIN, 0, 5.0) == partial(1, checkpoint)
    with pytest.raises(OriginMismatch):
        client.get_checkpoint(ORIGIN + 1, 0, 5.0)


def test_a_submitter_that_does_not_listen_fails_the_probe() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()  # no DestinationService registered: UNIMPLEMENTED is still an answer
    client = GrpcSubmitterClient(f"127.0.0.1:{port}", None)
    try:
        assert client.probe(5.0) is True
        server.stop(0).wait()
        assert client.probe(1.0) is False
    finally:
        client.close()
        server.stop(0)
