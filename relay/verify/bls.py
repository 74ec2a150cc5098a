"""BLS12-381 signatures, ciphersuite `BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`.

Two interchangeable backends behind one interface:

- `py_ecc`: the pure-Python reference (always available; seconds per verification).
- `blst`: supranational/blst through the `pyblst` bindings (about 2 ms per pairing check).

`get_backend()` picks one by name, else by the `RELAY_BLS_BACKEND` environment variable, else the
fast backend where it is installed. Both reject the identity public key and points outside the
prime-order subgroup; the tests check that they agree byte for byte.

Public keys can be decoded once into opaque handles (`decode_public_key`) and reused, as a running
relayer does for its committees: decoding a 48-byte key costs a square root and a subgroup check.
Functions named `verify_*` return None or raise `InvalidSignature` / `InvalidPublicKey`.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any

from relay.errors import BackendUnavailable, InvalidProofOfPossession, InvalidPublicKey, InvalidSignature

SIGNATURE_DST = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
POP_DST = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
PUBLIC_KEY_LENGTH = 48
SIGNATURE_LENGTH = 96
CURVE_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
IDENTITY_PUBLIC_KEY = b"\xc0" + b"\x00" * 47
IDENTITY_SIGNATURE = b"\xc0" + b"\x00" * 95
ENV_VARIABLE = "RELAY_BLS_BACKEND"

PublicKeyHandle = Any
"""A decoded, validated public key; its type belongs to the backend that made it."""


class BlsBackend(ABC):
    """One implementation of the ciphersuite. Stateless; safe to share between threads."""

    name: str

    # --- keys and signing ------------------------------------------------------------------

    @abstractmethod
    def secret_to_public_key(self, secret_key: int) -> bytes:
        """Return the 48-byte compressed public key of `secret_key`."""

    @abstractmethod
    def sign(self, secret_key: int, message: bytes) -> bytes:
        """Return the 96-byte signature of `message`."""

    @abstractmethod
    def prove_possession(self, secret_key: int) -> bytes:
        """Return the proof of possession: a signature of the public key under `POP_DST`."""

    # --- decoding and aggregation -------------------------------------------------------------

    @abstractmethod
    def decode_public_key(self, data: bytes) -> PublicKeyHandle:
        """Decode and validate a public key (on curve, in subgroup, not identity) or raise."""

    @abstractmethod
    def encode_public_key(self, key: PublicKeyHandle) -> bytes:
        """Return the 48-byte compressed encoding of a handle."""

    @abstractmethod
    def aggregate_public_keys(self, keys: Sequence[PublicKeyHandle]) -> PublicKeyHandle:
        """Return the sum of `keys` (at least one)."""

    @abstractmethod
    def negate_public_key(self, key: PublicKeyHandle) -> PublicKeyHandle:
        """Return -key, so an aggregate can be reduced by the keys that did not sign."""

    @abstractmethod
    def aggregate_signatures(self, signatures: Sequence[bytes]) -> bytes:
        """Return the sum of `signatures`; raise `InvalidSignature` if empty or one is invalid."""

    # --- verification -------------------------------------------------------------------------

    @abstractmethod
    def _verify_point(self, key: PublicKeyHandle, message: bytes, signature: bytes, dst: bytes) -> bool:
        """The pairing check e(key, H(message)) == e(g1, signature); raises only on a bad encoding."""

    @abstractmethod
    def _is_identity(self, key: PublicKeyHandle) -> bool:
        """Whether a (possibly aggregate) key is the identity point."""

    def verify_with_key(self, key: PublicKeyHandle, message: bytes, signature: bytes) -> None:
        """Raise `InvalidSignature` unless `signature` signs `message` under the (aggregate) `key`."""
        if self._is_identity(key):
            raise InvalidPublicKey("identity public key")
        if not self._verify_point(key, message, signature, SIGNATURE_DST):
            raise InvalidSignature("signature does not verify", message=message, signature=signature)

    def verify_possession_with_key(self, key: PublicKeyHandle, proof: bytes) -> None:
        """Raise `InvalidProofOfPossession` unless `proof` is the key's proof of possession."""
        try:
            valid = self._verify_point(key, self.encode_public_key(key), proof, POP_DST)
        except InvalidSignature as error:
            raise InvalidProofOfPossession("proof of possession does not decode", proof=proof) from error
        if not valid:
            raise InvalidProofOfPossession(
                "proof of possession does not verify", public_key=self.encode_public_key(key)
            )

    @abstractmethod
    def verify_aggregate(
        self, keys: Sequence[PublicKeyHandle], messages: Sequence[bytes], signature: bytes
    ) -> None:
        """AggregateVerify: distinct messages, one signature each, summed."""

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> None:
        """Raise unless `signature` is a valid signature of `message` by `public_key`."""
        self.verify_with_key(self.decode_public_key(public_key), message, signature)

    def verify_fast_aggregate(
        self, keys: Sequence[PublicKeyHandle], message: bytes, signature: bytes
    ) -> None:
        """FastAggregateVerify over decoded keys: all of them signed the same `message`."""
        if not keys:
            raise InvalidSignature("fast aggregate verify needs at least one public key")
        self.verify_with_key(self.aggregate_public_keys(keys), message, signature)

    def verify_fast_aggregate_bytes(
        self, public_keys: Sequence[bytes], message: bytes, signature: bytes
    ) -> None:
        """FastAggregateVerify from encoded keys (decodes and validates every key)."""
        self.verify_fast_aggregate([self.decode_public_key(pk) for pk in public_keys], message, signature)

    def verify_possession(self, public_key: bytes, proof: bytes) -> None:
        """Raise unless `proof` proves possession of the secret key of `public_key`."""
        try:
            key = self.decode_public_key(public_key)
        except InvalidPublicKey as error:
            raise InvalidProofOfPossession(
                "proof of possession for an invalid public key", public_key=public_key
            ) from error
        self.verify_possession_with_key(key, proof)


