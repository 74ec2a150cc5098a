"""Proving a Gateway message from Ethereum: a `Dispatch` log in a finalized block.

The source Gateway emits `Dispatch(bytes32 indexed id, uint32 indexed destination, uint32 nonce,
bytes message)` for every message. A message is proven when:

1. the block's receipts root comes from a finalized light-client header (or from a header
   chained to one by parent hashes),
2. a Merkle-Patricia proof against that root yields the receipt of the transaction,
3. that receipt holds the log exactly (emitting address, topics, data),
4. the log was emitted by the expected Gateway, and its indexed id, destination and nonce agree
   with the message bytes it carries.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from relay.errors import MalformedEncoding
from relay.verify.ethereum.containers import LightClientHeader
from relay.verify.ethereum.errors import InvalidDispatchLog, LogNotFound
from relay.verify.ethereum.receipts import Log, Receipt, verify_receipt_proof, verify_receipts_root
from relay.verify.hashing import keccak256
from relay.verify.message import HEADER_LENGTH, Message

DISPATCH_EVENT_SIGNATURE = "Dispatch(bytes32,uint32,uint32,bytes)"
DISPATCH_TOPIC = keccak256(DISPATCH_EVENT_SIGNATURE.encode("ascii"))
_WORD = 32
_UINT32_MAX = 2**32 - 1


@dataclass(frozen=True)
class ReceiptProof:
    """The inclusion proof of one receipt: its transaction index and the trie nodes, root first."""

    transaction_index: int
    nodes: tuple[bytes, ...]


@dataclass(frozen=True)
class ProvenMessage:
    """A message proven to have been dispatched in a finalized block, and where.

    A leaf whose message does not decode (e.g. a body over `MAX_BODY_LENGTH`, which an old
    Gateway accepts) is still a proven leaf of the tree: `malformed_reason` says why, `leaf_id`
    is the id the Gateway inserted, and `message` is a stand-in (`compute_stand_in`).
    """

    message: Message
    block_number: int
    block_hash: bytes
    transaction_index: int
    log_index: int
    """The log's position within its receipt."""
    malformed_reason: str = ""
    leaf_id: bytes = b""

    @property
    def id(self) -> bytes:
        """The leaf id (the message id, or the id the log of a malformed message names)."""
        return self.leaf_id or self.message.id


_HEADER = struct.Struct(">BII32sI32s")


def compute_stand_in(encoded: bytes, nonce: int, origin: int, destination: int) -> Message:
    """The stand-in of a message that does not decode: its header fields if it has a header, empty body.

    `destination` is used when `encoded` is shorter than a header or names none in range.
    """
    sender = recipient = bytes(32)
    if len(encoded) >= HEADER_LENGTH:
        _version, _nonce, _origin, sender, destination, recipient = _HEADER.unpack_from(encoded)
    return Message.create(
        nonce=nonce,
        origin=origin,
        sender=sender,
        destination=destination if 0 <= destination <= _UINT32_MAX else 0,
        recipient=recipient,
        body=b"",
    )


def decode_malformed_dispatch_log(log: Log, gateway: bytes, origin: int) -> ProvenMessage | None:
    """The leaf of a genuine Gateway Dispatch whose message does not decode, or None if it decodes.

    Genuine means: the Gateway's address, three topics, canonical ABI data, and an id topic that
    is the keccak256 of the message bytes; anything else raises `InvalidDispatchLog` (no Gateway
    emits it). The returned value has no block position yet (the caller adds it).
    """
    if log.address != gateway or len(log.topics) != 3 or log.topics[0] != DISPATCH_TOPIC:
        raise InvalidDispatchLog("log is not a Gateway Dispatch event", address=log.address)
    nonce, encoded = decode_dispatch_data(log.data)
    if keccak256(encoded) != log.topics[1]:
        raise InvalidDispatchLog("Dispatch id is not the keccak256 of its message", topic_id=log.topics[1])
    try:
        Message.decode(encoded)
    except MalformedEncoding as error:
        destination = int.from_bytes(log.topics[2], "big")
        return ProvenMessage(
            message=compute_stand_in(encoded, nonce, origin, destination),
            block_number=0,
            block_hash=b"",
            transaction_index=0,
            log_index=0,
            malformed_reason=f"{error.reason}: {error}"[:500],
            leaf_id=log.topics[1],
        )
    return None


def is_dispatch_log(log: Log, gateway: bytes) -> bool:
    """True for a log that looks like the Gateway's `Dispatch` event (not yet checked)."""
    return log.address == gateway and bool(log.topics) and log.topics[0] == DISPATCH_TOPIC


def find_log(receipt: Receipt, log: Log) -> int:
    """The position of `log` in `receipt`; raises `LogNotFound` if it is not there exactly."""
    for position, candidate in enumerate(receipt.logs):
        if candidate == log:
            return position
    raise LogNotFound(
        "the receipt does not contain the log",
        address=log.address,
        topics=[topic.hex() for topic in log.topics],
        receipt_logs=len(receipt.logs),
    )


