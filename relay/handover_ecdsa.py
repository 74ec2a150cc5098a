"""ECDSA -> ECDSA committee hand-overs: proposals, their checks, certificates, JSON files.

The ECDSA twin of `relay.handover` (decisions D1 of issue 12): the next committee is members as
(20-byte address, weight) and a threshold; the current ECDSA committee signs the same
`handover_digest(origin, gateway, epoch, current ecdsa_committee_hash, next ecdsa_committee_hash)`
as EIP-191 (`relay.verify.ecdsa.sign_digest`), and the certificate is the signer bitfield plus
the 65-byte signatures concatenated in ascending member index, which the Gateway's
`handoverEcdsa` verifies.

1. `EcdsaHandoverProposal`: origin, source gateway, next epoch, threshold, members, and the hash
   of the committee that hands over as the proposer read it from the chain.
2. Each current attestor checks it against the chain (`verify_proposal` of `relay.handover`) and
   `build_committee` (distinct non-zero addresses, weights, the threshold rule) and signs
   `compute_ecdsa_proposal_digest`.
3. `aggregate_ecdsa_handover` combines the signatures into a certificate checked with
   `verify_ecdsa_handover_certificate` (the Gateway's rules).

Pure: bytes and objects in, objects out or a typed `relay.errors` error. Every JSON field is
bounded: a proposal crosses a trust boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relay.errors import EpochMismatch, MalformedEncoding
from relay.handover import (
    HASH_LENGTH,
    MAX_COMMITTEE_SIZE,
    NotACommitteeMember,
    StaleProposal,
    _hex,
    _integer,
    _unhex,
    proposal_fields_from_dict,
)
from relay.verify.committee import compute_handover_digest
from relay.verify.ecdsa import (
    SIGNATURE_LENGTH,
    EcdsaCertificate,
    EcdsaCommittee,
    EcdsaHandover,
    verify_ecdsa_handover,
)

ADDRESS_LENGTH = 20
SCHEME = "ecdsa"  # the `scheme` field of an ECDSA proposal's JSON form
_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1
_PROPOSAL_FIELDS = {
    "scheme",
    "origin",
    "gateway",
    "epoch",
    "threshold",
    "allow_low_threshold",
    "current_committee_hash",
    "members",
}


@dataclass(frozen=True)
class EcdsaHandoverProposal:
    """The next ECDSA committee of `origin` (source Gateway `gateway`, 32 bytes), proposed
    against the committee whose ecdsa_committee_hash it names. `members`: (address, weight)."""

    origin: int
    gateway: bytes
    epoch: int
    threshold: int
    members: tuple[tuple[bytes, int], ...]
    current_committee_hash: bytes
    allow_low_threshold: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.origin <= _UINT32_MAX:
            raise MalformedEncoding("origin out of range", origin=self.origin)
        if len(self.gateway) != HASH_LENGTH:
            raise MalformedEncoding("gateway is the 32-byte source Gateway", length=len(self.gateway))
        if not 0 < self.epoch <= _UINT64_MAX:
            raise MalformedEncoding("a proposed epoch is 1..2^64-1", epoch=self.epoch)
        if not 0 < self.threshold <= _UINT64_MAX:
            raise MalformedEncoding("threshold out of range", threshold=self.threshold)
        if not 0 < len(self.members) <= MAX_COMMITTEE_SIZE:
            raise MalformedEncoding(
                "a committee has 1..MAX_COMMITTEE_SIZE members",
                count=len(self.members),
                limit=MAX_COMMITTEE_SIZE,
            )
        if len(self.current_committee_hash) != HASH_LENGTH:
            raise MalformedEncoding(
                "current_committee_hash is 32 bytes", length=len(self.current_committee_hash)
            )
        for index, (address, weight) in enumerate(self.members):
            if len(address) != ADDRESS_LENGTH:
                raise MalformedEncoding("member address is 20 bytes", member=index, length=len(address))
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 < weight <= _UINT64_MAX:
                raise MalformedEncoding("member weight is a positive u64", member=index, weight=weight)

    def build_committee(self) -> EcdsaCommittee:
        """The proposed committee, validated as `enrollOriginEcdsa` / `handoverEcdsa` would:
        `InvalidCommittee` (duplicate or zero address, the threshold rule) for a proposal no
        attestor may sign."""
        return EcdsaCommittee.create(
            self.epoch,
            [address for address, _ in self.members],
            [weight for _, weight in self.members],
            self.threshold,
            allow_low_threshold=self.allow_low_threshold,
        )


def compute_ecdsa_proposal_digest(
    origin: int,
    gateway: bytes,
    current_epoch: int,
    current_committee_hash: bytes,
    next_committee_hash: bytes,
) -> bytes:
    """handover_digest with ECDSA committee hashes: what the ECDSA committee of `current_epoch` signs (EIP-191)."""
    return compute_handover_digest(
        origin, gateway, current_epoch, current_committee_hash, next_committee_hash
    )


@dataclass(frozen=True)
class EcdsaHandoverCertificate:
    """A proposal and the current ECDSA committee's certificate over its hand-over digest."""

    proposal: EcdsaHandoverProposal
    certificate: EcdsaCertificate


