"""The committee verifier under attack: every forgery raises its own typed error."""

from __future__ import annotations

import dataclasses

import pytest

from relay.errors import (
    DuplicateSigner,
    EpochMismatch,
    GatewayMismatch,
    InvalidCommittee,
    InvalidHandover,
    InvalidProofOfPossession,
    InvalidSignature,
    MalformedEncoding,
    OriginMismatch,
    QuorumNotReached,
    UnknownSigner,
)
from relay.verify.bls import get_backend, keygen
from relay.verify.committee import (
    HANDOVER_TAG,
    Checkpoint,
    Committee,
    Handover,
    Member,
    QuorumCertificate,
    compute_default_threshold,
    compute_handover_digest,
    decode_bitfield,
    encode_bitfield,
    follow_handovers,
    sign_checkpoint,
    verify_checkpoint,
    verify_handover,
)
from relay.verify.hashing import keccak256

BLS = get_backend("blst")
ORIGIN = 31337
GATEWAY = b"\x00" * 12 + b"\x42" * 20
SECRETS = [keygen(keccak256(b"committee-test" + bytes([i])) * 2) for i in range(12)]


def make_committee(
    epoch: int, secrets: list[int], weights: list[int] | None = None, threshold: int | None = None
) -> Committee:
    weights = weights or [1] * len(secrets)
    members = [
        Member(BLS.secret_to_public_key(s), BLS.prove_possession(s), w)
        for s, w in zip(secrets, weights, strict=True)
    ]
    return Committee.create(epoch, members, threshold, backend=BLS)


def certify(committee: Committee, secrets: list[int], digest: bytes, indices: list[int]) -> QuorumCertificate:
    return committee.aggregate(digest, [(i, BLS.sign(secrets[i], digest)) for i in indices], BLS)


COMMITTEE = make_committee(5, SECRETS[:4], weights=[1, 2, 3, 4])  # total 10, threshold 7
CHECKPOINT = Checkpoint(ORIGIN, GATEWAY, 5, keccak256(b"root"), 17)
GOOD = certify(COMMITTEE, SECRETS, CHECKPOINT.digest(), [1, 2, 3])  # weight 9


def check(
    checkpoint: Checkpoint = CHECKPOINT,
    certificate: QuorumCertificate = GOOD,
    committee: Committee = COMMITTEE,
) -> int:
    return verify_checkpoint(committee, checkpoint, certificate, origin=ORIGIN, gateway=GATEWAY, backend=BLS)


def test_default_threshold_is_more_than_two_thirds() -> None:
    assert COMMITTEE.threshold == 7 == compute_default_threshold(10)
    assert compute_default_threshold(3) == 3 and compute_default_threshold(4) == 3


def test_valid_checkpoint_returns_signed_weight() -> None:
    assert check() == 9


def test_reference_backend_agrees_on_a_valid_checkpoint() -> None:
    reference = get_backend("py_ecc")
    assert (
        verify_checkpoint(COMMITTEE, CHECKPOINT, GOOD, origin=ORIGIN, gateway=GATEWAY, backend=reference) == 9
    )


@pytest.mark.parametrize("byte", [0, 40, 95])
def test_flipped_bit_in_signature(byte: int) -> None:
    signature = bytearray(GOOD.signature)
    signature[byte] ^= 0x01
    with pytest.raises(InvalidSignature):
        check(certificate=QuorumCertificate(GOOD.signers, bytes(signature)))


def test_flipped_bit_in_root() -> None:
    root = bytearray(CHECKPOINT.root)
    root[7] ^= 0x10
    with pytest.raises(InvalidSignature):
        check(checkpoint=dataclasses.replace(CHECKPOINT, root=bytes(root)))


def test_flipped_bit_in_index() -> None:
    with pytest.raises(InvalidSignature):
        check(checkpoint=dataclasses.replace(CHECKPOINT, index=CHECKPOINT.index ^ 1))


