"""The cross-chain message, byte-compatible with the Hyperlane v3 encoding.

`version u8 | nonce u32 | origin u32 | sender bytes32 | destination u32 | recipient bytes32 | body`,
big-endian and packed; `id = keccak256(encoding)`. A body is at most `MAX_BODY_LENGTH` bytes: the
same constant as the Gateway's `MAX_BODY_LENGTH` (docs/protocol.md), which refuses longer bodies
at dispatch, so every dispatched message can be decoded here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from relay.errors import MalformedEncoding
from relay.verify.hashing import keccak256

MESSAGE_VERSION = 3
HEADER_LENGTH = 77  # 1 + 4 + 4 + 32 + 4 + 32
MAX_BODY_LENGTH = 65536  # 64 KiB; Gateway.sol MAX_BODY_LENGTH
_UINT32_MAX = 2**32 - 1

_HEADER = struct.Struct(">BII32sI32s")


@dataclass(frozen=True, slots=True)
class Message:
    """One cross-chain message; immutable, its `id` is the keccak256 of its encoding."""

    version: int
    nonce: int
    origin: int
    sender: bytes
    destination: int
    recipient: bytes
    body: bytes
    _id: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_uint("version", self.version, 0xFF)
        for name in ("nonce", "origin", "destination"):
            _check_uint(name, getattr(self, name), _UINT32_MAX)
        for name in ("sender", "recipient"):
            value = getattr(self, name)
            if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
                raise MalformedEncoding(f"message {name} must be 32 bytes", field=name, value=value)
        if not isinstance(self.body, (bytes, bytearray)):
            raise MalformedEncoding("message body must be bytes", field="body")
        if len(self.body) > MAX_BODY_LENGTH:
            raise MalformedEncoding("message body too long", length=len(self.body), maximum=MAX_BODY_LENGTH)

    def encode(self) -> bytes:
        """Return the packed v3 encoding."""
        header = _HEADER.pack(
            self.version,
            self.nonce,
            self.origin,
            bytes(self.sender),
            self.destination,
            bytes(self.recipient),
        )
        return header + bytes(self.body)

    @property
    def id(self) -> bytes:
        """The message id: keccak256 of the encoding (computed once)."""
        if not self._id:
            object.__setattr__(self, "_id", keccak256(self.encode()))
        return self._id

    @classmethod
    def decode(cls, data: bytes) -> Message:
        """Parse a packed v3 encoding; raise `MalformedEncoding` on truncated or oversized input."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise MalformedEncoding("message must be bytes", type=type(data).__name__)
        raw = bytes(data)
        if len(raw) < HEADER_LENGTH:
            raise MalformedEncoding("message shorter than its header", length=len(raw), minimum=HEADER_LENGTH)
        version, nonce, origin, sender, destination, recipient = _HEADER.unpack_from(raw)
        if version != MESSAGE_VERSION:
            raise MalformedEncoding("unsupported message version", version=version, expected=MESSAGE_VERSION)
        return cls(version, nonce, origin, sender, destination, recipient, raw[HEADER_LENGTH:])

    @classmethod
    def create(
        cls,
        *,
        nonce: int,
        origin: int,
        sender: bytes,
        destination: int,
        recipient: bytes,
        body: bytes,
    ) -> Message:
        """Build a current-version message."""
        return cls(MESSAGE_VERSION, nonce, origin, sender, destination, recipient, body)


def address_to_bytes32(address: str | bytes) -> bytes:
    """Left-pad a 20-byte EVM address (hex or bytes) to the 32-byte form used in messages."""
    raw = bytes.fromhex(address.removeprefix("0x")) if isinstance(address, str) else bytes(address)
    if len(raw) == 32:
        return raw
    if len(raw) != 20:
        raise MalformedEncoding("address must be 20 or 32 bytes", length=len(raw))
    return b"\x00" * 12 + raw


def bytes32_to_address(value: bytes) -> str:
    """Return the checksum-free 0x-hex EVM address held in the low 20 bytes of a bytes32."""
    if len(value) != 32:
        raise MalformedEncoding("bytes32 expected", length=len(value))
    return "0x" + value[12:].hex()


def _check_uint(name: str, value: int, maximum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise MalformedEncoding(f"message {name} out of range", field=name, value=value, maximum=maximum)
