"""The committee stage: hand-overs verified, kept, submitted where a gateway lags, followed, and what
an older epoch attested sent back to be attested again."""

from __future__ import annotations

from typing import Any

import pytest

from relay.chains import OnChainCommittee
from relay.errors import EpochMismatch, InvalidHandover, InvalidProofOfPossession
from relay.handover import (
    HandoverCertificate,
    HandoverProposal,
    StaleProposal,
    aggregate_handover,
    compute_proposal_digest,
)
from relay.metrics import RelayMetrics
from relay.relayer.committees import CommitteeFollower
from relay.relayer.state import DestinationState
from relay.store import Store, Transition
from relay.verify.bls import keygen
from relay.verify.committee import Committee, Member, QuorumCertificate
from tests.unit.relayer.helpers import (
    BLS,
    COMMITTEE,
    GATEWAY,
    MEMBERS,
    ORIGIN,
    SECRETS,
    Clock,
    S,
    checkpoint_over,
    make_message,
    make_source,
    state_of,
    store_attested,
    store_verified,
    walk,
)

DESTINATION = 2
NEW_SECRETS = [keygen(bytes([0x40 + i]) * 32) for i in range(2)]
NEW_MEMBERS = [Member(BLS.secret_to_public_key(s), BLS.prove_possession(s), 1) for s in NEW_SECRETS]
NEXT_MEMBERS = (*MEMBERS[1:], *NEW_MEMBERS)  # member 0 removed, two added: 5 members


def on_chain(committee: Committee) -> OnChainCommittee:
    return OnChainCommittee(
        committee.epoch,
        committee.hash(),
        committee.threshold,
        tuple((m.public_key, m.weight) for m in committee.members),
    )


def proposal_for(
    current: Committee = COMMITTEE, members: tuple[Member, ...] = NEXT_MEMBERS
) -> HandoverProposal:
    return HandoverProposal(ORIGIN, GATEWAY, current.epoch + 1, 4, members, current.hash())


def certificate_for(proposal: HandoverProposal, signers: tuple[int, ...] = (0, 1, 2)) -> HandoverCertificate:
    following = proposal.build_committee(BLS)
    digest = compute_proposal_digest(ORIGIN, GATEWAY, COMMITTEE.epoch, COMMITTEE.hash(), following.hash())
    signatures = {MEMBERS[i].public_key: BLS.sign(SECRETS[i], digest) for i in signers}
    return aggregate_handover(COMMITTEE, proposal, signatures, BLS)


class FakeGateway:
    """A destination gateway's committees (the chain's side of `CommitteeReader`)."""

    def __init__(self, committee: Committee) -> None:
        self.domain = DESTINATION
        self.committee = committee

    def committee_of(self, origin: int) -> tuple[int, bytes] | None:
        return (self.committee.epoch, self.committee.hash()) if origin == ORIGIN else None

    def current_committee(self, origin: int) -> OnChainCommittee | None:
        return on_chain(self.committee) if origin == ORIGIN else None


