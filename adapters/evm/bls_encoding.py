"""BLS12-381 points in the encodings the EIP-2537 precompiles take.

The Gateway contract takes points uncompressed: a G1 point (public key) as 128 bytes (`x || y`)
and a G2 point (signature, hashed message) as 256 bytes (`x.c0 || x.c1 || y.c0 || y.c1`), each
field element a 64-byte big-endian number whose top 16 bytes are zero; the point at infinity is
all zero bytes (docs/protocol.md, "BLS").

Compressed keys and signatures (48 and 96 bytes) convert with `public_key_to_eip2537` (cached)
and `signature_to_eip2537`; they live in `relay.verify.bls`, next to the committee hash that
needs them, and are re-exported here. This module adds the encoders for py_ecc's own points.
"""

from __future__ import annotations

from typing import Any

from py_ecc.optimized_bls12_381 import is_inf, normalize

from relay.verify.bls import public_key_to_eip2537, signature_to_eip2537

__all__ = [
    "G1_POINT_LENGTH",
    "G2_POINT_LENGTH",
    "encode_g1_point",
    "encode_g2_point",
    "public_key_to_eip2537",
    "signature_to_eip2537",
]

FIELD_ELEMENT_LENGTH = 64
G1_POINT_LENGTH = 2 * FIELD_ELEMENT_LENGTH
G2_POINT_LENGTH = 4 * FIELD_ELEMENT_LENGTH


def encode_g1_point(point: Any) -> bytes:
    """A py_ecc optimized (projective) G1 point as 128 EIP-2537 bytes."""
    if is_inf(point):
        return bytes(G1_POINT_LENGTH)
    x, y = normalize(point)
    return _field_element(x.n) + _field_element(y.n)


def encode_g2_point(point: Any) -> bytes:
    """A py_ecc optimized (projective) G2 point as 256 EIP-2537 bytes."""
    if is_inf(point):
        return bytes(G2_POINT_LENGTH)
    x, y = normalize(point)
    return b"".join(_field_element(int(c)) for c in (*x.coeffs, *y.coeffs))


def _field_element(value: int) -> bytes:
    return value.to_bytes(FIELD_ELEMENT_LENGTH, "big")