def decode_dispatch_data(data: bytes) -> tuple[int, bytes]:
    """`(nonce, message)` from the ABI encoding of `(uint32, bytes)`; strict (canonical only)."""
    if len(data) < 3 * _WORD or len(data) % _WORD:
        raise InvalidDispatchLog("Dispatch data is not an ABI (uint32, bytes) encoding", length=len(data))
    nonce = int.from_bytes(data[0:_WORD], "big")
    offset = int.from_bytes(data[_WORD : 2 * _WORD], "big")
    if nonce > _UINT32_MAX:
        raise InvalidDispatchLog("Dispatch nonce is not a uint32", nonce=nonce)
    if offset != 2 * _WORD:
        raise InvalidDispatchLog("Dispatch message offset is not canonical", offset=offset)
    length = int.from_bytes(data[2 * _WORD : 3 * _WORD], "big")
    padded = (length + _WORD - 1) // _WORD * _WORD
    if len(data) != 3 * _WORD + padded:
        raise InvalidDispatchLog(
            "Dispatch data length does not match its message", length=len(data), message_length=length
        )
    message = data[3 * _WORD : 3 * _WORD + length]
    if any(data[3 * _WORD + length :]):
        raise InvalidDispatchLog("Dispatch message padding is not zero")
    return nonce, message


def decode_dispatch_log(log: Log, gateway: bytes, *, origin: int | None = None) -> Message:
    """The `Message` a Gateway `Dispatch` log carries, after checking the log agrees with it.

    `gateway` is the 20-byte Gateway address; `origin`, if given, the domain the message must
    come from (the source chain's domain).
    """
    if log.address != gateway:
        raise InvalidDispatchLog("log was not emitted by the Gateway", address=log.address, gateway=gateway)
    if len(log.topics) != 3 or log.topics[0] != DISPATCH_TOPIC:
        raise InvalidDispatchLog("log is not a Dispatch event", topics=[topic.hex() for topic in log.topics])
    nonce, encoded = decode_dispatch_data(log.data)
    try:
        message = Message.decode(encoded)
    except MalformedEncoding as error:
        raise InvalidDispatchLog("Dispatch message does not decode", reason=str(error)) from error
    if message.id != log.topics[1]:
        raise InvalidDispatchLog(
            "Dispatch id is not the message's id", topic_id=log.topics[1], message_id=message.id
        )
    destination_topic = int.from_bytes(log.topics[2], "big")
    if destination_topic != message.destination:
        raise InvalidDispatchLog(
            "Dispatch destination is not the message's",
            topic_destination=destination_topic,
            message_destination=message.destination,
        )
    if nonce != message.nonce:
        raise InvalidDispatchLog(
            "Dispatch nonce is not the message's", event_nonce=nonce, message_nonce=message.nonce
        )
    if origin is not None and message.origin != origin:
        raise InvalidDispatchLog(
            "message comes from another origin domain", message_origin=message.origin, origin=origin
        )
    return message


def verify_log_in_receipts_root(receipts_root: bytes, proof: ReceiptProof, log: Log) -> tuple[Receipt, int]:
    """Check `log` was emitted in the block of `receipts_root`; returns the receipt and the log's position."""
    receipt = verify_receipt_proof(receipts_root, proof.transaction_index, proof.nodes)
    return receipt, find_log(receipt, log)


def prove_dispatch_message(
    finalized_header: LightClientHeader,
    proof: ReceiptProof,
    log: Log,
    *,
    gateway: bytes,
    origin: int | None = None,
) -> ProvenMessage:
    """Prove `log` is a Gateway `Dispatch` in the finalized header's execution block and decode it.

    `finalized_header` must come from a light-client store (it is trusted as given).
    """
    _, position = verify_log_in_receipts_root(finalized_header.execution.receipts_root, proof, log)
    message = decode_dispatch_log(log, gateway, origin=origin)
    return ProvenMessage(
        message=message,
        block_number=finalized_header.execution.block_number,
        block_hash=finalized_header.execution.block_hash,
        transaction_index=proof.transaction_index,
        log_index=position,
    )


def prove_dispatches_in_receipts(
    receipts: Sequence[Receipt],
    *,
    receipts_root: bytes,
    block_number: int,
    block_hash: bytes,
    gateway: bytes,
    origin: int | None = None,
) -> list[ProvenMessage]:
    """Every Gateway message of a block, from its full receipt list checked against `receipts_root`.

    `receipts_root` must be proven (a finalized header's, or one chained to it); the receipts
    must rebuild it exactly, so no receipt can be hidden or forged. Each message is then decoded
    and checked as `decode_dispatch_log` does; with `origin` given, a genuine Dispatch whose
    message does not decode is a malformed leaf (`decode_malformed_dispatch_log`), not an error,
    so the tree it belongs to has no gap.
    """
    verify_receipts_root(receipts, receipts_root)
    proven = []
    for index, receipt in enumerate(receipts):
        for position, log in enumerate(receipt.logs):
            if not is_dispatch_log(log, gateway):
                continue
            malformed = None if origin is None else decode_malformed_dispatch_log(log, gateway, origin)
            if malformed is not None:
                proven.append(
                    dataclasses.replace(
                        malformed,
                        block_number=block_number,
                        block_hash=block_hash,
                        transaction_index=index,
                        log_index=position,
                    )
                )
                continue
            proven.append(
                ProvenMessage(
                    message=decode_dispatch_log(log, gateway, origin=origin),
                    block_number=block_number,
                    block_hash=block_hash,
                    transaction_index=index,
                    log_index=position,
                )
            )
    return proven