def _check_lengths(
    data: bytes, length: int, what: str, error: type[InvalidSignature] | type[InvalidPublicKey]
) -> None:
    if not isinstance(data, (bytes, bytearray)) or len(data) != length:
        raise error(
            f"{what} must be {length} bytes",
            length=len(data) if isinstance(data, (bytes, bytearray)) else None,
        )


def _check_aggregate_inputs(keys: Sequence[Any], messages: Sequence[bytes]) -> None:
    if not keys or len(keys) != len(messages):
        raise InvalidSignature("aggregate verify needs one message per key", keys=len(keys))
    if len(set(messages)) != len(messages):
        raise InvalidSignature("aggregate verify needs distinct messages")


def _check_secret(secret_key: int) -> None:
    if not 0 < secret_key < CURVE_ORDER:
        raise ValueError("secret key out of range")


# --- py_ecc: the reference ---------------------------------------------------------------------


class PyEccBackend(BlsBackend):
    """The pure-Python reference, built on py_ecc's curve arithmetic."""

    name = "py_ecc"

    def __init__(self) -> None:
        from py_ecc.bls import G2ProofOfPossession
        from py_ecc.bls import g2_primitives as prim
        from py_ecc.bls.hash_to_curve import hash_to_G2
        from py_ecc.optimized_bls12_381 import curve_order  # noqa: F401 - import check
        from py_ecc.optimized_bls12_381 import optimized_curve as curve
        from py_ecc.optimized_bls12_381 import optimized_pairing as pairing

        # py_ecc's NewType-based hints (BLSPubkey, HASH) add nothing here: keep its modules untyped.
        self._scheme: Any = G2ProofOfPossession
        self._prim: Any = prim
        self._hash_to_g2: Any = hash_to_G2
        self._curve: Any = curve
        self._pairing: Any = pairing

    def secret_to_public_key(self, secret_key: int) -> bytes:
        _check_secret(secret_key)
        return bytes(self._scheme.SkToPk(secret_key))

    def sign(self, secret_key: int, message: bytes) -> bytes:
        _check_secret(secret_key)
        return bytes(self._scheme.Sign(secret_key, message))

    def prove_possession(self, secret_key: int) -> bytes:
        _check_secret(secret_key)
        return bytes(self._scheme.PopProve(secret_key))

    def decode_public_key(self, data: bytes) -> PublicKeyHandle:
        _check_lengths(data, PUBLIC_KEY_LENGTH, "public key", InvalidPublicKey)
        try:
            point = self._prim.pubkey_to_G1(bytes(data))
        except (ValueError, AssertionError) as error:
            raise InvalidPublicKey("public key does not decode", public_key=data) from error
        if self._curve.is_inf(point):
            raise InvalidPublicKey("identity public key", public_key=data)
        if not self._prim.subgroup_check(point):
            raise InvalidPublicKey("public key outside the G1 subgroup", public_key=data)
        return point

    def encode_public_key(self, key: PublicKeyHandle) -> bytes:
        return bytes(self._prim.G1_to_pubkey(key))

    def aggregate_public_keys(self, keys: Sequence[PublicKeyHandle]) -> PublicKeyHandle:
        if not keys:
            raise InvalidPublicKey("cannot aggregate zero public keys")
        total = keys[0]
        for key in keys[1:]:
            total = self._curve.add(total, key)
        return total

    def negate_public_key(self, key: PublicKeyHandle) -> PublicKeyHandle:
        return self._curve.neg(key)

    def _decode_signature(self, signature: bytes) -> Any:
        _check_lengths(signature, SIGNATURE_LENGTH, "signature", InvalidSignature)
        try:
            point = self._prim.signature_to_G2(bytes(signature))
        except (ValueError, AssertionError) as error:
            raise InvalidSignature("signature does not decode", signature=signature) from error
        if not self._prim.subgroup_check(point):
            raise InvalidSignature("signature outside the G2 subgroup", signature=signature)
        return point

    def aggregate_signatures(self, signatures: Sequence[bytes]) -> bytes:
        if not signatures:
            raise InvalidSignature("cannot aggregate zero signatures")
        total = self._curve.Z2
        for signature in signatures:
            total = self._curve.add(total, self._decode_signature(signature))
        return bytes(self._prim.G2_to_signature(total))

    def _pairing_check(self, pairs: Sequence[tuple[Any, Any]]) -> bool:
        product = self._curve.FQ12.one()
        for g2_point, g1_point in pairs:
            product *= self._pairing.pairing(g2_point, g1_point, final_exponentiate=False)
        return bool(self._pairing.final_exponentiate(product) == self._curve.FQ12.one())

    def _verify_point(self, key: Any, message: bytes, signature: bytes, dst: bytes) -> bool:
        sig_point = self._decode_signature(signature)
        hashed = self._hash_to_g2(message, dst, hashlib.sha256)
        return self._pairing_check([(hashed, key), (sig_point, self._curve.neg(self._curve.G1))])

    def _is_identity(self, key: PublicKeyHandle) -> bool:
        return bool(self._curve.is_inf(key))

    def verify_aggregate(
        self, keys: Sequence[PublicKeyHandle], messages: Sequence[bytes], signature: bytes
    ) -> None:
        _check_aggregate_inputs(keys, messages)
        sig_point = self._decode_signature(signature)
        pairs = [
            (self._hash_to_g2(m, SIGNATURE_DST, hashlib.sha256), k)
            for k, m in zip(keys, messages, strict=True)
        ]
        pairs.append((sig_point, self._curve.neg(self._curve.G1)))
        if not self._pairing_check(pairs):
            raise InvalidSignature("aggregate signature does not verify", signature=signature)