def test_signer_not_in_committee() -> None:
    outsider = SECRETS[8]
    digest = CHECKPOINT.digest()
    # An outsider's signature in place of member 0's: the aggregate no longer matches the keys.
    forged = BLS.aggregate_signatures(
        [BLS.sign(outsider, digest)] + [BLS.sign(SECRETS[i], digest) for i in (1, 2, 3)]
    )
    with pytest.raises(InvalidSignature):
        check(certificate=QuorumCertificate(encode_bitfield([0, 1, 2, 3], 4), forged))
    # A bitfield naming a member index past the committee.
    with pytest.raises(UnknownSigner):
        check(certificate=QuorumCertificate(bytes([0b0001_1110]), GOOD.signature))
    with pytest.raises(UnknownSigner):
        COMMITTEE.aggregate(digest, [(4, BLS.sign(outsider, digest))], BLS)
    # Aggregating with per-signature checks pinpoints the bad member.
    with pytest.raises(InvalidSignature) as caught:
        COMMITTEE.aggregate(digest, [(0, BLS.sign(outsider, digest)), (3, BLS.sign(SECRETS[3], digest))], BLS)
    assert caught.value.fields["member_index"] == 0


def test_repeated_signer() -> None:
    digest = CHECKPOINT.digest()
    signature = BLS.sign(SECRETS[3], digest)
    with pytest.raises(DuplicateSigner) as caught:
        COMMITTEE.aggregate(digest, [(3, signature), (2, BLS.sign(SECRETS[2], digest)), (3, signature)], BLS)
    assert caught.value.index == 3


def test_quorum_one_weight_short() -> None:
    short = certify(COMMITTEE, SECRETS, CHECKPOINT.digest(), [0, 1, 2])  # 1 + 2 + 3 = 6 < 7
    with pytest.raises(QuorumNotReached) as caught:
        check(certificate=short)
    assert (caught.value.signed, caught.value.threshold) == (6, 7)
    exactly = certify(COMMITTEE, SECRETS, CHECKPOINT.digest(), [2, 3])  # 3 + 4 = 7
    assert check(certificate=exactly) == 7


def test_signature_from_the_previous_epoch() -> None:
    previous = make_committee(4, SECRETS[:4], weights=[1, 2, 3, 4])
    old_checkpoint = dataclasses.replace(CHECKPOINT, epoch=4)
    old_certificate = certify(previous, SECRETS, old_checkpoint.digest(), [1, 2, 3])
    assert verify_checkpoint(
        previous, old_checkpoint, old_certificate, origin=ORIGIN, gateway=GATEWAY, backend=BLS
    )
    with pytest.raises(EpochMismatch) as caught:
        check(checkpoint=old_checkpoint, certificate=old_certificate)
    assert (caught.value.epoch, caught.value.expected) == (4, 5)
    # Relabelling the old signature with the current epoch breaks the signature instead.
    with pytest.raises(InvalidSignature):
        check(certificate=old_certificate)


def test_checkpoint_of_another_origin_or_gateway() -> None:
    with pytest.raises(OriginMismatch):
        check(checkpoint=dataclasses.replace(CHECKPOINT, origin=ORIGIN + 1))
    with pytest.raises(GatewayMismatch):
        check(checkpoint=dataclasses.replace(CHECKPOINT, gateway=b"\x00" * 12 + b"\x43" * 20))


def test_member_with_a_bad_proof_of_possession_cannot_join() -> None:
    good = [Member(BLS.secret_to_public_key(s), BLS.prove_possession(s)) for s in SECRETS[:3]]
    stolen = Member(BLS.secret_to_public_key(SECRETS[3]), BLS.prove_possession(SECRETS[4]))
    with pytest.raises(InvalidProofOfPossession) as caught:
        Committee.create(1, [*good, stolen], backend=BLS)
    assert caught.value.fields["member_index"] == 3


