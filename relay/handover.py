"""Committee hand-overs as the relay runs them: proposals, their checks, certificates, files.

A hand-over moves an origin from the committee of epoch `e` to the committee of epoch `e + 1`
(docs/operations.md, "Rotating the committee"):

1. `relay committee propose` writes a `HandoverProposal`: the origin, the next epoch, the next
   members (public key, proof of possession, weight), the threshold, and the committee_hash of
   the committee that hands over, as the proposer read it from the chain.
2. Each current attestor checks it (`verify_proposal` against what it reads from the chain, and
   `HandoverProposal.build_committee`, which checks every proof of possession and the threshold
   rule) and signs `compute_proposal_digest` (`AttestationService.SignHandover`).
3. The signatures are aggregated into a `HandoverCertificate`, checked with
   `verify_handover_certificate`, and submitted to every destination gateway (anyone may).

Everything here is pure: bytes and objects in, objects out or a typed `relay.errors` error.
The JSON form (`proposal_to_json`, `certificate_to_json`) is what the CLI reads and writes; every
field is bounded (`MAX_COMMITTEE_SIZE`, `MAX_DOCUMENT_BYTES`) because a proposal crosses a trust
boundary (it comes from whoever proposes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from relay.errors import (
    EpochMismatch,
    GatewayMismatch,
    InvalidProof,
    MalformedEncoding,
    OriginMismatch,
)
from relay.verify.bls import BlsBackend, get_backend
from relay.verify.committee import (
    Committee,
    Handover,
    Member,
    QuorumCertificate,
    compute_handover_digest,
    verify_handover,
)

MAX_COMMITTEE_SIZE = 128  # the Gateway's MAX_COMMITTEE_SIZE: a larger proposal could never land
MAX_DOCUMENT_BYTES = 256 * 1024  # a 128-member proposal in JSON is about 45 KB
PUBLIC_KEY_LENGTH = 48
PROOF_OF_POSSESSION_LENGTH = 96
SIGNATURE_LENGTH = 96
HASH_LENGTH = 32
_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1


class OnChainCommitteeLike(Protocol):
    """A committee as a gateway holds it (`relay.chains.OnChainCommittee`): keys and weights, no proofs."""

    @property
    def epoch(self) -> int: ...

    @property
    def threshold(self) -> int: ...

    @property
    def members(self) -> tuple[tuple[bytes, int], ...]: ...


class ProposalHeader(Protocol):
    """What `verify_proposal` reads of a proposal: a BLS `HandoverProposal` or an ECDSA one."""

    @property
    def origin(self) -> int: ...

    @property
    def gateway(self) -> bytes: ...

    @property
    def epoch(self) -> int: ...

    @property
    def current_committee_hash(self) -> bytes: ...


class StaleProposal(InvalidProof):
    """A proposal made against another committee than the chain's current one (epoch or hash)."""


class NotACommitteeMember(InvalidProof):
    """The key is not in the committee (for example a member the last hand-over removed)."""


def compute_proposal_digest(
    origin: int,
    gateway: bytes,
    current_epoch: int,
    current_committee_hash: bytes,
    next_committee_hash: bytes,
) -> bytes:
    """handover_digest of docs/protocol.md: what the committee of `current_epoch` signs to hand over."""
    return compute_handover_digest(
        origin, gateway, current_epoch, current_committee_hash, next_committee_hash
    )


@dataclass(frozen=True)
class HandoverProposal:
    """The next committee of `origin` (whose source Gateway is `gateway`, 32 bytes), proposed
    against the committee whose hash it names."""

    origin: int
    gateway: bytes
    epoch: int
    threshold: int
    members: tuple[Member, ...]
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
        for index, member in enumerate(self.members):
            if len(member.public_key) != PUBLIC_KEY_LENGTH:
                raise MalformedEncoding(
                    "member public key is 48 bytes (compressed G1)",
                    member=index,
                    length=len(member.public_key),
                )
            if len(member.proof_of_possession) != PROOF_OF_POSSESSION_LENGTH:
                raise MalformedEncoding(
                    "member proof of possession is 96 bytes (compressed G2)",
                    member=index,
                    length=len(member.proof_of_possession),
                )

    def build_committee(self, backend: BlsBackend | None = None) -> Committee:
        """The proposed committee, validated: every proof of possession, weights, the threshold rule.

        Raises `InvalidCommittee`, `InvalidPublicKey` or `InvalidProofOfPossession` (with the
        member's index) for a proposal no attestor may sign.
        """
        return Committee.create(
            self.epoch,
            self.members,
            self.threshold,
            backend=backend,
            allow_low_threshold=self.allow_low_threshold,
        )


