"""ECDSA committees: an origin's committee as a weighted multisig of Ethereum addresses.

Signers are Ethereum addresses with weights. Each signs the EIP-191 hash
("\\x19Ethereum Signed Message:\\n32" || digest) of a 32-byte digest, as wallets and
Hyperlane validators do, so signatures recover on-chain with `ecrecover` too. High-s signatures
are rejected (EIP-2 malleability). Uses coincurve (libsecp256k1).

The Gateway's ECDSA mode (docs/protocol.md, "ECDSA committee"; contracts/EcdsaCommittees.sol):
members sign the same checkpoint_digest and handover_digest as a BLS committee; a certificate
(`EcdsaCertificate`) is the BLS signer bitfield plus one 65-byte signature r || s || v per set
bit, concatenated in ascending member index. `verify_ecdsa_checkpoint` and
`verify_ecdsa_handover` apply the contract's rules in the contract's order, so whatever passes
here passes on-chain.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from coincurve import PublicKey

from relay.errors import (
    DuplicateSigner,
    EpochMismatch,
    GatewayMismatch,
    InvalidCommittee,
    InvalidHandover,
    InvalidProof,
    InvalidSignature,
    OriginMismatch,
    QuorumNotReached,
    UnknownSigner,
)
from relay.verify.committee import (
    Checkpoint,
    compute_default_threshold,
    compute_handover_digest,
    decode_bitfield,
    encode_bitfield,
)
from relay.verify.hashing import keccak256, tag

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_ORDER = SECP256K1_ORDER // 2
SIGNATURE_LENGTH = 65
ECDSA_COMMITTEE_TAG = tag("RELAY/ECDSA-COMMITTEE/V1")
MAX_COMMITTEE_SIZE = 128  # the Gateway's MAX_COMMITTEE_SIZE, shared with BLS committees
_UINT64_MAX = 2**64 - 1
_ZERO_ADDRESS = bytes(20)


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


def recover_member_signature(message_hash: bytes, signature: bytes) -> bytes:
    """`recover_address` with the Gateway's rules for certificates: v must be 27 or 28."""
    if len(signature) == SIGNATURE_LENGTH and signature[64] not in (27, 28):
        raise InvalidSignature("ECDSA recovery id must be 27 or 28", v=signature[64])
    return recover_address(message_hash, signature)


@dataclass(frozen=True, slots=True)
class EcdsaCertificate:
    """A signer bitfield (as in a BLS `QuorumCertificate`) and, as `signature`, the signers'
    65-byte signatures concatenated in ascending member index."""

    signers: bytes
    signature: bytes

    def signer_indices(self, size: int) -> list[int]:
        """The indices of the signers in a committee of `size` members."""
        return decode_bitfield(self.signers, size)

    def signatures(self) -> list[bytes]:
        """The 65-byte signatures, in the order of `signer_indices`."""
        return [
            self.signature[start : start + SIGNATURE_LENGTH]
            for start in range(0, len(self.signature), SIGNATURE_LENGTH)
        ]


