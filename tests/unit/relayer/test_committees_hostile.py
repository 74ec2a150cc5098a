"""The committee stage against hostile or lagging parties: a destination RPC that lies about the
committee, a submitter whose answer never moves the gateway on, and a destination that lagged
behind a hand-over and catches up later."""

from __future__ import annotations

from typing import Any

from relay.chains import OnChainCommittee
from relay.errors import RpcUnavailable
from relay.handover import HandoverCertificate
from relay.metrics import RelayMetrics
from relay.relayer.committees import CommitteeFollower
from relay.relayer.config import DestinationConfig
from relay.relayer.state import DestinationState
from relay.store import Store, Transition
from relay.verify.bls import keygen
from relay.verify.committee import Committee, Member
from tests.unit.relayer.helpers import (
    BLS,
    COMMITTEE,
    Clock,
    S,
    checkpoint_over,
    make_message,
    make_source,
    state_of,
    store_verified,
    walk,
)
from tests.unit.relayer.test_committees import (
    FakeGateway,
    HandoverSubmitterFake,
    certificate_for,
    on_chain,
    proposal_for,
)

OTHER_DESTINATION = 3
LIAR_SECRETS = [keygen(bytes([0x60 + i]) * 32) for i in range(4)]
LIAR_MEMBERS = [Member(BLS.secret_to_public_key(s), BLS.prove_possession(s), 1) for s in LIAR_SECRETS]


def liar_committee(epoch: int) -> Committee:
    """A committee of keys the liar holds, consistent with itself (it hashes to what it claims)."""
    return Committee.create(epoch, LIAR_MEMBERS, backend=BLS)


class LyingGateway(FakeGateway):
    """A destination RPC that, while `lying`, shows `fake` instead of the gateway's committee."""

    def __init__(self, committee: Committee, domain: int) -> None:
        super().__init__(committee)
        self.domain = domain
        self.fake: OnChainCommittee | None = None

    def committee_of(self, origin: int) -> tuple[int, bytes] | None:
        if self.fake is not None:
            return self.fake.epoch, self.fake.committee_hash
        return super().committee_of(origin)

    def current_committee(self, origin: int) -> OnChainCommittee | None:
        return self.fake if self.fake is not None else super().current_committee(origin)


def make_follower(
    store: Store,
    metrics: RelayMetrics,
    clock: Clock,
    gateways: dict[int, FakeGateway],
    submitters: dict[int, Any],
) -> CommitteeFollower:
    destinations = {
        domain: DestinationState(DestinationConfig(domain=domain, submitter=f"s{domain}"), submitters[domain])
        for domain in gateways
    }
    return CommitteeFollower(store, metrics, clock, BLS, destinations, dict(gateways), sync_interval=5.0)


def sync(follower: CommitteeFollower, source: Any) -> bool:
    source.committee_sync_due = True
    return follower.follow(source)