def verify_ecdsa_handover_certificate(
    current: EcdsaCommittee, certificate: EcdsaHandoverCertificate
) -> EcdsaCommittee:
    """Raise unless `current` handed its origin over to the certificate's committee; return it.

    The proposal must name the next epoch (`EpochMismatch`) and `current`'s hash
    (`StaleProposal`); the next committee must pass the Gateway's rules (`InvalidCommittee`);
    then the certificate (`InvalidHandover`), as `handoverEcdsa` checks it.
    """
    proposal = certificate.proposal
    if proposal.epoch != current.epoch + 1:
        raise EpochMismatch(
            "hand-over must go to the next epoch", epoch=proposal.epoch, expected=current.epoch + 1
        )
    if proposal.current_committee_hash != current.hash():
        raise StaleProposal(
            "hand-over names another current committee",
            proposed=proposal.current_committee_hash,
            current=current.hash(),
        )
    following = proposal.build_committee()
    return verify_ecdsa_handover(
        current,
        EcdsaHandover(following, certificate.certificate),
        origin=proposal.origin,
        gateway=proposal.gateway,
    )


def aggregate_ecdsa_handover(
    current: EcdsaCommittee, proposal: EcdsaHandoverProposal, signatures: Mapping[bytes, bytes]
) -> EcdsaHandoverCertificate:
    """Combine current members' signatures (address -> 65-byte signature) into a verified certificate.

    Each signature must recover to its member first (one bad attestor cannot spoil the
    certificate: `InvalidSignature`); a signer outside `current` is `NotACommitteeMember`; too
    little weight is `InvalidHandover` (its cause: the quorum).
    """
    following = proposal.build_committee()
    digest = compute_ecdsa_proposal_digest(
        proposal.origin, proposal.gateway, current.epoch, current.hash(), following.hash()
    )
    pairs = {}
    for address, signature in signatures.items():
        if address not in current.signers:
            raise NotACommitteeMember(
                "address is not a member of the committee", epoch=current.epoch, address=address
            )
        pairs[current.signers.index(address)] = signature
    result = EcdsaHandoverCertificate(proposal, current.aggregate(digest, pairs, verify_each=True))
    verify_ecdsa_handover_certificate(current, result)
    return result


@dataclass(frozen=True)
class EcdsaHandoverSignature:
    """A current ECDSA member's 65-byte EIP-191 signature over a hand-over digest."""

    origin: int
    epoch: int
    signer_index: int
    signer_address: bytes
    signature: bytes
    current_committee_hash: bytes
    next_committee_hash: bytes


def ecdsa_signature_from_answer(
    origin: int,
    epoch: int,
    signer_index: int,
    signer_address: bytes,
    signature: bytes,
    current_committee_hash: bytes,
    next_committee_hash: bytes,
) -> EcdsaHandoverSignature:
    """An attestor's answer, its shapes checked (`MalformedEncoding`): it crossed the network."""
    if len(signer_address) != ADDRESS_LENGTH:
        raise MalformedEncoding("signer_address must be 20 bytes", length=len(signer_address))
    if len(signature) != SIGNATURE_LENGTH:
        raise MalformedEncoding("an ECDSA hand-over signature is 65 bytes", length=len(signature))
    if len(current_committee_hash) != HASH_LENGTH or len(next_committee_hash) != HASH_LENGTH:
        raise MalformedEncoding("committee hashes are 32 bytes")
    return EcdsaHandoverSignature(
        origin, epoch, signer_index, signer_address, signature, current_committee_hash, next_committee_hash
    )


# --- JSON files ---------------------------------------------------------------------------------


def is_ecdsa_document(data: Any) -> bool:
    """Whether a proposal (or a certificate's proposal) JSON object is an ECDSA one (`"scheme": "ecdsa"`)."""
    if isinstance(data, dict) and isinstance(data.get("proposal"), dict):
        data = data["proposal"]
    return isinstance(data, dict) and data.get("scheme") == SCHEME


