"""An ECDSA committee through the attestation and proving stages: real secp256k1 signatures.

Each attestor's signature must recover to the member at its index; a bad one is stored with its
reason, counted, and never stalls the honest ones; the certificate is the bitfield and the 65-byte
signatures in ascending index, stopping at the threshold weight; the prover re-verifies it.
"""

from __future__ import annotations

from concurrent import futures
from dataclasses import replace
from typing import Any

import pytest
from coincurve import PrivateKey

from relay.chains import OnChainEcdsaCommittee
from relay.errors import InvalidSignature, QuorumNotReached, UnknownSigner
from relay.metrics import RelayMetrics
from relay.peers import AttestorIdentity, PartialSignature
from relay.relayer.attest import AttestationCollector
from relay.relayer.prove import Prover
from relay.relayer.state import SourceState
from relay.store import Store
from relay.verify.committee import Checkpoint, QuorumCertificate
from relay.verify.ecdsa import SECP256K1_ORDER, sign_digest
from relay.verify.ecdsa_quorum import (
    EcdsaCheckpointCommittee,
    EcdsaMember,
    is_ecdsa_certificate,
    verify_committee_checkpoint,
)
from relay.verify.hashing import keccak256

from .helpers import (
    BLS,
    EPOCH,
    GATEWAY,
    ORIGIN,
    Clock,
    checkpoint_over,
    make_message,
    make_source,
    state_of,
    store_final,
)
from .helpers import S as St

MESSAGES = [make_message(n) for n in range(3)]
KEYS = [bytes([0x10 + i]) * 32 for i in range(4)]
OUTSIDER_KEY = b"\x77" * 32


def address_of(secret: bytes) -> bytes:
    return keccak256(PrivateKey(secret).public_key.format(compressed=False)[1:])[12:]


ADDRESSES = [address_of(k) for k in KEYS]
COMMITTEE = EcdsaCheckpointCommittee.create(EPOCH, [EcdsaMember(a, 1) for a in ADDRESSES])  # 3 of 4


def signed(member: int, checkpoint: Checkpoint, *, key: bytes | None = None) -> PartialSignature:
    secret = KEYS[member] if key is None else key
    return PartialSignature(checkpoint, member, ADDRESSES[member], sign_digest(secret, checkpoint.digest()))