@dataclass(frozen=True)
class EcdsaCommittee:
    """Signer addresses (20 bytes each) with weights and a threshold, for one epoch.

    Build with `create`, which applies the Gateway's rules (`enrollOriginEcdsa`).
    """

    epoch: int
    signers: tuple[bytes, ...]
    weights: tuple[int, ...]
    threshold: int
    _hash: bytes = field(default=b"", init=False, repr=False, compare=False)

    @classmethod
    def create(
        cls,
        epoch: int,
        signers: Sequence[bytes],
        weights: Sequence[int] | None = None,
        threshold: int | None = None,
        *,
        allow_low_threshold: bool = False,
    ) -> EcdsaCommittee:
        """Validate and build; raise `InvalidCommittee` as the Gateway refuses the committee.

        1..128 distinct, non-zero 20-byte addresses; weights positive u64 (1 each by default);
        0 < threshold <= total weight (default: more than two thirds of it), and a threshold below
        two thirds (3 * threshold < 2 * total) only with `allow_low_threshold`, as the Gateway
        accepts it only for an origin with `setLowThresholdAllowed`.
        """
        chosen_weights = tuple(weights) if weights is not None else (1,) * len(signers)
        if not 0 <= epoch <= _UINT64_MAX:
            raise InvalidCommittee("epoch out of range", epoch=epoch)
        if not signers or len(chosen_weights) != len(signers):
            raise InvalidCommittee(
                "signers and weights must be non-empty and equal in length",
                signers=len(signers),
                weights=len(chosen_weights),
            )
        if len(signers) > MAX_COMMITTEE_SIZE:
            raise InvalidCommittee("too many signers", size=len(signers), max=MAX_COMMITTEE_SIZE)
        addresses = tuple(bytes(a) for a in signers)
        for index, address in enumerate(addresses):
            if len(address) != 20 or address == _ZERO_ADDRESS:
                raise InvalidCommittee(
                    "signers must be non-zero 20-byte addresses", index=index, signer=address
                )
        if len(set(addresses)) != len(addresses):
            raise InvalidCommittee("signers must be distinct", signers=addresses)
        for index, weight in enumerate(chosen_weights):
            if not isinstance(weight, int) or not 0 < weight <= _UINT64_MAX:
                raise InvalidCommittee("signer weight must be a positive u64", index=index, weight=weight)
        total = sum(chosen_weights)
        chosen = compute_default_threshold(total) if threshold is None else threshold
        if not 0 < chosen <= total or chosen > _UINT64_MAX:
            raise InvalidCommittee("threshold must be in 1..total weight", threshold=chosen, total=total)
        if 3 * chosen < 2 * total and not allow_low_threshold:
            raise InvalidCommittee(
                "threshold below two thirds of the total weight (allow_low_threshold to accept it)",
                threshold=chosen,
                total=total,
            )
        return cls(epoch, addresses, chosen_weights, chosen)

    def __len__(self) -> int:
        return len(self.signers)

    @property
    def total_weight(self) -> int:
        """The sum of every member's weight."""
        return sum(self.weights)

    def hash(self) -> bytes:
        """ecdsa_committee_hash of docs/protocol.md (the Gateway's computeEcdsaCommitteeHash)."""
        if not self._hash:
            parts = [ECDSA_COMMITTEE_TAG, struct.pack(">QQI", self.epoch, self.threshold, len(self.signers))]
            for signer, weight in zip(self.signers, self.weights, strict=True):
                parts.append(signer + struct.pack(">Q", weight))
            object.__setattr__(self, "_hash", keccak256(b"".join(parts)))
        return self._hash

    def index_of(self, address: bytes) -> int:
        """The member index of `address`; raise `UnknownSigner` if it is not a member."""
        try:
            return self.signers.index(address)
        except ValueError:
            raise UnknownSigner("ECDSA signer not in the committee", signer=address) from None

    def signed_weight(self, indices: Iterable[int]) -> int:
        """Total weight of the member indices."""
        return sum(self.weights[i] for i in indices)

    def verify_threshold(self, digest: bytes, signatures: Sequence[bytes]) -> list[bytes]:
        """Raise unless distinct members holding `threshold` weight signed `digest` (EIP-191).

        Signatures in any order, each found by the address it recovers (not a certificate: see
        `verify_certificate`). Returns the recovered signer addresses in signature order.
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

    def verify_certificate(self, digest: bytes, certificate: EcdsaCertificate) -> int:
        """Raise unless `certificate` proves a quorum of this committee signed `digest`; return
        the signed weight. The Gateway's checks in its order: the bitfield (`UnknownSigner`), the
        signers' weight (`QuorumNotReached`), 65 bytes per signer, then each signature (v 27/28,
        low s, recovers to the member its bit names: `InvalidSignature` with `member_index`)."""
        indices = decode_bitfield(certificate.signers, len(self.signers))
        weight = self.signed_weight(indices)
        if weight < self.threshold:
            raise QuorumNotReached(
                "ECDSA signers' weight below the threshold",
                signed=weight,
                threshold=self.threshold,
                epoch=self.epoch,
            )
        expected = SIGNATURE_LENGTH * len(indices)
        if len(certificate.signature) != expected:
            raise InvalidSignature(
                "ECDSA certificate must hold 65 bytes per signer",
                length=len(certificate.signature),
                expected=expected,
            )
        message_hash = compute_eth_signed_message_hash(digest)
        for index, signature in zip(indices, certificate.signatures(), strict=True):
            try:
                recovered = recover_member_signature(message_hash, signature)
            except InvalidSignature as error:
                error.fields["member_index"] = index
                raise
            if recovered != self.signers[index]:
                raise InvalidSignature(
                    "ECDSA signature recovers to another address than its member",
                    member_index=index,
                    member=self.signers[index],
                    recovered=recovered,
                )
        return weight

    def aggregate(
        self,
        digest: bytes,
        signatures: Iterable[tuple[int, bytes]] | Mapping[int, bytes],
        *,
        verify_each: bool = True,
    ) -> EcdsaCertificate:
        """Combine (member index, 65-byte signature) pairs over `digest` into a certificate.

        With `verify_each` every signature must recover to its member first, so one bad attestor
        cannot spoil the certificate; raises `DuplicateSigner`, `UnknownSigner`, `InvalidSignature`.
        """
        pairs = sorted(signatures.items() if isinstance(signatures, Mapping) else signatures)
        bitfield = encode_bitfield([index for index, _ in pairs], len(self.signers))
        message_hash = compute_eth_signed_message_hash(digest)
        for index, signature in pairs:
            if len(signature) != SIGNATURE_LENGTH:
                raise InvalidSignature(
                    "ECDSA signature must be 65 bytes", member_index=index, length=len(signature)
                )
            if verify_each:
                try:
                    recovered = recover_member_signature(message_hash, signature)
                except InvalidSignature as error:
                    error.fields["member_index"] = index
                    raise
                if recovered != self.signers[index]:
                    raise InvalidSignature(
                        "ECDSA signature of another address than its member",
                        member_index=index,
                        recovered=recovered,
                    )
        return EcdsaCertificate(bitfield, b"".join(signature for _, signature in pairs))


def build_ecdsa_certificate(
    committee: EcdsaCommittee,
    digest: bytes,
    signatures: Iterable[tuple[int, bytes]] | Mapping[int, bytes],
    *,
    verify_each: bool = True,
) -> EcdsaCertificate:
    """`committee.aggregate`: the certificate of (member index, signature) pairs over `digest`."""
    return committee.aggregate(digest, signatures, verify_each=verify_each)


def sign_ecdsa_checkpoint(secret_key: bytes, checkpoint: Checkpoint) -> bytes:
    """An attestor's 65-byte EIP-191 signature over the checkpoint digest."""
    return sign_digest(secret_key, checkpoint.digest())


