"""The committee stage with an ECDSA origin: an ECDSA hand-over certificate is verified, kept (a
restart follows it), submitted where a gateway lags, and followed; forged ones and the wrong
scheme are refused and change nothing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from adapters.evm.ecdsa_gas import EcdsaSigningCommittee
from relay.errors import EpochMismatch, InvalidHandover
from relay.handover import StaleProposal
from relay.handover_ecdsa import (
    EcdsaHandoverCertificate,
    EcdsaHandoverProposal,
    aggregate_ecdsa_handover,
    compute_ecdsa_proposal_digest,
    verify_ecdsa_handover_certificate,
)
from relay.metrics import RelayMetrics
from relay.relayer.committees import CommitteeFollower, to_checkpoint_committee
from relay.relayer.config import DestinationConfig
from relay.relayer.state import DestinationState
from relay.store import Store
from relay.verify.ecdsa import EcdsaCertificate, EcdsaCommittee, sign_digest
from tests.unit.relayer.helpers import BLS, GATEWAY, ORIGIN, Clock, make_source
from tests.unit.relayer.test_committees import certificate_for, proposal_for

DESTINATION = 2
CURRENT = EcdsaSigningCommittee.generate(4, epoch=1, seed=b"relayer ecdsa committee")
NEXT = EcdsaSigningCommittee.generate(4, epoch=2, seed=b"relayer next ecdsa committee")


def proposal(**changes: Any) -> EcdsaHandoverProposal:
    members = tuple((a, 1) for a in (*CURRENT.committee.signers[1:], NEXT.committee.signers[0]))
    return replace(EcdsaHandoverProposal(ORIGIN, GATEWAY, 2, 3, members, CURRENT.committee.hash()), **changes)


def certify(chosen: EcdsaHandoverProposal, signers: tuple[int, ...] = (0, 1, 2)) -> EcdsaHandoverCertificate:
    digest = compute_ecdsa_proposal_digest(
        ORIGIN, GATEWAY, 1, CURRENT.committee.hash(), chosen.build_committee().hash()
    )
    signatures = {CURRENT.committee.signers[i]: sign_digest(CURRENT.secret_keys[i], digest) for i in signers}
    return aggregate_ecdsa_handover(CURRENT.committee, chosen, signatures)


class EcdsaGateway:
    """A destination gateway holding an ECDSA committee; `submit_handover` verifies like `handoverEcdsa`."""

    address = "submitter"

    def __init__(self, committee: EcdsaCommittee) -> None:
        self.domain = DESTINATION
        self.committee = committee
        self.submitted: list[int] = []

    def committee_of(self, origin: int) -> tuple[int, bytes] | None:
        return (self.committee.epoch, self.committee.hash()) if origin == ORIGIN else None

    def current_committee(self, origin: int) -> None:
        return None

    def submit_handover(self, certificate: Any, timeout: float) -> tuple[bytes, int]:
        self.committee = verify_ecdsa_handover_certificate(self.committee, certificate)
        self.submitted.append(certificate.proposal.epoch)
        return b"\x01" * 32, self.committee.epoch

    def probe(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        pass


def make(store: Store, metrics: RelayMetrics, clock: Clock) -> tuple[CommitteeFollower, EcdsaGateway, Any]:
    gateway = EcdsaGateway(CURRENT.committee)
    destination = DestinationState(DestinationConfig(domain=DESTINATION, submitter="submitter"), gateway)  # type: ignore[arg-type]
    follower = CommitteeFollower(
        store,
        metrics,
        clock,
        BLS,
        {DESTINATION: destination},
        {DESTINATION: gateway},
        sync_interval=5.0,  # type: ignore[dict-item]
    )
    source = make_source(store)
    source.committee = to_checkpoint_committee(CURRENT.committee)
    source.committees = {1: source.committee}
    return follower, gateway, source


def test_an_ecdsa_handover_is_kept_submitted_where_the_gateway_lags_and_followed(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    follower, gateway, source = make(store, metrics, clock)
    follower.accept(source, certify(proposal()))
    assert follower.follow(source)
    assert gateway.submitted == [2] and gateway.committee.hash() == proposal().build_committee().hash()
    assert source.committee.epoch == 2 and source.committee.hash() == gateway.committee.hash()
    assert metrics.registry.get_sample_value("relay_committee_epoch", {"origin": "1"}) == 2

    restarted = make_source(store)  # from the configured (epoch 1) committee and the stored certificate
    restarted.committee = to_checkpoint_committee(CURRENT.committee)
    restarted.committees = {1: restarted.committee}
    follower.restore(restarted)
    assert restarted.committee.epoch == 2 and restarted.committee.hash() == gateway.committee.hash()


@pytest.mark.parametrize("attack", ["short of quorum", "outsider signs", "wrong epoch", "stale hash", "bls"])
def test_a_forged_or_wrong_scheme_handover_is_refused_and_nothing_changes(
    store: Store, metrics: RelayMetrics, clock: Clock, attack: str
) -> None:
    follower, gateway, source = make(store, metrics, clock)
    valid = certify(proposal())
    expected: type[Exception] = InvalidHandover
    certificate: Any
    if attack == "short of quorum":
        signatures = valid.certificate.signatures()[:2]
        certificate = replace(valid, certificate=EcdsaCertificate(b"\x03", b"".join(signatures)))
    elif attack == "outsider signs":
        digest = compute_ecdsa_proposal_digest(
            ORIGIN, GATEWAY, 1, CURRENT.committee.hash(), proposal().build_committee().hash()
        )
        forged = valid.certificate.signature[:130] + sign_digest(NEXT.secret_keys[3], digest)
        certificate = replace(valid, certificate=EcdsaCertificate(valid.certificate.signers, forged))
    elif attack == "wrong epoch":
        certificate = replace(valid, proposal=proposal(epoch=3))
        expected = EpochMismatch
    elif attack == "stale hash":
        certificate = replace(valid, proposal=proposal(current_committee_hash=b"\x11" * 32))
        expected = StaleProposal
    else:  # a BLS hand-over for an origin whose committee is ECDSA
        certificate = certificate_for(proposal_for())
    with pytest.raises(expected):
        follower.accept(source, certificate)
    follower.follow(source)
    assert source.committee.epoch == 1 and gateway.submitted == [] and store.handovers(ORIGIN) == []