def verify_proposal(
    proposal: ProposalHeader, *, origin: int, gateway: bytes, chain_epoch: int, chain_hash: bytes
) -> None:
    """Raise unless `proposal` hands over `origin`'s committee (source Gateway `gateway`) as the
    chain holds it now.

    `chain_epoch` / `chain_hash`: the current committee's epoch and committee_hash read from the
    chain (`committeeOf(origin)`). A proposal for another origin is `OriginMismatch`; for another
    source Gateway `GatewayMismatch`; for another epoch than the next one, or against another
    current committee, `StaleProposal`.
    """
    if proposal.origin != origin:
        raise OriginMismatch("proposal for another origin", origin=proposal.origin, expected=origin)
    if proposal.gateway != gateway:
        raise GatewayMismatch(
            "proposal for another source gateway", gateway=proposal.gateway, expected=gateway
        )
    if proposal.epoch != chain_epoch + 1:
        raise StaleProposal(
            "proposal is not for the next epoch of the chain's committee",
            epoch=proposal.epoch,
            expected=chain_epoch + 1,
        )
    if proposal.current_committee_hash != chain_hash:
        raise StaleProposal(
            "proposal names another current committee than the chain's",
            proposed=proposal.current_committee_hash,
            chain=chain_hash,
        )


@dataclass(frozen=True)
class HandoverCertificate:
    """A proposal and the current committee's quorum certificate over its hand-over digest."""

    proposal: HandoverProposal
    certificate: QuorumCertificate


def verify_handover_certificate(
    current: Committee, certificate: HandoverCertificate, backend: BlsBackend | None = None
) -> Committee:
    """Raise unless `current` handed its origin over to the certificate's committee; return that committee.

    Checks the proposal against `current` (next epoch, the current committee's hash), every proof
    of possession and the threshold rule of the next committee, then the quorum certificate.
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
    following = proposal.build_committee(backend)
    return verify_handover(
        current,
        Handover(following, certificate.certificate),
        origin=proposal.origin,
        gateway=proposal.gateway,
        backend=backend,
    )


@dataclass(frozen=True)
class HandoverSignature:
    """A current member's signature over a hand-over digest."""

    origin: int
    epoch: int
    signer_index: int
    public_key: bytes
    signature: bytes
    current_committee_hash: bytes
    next_committee_hash: bytes


def build_committee_from_chain(committee: OnChainCommitteeLike) -> Committee:
    """A `Committee` as a destination gateway holds it, without proofs of possession.

    The gateway checked each member's proof of possession when the member entered (enrollment
    or hand-over), so the relay relies on the gateway here instead of checking proofs it was not
    given. Used only for a committee the relayer has no hand-over certificate for.
    """
    members = [Member(key, b"", weight) for key, weight in committee.members]
    return Committee(committee.epoch, members, committee.threshold, _validated=True)


def signer_index_of(committee: Committee, public_key: bytes) -> int:
    """The position of `public_key` in `committee`; `NotACommitteeMember` if it is not there."""
    for index, member in enumerate(committee.members):
        if member.public_key == public_key:
            return index
    raise NotACommitteeMember(
        "key is not a member of the committee", epoch=committee.epoch, public_key=public_key
    )


def aggregate_handover(
    current: Committee,
    proposal: HandoverProposal,
    signatures: Mapping[bytes, bytes],
    backend: BlsBackend | None = None,
) -> HandoverCertificate:
    """Combine current members' signatures (public key -> signature) into a verified certificate.

    Each signature is checked first (`Committee.aggregate` with `verify_each`), so one bad signer
    cannot spoil the aggregate; raises `QuorumNotReached` when the signers' weight is too low.
    """
    bls = backend or get_backend()
    following = proposal.build_committee(bls)
    digest = compute_proposal_digest(
        proposal.origin, proposal.gateway, current.epoch, current.hash(), following.hash()
    )
    by_index = {signer_index_of(current, key): signature for key, signature in signatures.items()}
    certificate = current.aggregate(digest, sorted(by_index.items()), bls, verify_each=True)
    result = HandoverCertificate(proposal, certificate)
    verify_handover_certificate(current, result, bls)
    return result


