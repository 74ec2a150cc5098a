"""Threshold verification of secp256k1-signed checkpoints: a committee as an ECDSA multisig.

Signers are Ethereum addresses with weights. Each signs the EIP-191 hash
("\\x19Ethereum Signed Message:\\n32" || digest) of a 32-byte digest, as wallets and
Hyperlane validators do, so signatures recover on-chain with `ecrecover` too. High-s signatures
are rejected (EIP-2 malleability). Uses coincurve (libsecp256k1).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from coincurve import PublicKey

from relay.errors import DuplicateSigner, InvalidCommittee, InvalidSignature, QuorumNotReached, UnknownSigner
from relay.verify.committee import compute_default_threshold
from relay.verify.hashing import keccak256

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_ORDER = SECP256K1_ORDER // 2
SIGNATURE_LENGTH = 65


def compute_eth_signed_message_hash(digest: bytes) -> bytes:
    """EIP-191 personal-sign hash of a 32-byte digest."""
    return keccak256(b"\x19Ethereum Signed Message:\n32" + digest)


def recover_address(message_hash: bytes, signature: bytes) -> bytes:
    """Return the 20-byte address that signed `message_hash` (r || s || v, v in {0, 1, 27, 28})."""
    if len(message_hash) != 32:
        raise InvalidSignature("ECDSA signs a 32-byte hash", length=len(message_hash))
    if len(signature) != SIGNATURE_LENGTH:
        raise InvalidSignature("ECDSA signature must be 65 bytes", length=len(signature))
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    recovery = v - 27 if v >= 27 else v
    if recovery not in (0, 1):
        raise InvalidSignature("ECDSA recovery id must be 0/1 or 27/28", v=v)
    if not (0 < r < SECP256K1_ORDER and 0 < s <= _HALF_ORDER):
        raise InvalidSignature("ECDSA r or s out of range (high s is malleable)", r=r, s=s)
    try:
        key = PublicKey.from_signature_and_message(
            signature[:64] + bytes([recovery]), message_hash, hasher=None
        )
    except Exception as error:  # coincurve raises plain Exception on a failed recovery
        raise InvalidSignature("ECDSA signature does not recover", signature=signature) from error
    return keccak256(key.format(compressed=False)[1:])[12:]


@dataclass(frozen=True)
class EcdsaCommittee:
    """Signer addresses (20 bytes each) with weights and a threshold."""

    epoch: int
    signers: tuple[bytes, ...]
    weights: tuple[int, ...]
    threshold: int

    @classmethod
    def create(
        cls,
        epoch: int,
        signers: Sequence[bytes],
        weights: Sequence[int] | None = None,
        threshold: int | None = None,
    ) -> EcdsaCommittee:
        """Validate and build; raise `InvalidCommittee` on duplicates, bad weights or threshold."""
        chosen_weights = tuple(weights) if weights is not None else (1,) * len(signers)
        if not signers or len(chosen_weights) != len(signers):
            raise InvalidCommittee("signers and weights must be non-empty and equal in length")
        if len(set(signers)) != len(signers) or any(len(a) != 20 for a in signers):
            raise InvalidCommittee("signers must be distinct 20-byte addresses")
        if any(w <= 0 for w in chosen_weights):
            raise InvalidCommittee("weights must be positive", weights=chosen_weights)
        total = sum(chosen_weights)
        chosen = compute_default_threshold(total) if threshold is None else threshold
        if not 0 < chosen <= total:
            raise InvalidCommittee("threshold must be in 1..total weight", threshold=chosen, total=total)
        return cls(epoch, tuple(bytes(a) for a in signers), chosen_weights, chosen)

    def index_of(self, address: bytes) -> int:
        """The member index of `address`; raise `UnknownSigner` if it is not a member."""
        try:
            return self.signers.index(address)
        except ValueError:
            raise UnknownSigner("ECDSA signer not in the committee", signer=address) from None

    def verify_threshold(self, digest: bytes, signatures: Sequence[bytes]) -> list[bytes]:
        """Raise unless distinct members holding `threshold` weight signed `digest` (EIP-191).

        Returns the recovered signer addresses in signature order.
        """
        message_hash = compute_eth_signed_message_hash(digest)
        seen: set[int] = set()
        recovered = []
        weight = 0
        for signature in signatures:
            address = recover_address(message_hash, signature)
            index = self.index_of(address)
            if index in seen:
                raise DuplicateSigner("ECDSA signer counted twice", signer=address)
            seen.add(index)
            weight += self.weights[index]
            recovered.append(address)
        if weight < self.threshold:
            raise QuorumNotReached(
                "ECDSA signers' weight below the threshold", signed=weight, threshold=self.threshold
            )
        return recovered


def compute_hyperlane_domain_hash(domain: int, merkle_tree_hook: bytes) -> bytes:
    """Hyperlane's validator-announce domain hash: keccak(domain u32 || hook bytes32 || "HYPERLANE")."""
    return keccak256(struct.pack(">I", domain) + merkle_tree_hook + b"HYPERLANE")


def compute_hyperlane_checkpoint_digest(
    domain: int, merkle_tree_hook: bytes, root: bytes, index: int
) -> bytes:
    """Digest of Hyperlane's (legacy, message-id-less) checkpoint: keccak(domain_hash || root || index u32)."""
    return keccak256(
        compute_hyperlane_domain_hash(domain, merkle_tree_hook) + root + struct.pack(">I", index)
    )


def sign_digest(secret_key: bytes, digest: bytes) -> bytes:
    """Sign the EIP-191 hash of `digest`; return r || s || v (v = 27/28). For attestors and tests."""
    from coincurve import PrivateKey

    raw = PrivateKey(secret_key).sign_recoverable(compute_eth_signed_message_hash(digest), hasher=None)
    return raw[:64] + bytes([raw[64] + 27])