def high_s(signature: bytes) -> bytes:
    """The same signature with s -> n - s and v flipped: valid for plain ECDSA, refused (EIP-2)."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_ORDER - s).to_bytes(32, "big") + bytes([signature[64] ^ 1])


class FakeAttestor:
    def __init__(self, index: int, answer: PartialSignature | None) -> None:
        self.address = f"attestor-{index}"
        self.answer = answer

    def get_checkpoint(self, origin: int, min_index: int, timeout: float) -> PartialSignature | None:
        return self.answer

    def get_identity(self, timeout: float) -> AttestorIdentity:
        return AttestorIdentity(ORIGIN, 0, ADDRESSES[0])

    def close(self) -> None:
        pass


def ecdsa_source(store: Store, answers: list[PartialSignature | None]) -> SourceState:
    source = make_source(store, attestors=[FakeAttestor(i, a) for i, a in enumerate(answers)])
    source.committee = COMMITTEE
    source.committees = {EPOCH: COMMITTEE}
    store_final(store, source, MESSAGES)
    return source


@pytest.fixture
def stage(store: Store, metrics: RelayMetrics, clock: Clock, pool: futures.Executor) -> AttestationCollector:
    return AttestationCollector(store, metrics, clock, BLS, pool, timeout=1.0)


def certificate_of(store: Store) -> tuple[Checkpoint, QuorumCertificate]:
    record = store.get(MESSAGES[0].id)
    assert record is not None and record.checkpoint_id is not None
    certified = store.get_certificate(record.checkpoint_id)
    assert certified is not None
    return certified.checkpoint, certified.certificate


def test_four_honest_signatures_make_a_certificate_stopping_at_the_threshold(
    store: Store, stage: AttestationCollector
) -> None:
    checkpoint = checkpoint_over(MESSAGES)
    source = ecdsa_source(store, [signed(i, checkpoint) for i in (3, 2, 1, 0)])  # any answer order
    stage.collect(source)
    assert [state_of(store, m.id) for m in MESSAGES] == [St.ATTESTED] * 3
    stored_checkpoint, certificate = certificate_of(store)
    assert certificate.signer_indices(4) == [0, 1, 2]  # ascending, member 3 not needed
    assert certificate.signature == b"".join(signed(i, checkpoint).signature for i in (0, 1, 2))
    assert is_ecdsa_certificate(certificate)
    assert (
        verify_committee_checkpoint(COMMITTEE, stored_checkpoint, certificate, origin=ORIGIN, gateway=GATEWAY)
        == 3
    )


FORGERIES = {
    "signed by a non-member under a member's address": (
        lambda c: signed(0, c, key=OUTSIDER_KEY),
        "InvalidSignature",
    ),
    "a non-member's own address": (
        lambda c: PartialSignature(c, 0, address_of(OUTSIDER_KEY), sign_digest(OUTSIDER_KEY, c.digest())),
        "UnknownSigner",
    ),
    "another member's signature under member 0's address": (
        lambda c: replace(signed(1, c), signer_index=0, public_key=ADDRESSES[0]),
        "InvalidSignature",
    ),
    "high s (malleated)": (
        lambda c: replace(signed(0, c), signature=high_s(signed(0, c).signature)),
        "InvalidSignature",
    ),
    "v 0/1 instead of 27/28": (
        lambda c: replace(
            signed(0, c), signature=signed(0, c).signature[:64] + bytes([signed(0, c).signature[64] - 27])
        ),
        "InvalidSignature",
    ),
    "v outside 27/28": (
        lambda c: replace(signed(0, c), signature=signed(0, c).signature[:64] + b"\x1d"),
        "InvalidSignature",
    ),
    "over another root": (
        lambda c: replace(signed(0, replace(c, root=b"\xee" * 32)), checkpoint=c),
        "InvalidSignature",
    ),
    "another epoch": (lambda c: signed(0, replace(c, epoch=EPOCH + 1)), "EpochMismatch"),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_bad_signature_is_dropped_and_counted_and_the_others_still_attest(
    store: Store, metrics: RelayMetrics, stage: AttestationCollector, forgery: str
) -> None:
    checkpoint = checkpoint_over(MESSAGES)
    forge, reason = FORGERIES[forgery]
    forged = forge(checkpoint)
    source = ecdsa_source(store, [forged, *(signed(i, checkpoint) for i in (1, 2, 3))])
    stage.collect(source)
    assert [state_of(store, m.id) for m in MESSAGES] == [St.ATTESTED] * 3  # 1, 2, 3 reach 3 of 4
    _, certificate = certificate_of(store)
    assert certificate.signer_indices(4) == [1, 2, 3]
    assert certificate.signature == b"".join(signed(i, checkpoint).signature for i in (1, 2, 3))
    assert (
        metrics.registry.get_sample_value("relay_proof_rejections_total", {"origin": "1", "reason": reason})
        == 1
    )
    stored = [s for s in store.signatures_for(ORIGIN, 0, valid_only=False) if s.attestor == "attestor-0"]
    assert len(stored) == 1 and stored[0].rejected_reason.startswith(reason)


def test_one_member_answering_twice_counts_once(store: Store, stage: AttestationCollector) -> None:
    checkpoint = checkpoint_over(MESSAGES)
    source = ecdsa_source(store, [signed(0, checkpoint), signed(0, checkpoint), signed(1, checkpoint), None])
    stage.collect(source)
    assert [state_of(store, m.id) for m in MESSAGES] == [St.FINAL] * 3  # weight 2 < 3


def test_the_prover_verifies_an_ecdsa_certificate_and_rejects_a_tampered_one(
    store: Store, metrics: RelayMetrics, clock: Clock, stage: AttestationCollector
) -> None:
    checkpoint = checkpoint_over(MESSAGES)
    source = ecdsa_source(store, [signed(i, checkpoint) for i in range(4)])
    stage.collect(source)
    prover = Prover(store, metrics, clock, BLS)
    record = store.get(MESSAGES[0].id)
    assert record is not None
    certified = store.get_certificate(record.checkpoint_id or 0)
    assert certified is not None
    records = [r for m in MESSAGES if (r := store.get(m.id)) is not None]
    assert {t.new for t in prover.compute_transitions(source, certified, records)} == {St.VERIFIED}
    sigs = certified.certificate.signature
    swapped = replace(certified.certificate, signature=sigs[65:130] + sigs[:65] + sigs[130:])  # wrong order
    tampered = replace(certified, certificate=swapped)
    transitions = prover.compute_transitions(source, tampered, records)
    assert {t.new for t in transitions} == {St.REJECTED}
    assert transitions[0].updates["error_reason"] == "InvalidSignature"
    prover.verify_attested(source)
    assert [state_of(store, m.id) for m in MESSAGES] == [St.VERIFIED] * 3


def test_certificate_shapes_the_gateway_refuses_are_refused_off_chain() -> None:
    checkpoint = checkpoint_over(MESSAGES)
    digest = checkpoint.digest()
    good = COMMITTEE.aggregate(digest, [(i, signed(i, checkpoint).signature) for i in (0, 1, 2)])
    COMMITTEE.verify_certificate(digest, good)
    with pytest.raises(InvalidSignature):  # one signature short of the bitfield
        COMMITTEE.verify_certificate(digest, replace(good, signature=good.signature[:130]))
    with pytest.raises(InvalidSignature):  # one byte extra
        COMMITTEE.verify_certificate(digest, replace(good, signature=good.signature + b"\x00"))
    with pytest.raises(UnknownSigner):  # a bit past the committee
        COMMITTEE.verify_certificate(digest, replace(good, signers=bytes([good.signers[0] | 0x10])))
    with pytest.raises(QuorumNotReached):
        COMMITTEE.verify_certificate(digest, QuorumCertificate(bytes([0b1]), signed(0, checkpoint).signature))
    with pytest.raises(InvalidSignature):  # aggregate checks each signature it keeps
        COMMITTEE.aggregate(
            digest,
            [(0, signed(1, checkpoint).signature), *((i, signed(i, checkpoint).signature) for i in (1, 2))],
        )
    with pytest.raises(QuorumNotReached):
        COMMITTEE.aggregate(digest, [(0, signed(0, checkpoint).signature)])


class EcdsaGateway:
    """A destination gateway holding an ECDSA committee of the origin (`EcdsaCommitteeReader`)."""

    domain = 2

    def __init__(self, committee: EcdsaCheckpointCommittee) -> None:
        self.committee = committee

    def committee_of(self, origin: int) -> tuple[int, bytes] | None:
        return (self.committee.epoch, self.committee.hash()) if origin == ORIGIN else None

    def current_committee(self, origin: int) -> Any:
        raise AssertionError("an ECDSA origin is never read as a BLS committee")

    def current_ecdsa_committee(self, origin: int) -> OnChainEcdsaCommittee | None:
        members = tuple((m.address, m.weight) for m in self.committee.members)
        return OnChainEcdsaCommittee(
            self.committee.epoch, self.committee.hash(), self.committee.threshold, members
        )


def test_the_relayer_follows_an_ecdsa_re_enrollment_and_attests_again(
    store: Store, metrics: RelayMetrics, clock: Clock, stage: AttestationCollector
) -> None:
    from relay.relayer.committees import CommitteeFollower

    checkpoint = checkpoint_over(MESSAGES)
    source = ecdsa_source(store, [signed(i, checkpoint) for i in range(4)])
    stage.collect(source)  # attested under epoch EPOCH
    reordered = EcdsaCheckpointCommittee.create(EPOCH + 1, [EcdsaMember(a, 1) for a in reversed(ADDRESSES)])
    gateway = EcdsaGateway(reordered)  # the owner re-enrolled the origin with the members reversed
    follower = CommitteeFollower(store, metrics, clock, BLS, {}, {gateway.domain: gateway}, sync_interval=5.0)
    assert follower.follow(source)
    assert source.committee.hash() == reordered.hash() and source.committee.epoch == EPOCH + 1
    assert [state_of(store, m.id) for m in MESSAGES] == [St.FINAL] * 3  # attested again under the new epoch
    again = replace(checkpoint, epoch=EPOCH + 1)
    source.attestors = [FakeAttestor(i, replace(signed(i, again), signer_index=3 - i)) for i in range(4)]
    stage.collect(source)
    _, certificate = certificate_of(store)
    assert certificate.signer_indices(4) == [0, 1, 2]  # members 3, 2, 1 in the new order
    assert certificate.signature == b"".join(signed(i, again).signature for i in (3, 2, 1))