def test_malformed_committees() -> None:
    member = Member(BLS.secret_to_public_key(SECRETS[0]), BLS.prove_possession(SECRETS[0]))
    with pytest.raises(InvalidCommittee):
        Committee.create(1, [], backend=BLS)
    with pytest.raises(InvalidCommittee):
        Committee.create(1, [member, member], backend=BLS)
    with pytest.raises(InvalidCommittee):
        Committee.create(1, [dataclasses.replace(member, weight=0)], backend=BLS)
    with pytest.raises(InvalidCommittee):
        Committee.create(1, [member], threshold=2, backend=BLS)
    with pytest.raises(TypeError):
        Committee(1, [member], 1)


def test_bitfield_round_trip_and_bounds() -> None:
    assert encode_bitfield([0, 9], 10) == bytes([0b1, 0b10])
    assert decode_bitfield(bytes([0b1, 0b10]), 10) == [0, 9]
    with pytest.raises(UnknownSigner):
        decode_bitfield(bytes([0b1]), 10)  # too short
    with pytest.raises(UnknownSigner):
        decode_bitfield(bytes([0, 0b100]), 10)  # bit 10 of a 10-member committee


class TestHandover:
    next_committee = make_committee(6, SECRETS[4:9])

    def _handover(self, signers: list[int]) -> Handover:
        digest = compute_handover_digest(ORIGIN, GATEWAY, 5, COMMITTEE.hash(), self.next_committee.hash())
        return Handover(self.next_committee, certify(COMMITTEE, SECRETS, digest, signers))

    def test_quorum_hands_over_to_the_next_epoch(self) -> None:
        assert (
            verify_handover(COMMITTEE, self._handover([1, 2, 3]), origin=ORIGIN, gateway=GATEWAY, backend=BLS)
            is self.next_committee
        )

    def test_chain_of_handovers(self) -> None:
        third = make_committee(7, SECRETS[9:12])
        digest = compute_handover_digest(ORIGIN, GATEWAY, 6, self.next_committee.hash(), third.hash())
        second_to_third = Handover(third, certify(self.next_committee, SECRETS[4:9], digest, [0, 1, 2, 3]))
        latest = follow_handovers(
            COMMITTEE,
            [self._handover([1, 2, 3]), second_to_third],
            origin=ORIGIN,
            gateway=GATEWAY,
            backend=BLS,
        )
        assert latest.epoch == 7

    def test_too_few_signers(self) -> None:
        with pytest.raises(InvalidHandover) as caught:
            verify_handover(COMMITTEE, self._handover([0, 1, 2]), origin=ORIGIN, gateway=GATEWAY, backend=BLS)
        assert isinstance(caught.value.__cause__, QuorumNotReached)

    def test_skipping_an_epoch_or_another_origin_or_source_gateway(self) -> None:
        skipping = make_committee(7, SECRETS[4:9])
        digest = compute_handover_digest(ORIGIN, GATEWAY, 5, COMMITTEE.hash(), skipping.hash())
        with pytest.raises(InvalidHandover, match="next epoch"):
            verify_handover(
                COMMITTEE,
                Handover(skipping, certify(COMMITTEE, SECRETS, digest, [1, 2, 3])),
                origin=ORIGIN,
                gateway=GATEWAY,
            )
        with pytest.raises(InvalidHandover) as caught:
            verify_handover(
                COMMITTEE, self._handover([1, 2, 3]), origin=ORIGIN + 1, gateway=GATEWAY, backend=BLS
            )
        assert isinstance(caught.value.__cause__, InvalidSignature)
        # The same origin id and committee, another deployment's source Gateway: not its hand-over.
        with pytest.raises(InvalidHandover) as caught:
            verify_handover(
                COMMITTEE, self._handover([1, 2, 3]), origin=ORIGIN, gateway=b"\x66" * 32, backend=BLS
            )
        assert isinstance(caught.value.__cause__, InvalidSignature)

    def test_committee_hash_binds_keys_weights_and_threshold(self) -> None:
        same = make_committee(6, SECRETS[4:9])
        reweighted = make_committee(6, SECRETS[4:9], weights=[1, 1, 1, 1, 2])
        other_threshold = make_committee(6, SECRETS[4:9], threshold=5)
        assert same.hash() == self.next_committee.hash()
        assert len({same.hash(), reweighted.hash(), other_threshold.hash()}) == 3