# --- blst through pyblst ----------------------------------------------------------------------


class BlstBackend(BlsBackend):
    """supranational/blst through `pyblst`: raw group operations, the scheme assembled here.

    `pyblst`'s decoding checks the curve equation and subgroup membership; it accepts the identity,
    which this backend rejects as the ciphersuite's KeyValidate requires.
    """

    name = "blst"

    def __init__(self) -> None:
        import pyblst

        self._p1 = pyblst.BlstP1Element
        self._p2 = pyblst.BlstP2Element
        self._miller_loop = pyblst.miller_loop
        self._final_verify = pyblst.final_verify
        self._generator = self._p1.uncompress(
            bytes.fromhex(
                "97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb"
            )
        )
        self._identity_g1 = self._p1()

    def secret_to_public_key(self, secret_key: int) -> bytes:
        _check_secret(secret_key)
        return bytes(self._generator.scalar_mul(secret_key).compress())

    def sign(self, secret_key: int, message: bytes) -> bytes:
        _check_secret(secret_key)
        return bytes(self._p2.hash_to_group(message, SIGNATURE_DST).scalar_mul(secret_key).compress())

    def prove_possession(self, secret_key: int) -> bytes:
        _check_secret(secret_key)
        public_key = self.secret_to_public_key(secret_key)
        return bytes(self._p2.hash_to_group(public_key, POP_DST).scalar_mul(secret_key).compress())

    def decode_public_key(self, data: bytes) -> PublicKeyHandle:
        _check_lengths(data, PUBLIC_KEY_LENGTH, "public key", InvalidPublicKey)
        if bytes(data) == IDENTITY_PUBLIC_KEY:
            raise InvalidPublicKey("identity public key", public_key=data)
        try:
            return self._p1.uncompress(bytes(data))
        except ValueError as error:
            raise InvalidPublicKey(f"public key rejected: {error}", public_key=data) from error

    def encode_public_key(self, key: PublicKeyHandle) -> bytes:
        return bytes(key.compress())

    def aggregate_public_keys(self, keys: Sequence[PublicKeyHandle]) -> PublicKeyHandle:
        if not keys:
            raise InvalidPublicKey("cannot aggregate zero public keys")
        total = keys[0]
        for key in keys[1:]:
            total = total + key
        return total

    def negate_public_key(self, key: PublicKeyHandle) -> PublicKeyHandle:
        return -key

    def _decode_signature(self, signature: bytes) -> Any:
        _check_lengths(signature, SIGNATURE_LENGTH, "signature", InvalidSignature)
        try:
            return self._p2.uncompress(bytes(signature))
        except ValueError as error:
            raise InvalidSignature(f"signature rejected: {error}", signature=signature) from error

    def aggregate_signatures(self, signatures: Sequence[bytes]) -> bytes:
        if not signatures:
            raise InvalidSignature("cannot aggregate zero signatures")
        total = self._decode_signature(signatures[0])
        for signature in signatures[1:]:
            total = total + self._decode_signature(signature)
        return bytes(total.compress())

    def _verify_point(self, key: Any, message: bytes, signature: bytes, dst: bytes) -> bool:
        sig_point = self._decode_signature(signature)
        hashed = self._p2.hash_to_group(message, dst)
        return bool(
            self._final_verify(self._miller_loop(key, hashed), self._miller_loop(self._generator, sig_point))
        )

    def _is_identity(self, key: PublicKeyHandle) -> bool:
        return bool(key == self._identity_g1)

    def verify_aggregate(
        self, keys: Sequence[PublicKeyHandle], messages: Sequence[bytes], signature: bytes
    ) -> None:
        _check_aggregate_inputs(keys, messages)
        sig_point = self._decode_signature(signature)
        left = None
        for key, message in zip(keys, messages, strict=True):
            loop = self._miller_loop(key, self._p2.hash_to_group(message, SIGNATURE_DST))
            left = loop if left is None else left * loop
        if not self._final_verify(left, self._miller_loop(self._generator, sig_point)):
            raise InvalidSignature("aggregate signature does not verify", signature=signature)


