"""The gRPC boundary: domain types round-trip, malformed protobuf input is `MalformedEncoding`."""

from __future__ import annotations

import pytest

from relay.chains import DEFAULT_HANDLE_GAS_LIMIT, DeliveryItem
from relay.errors import MalformedEncoding
from relay.lifecycle import MessageState
from relay.rpc import convert
from relay.store import MessageRecord
from relay.v1 import destination_pb2, types_pb2
from relay.verify.committee import Checkpoint, QuorumCertificate
from relay.verify.message import Message

MESSAGE = Message.create(
    nonce=7, origin=1, sender=b"\x01" * 32, destination=2, recipient=b"\x02" * 32, body=b"hello"
)
CHECKPOINT = Checkpoint(origin=1, gateway=b"\x42" * 32, epoch=3, root=b"\x07" * 32, index=9)
CERTIFICATE = QuorumCertificate(b"\x07", b"\x99" * 96)


def test_message_round_trip() -> None:
    proto = convert.message_to_proto(MESSAGE)
    assert proto.id == MESSAGE.id and proto.nonce == 7 and proto.sender == b"\x01" * 32
    assert convert.message_from_proto(proto) == MESSAGE
    # Only `encoded` is required: the header fields are a convenience.
    assert convert.message_from_proto(types_pb2.Message(encoded=MESSAGE.encode())) == MESSAGE


@pytest.mark.parametrize(
    "tamper",
    [
        {"id": b"\x00" * 32},
        {"nonce": 8},
        {"origin": 5},
        {"destination": 9},
        {"sender": b"\x03" * 32},
        {"encoded": b""},
        {"encoded": b"\x03" + b"\x00" * 10},
        {"encoded": b"\x02" + MESSAGE.encode()[1:]},
    ],
)
def test_malformed_messages_are_rejected(tamper: dict[str, object]) -> None:
    proto = convert.message_to_proto(MESSAGE)
    for name, value in tamper.items():
        setattr(proto, name, value)
    with pytest.raises(MalformedEncoding):
        convert.message_from_proto(proto)


def test_checkpoint_and_certificate_round_trip() -> None:
    assert convert.checkpoint_from_proto(convert.checkpoint_to_proto(CHECKPOINT)) == CHECKPOINT
    assert convert.certificate_from_proto(convert.certificate_to_proto(CERTIFICATE)) == CERTIFICATE


@pytest.mark.parametrize(
    "proto",
    [
        types_pb2.Checkpoint(origin=1, gateway=b"\x42" * 20, epoch=3, root=b"\x07" * 32, index=9),
        types_pb2.Checkpoint(origin=1, gateway=b"\x42" * 32, epoch=3, root=b"", index=9),
    ],
)
def test_malformed_checkpoints(proto: types_pb2.Checkpoint) -> None:
    with pytest.raises(MalformedEncoding):
        convert.checkpoint_from_proto(proto)


def test_malformed_certificates() -> None:
    with pytest.raises(MalformedEncoding):
        convert.certificate_from_proto(types_pb2.QuorumCertificate(signers=b"", signature=b"\x99" * 96))
    with pytest.raises(MalformedEncoding):
        convert.certificate_from_proto(types_pb2.QuorumCertificate(signers=b"\x01", signature=b"\x99" * 95))


def test_partial_signatures() -> None:
    partial = convert.PartialSignature(CHECKPOINT, 2, b"\x05" * 48, b"\x06" * 96)
    assert convert.partial_signature_from_proto(convert.partial_signature_to_proto(partial)) == partial
    proto = convert.partial_signature_to_proto(partial)
    proto.signer_public_key = b"\x05" * 47
    with pytest.raises(MalformedEncoding):
        convert.partial_signature_from_proto(proto)
    with pytest.raises(MalformedEncoding, match="without a checkpoint"):
        convert.partial_signature_from_proto(types_pb2.CheckpointSignature(signature=b"\x06" * 96))


