"""Keccak-256, the hash of every on-chain structure.

Uses the C implementation of safe-pysha3 (about 1 µs per 64-byte input); `eth_hash`'s default
pycryptodome backend is about ten times slower, which dominates a 32-level Merkle branch.
"""

from __future__ import annotations

import sha3

_keccak = sha3.keccak_256


def keccak256(data: bytes) -> bytes:
    """Return the Keccak-256 digest of `data`."""
    return _keccak(data).digest()


def hash_pair(left: bytes, right: bytes) -> bytes:
    """Return keccak256(left || right), the inner node of the Merkle tree."""
    return _keccak(left + right).digest()


def tag(text: str) -> bytes:
    """Return a 32-byte domain-separation tag: ASCII text right-padded with zero bytes."""
    raw = text.encode("ascii")
    if len(raw) > 32:
        raise ValueError(f"tag longer than 32 bytes: {text!r}")
    return raw.ljust(32, b"\x00")
