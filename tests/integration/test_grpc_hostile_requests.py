"""Hostile requests to every gRPC service of the relay, over real loopback servers.

Each role's real servicer runs on the real server helper (`relay.rpc.server`, with its call
limits and message-size cap): RelayService on a relayer (fakes of tests/integration/test_relayer.py
for its peers), AttestationService on an attestor's `CheckpointLedger`, DestinationService over a
destination chain that never has to be reached. Every request below is malformed, oversized or
absurd: wrong lengths, bytes where ids belong, huge repeated fields, invalid enum values, absurd page
sizes and tokens, a message over the cap. The answer must be the code the service documents for it
(INVALID_ARGUMENT or RESOURCE_EXHAUSTED for malformed and oversized input), never a crash
(UNKNOWN, INTERNAL) and never a hang.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from relay.chains import DeliveryItem, SubmittedBatch
from relay.errors import InvalidHandover, InvalidSignature, RpcUnavailable
from relay.metrics import RelayMetrics
from relay.roles.attestor import AttestationServicer, AttestorIdentity, CheckpointLedger
from relay.roles.submitter import DestinationServicer
from relay.rpc.limits import MAX_MESSAGE_BYTES, CallLimits
from relay.rpc.server import GrpcServer, start_grpc_server
from relay.rpc.tls import open_channel as tls_channel
from relay.v1 import (
    attestation_pb2,
    attestation_pb2_grpc,
    destination_pb2,
    destination_pb2_grpc,
    relay_service_pb2,
    relay_service_pb2_grpc,
    types_pb2,
)
from relay.verify.committee import Checkpoint, QuorumCertificate
from tests.integration.test_relayer import (  # noqa: F401 - tls_world is a fixture
    BLS,
    GATEWAY,
    MEMBERS,
    ORIGIN,
    SECRETS,
    TOKEN,
    World,
    tls_world,
)
from tests.pki import Pki

C = grpc.StatusCode
CRASHES = {C.UNKNOWN, C.INTERNAL}
DEADLINE = 10.0
OVERSIZED = b"\x01" * (MAX_MESSAGE_BYTES + 1024)
ID = b"\x07" * 32


def code_of(call: Callable[..., Any], request: Any, timeout: float = DEADLINE) -> C:
    """The status code `call(request)` ends with (OK if it answers); streams are read to the first item."""
    try:
        answer = call(request, timeout=timeout)
        if isinstance(answer, Iterator):
            next(answer, None)
            answer.cancel()  # type: ignore[attr-defined]
    except grpc.RpcError as error:
        code = error.code()
        assert code not in CRASHES, f"crashed with {code}: {error.details()}"
        return code
    return C.OK


def check(cases: Sequence[tuple[str, Callable[..., Any], Any, set[C]]]) -> None:
    failures = []
    for name, call, request, allowed in cases:
        code = code_of(call, request)
        if code not in allowed:
            failures.append(f"{name}: {code.name}, expected one of {sorted(c.name for c in allowed)}")
    assert failures == []


@pytest.fixture
def hostile_channel() -> Callable[[str], grpc.Channel]:
    """Channels with no client-side size limit, so oversized requests reach the server."""
    channels: list[grpc.Channel] = []

    def open_channel(address: str, tls: Any = None) -> grpc.Channel:
        channel = tls_channel(address, tls, options=[("grpc.max_send_message_length", -1)])
        channels.append(channel)
        return channel

    yield open_channel  # type: ignore[misc]
    for channel in channels:
        channel.close()


def test_relay_service_refuses_hostile_requests(tls_world: World, pki: Pki, hostile_channel: Any) -> None:  # noqa: F811
    relayer = tls_world.relayer().open()
    relayer.serve()
    try:
        # The operator port (mutual TLS): every call, operator calls included, reaches its checks.
        stub = relay_service_pb2_grpc.RelayServiceStub(
            hostile_channel(relayer.operator_address, pki.client("operator"))
        )
        get = relay_service_pb2.GetMessageRequest
        listing = relay_service_pb2.ListMessagesRequest
        watch = relay_service_pb2.WatchMessagesRequest
        retry = relay_service_pb2.RetryMessageRequest
        bad = {C.INVALID_ARGUMENT}
        check(
            [
                ("empty id", stub.GetMessage, get(id=b""), bad),
                ("31-byte id", stub.GetMessage, get(id=ID[:31]), bad),
                ("33-byte id", stub.GetMessage, get(id=ID + b"\x00"), bad),
                ("text where an id belongs", stub.GetMessage, get(id=("0x" + "07" * 32).encode()), bad),
                ("oversized id", stub.GetMessage, get(id=OVERSIZED), {C.RESOURCE_EXHAUSTED}),
                ("unknown id", stub.GetMessage, get(id=ID), {C.NOT_FOUND}),
                ("unknown state", stub.ListMessages, listing(states=[99]), bad),
                ("unspecified state", stub.ListMessages, listing(states=[0]), bad),
                ("negative state", stub.ListMessages, listing(states=[-5]), bad),
                ("100k states", stub.ListMessages, listing(states=[1] * 100_000), bad),
                ("max page size", stub.ListMessages, listing(page_size=2**32 - 1), {C.OK}),
                ("max origin", stub.ListMessages, listing(origin=2**32 - 1, destination=2**32 - 1), {C.OK}),
                ("text token", stub.ListMessages, listing(page_token="abc"), bad),
                ("negative token", stub.ListMessages, listing(page_token="-1"), bad),
                ("huge token", stub.ListMessages, listing(page_token="9" * 30), bad),
                ("NUL token", stub.ListMessages, listing(page_token="\x00"), bad),
                ("1 MiB token", stub.ListMessages, listing(page_token="1" * 2**20), bad),
                ("short watch id", stub.WatchMessages, watch(ids=[b"\x01"]), bad),
                ("100k watch ids", stub.WatchMessages, watch(ids=[ID] * 100_000), bad),
                ("oversized watch", stub.WatchMessages, watch(ids=[OVERSIZED]), {C.RESOURCE_EXHAUSTED}),
                ("retry without token", stub.RetryMessage, retry(id=b""), {C.PERMISSION_DENIED}),
                (
                    "retry 1 MiB token",
                    stub.RetryMessage,
                    retry(id=ID, operator_token="x" * 2**20),
                    {C.PERMISSION_DENIED},
                ),
                ("retry short id", stub.RetryMessage, retry(id=b"\x01", operator_token=TOKEN), bad),
                (
                    "retry unknown id",
                    stub.RetryMessage,
                    retry(id=ID, operator_token=TOKEN, force=True),
                    {C.NOT_FOUND},
                ),
                ("chains", stub.ListChains, relay_service_pb2.ListChainsRequest(), {C.OK}),
                ("hand-over without token", stub.SubmitHandover, handover(), {C.PERMISSION_DENIED}),
                ("empty hand-over", stub.SubmitHandover, handover(operator_token=TOKEN), bad),
                ("129-member hand-over", stub.SubmitHandover, handover(129, operator_token=TOKEN), bad),
                (
                    "47-byte key hand-over",
                    stub.SubmitHandover,
                    handover(4, key_length=47, operator_token=TOKEN),
                    bad,
                ),
                (
                    "unknown origin hand-over",
                    stub.SubmitHandover,
                    handover(4, origin=9, operator_token=TOKEN),
                    {C.FAILED_PRECONDITION},
                ),
                ("unsigned hand-over", stub.SubmitHandover, handover(4, operator_token=TOKEN), bad),
                # ECDSA hand-overs: to a BLS origin, malformed, or with both certificates set.
                (
                    "ECDSA hand-over of a BLS origin",
                    stub.SubmitHandover,
                    relay_service_pb2.SubmitHandoverRelayRequest(
                        ecdsa_handover=ecdsa_handover(4), operator_token=TOKEN
                    ),
                    bad,
                ),
                (
                    "19-byte address ECDSA hand-over",
                    stub.SubmitHandover,
                    relay_service_pb2.SubmitHandoverRelayRequest(
                        ecdsa_handover=ecdsa_handover(4, address_length=19), operator_token=TOKEN
                    ),
                    bad,
                ),
                (
                    "BLS and ECDSA hand-over at once",
                    stub.SubmitHandover,
                    relay_service_pb2.SubmitHandoverRelayRequest(
                        handover=handover(4).handover, ecdsa_handover=ecdsa_handover(4), operator_token=TOKEN
                    ),
                    bad,
                ),
            ]
        )
    finally:
        relayer.stop()


def handover(
    members: int = 0, *, key_length: int = 48, origin: int = ORIGIN, operator_token: str = ""
) -> relay_service_pb2.SubmitHandoverRelayRequest:
    """A hand-over request for `origin` with `members` copies of member 0 and an all-zero signature."""
    member = types_pb2.CommitteeMember(
        public_key=MEMBERS[0].public_key[:key_length],
        proof_of_possession=MEMBERS[0].proof_of_possession,
        weight=1,
    )
    proposal = types_pb2.HandoverProposal(
        origin=origin,
        gateway=GATEWAY,
        epoch=2,
        threshold=max(members, 1),
        members=[member] * members,
        current_committee_hash=b"\x01" * 32,
    )
    return relay_service_pb2.SubmitHandoverRelayRequest(
        handover=types_pb2.HandoverCertificate(
            proposal=proposal,
            certificate=types_pb2.QuorumCertificate(signers=b"\x07", signature=b"\x00" * 96),
        ),
        operator_token=operator_token,
    )


def ecdsa_handover(
    members: int, *, address_length: int = 20, signatures: int = 3
) -> types_pb2.EcdsaHandoverCertificate:
    """An ECDSA hand-over certificate of `members` distinct addresses and zeroed 65-byte signatures."""
    proposal = types_pb2.EcdsaHandoverProposal(
        origin=ORIGIN,
        gateway=GATEWAY,
        epoch=2,
        threshold=3,
        members=[
            types_pb2.EcdsaCommitteeMember(address=bytes([i + 1]) * address_length, weight=1)
            for i in range(members)
        ],
        current_committee_hash=b"\x01" * 32,
    )
    return types_pb2.EcdsaHandoverCertificate(
        proposal=proposal, signers=b"\x07", signatures=b"\x00" * 65 * signatures
    )


def serve(register: Callable[[grpc.Server], None], name: str) -> GrpcServer:
    return start_grpc_server(
        "127.0.0.1:0",
        RelayMetrics(CollectorRegistry()),
        register,
        [name],
        limits=CallLimits(streams=4, unary=8),
        thread_prefix="hostile",
        tls=None,  # the requests are under test, not the transport (tests/integration/test_tls.py)
    )


def test_attestation_service_refuses_hostile_requests(tmp_path: Any, hostile_channel: Any) -> None:
    identity = AttestorIdentity(ORIGIN, GATEWAY, 1, 0, MEMBERS[0].public_key, MEMBERS[0].proof_of_possession)
    ledger = CheckpointLedger(identity, SECRETS[0], BLS, history=8, signed_log=str(tmp_path / "signed.log"))
    ledger.apply_final_state(b"\x05" * 32, 3)
    stopping = threading.Event()
    served = serve(
        lambda server: attestation_pb2_grpc.add_AttestationServiceServicer_to_server(
            AttestationServicer(ledger, stopping), server
        ),
        "relay.v1.AttestationService",
    )
    try:
        stub = attestation_pb2_grpc.AttestationServiceStub(hostile_channel(f"127.0.0.1:{served.port}"))
        get = attestation_pb2.GetCheckpointRequest
        stream = attestation_pb2.StreamCheckpointsRequest
        check(
            [
                ("signed", stub.GetCheckpoint, get(origin=ORIGIN, min_index=0), {C.OK}),
                ("another origin", stub.GetCheckpoint, get(origin=ORIGIN + 1), {C.FAILED_PRECONDITION}),
                ("max origin", stub.GetCheckpoint, get(origin=2**32 - 1), {C.FAILED_PRECONDITION}),
                ("max index", stub.GetCheckpoint, get(origin=ORIGIN, min_index=2**32 - 1), {C.NOT_FOUND}),
                (
                    "stream of another origin",
                    stub.StreamCheckpoints,
                    stream(origin=0),
                    {C.FAILED_PRECONDITION},
                ),
                ("identity", stub.GetIdentity, attestation_pb2.GetIdentityRequest(), {C.OK}),
            ]
        )
        # Nothing is signed that far: the stream waits (no crash) until its deadline.
        far = stream(origin=ORIGIN, from_index=2**32 - 1)
        assert code_of(stub.StreamCheckpoints, far, timeout=1.0) == C.DEADLINE_EXCEEDED
        # An oversized request, sent as raw bytes to the unary method.
        raw = hostile_channel(f"127.0.0.1:{served.port}").unary_unary(
            "/relay.v1.AttestationService/GetCheckpoint"
        )
        assert code_of(raw, OVERSIZED) == C.RESOURCE_EXHAUSTED
        assert code_of(raw, b"\xff\xff\xff") == C.INVALID_ARGUMENT  # bytes that are no request at all
    finally:
        stopping.set()
        served.stop(0)


class UnreachableChain:
    """A destination chain the submitter must never reach for these requests; refuses proofs if it is."""

    domain = 2
    account = "0x" + "00" * 20

    def delivered(self, keys: Sequence[tuple[int, int]]) -> list[bool]:
        return [False] * len(keys)

    def status(self) -> Any:
        raise RpcUnavailable("the test chain is not reachable", chain="unreachable")

    def submit(
        self, checkpoint: Checkpoint, certificate: QuorumCertificate, items: Sequence[DeliveryItem]
    ) -> SubmittedBatch:
        raise InvalidSignature("the hostile request's signature does not verify")

    def submit_handover(self, certificate: Any) -> tuple[bytes, int]:
        raise InvalidHandover("the hostile hand-over does not verify")


def test_destination_service_refuses_hostile_requests(hostile_channel: Any) -> None:
    served = serve(
        lambda server: destination_pb2_grpc.add_DestinationServiceServicer_to_server(
            DestinationServicer(UnreachableChain()),
            server,
        ),
        "relay.v1.DestinationService",
    )
    try:
        stub = destination_pb2_grpc.DestinationServiceStub(hostile_channel(f"127.0.0.1:{served.port}"))
        checkpoint = types_pb2.Checkpoint(origin=ORIGIN, gateway=GATEWAY, epoch=1, root=b"\x05" * 32, index=5)
        certificate = types_pb2.QuorumCertificate(signers=b"\x0f", signature=b"\x09" * 96)
        message = (
            bytes([3])
            + (1).to_bytes(4, "big")
            + ORIGIN.to_bytes(4, "big")
            + b"\x00" * 32
            + (2).to_bytes(4, "big")
            + b"\x00" * 32
            + b"body"
        )
        item = destination_pb2.DeliveryItem(message=message, branch=[b"\x00" * 32] * 32)

        def deliver(**fields: Any) -> destination_pb2.DeliverRequest:
            request: dict[str, Any] = {"checkpoint": checkpoint, "certificate": certificate, "items": [item]}
            request.update(fields)
            return destination_pb2.DeliverRequest(**request)

        def with_checkpoint(**fields: Any) -> types_pb2.Checkpoint:
            proto = types_pb2.Checkpoint()
            proto.CopyFrom(checkpoint)
            for key, value in fields.items():
                setattr(proto, key, value)
            return proto

        bad = {C.INVALID_ARGUMENT}
        keys = destination_pb2.GetDeliveredRequest

        def handover_request(members: int, key_length: int = 48) -> destination_pb2.SubmitHandoverRequest:
            return destination_pb2.SubmitHandoverRequest(
                handover=handover(members, key_length=key_length).handover
            )

        check(
            [
                (
                    "well formed hand-over, forged",
                    stub.SubmitHandover,
                    handover_request(4),
                    {C.FAILED_PRECONDITION},
                ),
                ("empty hand-over", stub.SubmitHandover, destination_pb2.SubmitHandoverRequest(), bad),
                ("129-member hand-over", stub.SubmitHandover, handover_request(129), bad),
                ("47-byte key hand-over", stub.SubmitHandover, handover_request(4, key_length=47), bad),
                (
                    "well formed ECDSA hand-over, forged",
                    stub.SubmitHandover,
                    destination_pb2.SubmitHandoverRequest(ecdsa_handover=ecdsa_handover(4)),
                    {C.FAILED_PRECONDITION},
                ),
                (
                    "64-byte ECDSA signature",
                    stub.SubmitHandover,
                    destination_pb2.SubmitHandoverRequest(
                        ecdsa_handover=types_pb2.EcdsaHandoverCertificate(
                            proposal=ecdsa_handover(4).proposal, signers=b"\x07", signatures=b"\x00" * 64
                        )
                    ),
                    bad,
                ),
                ("well formed, forged", stub.Deliver, deliver(), {C.OK}),
                ("empty", stub.Deliver, destination_pb2.DeliverRequest(), bad),
                ("no items", stub.Deliver, deliver(items=[]), bad),
                (
                    "short gateway",
                    stub.Deliver,
                    deliver(checkpoint=with_checkpoint(gateway=GATEWAY[:31])),
                    bad,
                ),
                ("long root", stub.Deliver, deliver(checkpoint=with_checkpoint(root=b"\x05" * 33)), bad),
                (
                    "no signers",
                    stub.Deliver,
                    deliver(certificate=types_pb2.QuorumCertificate(signature=b"\x09" * 96)),
                    bad,
                ),
                (
                    "1 MiB signers",
                    stub.Deliver,
                    deliver(
                        certificate=types_pb2.QuorumCertificate(
                            signers=b"\xff" * 2**20, signature=b"\x09" * 96
                        )
                    ),
                    bad,
                ),
                (
                    "short signature",
                    stub.Deliver,
                    deliver(certificate=types_pb2.QuorumCertificate(signers=b"\x0f", signature=b"\x09" * 95)),
                    bad,
                ),
                (
                    "empty message",
                    stub.Deliver,
                    deliver(items=[destination_pb2.DeliveryItem(branch=item.branch)]),
                    bad,
                ),
                (
                    "bad version",
                    stub.Deliver,
                    deliver(
                        items=[
                            destination_pb2.DeliveryItem(message=b"\x09" + message[1:], branch=item.branch)
                        ]
                    ),
                    bad,
                ),
                (
                    "31-node branch",
                    stub.Deliver,
                    deliver(items=[destination_pb2.DeliveryItem(message=message, branch=item.branch[:31])]),
                    bad,
                ),
                (
                    "33-byte node",
                    stub.Deliver,
                    deliver(
                        items=[destination_pb2.DeliveryItem(message=message, branch=[b"\x00" * 33] * 32)]
                    ),
                    bad,
                ),
                (
                    "oversized body",
                    stub.Deliver,
                    deliver(
                        items=[
                            destination_pb2.DeliveryItem(
                                message=message + b"\x00" * 200_000, branch=item.branch
                            )
                        ]
                    ),
                    bad,
                ),
                ("5000 items", stub.Deliver, deliver(items=[item] * 5000), bad),
                (
                    "another destination",
                    stub.Deliver,
                    deliver(
                        items=[
                            destination_pb2.DeliveryItem(
                                message=message[:41] + (9).to_bytes(4, "big") + message[45:],
                                branch=item.branch,
                            )
                        ]
                    ),
                    bad,
                ),
                (
                    "nonce past the checkpoint",
                    stub.Deliver,
                    deliver(checkpoint=with_checkpoint(index=0)),
                    bad,
                ),
                (
                    "oversized request",
                    stub.Deliver,
                    deliver(items=[destination_pb2.DeliveryItem(message=OVERSIZED)]),
                    {C.RESOURCE_EXHAUSTED},
                ),
                (
                    "delivered?",
                    stub.GetDelivered,
                    keys(keys=[destination_pb2.MessageKey(origin=1, nonce=2**32 - 1, id=b"\x01")]),
                    {C.OK},
                ),
                (
                    "200k keys",
                    stub.GetDelivered,
                    keys(keys=[destination_pb2.MessageKey(origin=1, nonce=1)] * 200_000),
                    bad,
                ),
                ("status", stub.GetStatus, destination_pb2.GetStatusRequest(), {C.UNAVAILABLE}),
            ]
        )
    finally:
        served.stop(0)