def verify_ecdsa_checkpoint(
    committee: EcdsaCommittee,
    checkpoint: Checkpoint,
    certificate: EcdsaCertificate,
    *,
    origin: int,
    gateway: bytes,
) -> int:
    """Raise unless `certificate` proves `committee` signed `checkpoint` of (origin, gateway).

    Checks, in the Gateway's order: origin, gateway, epoch, then the certificate
    (`EcdsaCommittee.verify_certificate`). Returns the signed weight.
    """
    if checkpoint.origin != origin:
        raise OriginMismatch("checkpoint of another origin", origin=checkpoint.origin, expected=origin)
    if checkpoint.gateway != gateway:
        raise GatewayMismatch("checkpoint of another gateway", gateway=checkpoint.gateway, expected=gateway)
    if checkpoint.epoch != committee.epoch:
        raise EpochMismatch(
            "checkpoint signed for another committee epoch", epoch=checkpoint.epoch, expected=committee.epoch
        )
    return committee.verify_certificate(checkpoint.digest(), certificate)


@dataclass(frozen=True, slots=True)
class EcdsaHandover:
    """The next ECDSA committee and the current committee's certificate over handover_digest."""

    next_committee: EcdsaCommittee
    certificate: EcdsaCertificate


def verify_ecdsa_handover(
    current: EcdsaCommittee, handover: EcdsaHandover, *, origin: int, gateway: bytes
) -> EcdsaCommittee:
    """Raise `InvalidHandover` unless `current` handed over to `handover.next_committee` (the
    Gateway's `handoverEcdsa`); return the next committee."""
    following = handover.next_committee
    if following.epoch != current.epoch + 1:
        raise InvalidHandover(
            "hand-over must go to the next epoch", epoch=following.epoch, expected=current.epoch + 1
        )
    digest = compute_handover_digest(origin, gateway, current.epoch, current.hash(), following.hash())
    try:
        current.verify_certificate(digest, handover.certificate)
    except InvalidProof as error:
        raise InvalidHandover(
            f"hand-over certificate rejected: {error.reason}", epoch=current.epoch, cause=str(error)
        ) from error
    return following


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
