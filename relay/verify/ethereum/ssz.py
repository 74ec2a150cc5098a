"""The part of SSZ (Simple Serialize) the light client needs: merkleization and decoding.

Merkleization follows the consensus specs' `hash_tree_root`: values are packed into 32-byte chunks,
chunks are hashed pairwise with SHA-256 up to the next power of two (or the type's limit), and
lists mix their length into the root. Decoding reads the fixed-size part, then the variable-size
fields by their 4-byte offsets, and rejects anything non-canonical (bad offsets, trailing bytes).

Only the types the light-client objects use are here: unsigned integers, byte vectors, byte
lists, bitvectors, vectors of fixed-size elements and containers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from relay.verify.ethereum.errors import MalformedObject

BYTES_PER_CHUNK = 32
ZERO_CHUNK = b"\x00" * BYTES_PER_CHUNK
BYTES_PER_LENGTH_OFFSET = 4
_MAX_DEPTH = 64


def sha256(data: bytes) -> bytes:
    """SHA-256, the hash of every SSZ tree."""
    return hashlib.sha256(data).digest()


def _compute_zero_hashes() -> tuple[bytes, ...]:
    hashes = [ZERO_CHUNK]
    for _ in range(_MAX_DEPTH):
        hashes.append(sha256(hashes[-1] + hashes[-1]))
    return tuple(hashes)


ZERO_HASHES = _compute_zero_hashes()
"""`ZERO_HASHES[d]` is the root of a depth-`d` tree of zero chunks (a constant, not state)."""


def _ceil_log2(count: int) -> int:
    return max(count - 1, 0).bit_length()


def merkleize(chunks: Sequence[bytes], limit: int | None = None) -> bytes:
    """Return the root of `chunks` padded with zero chunks to the next power of two of `limit`."""
    count = len(chunks)
    if limit is None:
        limit = count
    elif count > limit:
        raise MalformedObject("more chunks than the type's limit", chunks=count, limit=limit)
    depth = _ceil_log2(limit)
    if count == 0:
        return ZERO_HASHES[depth]
    layer = list(chunks)
    hash_function = hashlib.sha256
    for level in range(depth):
        if len(layer) % 2:
            layer.append(ZERO_HASHES[level])
        layer = [hash_function(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
    return layer[0]


def pack_bytes(data: bytes) -> list[bytes]:
    """Split `data` into 32-byte chunks, the last right-padded with zeros."""
    if not data:
        return []
    padded = data + b"\x00" * (-len(data) % BYTES_PER_CHUNK)
    return [padded[i : i + BYTES_PER_CHUNK] for i in range(0, len(padded), BYTES_PER_CHUNK)]


def mix_in_length(root: bytes, length: int) -> bytes:
    """The root of a list: its contents' root hashed with its length."""
    return sha256(root + length.to_bytes(BYTES_PER_CHUNK, "little"))


def uint_chunk(value: int, size: int = 8) -> bytes:
    """The chunk of an unsigned integer of `size` bytes (little-endian, zero-padded)."""
    return value.to_bytes(size, "little").ljust(BYTES_PER_CHUNK, b"\x00")


def root_of_byte_vector(data: bytes) -> bytes:
    """`hash_tree_root` of a `ByteVector[len(data)]` (`Bytes32` is its own root)."""
    if len(data) <= BYTES_PER_CHUNK:
        return data.ljust(BYTES_PER_CHUNK, b"\x00")
    return merkleize(pack_bytes(data))


def root_of_byte_list(data: bytes, limit: int) -> bytes:
    """`hash_tree_root` of a `ByteList[limit]`."""
    chunk_limit = (limit + BYTES_PER_CHUNK - 1) // BYTES_PER_CHUNK
    return mix_in_length(merkleize(pack_bytes(data), chunk_limit), len(data))


