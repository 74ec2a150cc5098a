"""The v3 message encoding against Hyperlane's vectors, and malformed input."""

from __future__ import annotations

import pytest

from relay.errors import InvalidProof, MalformedEncoding
from relay.verify.message import HEADER_LENGTH, Message, address_to_bytes32, bytes32_to_address
from tests.conftest import hex_bytes, load_vector


def _from_vector(case: dict) -> Message:
    return Message(
        case["version"],
        case["nonce"],
        case["origin"],
        hex_bytes(case["sender"]),
        case["destination"],
        hex_bytes(case["recipient"]),
        bytes(case["body"]),
    )


@pytest.mark.parametrize("case", load_vector("hyperlane/message.json"))
def test_encoding_and_id_match_hyperlane(case: dict) -> None:
    message = _from_vector(case)
    assert message.id == hex_bytes(case["id"])
    encoded = message.encode()
    assert len(encoded) == HEADER_LENGTH + len(case["body"])
    assert encoded[0] == 3 and encoded[1:5] == case["nonce"].to_bytes(4, "big")
    decoded = Message.decode(encoded)
    assert decoded == message and decoded.id == message.id


@pytest.mark.parametrize("length", [0, 1, HEADER_LENGTH - 1])
def test_truncated_message_raises_typed_error(length: int) -> None:
    message = _from_vector(load_vector("hyperlane/message.json")[0])
    with pytest.raises(MalformedEncoding) as caught:
        Message.decode(message.encode()[:length])
    assert caught.value.length == length
    assert isinstance(caught.value, InvalidProof) and isinstance(caught.value, ValueError)


def test_wrong_version_is_rejected() -> None:
    encoded = bytearray(_from_vector(load_vector("hyperlane/message.json")[0]).encode())
    encoded[0] = 2
    with pytest.raises(MalformedEncoding, match="version"):
        Message.decode(bytes(encoded))


def test_non_bytes_and_bad_fields_are_rejected() -> None:
    with pytest.raises(MalformedEncoding):
        Message.decode("not bytes")  # type: ignore[arg-type]
    with pytest.raises(MalformedEncoding):
        Message.create(
            nonce=-1, origin=1, sender=b"\x00" * 32, destination=2, recipient=b"\x00" * 32, body=b""
        )
    with pytest.raises(MalformedEncoding):
        Message.create(
            nonce=1, origin=1, sender=b"\x00" * 20, destination=2, recipient=b"\x00" * 32, body=b""
        )
    with pytest.raises(MalformedEncoding):
        Message.create(
            nonce=1, origin=2**32, sender=b"\x00" * 32, destination=2, recipient=b"\x00" * 32, body=b""
        )


def test_empty_body_round_trips() -> None:
    message = Message.create(
        nonce=7, origin=1, sender=b"\x01" * 32, destination=2, recipient=b"\x02" * 32, body=b""
    )
    assert Message.decode(message.encode()) == message


def test_address_conversions() -> None:
    address = "0x" + "ab" * 20
    assert address_to_bytes32(address) == b"\x00" * 12 + b"\xab" * 20
    assert bytes32_to_address(address_to_bytes32(address)) == address
    with pytest.raises(MalformedEncoding):
        address_to_bytes32(b"\x00" * 19)


def test_replace_recomputes_the_id() -> None:
    import dataclasses

    message = Message.create(
        nonce=1, origin=1, sender=b"\x01" * 32, destination=2, recipient=b"\x02" * 32, body=b"a"
    )
    assert message.id
    changed = dataclasses.replace(message, body=b"b")
    assert changed.id == Message.decode(changed.encode()).id != message.id
