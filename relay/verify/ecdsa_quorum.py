"""An ECDSA committee as the relayer drives it: members by address, certificates of concatenated signatures.

The Gateway verifies an origin either with a BLS committee (`relay.verify.committee.Committee`,
flat in committee size) or with an ECDSA committee (one `ecrecover` per signer: cheaper for small
committees and lone messages). `EcdsaCheckpointCommittee` is the ECDSA one with the same surface
as `Committee` where the relayer's stages use it (epoch, members, threshold, `signed_weight`,
`hash`, `aggregate`, `verify_certificate`), so attestation, proving and delivery run unchanged,
and `verify_checkpoint` checks either.

Protocol (docs/protocol.md, decisions D1 of issue 12):

- `ecdsa_committee_hash = keccak(ECDSA_COMMITTEE_TAG || epoch u64 || threshold u64 || count u32 ||
  for each member: address (20 bytes) || weight u64)`;
- a member signs the same `checkpoint_digest` as a BLS member, as EIP-191
  (`relay.verify.ecdsa.sign_digest`): 65 bytes `r || s || v`, v in {27, 28}, low s;
- a certificate is the signers bitfield of BLS and, as its `signature`, one 65-byte signature per
  set bit concatenated in ascending signer index (exactly 65 * popcount bytes).

A member's `public_key` here is its 20-byte address: the identity the committee names it by.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relay.errors import (
    EpochMismatch,
    GatewayMismatch,
    InvalidSignature,
    OriginMismatch,
    QuorumNotReached,
    UnknownSigner,
)
from relay.verify.committee import (
    Checkpoint,
    Committee,
    QuorumCertificate,
    encode_bitfield,
)
from relay.verify.ecdsa import (
    ECDSA_COMMITTEE_TAG,
    MAX_COMMITTEE_SIZE,
    SIGNATURE_LENGTH,
    EcdsaCertificate,
    EcdsaCommittee,
    compute_eth_signed_message_hash,
    recover_member_signature,
)

ADDRESS_LENGTH = 20
MAX_ECDSA_MEMBERS = MAX_COMMITTEE_SIZE  # the Gateway's, as for BLS
BLS_SIGNATURE_LENGTH = 96  # a compressed G2 aggregate: never a multiple of 65


@dataclass(frozen=True, slots=True)
class EcdsaMember:
    """One ECDSA committee member: its address (named `public_key` like a BLS member's key) and weight."""

    public_key: bytes
    weight: int = 1

    @property
    def address(self) -> bytes:
        """The member's 20-byte Ethereum address."""
        return self.public_key


def compute_ecdsa_committee_hash(epoch: int, threshold: int, members: Sequence[EcdsaMember]) -> bytes:
    """ecdsa_committee_hash of docs/protocol.md (what `enrollOriginEcdsa` stores): `EcdsaCommittee.hash`."""
    return EcdsaCommittee(
        epoch, tuple(m.address for m in members), tuple(m.weight for m in members), threshold
    ).hash()


class EcdsaCheckpointCommittee:
    """A validated ECDSA committee of one epoch. Build with `EcdsaCheckpointCommittee.create`."""

    scheme = "ecdsa"

    def __init__(
        self, epoch: int, members: Sequence[EcdsaMember], threshold: int, *, _validated: bool = False
    ):
        if not _validated:
            raise TypeError(
                "build ECDSA committees with EcdsaCheckpointCommittee.create(), which validates them"
            )
        self.epoch = epoch
        self.members: tuple[EcdsaMember, ...] = tuple(members)
        self.threshold = threshold
        self.total_weight = sum(m.weight for m in self.members)
        self._index = {m.address: i for i, m in enumerate(self.members)}
        # The committee as `relay.verify.ecdsa` states the Gateway's rules: hash and certificates.
        self.rules = EcdsaCommittee(
            epoch, tuple(m.address for m in self.members), tuple(m.weight for m in self.members), threshold
        )

    @classmethod
    def create(
        cls,
        epoch: int,
        members: Sequence[EcdsaMember],
        threshold: int | None = None,
        *,
        allow_low_threshold: bool = False,
    ) -> EcdsaCheckpointCommittee:
        """Validate and build; raise `InvalidCommittee` with the offending member's index.

        The Gateway's rules: 1..128 members, distinct non-zero 20-byte addresses, weights positive
        u64, threshold in 1..total weight, and not below two thirds of the total weight
        (3 * threshold < 2 * total) unless `allow_low_threshold` (`setLowThresholdAllowed` on-chain).
        """
        rules = EcdsaCommittee.create(
            epoch,
            [bytes(m.address) for m in members],
            [m.weight for m in members],
            threshold,
            allow_low_threshold=allow_low_threshold,
        )
        committee = cls(
            epoch,
            [EcdsaMember(a, w) for a, w in zip(rules.signers, rules.weights, strict=True)],
            rules.threshold,
            _validated=True,
        )
        committee.rules = rules
        return committee

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return (
            f"EcdsaCheckpointCommittee(epoch={self.epoch}, members={len(self)}, threshold={self.threshold})"
        )

    def hash(self) -> bytes:
        """ecdsa_committee_hash (see the module docstring)."""
        return self.rules.hash()

    def index_of(self, address: bytes) -> int | None:
        """The member index of `address`, None if it is not a member."""
        return self._index.get(address)

    def signed_weight(self, signers: Sequence[int]) -> int:
        """Total weight of the signer indices."""
        return sum(self.members[i].weight for i in signers)

    # --- signatures ---------------------------------------------------------------------------

    def verify_member_signature(self, index: int, digest: bytes, signature: bytes) -> None:
        """Raise `InvalidSignature` (or `UnknownSigner`) unless member `index` signed `digest` (EIP-191)."""
        if not 0 <= index < len(self.members):
            raise UnknownSigner("signer index outside the committee", index=index, size=len(self.members))
        recovered = recover_member_signature(compute_eth_signed_message_hash(digest), signature)
        if recovered != self.members[index].address:
            raise InvalidSignature(
                "ECDSA signature recovers to another address than the member's",
                member_index=index,
                recovered=recovered,
                member=self.members[index].address,
            )

    def aggregate(
        self,
        digest: bytes,
        signatures: Iterable[tuple[int, bytes]] | Mapping[int, bytes],
        backend: Any = None,
        *,
        verify_each: bool = True,
    ) -> QuorumCertificate:
        """A certificate from members' signatures: ascending signer index, stopping at the threshold.

        Signatures past the threshold weight are left out (each costs an `ecrecover` and 65 bytes
        of calldata on-chain). With `verify_each` every signature kept is checked first. Raises
        `DuplicateSigner`, `UnknownSigner`, `InvalidSignature`, `QuorumNotReached`. `backend` is
        accepted for the same call as `Committee.aggregate` and ignored.
        """
        del backend
        pairs = list(signatures.items()) if isinstance(signatures, Mapping) else list(signatures)
        encode_bitfield([index for index, _ in pairs], len(self.members))  # range and duplicates
        chosen: list[tuple[int, bytes]] = []
        weight = 0
        for index, signature in sorted(pairs):
            if weight >= self.threshold:
                break
            chosen.append((index, signature))
            weight += self.members[index].weight
        if weight < self.threshold:
            raise QuorumNotReached(
                "ECDSA signers' weight below the threshold", signed=weight, threshold=self.threshold
            )
        certificate = self.rules.aggregate(digest, chosen, verify_each=verify_each)
        return QuorumCertificate(certificate.signers, certificate.signature)

    def verify_certificate(self, digest: bytes, certificate: QuorumCertificate, backend: Any = None) -> int:
        """Check the certificate as the Gateway does; return the signed weight.

        Bitfield (exact length, no bits past the committee), signature length exactly
        65 * popcount, each signature recovering (EIP-191, low s, v 27/28) to the member at its
        index, quorum by weight. `backend` is ignored (the same call as `Committee`'s).
        """
        del backend
        return self.rules.verify_certificate(
            digest, EcdsaCertificate(certificate.signers, certificate.signature)
        )


def is_ecdsa_certificate(certificate: QuorumCertificate) -> bool:
    """Whether `certificate` carries ECDSA signatures (65 * k bytes) rather than a BLS aggregate (96).

    The two lengths never meet (96 is no multiple of 65). Only a transport detail: which
    scheme an origin uses is decided by its committee, and a certificate of the wrong scheme
    fails verification off-chain and on-chain.
    """
    length = len(certificate.signature)
    return length != BLS_SIGNATURE_LENGTH and length > 0 and length % SIGNATURE_LENGTH == 0


# The committee an origin is attested under, whichever scheme its destination Gateways verify.
CheckpointCommittee = Committee | EcdsaCheckpointCommittee


def verify_committee_checkpoint(
    committee: CheckpointCommittee,
    checkpoint: Checkpoint,
    certificate: QuorumCertificate,
    *,
    origin: int,
    gateway: bytes,
    backend: Any = None,
) -> int:
    """`relay.verify.committee.verify_checkpoint` for a committee of either scheme; the signed weight.

    Checks, in order: origin, gateway, epoch, then the certificate under the committee's scheme.
    """
    if checkpoint.origin != origin:
        raise OriginMismatch("checkpoint of another origin", origin=checkpoint.origin, expected=origin)
    if checkpoint.gateway != gateway:
        raise GatewayMismatch("checkpoint of another gateway", gateway=checkpoint.gateway, expected=gateway)
    if checkpoint.epoch != committee.epoch:
        raise EpochMismatch(
            "checkpoint signed for another committee epoch", epoch=checkpoint.epoch, expected=committee.epoch
        )
    return committee.verify_certificate(checkpoint.digest(), certificate, backend)


__all__ = [
    "ADDRESS_LENGTH",
    "ECDSA_COMMITTEE_TAG",
    "MAX_ECDSA_MEMBERS",
    "CheckpointCommittee",
    "EcdsaCheckpointCommittee",
    "EcdsaMember",
    "compute_ecdsa_committee_hash",
    "is_ecdsa_certificate",
    "verify_committee_checkpoint",
]