def test_one_lying_destination_rpc_cannot_move_the_origin_and_a_lie_is_dropped_once_it_stops(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    honest = LyingGateway(COMMITTEE, 2)
    liar = LyingGateway(COMMITTEE, OTHER_DESTINATION)
    gateways: dict[int, FakeGateway] = {2: honest, OTHER_DESTINATION: liar}
    follower = make_follower(
        store, metrics, clock, gateways, {d: HandoverSubmitterFake(g) for d, g in gateways.items()}
    )
    source = make_source(store)
    messages = [make_message(0, destination=2)]
    store_verified(store, source, messages, checkpoint_over(messages))

    # The worst epoch: a self-consistent fake committee at 2^64-1 on one destination only.
    liar.fake = on_chain(liar_committee(2**64 - 1))
    assert not sync(follower, source)
    assert source.committee is COMMITTEE  # the honest destination's epoch-1 proofs still verify
    assert state_of(store, messages[0].id) is S.VERIFIED  # nothing sent back to be attested again

    # One epoch ahead is followed from one gateway (someone else's hand-over looks like this) ...
    liar.fake = on_chain(liar_committee(2))
    assert sync(follower, source)
    assert source.committee.epoch == 2 and source.committee.hash() == liar_committee(2).hash()
    # ... but given up once no gateway holds it any more: back to the proven epoch-1 committee.
    liar.fake = None
    assert sync(follower, source)
    assert source.committee is COMMITTEE
    assert metrics.registry.get_sample_value("relay_committee_epoch", {"origin": "1"}) == 1

    # The real hand-over to epoch 2 (by someone else) is then followed, not the cached lie.
    real = proposal_for().build_committee(BLS)
    honest.committee = liar.committee = real
    assert sync(follower, source)
    assert source.committee.hash() == real.hash()


def test_a_fake_committee_at_a_real_epoch_is_replaced_when_the_gateways_show_the_real_one(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    honest = LyingGateway(COMMITTEE, 2)
    liar = LyingGateway(COMMITTEE, OTHER_DESTINATION)
    gateways: dict[int, FakeGateway] = {2: honest, OTHER_DESTINATION: liar}
    follower = make_follower(
        store, metrics, clock, gateways, {d: HandoverSubmitterFake(g) for d, g in gateways.items()}
    )
    source = make_source(store)
    liar.fake = on_chain(liar_committee(2))
    assert sync(follower, source) and source.committee.hash() == liar_committee(2).hash()
    real = proposal_for().build_committee(BLS)
    honest.committee = liar.committee = real  # the real epoch 2 lands; the liar stops lying
    liar.fake = None
    assert sync(follower, source)
    assert source.committee.epoch == 2 and source.committee.hash() == real.hash()


def test_a_committee_whose_members_do_not_hash_to_committee_of_is_not_followed(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    gateway = LyingGateway(COMMITTEE, 2)
    follower = make_follower(store, metrics, clock, {2: gateway}, {2: HandoverSubmitterFake(gateway)})
    source = make_source(store)
    fake = on_chain(liar_committee(2))
    gateway.fake = OnChainCommittee(
        2, proposal_for().build_committee(BLS).hash(), fake.threshold, fake.members
    )
    assert not sync(follower, source)
    assert source.committee is COMMITTEE


def test_every_gateway_showing_the_same_jump_is_followed(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    """An owner's re-enrollment with a higher epoch, on every destination: followed."""
    recovered = liar_committee(9)
    gateways: dict[int, FakeGateway] = {2: LyingGateway(recovered, 2), 3: LyingGateway(recovered, 3)}
    follower = make_follower(
        store, metrics, clock, gateways, {d: HandoverSubmitterFake(g) for d, g in gateways.items()}
    )
    source = make_source(store)
    assert sync(follower, source)
    assert source.committee.epoch == 9 and source.committee.hash() == recovered.hash()


class StuckSubmitter(HandoverSubmitterFake):
    """Reports an epoch that does not move the gateway on (0, or the same epoch)."""

    def __init__(self, gateway: FakeGateway, answer: int) -> None:
        super().__init__(gateway)
        self.answer = answer

    def submit_handover(self, certificate: HandoverCertificate, timeout: float) -> tuple[bytes, int]:
        self.submitted.append(certificate.proposal.epoch)
        if len(self.submitted) > 3:
            raise AssertionError("the follower keeps submitting in a loop")
        return b"", self.answer


def test_a_submitter_answer_that_does_not_move_the_gateway_on_ends_the_pass(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    for answer in (0, 1):
        gateway = FakeGateway(COMMITTEE)
        submitter = StuckSubmitter(gateway, answer)
        follower = make_follower(store, metrics, clock, {2: gateway}, {2: submitter})
        source = make_source(store)
        follower.accept(source, certificate_for(proposal_for()))
        results = follower.submit_where_lagging(source)
        assert submitter.submitted == [2]
        assert f"reported epoch {answer}" in results[0].error
        assert source.destination_epochs[2] == 1 and source.committee.epoch == 1


class FailingOnceSubmitter(HandoverSubmitterFake):
    def __init__(self, gateway: FakeGateway) -> None:
        super().__init__(gateway)
        self.down = True

    def submit_handover(self, certificate: HandoverCertificate, timeout: float) -> tuple[bytes, int]:
        if self.down:
            raise RpcUnavailable("submitter down")
        return super().submit_handover(certificate, timeout)


def test_messages_a_lagging_destination_refused_with_wrong_epoch_go_again_once_it_catches_up(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    ahead, lagging = FakeGateway(COMMITTEE), LyingGateway(COMMITTEE, OTHER_DESTINATION)
    lagging_submitter = FailingOnceSubmitter(lagging)
    follower = make_follower(
        store,
        metrics,
        clock,
        {2: ahead, OTHER_DESTINATION: lagging},
        {2: HandoverSubmitterFake(ahead), OTHER_DESTINATION: lagging_submitter},
    )
    source = make_source(store)
    follower.accept(source, certificate_for(proposal_for()))
    assert sync(follower, source)  # destination 2 took the hand-over; destination 3's submitter is down
    assert source.committee.epoch == 2 and source.destination_epochs == {2: 2, OTHER_DESTINATION: 1}

    # Attested under epoch 2 for the lagging destination: its gateway refused it (WrongEpoch).
    refused = [make_message(0, destination=OTHER_DESTINATION), make_message(1, destination=2)]
    store_verified(store, source, refused, checkpoint_over(refused, epoch=2))
    for message in refused:
        walk(store, message.id, S.SUBMITTED)
        store.apply_transition(
            Transition(
                message.id,
                S.SUBMITTED,
                S.PARKED,
                {"last_error": "GatewayRejected: WrongEpoch(1, 2)", "error_reason": "GatewayRejected"},
            ),
            clock(),
        )
    sync(follower, source)  # still lagging: they stay parked
    assert state_of(store, refused[0].id) is S.PARKED

    lagging_submitter.down = False
    sync(follower, source)
    assert source.destination_epochs[OTHER_DESTINATION] == 2
    assert state_of(store, refused[0].id) is S.FINAL  # attested again and delivered to the caught-up gateway
    assert state_of(store, refused[1].id) is S.PARKED  # its destination did not move: left for the operator


def test_a_committee_read_from_a_gateway_then_proven_by_its_certificate_is_kept_quietly(
    store: Store, metrics: RelayMetrics, clock: Clock, caplog: Any
) -> None:
    following = proposal_for().build_committee(BLS)
    gateway = LyingGateway(following, 2)  # someone else handed over; this relayer has no certificate yet
    follower = make_follower(store, metrics, clock, {2: gateway}, {2: HandoverSubmitterFake(gateway)})
    source = make_source(store)
    assert sync(follower, source) and source.committee.epoch == 2
    follower.accept(source, certificate_for(proposal_for()))
    caplog.clear()
    assert not sync(follower, source)
    assert source.committee is source.committees[2] and source.committee.hash() == following.hash()
    assert "stepped back" not in caplog.text
    # Proven now: a gateway RPC that later shows another epoch-2 committee does not dislodge it.
    gateway.fake = on_chain(liar_committee(2))
    assert not sync(follower, source)
    assert source.committee.hash() == following.hash()
