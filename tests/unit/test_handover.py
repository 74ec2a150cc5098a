"""Hand-over proposals and certificates as files: every hostile document is a typed error."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relay.errors import (
    GatewayMismatch,
    InvalidCommittee,
    InvalidProofOfPossession,
    MalformedEncoding,
    OriginMismatch,
)
from relay.handover import (
    MAX_DOCUMENT_BYTES,
    HandoverCertificate,
    HandoverProposal,
    StaleProposal,
    certificate_from_dict,
    certificate_to_dict,
    parse_json_document,
    proposal_from_dict,
    proposal_to_dict,
    verify_proposal,
)
from relay.verify.bls import get_backend, keygen
from relay.verify.committee import Member, QuorumCertificate

BLS = get_backend("blst")
SECRETS = [keygen(bytes([0x30 + i]) * 32) for i in range(5)]
MEMBERS = tuple(Member(BLS.secret_to_public_key(s), BLS.prove_possession(s), 1) for s in SECRETS)
SOURCE = b"\x00" * 12 + b"\x09" * 20  # the origin's source Gateway
PROPOSAL = HandoverProposal(7, SOURCE, 2, 4, MEMBERS, b"\x05" * 32)


def document(**changes: Any) -> dict[str, Any]:
    data = proposal_to_dict(PROPOSAL)
    data.update(changes)
    return data


def test_a_proposal_and_a_certificate_round_trip_through_json() -> None:
    assert proposal_from_dict(json.loads(json.dumps(proposal_to_dict(PROPOSAL)))) == PROPOSAL
    certificate = HandoverCertificate(PROPOSAL, QuorumCertificate(b"\x0f", b"\x01" * 96))
    assert certificate_from_dict(json.loads(json.dumps(certificate_to_dict(certificate)))) == certificate
    assert PROPOSAL.build_committee(BLS).threshold == 4


@pytest.mark.parametrize(
    "hostile",
    [
        [],
        document(extra=1),
        document(origin="7"),
        document(origin=True),
        document(origin=2**32),
        document(epoch=0),
        document(epoch=2**64),
        document(threshold=0),
        document(members=[]),
        document(members="0x00"),
        document(members=[proposal_to_dict(PROPOSAL)["members"][0]] * 129),
        document(members=[{"public_key": "0x" + "00" * 47, "proof_of_possession": "0x" + "00" * 96}]),
        document(members=[{"public_key": "zz", "proof_of_possession": "0x" + "00" * 96}]),
        document(members=[{"public_key": "0x" + "00" * 48}]),
        document(members=[7]),
        document(current_committee_hash="0x" + "00" * 31),
        document(allow_low_threshold="yes"),
    ],
)
def test_a_malformed_proposal_is_refused_naming_what(hostile: Any) -> None:
    with pytest.raises(MalformedEncoding):
        proposal_from_dict(hostile)


def test_documents_are_bounded_and_must_be_json() -> None:
    with pytest.raises(MalformedEncoding):
        parse_json_document(b" " * (MAX_DOCUMENT_BYTES + 1), "proposal")
    with pytest.raises(MalformedEncoding):
        parse_json_document(b"{not json", "proposal")
    with pytest.raises(MalformedEncoding):
        certificate_from_dict(
            {
                "proposal": proposal_to_dict(PROPOSAL),
                "signers": "0x" + "ff" * 17,
                "signature": "0x" + "00" * 96,
            }
        )


def test_thresholds_below_two_thirds_are_refused_unless_allowed() -> None:
    six = (
        *MEMBERS,
        Member(BLS.secret_to_public_key(keygen(b"\x66" * 32)), BLS.prove_possession(keygen(b"\x66" * 32)), 1),
    )
    assert HandoverProposal(7, SOURCE, 2, 4, six, b"\x05" * 32).build_committee(
        BLS
    )  # exactly two thirds is allowed
    with pytest.raises(InvalidCommittee):
        HandoverProposal(7, SOURCE, 2, 3, MEMBERS, b"\x05" * 32).build_committee(BLS)
    assert HandoverProposal(7, SOURCE, 2, 3, MEMBERS, b"\x05" * 32, allow_low_threshold=True).build_committee(
        BLS
    )


def test_a_borrowed_proof_of_possession_is_refused() -> None:
    borrowed = (*MEMBERS[:4], Member(MEMBERS[4].public_key, MEMBERS[0].proof_of_possession, 1))
    with pytest.raises(InvalidProofOfPossession):
        HandoverProposal(7, SOURCE, 2, 4, borrowed, b"\x05" * 32).build_committee(BLS)


def test_a_proposal_must_follow_the_chains_current_committee() -> None:
    verify_proposal(PROPOSAL, origin=7, gateway=SOURCE, chain_epoch=1, chain_hash=b"\x05" * 32)
    with pytest.raises(StaleProposal):
        verify_proposal(
            PROPOSAL, origin=7, gateway=SOURCE, chain_epoch=2, chain_hash=b"\x05" * 32
        )  # replay of an applied one
    with pytest.raises(StaleProposal):
        verify_proposal(PROPOSAL, origin=7, gateway=SOURCE, chain_epoch=1, chain_hash=b"\x06" * 32)
    with pytest.raises(OriginMismatch):
        verify_proposal(PROPOSAL, origin=8, gateway=SOURCE, chain_epoch=1, chain_hash=b"\x05" * 32)
    with pytest.raises(GatewayMismatch):  # another deployment's origin with the same domain id
        verify_proposal(PROPOSAL, origin=7, gateway=b"\x66" * 32, chain_epoch=1, chain_hash=b"\x05" * 32)
