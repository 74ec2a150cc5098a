"""A real rogue-key construction (test data): pk_rogue = x*G1 - sum(other members' keys).

Whoever picks `x` does not know the secret key of pk_rogue, but the committee's aggregate key
(every member's key summed) is x*G1, so a signature by `x` alone passes FastAggregateVerify for
the whole committee. A proof of possession is what stops it: nobody can sign pk_rogue's own bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from py_ecc.bls.g2_primitives import G1_to_pubkey, pubkey_to_G1
from py_ecc.optimized_bls12_381 import G1, add, multiply, neg

from adapters.evm.bls_encoding import encode_g1_point


@dataclass(frozen=True)
class RogueKey:
    """The rogue public key (48-byte compressed and 128-byte EIP-2537) and the attacker's secret x."""

    public_key: bytes
    eip2537: bytes
    secret: int


def make_rogue_key(other_public_keys: Sequence[bytes], secret: int) -> RogueKey:
    """pk_rogue = secret*G1 - sum(other_public_keys), so that the sum of all keys is secret*G1."""
    point: Any = multiply(G1, secret)
    for public_key in other_public_keys:
        point = add(point, neg(pubkey_to_G1(public_key)))
    return RogueKey(bytes(G1_to_pubkey(point)), encode_g1_point(point), secret)