# --- JSON files ---------------------------------------------------------------------------------


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _unhex(value: Any, field: str, length: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise MalformedEncoding("expected a hex string", field=field)
    try:
        data = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise MalformedEncoding("not hex", field=field) from None
    if length is not None and len(data) != length:
        raise MalformedEncoding("wrong length", field=field, length=len(data), expected=length)
    return data


def _integer(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedEncoding("expected an integer", field=field)
    return value


def proposal_to_dict(proposal: HandoverProposal) -> dict[str, Any]:
    """The proposal as JSON-ready data (hex strings for bytes)."""
    return {
        "origin": proposal.origin,
        "gateway": _hex(proposal.gateway),
        "epoch": proposal.epoch,
        "threshold": proposal.threshold,
        "allow_low_threshold": proposal.allow_low_threshold,
        "current_committee_hash": _hex(proposal.current_committee_hash),
        "members": [
            {
                "public_key": _hex(m.public_key),
                "proof_of_possession": _hex(m.proof_of_possession),
                "weight": m.weight,
            }
            for m in proposal.members
        ],
    }


def proposal_from_dict(data: Any) -> HandoverProposal:
    """A proposal from JSON data; `MalformedEncoding` naming the field for anything off."""
    if not isinstance(data, dict):
        raise MalformedEncoding("a proposal is a JSON object")
    unknown = set(data) - {
        "origin",
        "gateway",
        "epoch",
        "threshold",
        "allow_low_threshold",
        "current_committee_hash",
        "members",
    }
    if unknown:
        raise MalformedEncoding("unknown proposal fields", fields=sorted(unknown))
    members_data = data.get("members")
    if not isinstance(members_data, list) or len(members_data) > MAX_COMMITTEE_SIZE:
        raise MalformedEncoding("members is a list of at most MAX_COMMITTEE_SIZE", limit=MAX_COMMITTEE_SIZE)
    members = []
    for index, entry in enumerate(members_data):
        if not isinstance(entry, dict):
            raise MalformedEncoding("a member is a JSON object", member=index)
        members.append(
            Member(
                _unhex(entry.get("public_key"), f"members[{index}].public_key", PUBLIC_KEY_LENGTH),
                _unhex(
                    entry.get("proof_of_possession"),
                    f"members[{index}].proof_of_possession",
                    PROOF_OF_POSSESSION_LENGTH,
                ),
                _integer(entry.get("weight", 1), f"members[{index}].weight"),
            )
        )
    return HandoverProposal(members=tuple(members), **proposal_fields_from_dict(data))


def proposal_fields_from_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every hand-over proposal's JSON carries besides its members (either scheme):
    origin, gateway, epoch, threshold, current_committee_hash, allow_low_threshold."""
    allow = data.get("allow_low_threshold", False)
    if not isinstance(allow, bool):
        raise MalformedEncoding("allow_low_threshold is true or false")
    return {
        "origin": _integer(data.get("origin"), "origin"),
        "gateway": _unhex(data.get("gateway"), "gateway", HASH_LENGTH),
        "epoch": _integer(data.get("epoch"), "epoch"),
        "threshold": _integer(data.get("threshold"), "threshold"),
        "current_committee_hash": _unhex(
            data.get("current_committee_hash"), "current_committee_hash", HASH_LENGTH
        ),
        "allow_low_threshold": allow,
    }


def certificate_to_dict(certificate: HandoverCertificate) -> dict[str, Any]:
    """The hand-over certificate as JSON-ready data."""
    return {
        "proposal": proposal_to_dict(certificate.proposal),
        "signers": _hex(certificate.certificate.signers),
        "signature": _hex(certificate.certificate.signature),
    }


def certificate_from_dict(data: Any) -> HandoverCertificate:
    """A hand-over certificate from JSON data; `MalformedEncoding` for anything off."""
    if not isinstance(data, dict) or set(data) != {"proposal", "signers", "signature"}:
        raise MalformedEncoding("a hand-over certificate has exactly proposal, signers, signature")
    proposal = proposal_from_dict(data["proposal"])
    signers = _unhex(data["signers"], "signers")
    if not 0 < len(signers) <= (MAX_COMMITTEE_SIZE + 7) // 8:
        raise MalformedEncoding("signers bitfield of a wrong size", length=len(signers))
    return HandoverCertificate(
        proposal, QuorumCertificate(signers, _unhex(data["signature"], "signature", SIGNATURE_LENGTH))
    )


def parse_json_document(text: str | bytes, what: str) -> Any:
    """JSON from a bounded document; `MalformedEncoding` when it is too large or not JSON."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise MalformedEncoding(
            f"{what} is larger than any valid one", length=len(text), limit=MAX_DOCUMENT_BYTES
        )
    try:
        return json.loads(text)
    except ValueError as error:
        raise MalformedEncoding(f"{what} is not JSON", error=str(error)[:200]) from error


def members_from_identities(identities: Sequence[Mapping[str, Any]]) -> list[Member]:
    """Members from attestor identity documents (`public_key`, `proof_of_possession`, optional `weight`)."""
    members = []
    for index, identity in enumerate(identities):
        members.append(
            Member(
                _unhex(identity.get("public_key"), f"[{index}].public_key", PUBLIC_KEY_LENGTH),
                _unhex(
                    identity.get("proof_of_possession"),
                    f"[{index}].proof_of_possession",
                    PROOF_OF_POSSESSION_LENGTH,
                ),
                _integer(identity.get("weight", 1), f"[{index}].weight"),
            )
        )
    return members
