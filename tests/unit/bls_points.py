"""Curve points outside the prime-order subgroups, built with py_ecc's maps (test data, not vectors).

SSWU followed by the isogeny lands on the curve but, before cofactor clearing, almost surely not in
the subgroup; the tests assert that they are on the curve and not in the subgroup before use.
"""

from __future__ import annotations

import hashlib

from py_ecc.bls.g2_primitives import compress_G1, compress_G2, subgroup_check
from py_ecc.bls.hash_to_curve import hash_to_field_FQ, hash_to_field_FQ2, map_to_curve_G1, map_to_curve_G2
from py_ecc.optimized_bls12_381 import is_on_curve, normalize
from py_ecc.optimized_bls12_381.optimized_curve import b, b2

DST = b"RELAY-TEST-NOT-IN-SUBGROUP"


def g1_point_outside_subgroup() -> bytes:
    """A compressed G1 point on the curve but outside the r-torsion subgroup."""
    point = map_to_curve_G1(hash_to_field_FQ(b"g1", 1, DST, hashlib.sha256)[0])
    if not is_on_curve(point, b) or subgroup_check(point):
        raise RuntimeError("construction failed: point not on curve or inside the subgroup")
    return compress_G1(normalize_to_jacobian(point)).to_bytes(48, "big")


def g2_point_outside_subgroup() -> bytes:
    """A compressed G2 point on the twist but outside the r-torsion subgroup."""
    point = map_to_curve_G2(hash_to_field_FQ2(b"g2", 1, DST, hashlib.sha256)[0])
    if not is_on_curve(point, b2) or subgroup_check(point):
        raise RuntimeError("construction failed: point not on curve or inside the subgroup")
    z1, z2 = compress_G2(normalize_to_jacobian(point))
    return z1.to_bytes(48, "big") + z2.to_bytes(48, "big")


def normalize_to_jacobian(point):  # type: ignore[no-untyped-def]
    """Return the point with z = 1 (compress_* expects normalised coordinates)."""
    x, y = normalize(point)
    return (x, y, type(x).one())
