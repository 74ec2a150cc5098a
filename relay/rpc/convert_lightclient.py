"""Conversion of the light-client RPCs' messages (`SubmitLightClientUpdate`, `DeliverByReceipt`).

Like `relay.rpc.convert`: generated `relay.v1` classes stop here, and every `*_from_proto`
validates what it reads against the bounds of `relay.rpc.limits`, raising `MalformedEncoding`
(the servers' INVALID_ARGUMENT) with the offending field.
"""

from __future__ import annotations

from collections.abc import Sequence

from relay.chains import DEFAULT_HANDLE_GAS_LIMIT
from relay.chains.lightclient import HeaderUpdate, ReceiptDelivery, ReceiptProof
from relay.errors import MalformedEncoding
from relay.rpc.limits import (
    MAX_LIGHT_CLIENT_UPDATE_BYTES,
    MAX_PROOF_ELEMENT_BYTES,
    MAX_PROOF_HEADERS,
    MAX_PROOF_NODES,
    MAX_RECEIPT_DELIVERIES,
    MAX_RECEIPT_PROOFS,
)
from relay.v1 import destination_pb2
from relay.verify.message import Message


def light_client_update_to_proto(
    origin: int, update: HeaderUpdate
) -> destination_pb2.SubmitLightClientUpdateRequest:
    """The wire form of one verified update for `origin`'s destination light client."""
    return destination_pb2.SubmitLightClientUpdateRequest(
        origin=origin,
        update_arguments=update.payload,
        finalized_slot=update.finalized_slot,
        attested_period=update.attested_period,
        carries_next_committee=update.carries_next_committee,
    )


def light_client_update_from_proto(
    proto: destination_pb2.SubmitLightClientUpdateRequest,
) -> tuple[int, HeaderUpdate]:
    """(origin, the update) of a `SubmitLightClientUpdate`: ABI words, bounded in size."""
    payload = bytes(proto.update_arguments)
    if not payload or len(payload) % 32:
        raise MalformedEncoding("update_arguments is not ABI-encoded words", length=len(payload))
    if len(payload) > MAX_LIGHT_CLIENT_UPDATE_BYTES:
        raise MalformedEncoding(
            "update is too long", length=len(payload), limit=MAX_LIGHT_CLIENT_UPDATE_BYTES
        )
    update = HeaderUpdate(
        payload, int(proto.finalized_slot), 0, int(proto.attested_period), bool(proto.carries_next_committee)
    )
    return int(proto.origin), update


def receipt_proof_to_proto(proof: ReceiptProof) -> destination_pb2.ReceiptProof:
    """The wire form of one receipt proof."""
    return destination_pb2.ReceiptProof(
        block_number=proof.block_number,
        headers=list(proof.headers),
        transaction_index=proof.transaction_index,
        nodes=list(proof.nodes),
    )


def _elements(values: Sequence[bytes], what: str, limit: int) -> tuple[bytes, ...]:
    if len(values) > limit:
        raise MalformedEncoding(f"too many {what}", count=len(values), limit=limit)
    for value in values:
        if not value or len(value) > MAX_PROOF_ELEMENT_BYTES:
            raise MalformedEncoding(f"a {what} element is empty or too long", length=len(value))
    return tuple(bytes(v) for v in values)


def receipt_proof_from_proto(proto: destination_pb2.ReceiptProof) -> ReceiptProof:
    """A receipt proof with its headers and nodes bounded (`relay.rpc.limits`)."""
    if not proto.nodes:
        raise MalformedEncoding("a receipt proof needs at least one trie node")
    return ReceiptProof(
        int(proto.block_number),
        _elements(proto.headers, "headers", MAX_PROOF_HEADERS),
        int(proto.transaction_index),
        _elements(proto.nodes, "proof nodes", MAX_PROOF_NODES),
    )


def deliver_by_receipt_to_proto(
    origin: int, proofs: Sequence[ReceiptProof], deliveries: Sequence[ReceiptDelivery]
) -> destination_pb2.DeliverByReceiptRequest:
    """One receipt-proof delivery batch of `origin`."""
    for delivery in deliveries:
        if not 0 < delivery.gas_limit < 2**64:
            raise MalformedEncoding("a handle gas limit is a positive u64", gas_limit=delivery.gas_limit)
    return destination_pb2.DeliverByReceiptRequest(
        origin=origin,
        proofs=[receipt_proof_to_proto(p) for p in proofs],
        deliveries=[
            destination_pb2.ReceiptDelivery(
                message=d.message.encode(),
                proof_index=d.proof_index,
                log_index=d.log_index,
                gas_limit=d.gas_limit,
            )
            for d in deliveries
        ],
    )


def deliver_by_receipt_from_proto(
    proto: destination_pb2.DeliverByReceiptRequest,
) -> tuple[int, list[ReceiptProof], list[ReceiptDelivery]]:
    """Validate and convert a receipt-proof batch (the submitter's entry point): every delivery
    names an existing proof and a message of the request's origin."""
    if not proto.deliveries:
        raise MalformedEncoding("a delivery needs at least one message")
    if len(proto.deliveries) > MAX_RECEIPT_DELIVERIES:
        raise MalformedEncoding(
            "too many messages", count=len(proto.deliveries), limit=MAX_RECEIPT_DELIVERIES
        )
    if len(proto.proofs) > MAX_RECEIPT_PROOFS:
        raise MalformedEncoding("too many receipt proofs", count=len(proto.proofs), limit=MAX_RECEIPT_PROOFS)
    origin = int(proto.origin)
    proofs = [receipt_proof_from_proto(p) for p in proto.proofs]
    deliveries = []
    for item in proto.deliveries:
        message = Message.decode(item.message)
        if message.origin != origin:
            raise MalformedEncoding(
                "message of another origin than the request", id=message.id, origin=origin
            )
        if item.proof_index >= len(proofs):
            raise MalformedEncoding("proof_index names no proof", index=item.proof_index, proofs=len(proofs))
        deliveries.append(
            ReceiptDelivery(
                message,
                int(item.proof_index),
                int(item.log_index),
                item.gas_limit or DEFAULT_HANDLE_GAS_LIMIT,
            )
        )
    return origin, proofs, deliveries