def test_deliver_request_round_trip_and_validation() -> None:
    branch = tuple(bytes([i]) * 32 for i in range(32))
    request = convert.deliver_request_to_proto(CHECKPOINT, CERTIFICATE, [DeliveryItem(MESSAGE, branch)])
    checkpoint, certificate, items = convert.deliver_request_from_proto(request)
    assert (checkpoint, certificate) == (CHECKPOINT, CERTIFICATE)
    assert items == [DeliveryItem(MESSAGE, branch)]
    short = destination_pb2.DeliverRequest()
    short.CopyFrom(request)
    del short.items[0].branch[-1]
    with pytest.raises(MalformedEncoding, match="32 hashes"):
        convert.deliver_request_from_proto(short)
    with pytest.raises(MalformedEncoding):
        convert.deliver_request_from_proto(destination_pb2.DeliverRequest(items=request.items))
    with pytest.raises(MalformedEncoding):
        convert.deliver_request_from_proto(
            destination_pb2.DeliverRequest(checkpoint=request.checkpoint, certificate=request.certificate)
        )


def test_states_map_one_to_one() -> None:
    values = {convert.state_to_proto(s) for s in MessageState}
    assert len(values) == len(MessageState)
    for state in MessageState:
        assert convert.state_from_proto(convert.state_to_proto(state)) is state
    assert convert.state_to_proto(MessageState.DELIVERED) == types_pb2.MESSAGE_STATE_DELIVERED
    with pytest.raises(MalformedEncoding):
        convert.state_from_proto(types_pb2.MESSAGE_STATE_UNSPECIFIED)
    with pytest.raises(MalformedEncoding):
        convert.state_from_proto(99)


def test_message_status() -> None:
    record = MessageRecord(
        message=MESSAGE,
        state=MessageState.PARKED,
        attempts=3,
        last_error="RecipientReverted: no",
        source_transaction=b"\x0a" * 32,
        source_block=12,
        destination_transaction=b"\x0b" * 32,
        observed_at=1.5,
        updated_at=2.5,
    )
    proto = convert.message_status_to_proto(record)
    assert proto.state == types_pb2.MESSAGE_STATE_PARKED and proto.attempts == 3 and proto.delivered_at == 0
    back = convert.message_status_from_proto(proto)
    assert (
        back.message == MESSAGE and back.state is MessageState.PARKED and back.last_error == record.last_error
    )
    assert back.source_block == 12 and back.destination_transaction == b"\x0b" * 32


def test_message_status_of_a_malformed_leaf_carries_its_leaf_id_and_no_encoding() -> None:
    stand_in = Message.create(
        nonce=7, origin=1, sender=b"\x01" * 32, destination=2, recipient=b"\x02" * 32, body=b""
    )
    record = MessageRecord(
        message=stand_in,
        state=MessageState.REJECTED,
        last_error="MalformedMessage: message body too long",
        error_reason="MalformedMessage",
        malformed_reason="message body too long",
        leaf_id=b"\x5a" * 32,
    )
    proto = convert.message_status_to_proto(record)
    assert proto.message.id == b"\x5a" * 32 and proto.message.encoded == b""
    assert (proto.message.nonce, proto.message.origin, proto.message.destination) == (7, 1, 2)
    back = convert.message_status_from_proto(proto)
    assert back.id == b"\x5a" * 32 and back.is_malformed and back.message == stand_in
    assert back.state is MessageState.REJECTED and "too long" in back.malformed_reason
    proto.message.sender = b"\x01" * 31  # a hostile answer: still a typed error
    with pytest.raises(MalformedEncoding):
        convert.message_status_from_proto(proto)


def test_message_ids() -> None:
    assert convert.message_id_from_bytes(b"\x01" * 32) == b"\x01" * 32
    with pytest.raises(MalformedEncoding, match="32 bytes"):
        convert.message_id_from_bytes(b"\x01" * 31)


def test_delivery_gas_limits_cross_the_wire_and_zero_means_the_default() -> None:
    branch = tuple(bytes([i]) * 32 for i in range(32))
    items = [DeliveryItem(MESSAGE, branch, 600_000), DeliveryItem(MESSAGE, branch, 2**64 - 1)]
    request = convert.deliver_request_to_proto(CHECKPOINT, CERTIFICATE, items)
    assert [item.gas_limit for item in request.items] == [600_000, 2**64 - 1]
    assert convert.deliver_request_from_proto(request)[2] == items
    request.items[0].gas_limit = 0  # unset, e.g. an older relayer
    assert convert.deliver_request_from_proto(request)[2][0].gas_limit == DEFAULT_HANDLE_GAS_LIMIT
    for bad in (0, -1, 2**64):
        with pytest.raises(MalformedEncoding, match="gas limit"):
            convert.delivery_item_to_proto(DeliveryItem(MESSAGE, branch, bad))
