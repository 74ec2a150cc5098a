"""Conversion between protobuf messages and domain types, at the gRPC boundary only.

The core works with `relay.verify` types (`Message`, `Checkpoint`, `QuorumCertificate`),
`relay.lifecycle.MessageState` and store records; generated `relay.v1` classes stop here.
Every `*_from_proto` validates what it reads (lengths, ranges, the message id re-derived from the
encoding) and raises `relay.errors.MalformedEncoding` with the offending field, which servers turn
into `INVALID_ARGUMENT`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay.chains import DEFAULT_HANDLE_GAS_LIMIT, DeliveryItem
from relay.errors import MalformedEncoding
from relay.handover import MAX_COMMITTEE_SIZE, HandoverCertificate, HandoverProposal
from relay.handover_ecdsa import EcdsaHandoverCertificate, EcdsaHandoverProposal
from relay.lifecycle import MessageState
from relay.peers import PartialSignature
from relay.store.base import MessageRecord
from relay.v1 import destination_pb2, relay_service_pb2, types_pb2
from relay.verify.bls import PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH
from relay.verify.committee import Checkpoint, Member, QuorumCertificate
from relay.verify.ecdsa import SIGNATURE_LENGTH as ECDSA_SIGNATURE_LENGTH
from relay.verify.ecdsa import EcdsaCertificate
from relay.verify.ecdsa_quorum import ADDRESS_LENGTH, MAX_ECDSA_MEMBERS, is_ecdsa_certificate
from relay.verify.merkle import TREE_DEPTH
from relay.verify.message import Message

# --- messages ---------------------------------------------------------------------------------


def message_to_proto(message: Message) -> types_pb2.Message:
    """The wire form: the authoritative encoding plus the decoded header."""
    return types_pb2.Message(
        id=message.id,
        encoded=message.encode(),
        nonce=message.nonce,
        origin=message.origin,
        destination=message.destination,
        sender=bytes(message.sender),
        recipient=bytes(message.recipient),
    )


def message_from_proto(proto: types_pb2.Message) -> Message:
    """Decode `encoded`; reject an `id` or header field that disagrees with it (when given)."""
    if not proto.encoded:
        raise MalformedEncoding("message.encoded is empty", field="message.encoded")
    message = Message.decode(proto.encoded)
    if proto.id and proto.id != message.id:
        raise MalformedEncoding("message.id does not match the encoding", id=proto.id, computed=message.id)
    for name in ("sender", "recipient"):
        given = getattr(proto, name)
        if given and given != getattr(message, name):
            raise MalformedEncoding(f"message.{name} does not match the encoding", field=name, value=given)
    for name in ("nonce", "origin", "destination"):
        given = getattr(proto, name)
        if given and given != getattr(message, name):
            raise MalformedEncoding(
                f"message.{name} does not match the encoding",
                field=name,
                value=given,
                encoded=getattr(message, name),
            )
    return message


def message_id_from_bytes(value: bytes, field: str = "id") -> bytes:
    """A 32-byte message id from a request field."""
    if len(value) != 32:
        raise MalformedEncoding(f"{field} must be 32 bytes", field=field, length=len(value))
    return bytes(value)


# --- checkpoints and certificates ---------------------------------------------------------------


def checkpoint_to_proto(checkpoint: Checkpoint) -> types_pb2.Checkpoint:
    """The wire form of a checkpoint."""
    return types_pb2.Checkpoint(
        origin=checkpoint.origin,
        gateway=checkpoint.gateway,
        epoch=checkpoint.epoch,
        root=checkpoint.root,
        index=checkpoint.index,
    )


def checkpoint_from_proto(proto: types_pb2.Checkpoint) -> Checkpoint:
    """A validated `Checkpoint` (32-byte gateway and root)."""
    for name in ("gateway", "root"):
        value = getattr(proto, name)
        if len(value) != 32:
            raise MalformedEncoding(f"checkpoint.{name} must be 32 bytes", field=name, length=len(value))
    return Checkpoint(
        origin=proto.origin,
        gateway=bytes(proto.gateway),
        epoch=proto.epoch,
        root=bytes(proto.root),
        index=proto.index,
    )


def certificate_to_proto(certificate: QuorumCertificate) -> types_pb2.QuorumCertificate:
    """The wire form of a quorum certificate: a BLS aggregate in `signature`, ECDSA signatures in
    `ecdsa_signatures` (`relay.verify.ecdsa_quorum.is_ecdsa_certificate`)."""
    if is_ecdsa_certificate(certificate):
        return types_pb2.QuorumCertificate(
            signers=certificate.signers, ecdsa_signatures=certificate.signature
        )
    return types_pb2.QuorumCertificate(signers=certificate.signers, signature=certificate.signature)


def certificate_from_proto(proto: types_pb2.QuorumCertificate) -> QuorumCertificate:
    """A `QuorumCertificate` with a non-empty bitfield and either a 96-byte BLS signature or
    1..128 65-byte ECDSA signatures (not yet verified; the committee's scheme decides which counts)."""
    if not proto.signers:
        raise MalformedEncoding("certificate.signers is empty", field="signers")
    if proto.ecdsa_signatures:
        if proto.signature:
            raise MalformedEncoding(
                "a certificate carries either a BLS signature or ECDSA signatures, not both"
            )
        length = len(proto.ecdsa_signatures)
        if length % ECDSA_SIGNATURE_LENGTH or length > ECDSA_SIGNATURE_LENGTH * MAX_ECDSA_MEMBERS:
            raise MalformedEncoding(
                "certificate.ecdsa_signatures must be 1..128 signatures of 65 bytes",
                field="ecdsa_signatures",
                length=length,
            )
        return QuorumCertificate(bytes(proto.signers), bytes(proto.ecdsa_signatures))
    if len(proto.signature) != SIGNATURE_LENGTH:
        raise MalformedEncoding(
            "certificate.signature must be 96 bytes", field="signature", length=len(proto.signature)
        )
    return QuorumCertificate(bytes(proto.signers), bytes(proto.signature))


def partial_signature_to_proto(partial: PartialSignature) -> types_pb2.CheckpointSignature:
    """The wire form of an attestor's signature (an ECDSA member's is named by its 20-byte address)."""
    if len(partial.public_key) == ADDRESS_LENGTH:
        return types_pb2.CheckpointSignature(
            checkpoint=checkpoint_to_proto(partial.checkpoint),
            signer_index=partial.signer_index,
            signer_address=partial.public_key,
            ecdsa_signature=partial.signature,
        )
    return types_pb2.CheckpointSignature(
        checkpoint=checkpoint_to_proto(partial.checkpoint),
        signer_index=partial.signer_index,
        signer_public_key=partial.public_key,
        signature=partial.signature,
    )


def partial_signature_from_proto(proto: types_pb2.CheckpointSignature) -> PartialSignature:
    """A `PartialSignature` with well-formed lengths (the signature itself is not yet verified):
    a BLS member's key and signature, or an ECDSA member's address and signature, never a mix."""
    if not proto.HasField("checkpoint"):
        raise MalformedEncoding("checkpoint signature without a checkpoint", field="checkpoint")
    if proto.signer_address or proto.ecdsa_signature:
        if proto.signer_public_key or proto.signature:
            raise MalformedEncoding("a checkpoint signature is either BLS or ECDSA, not both")
        if len(proto.signer_address) != ADDRESS_LENGTH:
            raise MalformedEncoding("signer_address must be 20 bytes", length=len(proto.signer_address))
        if len(proto.ecdsa_signature) != ECDSA_SIGNATURE_LENGTH:
            raise MalformedEncoding("ecdsa_signature must be 65 bytes", length=len(proto.ecdsa_signature))
        return PartialSignature(
            checkpoint_from_proto(proto.checkpoint),
            proto.signer_index,
            bytes(proto.signer_address),
            bytes(proto.ecdsa_signature),
        )
    if len(proto.signer_public_key) != PUBLIC_KEY_LENGTH:
        raise MalformedEncoding("signer_public_key must be 48 bytes", length=len(proto.signer_public_key))
    if len(proto.signature) != SIGNATURE_LENGTH:
        raise MalformedEncoding("signature must be 96 bytes", length=len(proto.signature))
    return PartialSignature(
        checkpoint_from_proto(proto.checkpoint),
        proto.signer_index,
        bytes(proto.signer_public_key),
        bytes(proto.signature),
    )


# --- deliveries ---------------------------------------------------------------------------------


def delivery_item_to_proto(item: DeliveryItem) -> destination_pb2.DeliveryItem:
    """The wire form of one message with its branch and its `handle` gas limit."""
    if not 0 < item.gas_limit < 2**64:
        raise MalformedEncoding("a handle gas limit is a positive u64", gas_limit=item.gas_limit)
    return destination_pb2.DeliveryItem(
        message=item.message.encode(), branch=[bytes(b) for b in item.branch], gas_limit=item.gas_limit
    )


def delivery_item_from_proto(proto: destination_pb2.DeliveryItem) -> DeliveryItem:
    """A `DeliveryItem`: a decodable message and exactly 32 sibling hashes of 32 bytes.

    A gas limit of 0 (the field unset, e.g. from an older relayer) means DEFAULT_HANDLE_GAS_LIMIT.
    """
    message = Message.decode(proto.message)
    if len(proto.branch) != TREE_DEPTH or any(len(node) != 32 for node in proto.branch):
        raise MalformedEncoding("a branch is 32 hashes of 32 bytes", length=len(proto.branch))
    gas_limit = proto.gas_limit or DEFAULT_HANDLE_GAS_LIMIT
    return DeliveryItem(message, tuple(bytes(node) for node in proto.branch), gas_limit)


def deliver_request_to_proto(
    checkpoint: Checkpoint, certificate: QuorumCertificate, items: Sequence[DeliveryItem]
) -> destination_pb2.DeliverRequest:
    """One delivery batch under one checkpoint and certificate."""
    return destination_pb2.DeliverRequest(
        checkpoint=checkpoint_to_proto(checkpoint),
        certificate=certificate_to_proto(certificate),
        items=[delivery_item_to_proto(item) for item in items],
    )


def deliver_request_from_proto(
    proto: destination_pb2.DeliverRequest,
) -> tuple[Checkpoint, QuorumCertificate, list[DeliveryItem]]:
    """Validate and convert a delivery batch (the submitter's entry point)."""
    if not proto.HasField("checkpoint") or not proto.HasField("certificate"):
        raise MalformedEncoding("a delivery needs a checkpoint and a certificate")
    if not proto.items:
        raise MalformedEncoding("a delivery needs at least one item")
    return (
        checkpoint_from_proto(proto.checkpoint),
        certificate_from_proto(proto.certificate),
        [delivery_item_from_proto(item) for item in proto.items],
    )


# --- lifecycle states -----------------------------------------------------------------------------

_STATE_TO_PROTO: dict[MessageState, Any] = {
    state: types_pb2.MessageState.Value(f"MESSAGE_STATE_{state.name}") for state in MessageState
}
_STATE_FROM_PROTO = {value: state for state, value in _STATE_TO_PROTO.items()}


def state_to_proto(state: MessageState) -> Any:
    """The `relay.v1.MessageState` enum value of a lifecycle state."""
    return _STATE_TO_PROTO[state]


def state_from_proto(value: int) -> MessageState:
    """The lifecycle state of a `relay.v1.MessageState` value; UNSPECIFIED and unknown values are malformed."""
    try:
        return _STATE_FROM_PROTO[value]
    except KeyError:
        raise MalformedEncoding("unknown or unspecified message state", value=value) from None


def message_status_to_proto(record: MessageRecord) -> relay_service_pb2.MessageStatus:
    """What RelayService reports about one message."""
    message = message_to_proto(record.message)
    if record.is_malformed:
        # A leaf whose message did not decode: its id, the header fields read, no encoding.
        message.id = record.id
        message.encoded = b""
    return relay_service_pb2.MessageStatus(
        message=message,
        state=state_to_proto(record.state),
        attempts=record.attempts,
        last_error=record.last_error,
        source_transaction=record.source_transaction,
        source_block=record.source_block,
        destination_transaction=record.destination_transaction,
        observed_at=record.observed_at,
        updated_at=record.updated_at,
        delivered_at=record.delivered_at,
    )


def message_status_from_proto(proto: relay_service_pb2.MessageStatus) -> MessageRecord:
    """A `MessageRecord` with the fields RelayService reports (clients and tests).

    A status without `message.encoded` is a malformed leaf (its message never decoded): the
    record gets a stand-in message from the header fields and the leaf id.
    """
    leaf_id, malformed_reason = b"", ""
    if not proto.message.encoded:
        message = _stand_in_from_proto(proto.message)
        leaf_id = message_id_from_bytes(proto.message.id, "message.id")
        malformed_reason = proto.last_error or "the message does not decode"
    else:
        message = message_from_proto(proto.message)
    return MessageRecord(
        message=message,
        leaf_id=leaf_id,
        malformed_reason=malformed_reason,
        state=state_from_proto(proto.state),
        attempts=proto.attempts,
        last_error=proto.last_error,
        source_transaction=bytes(proto.source_transaction),
        source_block=proto.source_block,
        destination_transaction=bytes(proto.destination_transaction),
        observed_at=proto.observed_at,
        updated_at=proto.updated_at,
        delivered_at=proto.delivered_at,
    )


def _stand_in_from_proto(proto: types_pb2.Message) -> Message:
    """The stand-in message of a malformed leaf: header fields as reported, empty body."""
    sender, recipient = bytes(proto.sender) or bytes(32), bytes(proto.recipient) or bytes(32)
    return Message.create(
        nonce=proto.nonce,
        origin=proto.origin,
        sender=sender,
        destination=proto.destination,
        recipient=recipient,
        body=b"",
    )


# --- hand-overs -------------------------------------------------------------------------------


def proposal_to_proto(proposal: HandoverProposal) -> types_pb2.HandoverProposal:
    """The wire form of a hand-over proposal."""
    return types_pb2.HandoverProposal(
        origin=proposal.origin,
        gateway=proposal.gateway,
        epoch=proposal.epoch,
        threshold=proposal.threshold,
        members=[
            types_pb2.CommitteeMember(
                public_key=m.public_key, proof_of_possession=m.proof_of_possession, weight=m.weight
            )
            for m in proposal.members
        ],
        current_committee_hash=proposal.current_committee_hash,
        allow_low_threshold=proposal.allow_low_threshold,
    )


def proposal_from_proto(proto: types_pb2.HandoverProposal) -> HandoverProposal:
    """A `HandoverProposal` with every length and count checked (not yet its proofs)."""
    if len(proto.members) > MAX_COMMITTEE_SIZE:
        raise MalformedEncoding(
            "proposal has more members than any committee", count=len(proto.members), limit=MAX_COMMITTEE_SIZE
        )
    members = tuple(
        Member(bytes(m.public_key), bytes(m.proof_of_possession), int(m.weight)) for m in proto.members
    )
    return HandoverProposal(
        origin=int(proto.origin),
        gateway=bytes(proto.gateway),
        epoch=int(proto.epoch),
        threshold=int(proto.threshold),
        members=members,
        current_committee_hash=bytes(proto.current_committee_hash),
        allow_low_threshold=bool(proto.allow_low_threshold),
    )


def ecdsa_proposal_to_proto(proposal: EcdsaHandoverProposal) -> types_pb2.EcdsaHandoverProposal:
    """The wire form of an ECDSA hand-over proposal."""
    return types_pb2.EcdsaHandoverProposal(
        origin=proposal.origin,
        gateway=proposal.gateway,
        epoch=proposal.epoch,
        threshold=proposal.threshold,
        members=[types_pb2.EcdsaCommitteeMember(address=a, weight=w) for a, w in proposal.members],
        current_committee_hash=proposal.current_committee_hash,
        allow_low_threshold=proposal.allow_low_threshold,
    )


def ecdsa_proposal_from_proto(proto: types_pb2.EcdsaHandoverProposal) -> EcdsaHandoverProposal:
    """An `EcdsaHandoverProposal` with every length and count checked (not yet the committee rules)."""
    if len(proto.members) > MAX_COMMITTEE_SIZE:
        raise MalformedEncoding(
            "proposal has more members than any committee", count=len(proto.members), limit=MAX_COMMITTEE_SIZE
        )
    return EcdsaHandoverProposal(
        origin=int(proto.origin),
        gateway=bytes(proto.gateway),
        epoch=int(proto.epoch),
        threshold=int(proto.threshold),
        members=tuple((bytes(m.address), int(m.weight)) for m in proto.members),
        current_committee_hash=bytes(proto.current_committee_hash),
        allow_low_threshold=bool(proto.allow_low_threshold),
    )


def ecdsa_handover_certificate_to_proto(
    certificate: EcdsaHandoverCertificate,
) -> types_pb2.EcdsaHandoverCertificate:
    """The wire form of an ECDSA hand-over certificate."""
    return types_pb2.EcdsaHandoverCertificate(
        proposal=ecdsa_proposal_to_proto(certificate.proposal),
        signers=certificate.certificate.signers,
        signatures=certificate.certificate.signature,
    )


def ecdsa_handover_certificate_from_proto(
    proto: types_pb2.EcdsaHandoverCertificate,
) -> EcdsaHandoverCertificate:
    """An `EcdsaHandoverCertificate` with its shapes checked (not yet verified)."""
    proposal = ecdsa_proposal_from_proto(proto.proposal)
    signers, signatures = bytes(proto.signers), bytes(proto.signatures)
    if not 0 < len(signers) <= (MAX_COMMITTEE_SIZE + 7) // 8:
        raise MalformedEncoding("signers bitfield of a wrong size", length=len(signers))
    if not 0 < len(signatures) <= 65 * MAX_COMMITTEE_SIZE or len(signatures) % 65:
        raise MalformedEncoding("signatures are 65 bytes each, 1..128 of them", length=len(signatures))
    return EcdsaHandoverCertificate(proposal, EcdsaCertificate(signers, signatures))


def any_handover_certificate_from_proto(request: Any) -> HandoverCertificate | EcdsaHandoverCertificate:
    """The certificate of a `SubmitHandover` request: its `handover` (BLS) or its `ecdsa_handover`,
    exactly one of them (`MalformedEncoding` otherwise)."""
    ecdsa = request.HasField("ecdsa_handover")
    if ecdsa == request.HasField("handover"):
        raise MalformedEncoding("set exactly one of handover and ecdsa_handover")
    if ecdsa:
        return ecdsa_handover_certificate_from_proto(request.ecdsa_handover)
    return handover_certificate_from_proto(request.handover)


def handover_certificate_to_proto(certificate: HandoverCertificate) -> types_pb2.HandoverCertificate:
    """The wire form of a hand-over certificate."""
    return types_pb2.HandoverCertificate(
        proposal=proposal_to_proto(certificate.proposal),
        certificate=certificate_to_proto(certificate.certificate),
    )


def handover_certificate_from_proto(proto: types_pb2.HandoverCertificate) -> HandoverCertificate:
    """A `HandoverCertificate` with its shapes checked (not yet verified)."""
    proposal = proposal_from_proto(proto.proposal)
    quorum = certificate_from_proto(proto.certificate)
    if len(quorum.signers) > (MAX_COMMITTEE_SIZE + 7) // 8:
        raise MalformedEncoding("certificate.signers is longer than any committee's bitfield")
    return HandoverCertificate(proposal, quorum)