# --- selection ------------------------------------------------------------------------------

_BACKENDS: dict[str, type[BlsBackend]] = {"blst": BlstBackend, "py_ecc": PyEccBackend}
FAST_BACKEND = "blst"
REFERENCE_BACKEND = "py_ecc"


@cache
def _instantiate(name: str) -> BlsBackend:
    try:
        return _BACKENDS[name]()
    except ImportError as error:
        raise BackendUnavailable(
            f"BLS backend {name!r} is not installed", backend=name, cause=str(error)
        ) from error


def available_backends() -> list[str]:
    """Names of the backends that can be used on this machine, fast first."""
    names = []
    for name in _BACKENDS:
        try:
            _instantiate(name)
        except BackendUnavailable:
            continue
        names.append(name)
    return names


def get_backend(name: str | None = None) -> BlsBackend:
    """Return the backend called `name`, else `$RELAY_BLS_BACKEND`, else the fastest installed."""
    chosen = name or os.environ.get(ENV_VARIABLE) or None
    if chosen is None:
        return _instantiate(available_backends()[0])
    if chosen not in _BACKENDS:
        raise BackendUnavailable(f"unknown BLS backend {chosen!r}", backend=chosen, known=sorted(_BACKENDS))
    return _instantiate(chosen)


def keygen(seed: bytes) -> int:
    """Derive a secret key from at least 32 bytes of seed with the ciphersuite's KeyGen (HKDF)."""
    from py_ecc.bls import G2ProofOfPossession

    if len(seed) < 32:
        raise ValueError("KeyGen needs at least 32 bytes of seed")
    return int(G2ProofOfPossession.KeyGen(seed))