def ecdsa_proposal_to_dict(proposal: EcdsaHandoverProposal) -> dict[str, Any]:
    """The proposal as JSON-ready data (hex strings for bytes), tagged `"scheme": "ecdsa"`."""
    return {
        "scheme": SCHEME,
        "origin": proposal.origin,
        "gateway": _hex(proposal.gateway),
        "epoch": proposal.epoch,
        "threshold": proposal.threshold,
        "allow_low_threshold": proposal.allow_low_threshold,
        "current_committee_hash": _hex(proposal.current_committee_hash),
        "members": [{"address": _hex(address), "weight": weight} for address, weight in proposal.members],
    }


def ecdsa_proposal_from_dict(data: Any) -> EcdsaHandoverProposal:
    """An ECDSA proposal from JSON data; `MalformedEncoding` naming the field for anything off."""
    if not isinstance(data, dict):
        raise MalformedEncoding("a proposal is a JSON object")
    unknown = set(data) - _PROPOSAL_FIELDS
    if unknown:
        raise MalformedEncoding("unknown proposal fields", fields=sorted(unknown))
    if data.get("scheme") != SCHEME:
        raise MalformedEncoding(
            'an ECDSA proposal has "scheme": "ecdsa"', scheme=str(data.get("scheme"))[:20]
        )
    members_data = data.get("members")
    if not isinstance(members_data, list) or len(members_data) > MAX_COMMITTEE_SIZE:
        raise MalformedEncoding("members is a list of at most MAX_COMMITTEE_SIZE", limit=MAX_COMMITTEE_SIZE)
    members = []
    for index, entry in enumerate(members_data):
        if not isinstance(entry, dict) or set(entry) - {"address", "weight"}:
            raise MalformedEncoding("a member is a JSON object of address and weight", member=index)
        members.append(
            (
                _unhex(entry.get("address"), f"members[{index}].address", ADDRESS_LENGTH),
                _integer(entry.get("weight", 1), f"members[{index}].weight"),
            )
        )
    return EcdsaHandoverProposal(members=tuple(members), **proposal_fields_from_dict(data))


def ecdsa_certificate_to_dict(certificate: EcdsaHandoverCertificate) -> dict[str, Any]:
    """The ECDSA hand-over certificate as JSON-ready data."""
    return {
        "proposal": ecdsa_proposal_to_dict(certificate.proposal),
        "signers": _hex(certificate.certificate.signers),
        "signatures": _hex(certificate.certificate.signature),
    }


def ecdsa_certificate_from_dict(data: Any) -> EcdsaHandoverCertificate:
    """An ECDSA hand-over certificate from JSON data; `MalformedEncoding` for anything off (shapes
    only: verify it with `verify_ecdsa_handover_certificate`)."""
    if not isinstance(data, dict) or set(data) != {"proposal", "signers", "signatures"}:
        raise MalformedEncoding("an ECDSA hand-over certificate has exactly proposal, signers, signatures")
    proposal = ecdsa_proposal_from_dict(data["proposal"])
    signers = _unhex(data["signers"], "signers")
    if not 0 < len(signers) <= (MAX_COMMITTEE_SIZE + 7) // 8:
        raise MalformedEncoding("signers bitfield of a wrong size", length=len(signers))
    signatures = _unhex(data["signatures"], "signatures")
    if not 0 < len(signatures) <= SIGNATURE_LENGTH * MAX_COMMITTEE_SIZE or len(signatures) % SIGNATURE_LENGTH:
        raise MalformedEncoding("signatures are 65 bytes each, 1..128 of them", length=len(signatures))
    return EcdsaHandoverCertificate(proposal, EcdsaCertificate(signers, signatures))


def ecdsa_members_from_identities(identities: list[Any]) -> list[tuple[bytes, int]]:
    """(address, weight) from attestor identity documents (`address`, optional `weight`)."""
    members = []
    for index, identity in enumerate(identities):
        if not isinstance(identity, dict):
            raise MalformedEncoding("an identity is a JSON object", member=index)
        members.append(
            (
                _unhex(identity.get("address"), f"[{index}].address", ADDRESS_LENGTH),
                _integer(identity.get("weight", 1), f"[{index}].weight"),
            )
        )
    return members


__all__ = [
    "EcdsaHandoverCertificate",
    "EcdsaHandoverProposal",
    "EcdsaHandoverSignature",
    "ecdsa_signature_from_answer",
    "aggregate_ecdsa_handover",
    "compute_ecdsa_proposal_digest",
    "ecdsa_certificate_from_dict",
    "ecdsa_certificate_to_dict",
    "ecdsa_members_from_identities",
    "ecdsa_proposal_from_dict",
    "ecdsa_proposal_to_dict",
    "is_ecdsa_document",
    "verify_ecdsa_handover_certificate",
]