class HandoverSubmitterFake:
    """A submitter whose gateway verifies like the real one and moves to the next committee."""

    address = "submitter"

    def __init__(self, gateway: FakeGateway) -> None:
        self.gateway = gateway
        self.submitted: list[int] = []

    def submit_handover(self, certificate: HandoverCertificate, timeout: float) -> tuple[bytes, int]:
        from relay.handover import verify_handover_certificate

        self.gateway.committee = verify_handover_certificate(self.gateway.committee, certificate, BLS)
        self.submitted.append(certificate.proposal.epoch)
        return b"\x01" * 32, self.gateway.committee.epoch

    def deliver(self, *args: Any) -> Any:
        raise AssertionError("no delivery here")

    def probe(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        pass


def make_follower(store: Store, metrics: RelayMetrics, clock: Clock, gateway: FakeGateway) -> Any:
    from relay.relayer.config import DestinationConfig

    submitter = HandoverSubmitterFake(gateway)
    destination = DestinationState(DestinationConfig(domain=DESTINATION, submitter="submitter"), submitter)
    follower = CommitteeFollower(
        store, metrics, clock, BLS, {DESTINATION: destination}, {DESTINATION: gateway}, sync_interval=5.0
    )
    return follower, submitter


def test_a_handover_is_submitted_where_the_gateway_lags_and_old_epoch_messages_are_attested_again(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    gateway = FakeGateway(COMMITTEE)
    follower, submitter = make_follower(store, metrics, clock, gateway)
    source = make_source(store)
    attested = [make_message(n) for n in range(3)]
    store_verified(store, source, attested[:2], checkpoint_over(attested[:2]))
    store_attested(store, source, attested[2:], checkpoint_over(attested))
    walk(store, attested[1].id, S.SUBMITTED, S.DELIVERED)  # delivered under the old epoch: stays
    follower.follow(source)  # in step with the gateway: nothing moves
    assert source.committee.epoch == 1 and state_of(store, attested[0].id) is S.VERIFIED

    follower.accept(source, certificate_for(proposal_for()))
    assert source.committee.epoch == 1  # the switch happens in the source's own pass
    assert follower.follow(source)
    assert submitter.submitted == [2]
    assert source.committee.epoch == 2 and len(source.committee) == 5
    assert state_of(store, attested[0].id) is S.FINAL  # VERIFIED under epoch 1: attested again
    assert state_of(store, attested[2].id) is S.FINAL  # ATTESTED under epoch 1: attested again
    assert state_of(store, attested[1].id) is S.DELIVERED
    assert metrics.registry.get_sample_value("relay_reattested_messages_total", {"origin": "1"}) == 2
    assert metrics.registry.get_sample_value("relay_committee_epoch", {"origin": "1"}) == 2

    # A restarted relayer starts from its configured committee and follows the stored hand-over.
    restarted = make_source(store)
    follower.restore(restarted)
    assert restarted.committee.epoch == 2 and restarted.committee.hash() == gateway.committee.hash()


def test_a_message_parked_by_the_gateways_wrong_epoch_is_attested_again(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    gateway = FakeGateway(COMMITTEE)
    follower, _ = make_follower(store, metrics, clock, gateway)
    source = make_source(store)
    messages = [make_message(0), make_message(1)]
    store_verified(store, source, messages, checkpoint_over(messages))
    walk(store, messages[0].id, S.SUBMITTED)
    store.apply_transition(
        Transition(
            messages[0].id, S.SUBMITTED, S.PARKED, {"last_error": "GatewayNotReady: WrongEpoch(2, 1)"}
        ),
        clock(),
    )
    walk(store, messages[1].id, S.SUBMITTED, S.PARKED)  # parked for another reason: left for the operator
    follower.accept(source, certificate_for(proposal_for()))
    follower.follow(source)
    assert state_of(store, messages[0].id) is S.FINAL
    assert state_of(store, messages[1].id) is S.PARKED


def test_a_committee_handed_over_by_someone_else_is_followed_from_the_gateway(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    following = proposal_for().build_committee(BLS)
    gateway = FakeGateway(following)  # the gateway is already at epoch 2; this relayer has no certificate
    follower, submitter = make_follower(store, metrics, clock, gateway)
    source = make_source(store)
    assert follower.follow(source)
    assert source.committee.epoch == 2 and source.committee.hash() == following.hash()
    assert submitter.submitted == []


@pytest.mark.parametrize(
    "attack", ["short of quorum", "removed member signs", "rogue key", "wrong epoch", "stale hash"]
)
def test_a_forged_handover_is_refused_and_nothing_changes(
    store: Store, metrics: RelayMetrics, clock: Clock, attack: str
) -> None:
    gateway = FakeGateway(COMMITTEE)
    follower, submitter = make_follower(store, metrics, clock, gateway)
    source = make_source(store)
    proposal = proposal_for()
    following = proposal.build_committee(BLS)
    digest = compute_proposal_digest(ORIGIN, GATEWAY, 1, COMMITTEE.hash(), following.hash())
    signature = BLS.aggregate_signatures([BLS.sign(SECRETS[i], digest) for i in (0, 1)])
    certificate = HandoverCertificate(proposal, QuorumCertificate(b"\x03", signature))
    expected: type[Exception] = InvalidHandover  # short of quorum
    if attack == "removed member signs":
        # Two members and an outsider key signing in the place of the third.
        outsider = keygen(b"\x77" * 32)
        signature = BLS.aggregate_signatures([signature, BLS.sign(outsider, digest)])
        certificate = HandoverCertificate(proposal, QuorumCertificate(b"\x07", signature))
    elif attack == "rogue key":
        rogue = Member(NEW_MEMBERS[0].public_key, MEMBERS[0].proof_of_possession, 1)
        certificate = HandoverCertificate(
            HandoverProposal(ORIGIN, GATEWAY, 2, 4, (*MEMBERS[1:], rogue, NEW_MEMBERS[1]), COMMITTEE.hash()),
            certificate.certificate,
        )
        expected = InvalidProofOfPossession
    elif attack == "wrong epoch":
        certificate = HandoverCertificate(
            HandoverProposal(ORIGIN, GATEWAY, 3, 4, NEXT_MEMBERS, COMMITTEE.hash()), certificate.certificate
        )
        expected = EpochMismatch
    elif attack == "stale hash":
        certificate = HandoverCertificate(
            HandoverProposal(ORIGIN, GATEWAY, 2, 4, NEXT_MEMBERS, b"\x11" * 32), certificate.certificate
        )
        expected = StaleProposal
    with pytest.raises(expected):
        follower.accept(source, certificate)
    follower.follow(source)
    assert source.committee.epoch == 1 and submitter.submitted == [] and store.handovers(ORIGIN) == []