def eth_fast_aggregate_verify(
    backend: BlsBackend, public_keys: Sequence[bytes], message: bytes, signature: bytes
) -> None:
    """Ethereum's variant (Altair): no keys and the identity signature is valid; else FastAggregateVerify."""
    if not public_keys and bytes(signature) == IDENTITY_SIGNATURE:
        return
    backend.verify_fast_aggregate_bytes(public_keys, message, signature)


# --- EIP-2537 encodings (what the on-chain verifier takes) ---------------------------------------


@cache
def public_key_to_eip2537(public_key: bytes) -> bytes:
    """Return the 128-byte EIP-2537 G1 encoding (x || y, 64-byte big-endian each) of a public key."""
    from py_ecc.bls import g2_primitives
    from py_ecc.optimized_bls12_381 import normalize

    primitives: Any = g2_primitives
    try:
        x, y = normalize(primitives.pubkey_to_G1(bytes(public_key)))
    except (ValueError, AssertionError) as error:
        raise InvalidPublicKey("public key does not decode", public_key=public_key) from error
    return int(x.n).to_bytes(64, "big") + int(y.n).to_bytes(64, "big")


def signature_to_eip2537(signature: bytes) -> bytes:
    """Return the 256-byte EIP-2537 G2 encoding (x.c0 || x.c1 || y.c0 || y.c1) of a signature.

    Remembered per signature: every batch under one checkpoint carries the same certificate, and
    decompressing a G2 point in pure Python costs milliseconds."""
    return _signature_to_eip2537(bytes(signature))


@lru_cache(maxsize=1024)
def _signature_to_eip2537(signature: bytes) -> bytes:
    from py_ecc.bls import g2_primitives
    from py_ecc.optimized_bls12_381 import normalize

    primitives: Any = g2_primitives
    try:
        x, y = normalize(primitives.signature_to_G2(signature))
    except (ValueError, AssertionError) as error:
        raise InvalidSignature("signature does not decode", signature=signature) from error
    return b"".join(int(c).to_bytes(64, "big") for c in (*x.coeffs, *y.coeffs))


def proof_of_possession_to_eip2537(proof: bytes) -> bytes:
    """Return the 256-byte EIP-2537 G2 encoding of a 96-byte proof of possession (a G2 point like
    a signature), as the Gateway's `Member.proofOfPossession` takes it."""
    try:
        return signature_to_eip2537(proof)
    except InvalidSignature as error:
        raise InvalidProofOfPossession("proof of possession does not decode", proof=proof) from error
