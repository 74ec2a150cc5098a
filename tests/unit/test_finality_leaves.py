"""The EVM finality source reads a leaf only from a log the Gateway's code could have emitted."""

from __future__ import annotations

from adapters.evm.finality import _dispatch_leaf
from relay.verify.hashing import keccak256
from relay.verify.message import Message


def _log(message: bytes, nonce: int, offset: int = 64) -> tuple[list[bytes], bytes]:
    padded = message + b"\x00" * (-len(message) % 32)
    data = nonce.to_bytes(32, "big") + offset.to_bytes(32, "big") + len(message).to_bytes(32, "big") + padded
    return [b"\x01" * 32, keccak256(message)], data


def test_a_gateway_dispatch_is_a_leaf_whatever_its_body() -> None:
    message = Message.create(
        nonce=7, origin=1, sender=b"\x00" * 32, destination=2, recipient=b"\x00" * 32, body=b"\xff" * 300
    ).encode()
    topics, data = _log(message, 7)
    assert _dispatch_leaf(topics, data) == (7, keccak256(message))


def test_forged_shapes_are_not_leaves() -> None:
    message = Message.create(
        nonce=7, origin=1, sender=b"\x00" * 32, destination=2, recipient=b"\x00" * 32, body=b""
    ).encode()
    topics, data = _log(message, 7)
    assert _dispatch_leaf(topics[:1], data) is None  # no id topic
    assert _dispatch_leaf(topics, data[:95]) is None  # truncated
    assert _dispatch_leaf([topics[0], b"\x02" * 32], data) is None  # id is not the message's hash
    assert _dispatch_leaf(*_log(message, 8)) is None  # nonce field disagrees with the message
    assert _dispatch_leaf(*_log(message, 7, offset=96)) is None  # not the ABI layout
    assert _dispatch_leaf(topics, data[:96] + b"") is None  # length says more bytes than present