def root_of_bitvector(data: bytes, length: int) -> bytes:
    """`hash_tree_root` of a `Bitvector[length]` given as its serialized bytes."""
    return merkleize(pack_bytes(data), (length + 255) // 256)


# --- decoding --------------------------------------------------------------------------------------


class SszType:
    """A decodable SSZ type; `fixed_size` is None for variable-size types."""

    fixed_size: int | None = None

    def decode(self, data: bytes) -> Any:
        """Decode exactly `data` into a Python value or raise `MalformedObject`."""
        raise NotImplementedError


class Uint(SszType):
    """`uintN`, decoded to `int`."""

    def __init__(self, size: int) -> None:
        self.fixed_size = size

    def decode(self, data: bytes) -> int:
        _expect_length(data, self.fixed_size, "uint")
        return int.from_bytes(data, "little")


class ByteVector(SszType):
    """`ByteVector[N]` (`Bytes32`, `BLSPubkey`, ...), decoded to `bytes`."""

    def __init__(self, size: int) -> None:
        self.fixed_size = size

    def decode(self, data: bytes) -> bytes:
        _expect_length(data, self.fixed_size, "byte vector")
        return bytes(data)


class ByteList(SszType):
    """`ByteList[limit]`, decoded to `bytes`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def decode(self, data: bytes) -> bytes:
        if len(data) > self.limit:
            raise MalformedObject("byte list longer than its limit", length=len(data), limit=self.limit)
        return bytes(data)


class Bitvector(SszType):
    """`Bitvector[N]`, decoded to its serialized bytes; bits past N must be zero."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.fixed_size = (length + 7) // 8

    def decode(self, data: bytes) -> bytes:
        _expect_length(data, self.fixed_size, "bitvector")
        if self.length % 8 and data[-1] >> (self.length % 8):
            raise MalformedObject("bitvector has bits set past its length", length=self.length)
        return bytes(data)


class Vector(SszType):
    """`Vector[T, N]` of a fixed-size `T`, decoded to a tuple."""

    def __init__(self, element: SszType, length: int) -> None:
        if element.fixed_size is None:
            raise TypeError("only vectors of fixed-size elements are supported")
        self.element = element
        self.length = length
        self.fixed_size = element.fixed_size * length

    def decode(self, data: bytes) -> tuple[Any, ...]:
        _expect_length(data, self.fixed_size, "vector")
        size = self.element.fixed_size or 0
        return tuple(self.element.decode(data[i * size : (i + 1) * size]) for i in range(self.length))


class Container(SszType):
    """A container, decoded to a dict keyed by field name."""

    def __init__(self, fields: Sequence[tuple[str, SszType]]) -> None:
        self.fields = tuple(fields)
        sizes = [field_type.fixed_size for _, field_type in self.fields]
        self.fixed_size = None if any(size is None for size in sizes) else sum(s or 0 for s in sizes)

    def decode(self, data: bytes) -> dict[str, Any]:
        data = bytes(data)
        fixed_part = sum(
            field_type.fixed_size if field_type.fixed_size is not None else BYTES_PER_LENGTH_OFFSET
            for _, field_type in self.fields
        )
        if len(data) < fixed_part:
            raise MalformedObject(
                "SSZ container shorter than its fixed part", length=len(data), fixed=fixed_part
            )
        position = 0
        fixed_values: dict[str, bytes] = {}
        offsets: list[tuple[str, int]] = []
        for name, field_type in self.fields:
            if field_type.fixed_size is None:
                offset = int.from_bytes(data[position : position + BYTES_PER_LENGTH_OFFSET], "little")
                offsets.append((name, offset))
                position += BYTES_PER_LENGTH_OFFSET
            else:
                fixed_values[name] = data[position : position + field_type.fixed_size]
                position += field_type.fixed_size
        if not offsets and len(data) != fixed_part:
            raise MalformedObject(
                "trailing bytes after an SSZ container", length=len(data), expected=fixed_part
            )
        if offsets and offsets[0][1] != fixed_part:
            raise MalformedObject(
                "first SSZ offset does not follow the fixed part", offset=offsets[0][1], expected=fixed_part
            )
        variable_values: dict[str, bytes] = {}
        for index, (name, start) in enumerate(offsets):
            end = offsets[index + 1][1] if index + 1 < len(offsets) else len(data)
            if not start <= end <= len(data):
                raise MalformedObject("SSZ offsets out of order", field=name, start=start, end=end)
            variable_values[name] = data[start:end]
        types = dict(self.fields)
        return {
            name: types[name].decode(fixed_values[name] if name in fixed_values else variable_values[name])
            for name, _ in self.fields
        }


def _expect_length(data: bytes, expected: int | None, what: str) -> None:
    if len(data) != expected:
        raise MalformedObject(f"{what} has the wrong length", length=len(data), expected=expected)