def test_sign_checkpoint_matches_backend_sign() -> None:
    assert sign_checkpoint(SECRETS[0], CHECKPOINT, BLS) == BLS.sign(SECRETS[0], CHECKPOINT.digest())


def test_large_committee_uses_the_non_signer_shortcut_correctly() -> None:
    secrets = [keygen(keccak256(b"big" + bytes([i])) * 2) for i in range(40)]
    committee = make_committee(1, secrets)
    checkpoint = dataclasses.replace(CHECKPOINT, epoch=1)
    signers = [i for i in range(40) if i not in (3, 17, 33)]
    certificate = certify(committee, secrets, checkpoint.digest(), signers)
    assert (
        verify_checkpoint(committee, checkpoint, certificate, origin=ORIGIN, gateway=GATEWAY, backend=BLS)
        == 37
    )
    with pytest.raises(InvalidSignature):  # claims a non-signer signed
        verify_checkpoint(
            committee,
            checkpoint,
            QuorumCertificate(encode_bitfield([*signers, 3], 40), certificate.signature),
            origin=ORIGIN,
            gateway=GATEWAY,
            backend=BLS,
        )


def test_a_threshold_below_two_thirds_is_refused_unless_allowed() -> None:
    members = COMMITTEE.members  # weights 1, 2, 3, 4: total 10
    with pytest.raises(InvalidCommittee, match="two thirds"):
        Committee.create(5, members, threshold=6, backend=BLS)  # 18 < 20
    assert Committee.create(5, members, threshold=6, backend=BLS, allow_low_threshold=True).threshold == 6
    three = [Member(BLS.secret_to_public_key(s), BLS.prove_possession(s)) for s in SECRETS[:3]]
    assert Committee.create(1, three, threshold=2, backend=BLS).threshold == 2  # exactly two thirds


def test_the_handover_digest_binds_the_current_committee() -> None:
    following = make_committee(6, SECRETS[4:9])
    digest = compute_handover_digest(ORIGIN, GATEWAY, 5, COMMITTEE.hash(), following.hash())
    assert digest == keccak256(
        HANDOVER_TAG
        + ORIGIN.to_bytes(4, "big")
        + GATEWAY
        + (5).to_bytes(8, "big")
        + COMMITTEE.hash()
        + following.hash()
    )
    assert HANDOVER_TAG.rstrip(b"\x00") == b"RELAY/HANDOVER/V2"
    # A quorum of members shared with another committee of the same epoch cannot hand it over.
    same_keys = make_committee(5, SECRETS[:4], weights=[1, 2, 3, 4], threshold=9)
    replayed = Handover(following, certify(COMMITTEE, SECRETS, digest, [0, 1, 2, 3]))
    verify_handover(COMMITTEE, replayed, origin=ORIGIN, gateway=GATEWAY, backend=BLS)
    with pytest.raises(InvalidHandover) as caught:
        verify_handover(same_keys, replayed, origin=ORIGIN, gateway=GATEWAY, backend=BLS)
    assert isinstance(caught.value.__cause__, InvalidSignature)
    with pytest.raises(MalformedEncoding):
        compute_handover_digest(ORIGIN, GATEWAY, 5, b"\x00" * 31, following.hash())
    with pytest.raises(MalformedEncoding):
        compute_handover_digest(ORIGIN, GATEWAY[:20], 5, COMMITTEE.hash(), following.hash())
