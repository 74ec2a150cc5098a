"""ECDSA -> ECDSA hand-overs off-chain: proposal shapes and JSON, the attestor's checks against the
chain (a fake reader), its EIP-191 signature, aggregation and the certificate's verification."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from adapters.evm.ecdsa_gas import EcdsaSigningCommittee
from relay.chains import OnChainEcdsaCommittee
from relay.errors import (
    EpochMismatch,
    GatewayMismatch,
    InvalidCommittee,
    InvalidHandover,
    InvalidSignature,
    MalformedEncoding,
    OriginMismatch,
)
from relay.handover import NotACommitteeMember, StaleProposal
from relay.handover_ecdsa import (
    EcdsaHandoverCertificate,
    EcdsaHandoverProposal,
    aggregate_ecdsa_handover,
    compute_ecdsa_proposal_digest,
    ecdsa_certificate_from_dict,
    ecdsa_certificate_to_dict,
    ecdsa_proposal_from_dict,
    ecdsa_proposal_to_dict,
    is_ecdsa_document,
    verify_ecdsa_handover_certificate,
)
from relay.roles.ecdsa_handover import EcdsaHandoverSigner
from relay.roles.ledger import AttestorIdentity
from relay.roles.membership import ConflictingHandover, NoCommitteeChain, SigningRefused
from relay.verify.ecdsa import EcdsaCertificate, compute_eth_signed_message_hash, recover_address

ORIGIN = 7
GATEWAY = bytes(12) + b"\x42" * 20
TOKEN = "operator-token"
CURRENT = EcdsaSigningCommittee.generate(4, epoch=3, seed=b"current ecdsa committee")
NEXT = EcdsaSigningCommittee.generate(4, epoch=4, seed=b"next ecdsa committee")


def proposal(**changes: Any) -> EcdsaHandoverProposal:
    base = EcdsaHandoverProposal(
        origin=ORIGIN,
        gateway=GATEWAY,
        epoch=4,
        threshold=3,
        members=tuple((address, 1) for address in NEXT.committee.signers),
        current_committee_hash=CURRENT.committee.hash(),
    )
    return replace(base, **changes)


class Reader:
    """The committee chain as the attestor reads it: CURRENT at epoch 3 (or `committee`)."""

    domain = 2

    def __init__(self, committee: OnChainEcdsaCommittee | None = None) -> None:
        self.committee = committee or OnChainEcdsaCommittee(
            3, CURRENT.committee.hash(), 3, tuple((a, 1) for a in CURRENT.committee.signers)
        )

    def committee_of(self, origin: int) -> tuple[int, bytes] | None:
        return self.committee.epoch, self.committee.committee_hash

    def current_committee(self, origin: int) -> None:
        return None

    def current_ecdsa_committee(self, origin: int) -> OnChainEcdsaCommittee | None:
        return self.committee


def signer(member: int = 1, reader: Any = None, *, low: bool = False) -> EcdsaHandoverSigner:
    identity = AttestorIdentity(ORIGIN, GATEWAY, 3, member, CURRENT.committee.signers[member], b"")
    return EcdsaHandoverSigner(
        SimpleNamespace(identity=identity),  # type: ignore[arg-type]
        reader or Reader(),
        CURRENT.secret_keys[member],
        TOKEN,
        allow_low_threshold=low,
    )


def test_a_member_signs_the_handover_digest_as_eip191_after_checking_the_chain() -> None:
    signed = signer(1).sign(proposal())
    digest = compute_ecdsa_proposal_digest(
        ORIGIN, GATEWAY, 3, CURRENT.committee.hash(), proposal().build_committee().hash()
    )
    assert signed.signer_index == 1 and signed.signer_address == CURRENT.committee.signers[1]
    assert recover_address(compute_eth_signed_message_hash(digest), signed.signature) == signed.signer_address
    assert signed.signature[64] in (27, 28) and signed.next_committee_hash == NEXT.committee.hash()


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"origin": 8}, OriginMismatch),
        ({"gateway": b"\x66" * 32}, GatewayMismatch),
        ({"epoch": 5}, StaleProposal),
        ({"epoch": 3}, StaleProposal),
        ({"current_committee_hash": b"\x11" * 32}, StaleProposal),
        ({"threshold": 2}, InvalidCommittee),  # below two thirds, not allowed by the attestor
        ({"threshold": 2, "allow_low_threshold": True}, InvalidCommittee),  # the proposal alone cannot
        ({"threshold": 5}, InvalidCommittee),  # unreachable
        ({"members": ((NEXT.committee.signers[0], 1),) * 4}, InvalidCommittee),  # duplicates
        ({"members": ((bytes(20), 1),), "threshold": 1}, InvalidCommittee),  # the zero address
    ],
)
def test_every_bad_proposal_is_refused_with_its_typed_error(changes: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        signer(1).sign(proposal(**changes))


def test_low_threshold_only_with_the_attestors_own_consent_and_one_handover_per_committee() -> None:
    allowed = signer(1, low=True)
    allowed.sign(proposal(threshold=2, allow_low_threshold=True))
    # The same committee never signs a second, different next committee (a fork of destinations).
    with pytest.raises(ConflictingHandover):
        allowed.sign(proposal())


def test_a_non_member_no_chain_a_wrong_token_are_refused() -> None:
    outsider = signer(1)
    outsider.ledger = SimpleNamespace(  # type: ignore[assignment]
        identity=AttestorIdentity(ORIGIN, GATEWAY, 3, 0, NEXT.committee.signers[0], b"")
    )
    with pytest.raises(NotACommitteeMember):
        outsider.sign(proposal())
    with pytest.raises(NoCommitteeChain):
        EcdsaHandoverSigner(signer().ledger, None, CURRENT.secret_keys[0], TOKEN).sign(proposal())
    for given in ("", "wrong", TOKEN + "x"):
        with pytest.raises(SigningRefused):
            signer().check_token(given)
    with pytest.raises(SigningRefused):  # no token configured: nobody may ask
        EcdsaHandoverSigner(signer().ledger, Reader(), CURRENT.secret_keys[0], None).check_token(TOKEN)
    signer().check_token(TOKEN)


def test_signatures_aggregate_into_a_certificate_the_gateway_rules_accept() -> None:
    signatures = {s.signer_address: s.signature for s in (signer(i).sign(proposal()) for i in range(3))}
    certificate = aggregate_ecdsa_handover(CURRENT.committee, proposal(), signatures)
    assert verify_ecdsa_handover_certificate(CURRENT.committee, certificate) == NEXT.committee
    assert len(certificate.certificate.signature) == 3 * 65
    with pytest.raises(InvalidHandover):  # two of four: below the quorum
        aggregate_ecdsa_handover(CURRENT.committee, proposal(), dict(list(signatures.items())[:2]))
    with pytest.raises(NotACommitteeMember):
        aggregate_ecdsa_handover(CURRENT.committee, proposal(), {NEXT.committee.signers[0]: b"\x01" * 65})
    swapped = dict(zip(signatures, reversed(list(signatures.values())), strict=True))
    with pytest.raises(InvalidSignature):  # a signature filed under another member
        aggregate_ecdsa_handover(CURRENT.committee, proposal(), swapped)
    tampered = EcdsaHandoverCertificate(replace(proposal(), threshold=4), certificate.certificate)
    with pytest.raises(InvalidHandover):  # the certificate signs another next committee
        verify_ecdsa_handover_certificate(CURRENT.committee, tampered)
    with pytest.raises(EpochMismatch):
        verify_ecdsa_handover_certificate(NEXT.committee, certificate)


def test_proposals_and_certificates_round_trip_through_json_and_hostile_json_is_refused() -> None:
    signatures = {s.signer_address: s.signature for s in (signer(i).sign(proposal()) for i in range(3))}
    certificate = aggregate_ecdsa_handover(CURRENT.committee, proposal(), signatures)
    data = ecdsa_certificate_to_dict(certificate)
    assert is_ecdsa_document(data) and is_ecdsa_document(data["proposal"])
    assert ecdsa_certificate_from_dict(data) == certificate
    assert ecdsa_proposal_from_dict(ecdsa_proposal_to_dict(proposal())) == proposal()
    good = ecdsa_proposal_to_dict(proposal())
    hostile = [
        [],
        {**good, "extra": 1},
        {**good, "scheme": "bls"},
        {**good, "epoch": "4"},
        {**good, "epoch": 2**64},
        {**good, "origin": True},
        {**good, "gateway": "0x" + "42" * 20},
        {**good, "members": [{"address": "0x" + "11" * 19, "weight": 1}]},
        {**good, "members": [{"address": "0x" + "11" * 20, "weight": 0}]},
        {**good, "members": [{"address": "0x" + "11" * 20, "public_key": "0x"}]},
        {**good, "members": [{"address": "0x" + "11" * 20}] * 129},
        {**good, "members": []},
    ]
    for document in hostile:
        with pytest.raises(MalformedEncoding):
            ecdsa_proposal_from_dict(document)
    for signatures_hex in ("0x", "0x" + "00" * 64, "0x" + "00" * 65 * 129):
        with pytest.raises(MalformedEncoding):
            ecdsa_certificate_from_dict({**data, "signatures": signatures_hex})
    with pytest.raises(MalformedEncoding):
        ecdsa_certificate_from_dict({**data, "signature": data["signatures"]})
    assert isinstance(certificate.certificate, EcdsaCertificate)


def test_the_wire_forms_round_trip_and_hostile_ones_are_refused() -> None:
    from relay.rpc import convert
    from relay.v1 import destination_pb2

    signatures = {s.signer_address: s.signature for s in (signer(i).sign(proposal()) for i in range(3))}
    certificate = aggregate_ecdsa_handover(CURRENT.committee, proposal(), signatures)
    assert convert.ecdsa_proposal_from_proto(convert.ecdsa_proposal_to_proto(proposal())) == proposal()
    wire = convert.ecdsa_handover_certificate_to_proto(certificate)
    request = destination_pb2.SubmitHandoverRequest(ecdsa_handover=wire)
    assert convert.any_handover_certificate_from_proto(request) == certificate
    with pytest.raises(MalformedEncoding):  # neither set
        convert.any_handover_certificate_from_proto(destination_pb2.SubmitHandoverRequest())
    both = destination_pb2.SubmitHandoverRequest(ecdsa_handover=wire)
    both.handover.proposal.origin = ORIGIN
    with pytest.raises(MalformedEncoding):  # both set
        convert.any_handover_certificate_from_proto(both)
    for field, value in (("signatures", b"\x01" * 64), ("signatures", b""), ("signers", b"\xff" * 17)):
        hostile = type(wire).FromString(wire.SerializeToString())
        setattr(hostile, field, value)
        with pytest.raises(MalformedEncoding):
            convert.ecdsa_handover_certificate_from_proto(hostile)
    huge = convert.ecdsa_proposal_to_proto(proposal())
    huge.members.extend(huge.members[0] for _ in range(130))
    with pytest.raises(MalformedEncoding):
        convert.ecdsa_proposal_from_proto(huge)
    short = convert.ecdsa_proposal_to_proto(proposal())
    short.members[0].address = b"\x01" * 19
    with pytest.raises(MalformedEncoding):
        convert.ecdsa_proposal_from_proto(short)


def test_the_devnet_makes_spare_ecdsa_keys_for_a_rotation_and_accepts_the_scheme() -> None:
    from relay.errors import ConfigurationError
    from relay.tools.devnet_committee import build_devnet_committee, compute_address, validate_scheme_choice

    made = build_devnet_committee("ecdsa", 4, 2, None)
    assert len(made.ecdsa_secrets) == 6 and len(made.committee) == 4 and made.committee.threshold == 3
    assert [m.address for m in made.committee.members] == [compute_address(s) for s in made.ecdsa_secrets[:4]]
    validate_scheme_choice("ecdsa", 2)  # --rotate-after with ECDSA: allowed now
    with pytest.raises(ConfigurationError):
        validate_scheme_choice("schnorr", 0)
