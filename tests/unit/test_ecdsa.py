"""ECDSA threshold checkpoints: Hyperlane's signed checkpoints recover to their signers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from coincurve import PrivateKey

from relay.errors import (
    DuplicateSigner,
    EpochMismatch,
    GatewayMismatch,
    InvalidCommittee,
    InvalidHandover,
    InvalidSignature,
    OriginMismatch,
    QuorumNotReached,
    UnknownSigner,
)
from relay.verify.committee import Checkpoint, compute_handover_digest, encode_bitfield
from relay.verify.ecdsa import (
    SECP256K1_ORDER,
    EcdsaCertificate,
    EcdsaCommittee,
    EcdsaHandover,
    build_ecdsa_certificate,
    compute_eth_signed_message_hash,
    compute_hyperlane_checkpoint_digest,
    compute_hyperlane_domain_hash,
    recover_address,
    sign_digest,
    sign_ecdsa_checkpoint,
    verify_ecdsa_checkpoint,
    verify_ecdsa_handover,
)
from relay.verify.hashing import keccak256
from tests.conftest import hex_bytes, load_vector

SIGNED = load_vector("hyperlane/signedCheckpoint.json")


def _signature(case: dict) -> bytes:
    sig = case["signature"]
    return int(sig["r"], 16).to_bytes(32, "big") + int(sig["s"], 16).to_bytes(32, "big") + bytes([sig["v"]])


def _digest(case: dict) -> bytes:
    return compute_hyperlane_checkpoint_digest(
        case["domain"], hex_bytes(case["merkle_tree_hook"]), hex_bytes(case["root"]), case["index"]
    )


@pytest.mark.parametrize("case", SIGNED, ids=[str(c["index"]) for c in SIGNED])
def test_hyperlane_signed_checkpoints_recover_their_signer(case: dict) -> None:
    signer = recover_address(compute_eth_signed_message_hash(_digest(case)), _signature(case))
    assert signer == hex_bytes(case["signer"])


def test_hyperlane_checkpoints_pass_a_threshold_of_one() -> None:
    signer = hex_bytes(SIGNED[0]["signer"])
    committee = EcdsaCommittee.create(1, [signer], threshold=1)
    for case in SIGNED:
        assert committee.verify_threshold(_digest(case), [_signature(case)]) == [signer]


@pytest.mark.parametrize("case", load_vector("hyperlane/domainHash.json"))
def test_domain_hash(case: dict) -> None:
    assert compute_hyperlane_domain_hash(case["domain"], hex_bytes(case["mailbox"])) == hex_bytes(
        case["expectedDomainHash"]
    )


KEYS = [keccak256(b"ecdsa-test" + bytes([i])) for i in range(5)]
ADDRESSES = [keccak256(PrivateKey(k).public_key.format(compressed=False)[1:])[12:] for k in KEYS]
COMMITTEE = EcdsaCommittee.create(1, ADDRESSES[:4], threshold=3)
DIGEST = keccak256(b"a checkpoint")


def test_threshold_reached() -> None:
    signatures = [sign_digest(k, DIGEST) for k in KEYS[:3]]
    assert COMMITTEE.verify_threshold(DIGEST, signatures) == ADDRESSES[:3]


def test_threshold_failures() -> None:
    with pytest.raises(QuorumNotReached):
        COMMITTEE.verify_threshold(DIGEST, [sign_digest(k, DIGEST) for k in KEYS[:2]])
    with pytest.raises(UnknownSigner):
        COMMITTEE.verify_threshold(DIGEST, [sign_digest(k, DIGEST) for k in (KEYS[0], KEYS[1], KEYS[4])])
    with pytest.raises(DuplicateSigner):
        COMMITTEE.verify_threshold(DIGEST, [sign_digest(k, DIGEST) for k in (KEYS[0], KEYS[1], KEYS[1])])
    # A signature over another digest recovers some other address: not a member.
    with pytest.raises(UnknownSigner):
        COMMITTEE.verify_threshold(
            DIGEST, [sign_digest(KEYS[0], keccak256(b"other"))] + [sign_digest(k, DIGEST) for k in KEYS[1:3]]
        )


def test_malleable_and_malformed_signatures() -> None:
    signature = sign_digest(KEYS[0], DIGEST)
    s = int.from_bytes(signature[32:64], "big")
    high_s = signature[:32] + (SECP256K1_ORDER - s).to_bytes(32, "big") + bytes([55 - signature[64]])
    with pytest.raises(InvalidSignature, match="high s"):
        recover_address(compute_eth_signed_message_hash(DIGEST), high_s)
    with pytest.raises(InvalidSignature):
        recover_address(compute_eth_signed_message_hash(DIGEST), signature[:64])
    with pytest.raises(InvalidSignature):
        recover_address(compute_eth_signed_message_hash(DIGEST), signature[:64] + b"\x05")


def test_committee_validation() -> None:
    with pytest.raises(InvalidCommittee):
        EcdsaCommittee.create(1, [ADDRESSES[0], ADDRESSES[0]])
    with pytest.raises(InvalidCommittee):
        EcdsaCommittee.create(1, ADDRESSES[:2], threshold=3)


# --- ECDSA committees of the Gateway: certificates, checkpoints, hand-overs -----------------------
# The same cases as tests/integration/test_contracts_ecdsa.py, against the off-chain verifier.

GATEWAY = b"\x11" * 32
CHECKPOINT = Checkpoint(origin=1, gateway=GATEWAY, epoch=1, root=b"\x22" * 32, index=5)
OUTSIDER = keccak256(b"not a member of the ECDSA committee, ever")


def _certificate(checkpoint: Checkpoint = CHECKPOINT, order: tuple[int, ...] = (0, 1, 2)) -> EcdsaCertificate:
    signatures = b"".join(sign_ecdsa_checkpoint(KEYS[i], checkpoint) for i in order)
    return EcdsaCertificate(encode_bitfield(sorted(set(order)), 4), signatures)


def _verify(certificate: EcdsaCertificate, checkpoint: Checkpoint = CHECKPOINT) -> int:
    return verify_ecdsa_checkpoint(COMMITTEE, checkpoint, certificate, origin=1, gateway=GATEWAY)


def test_a_certificate_built_from_signatures_verifies() -> None:
    digest = CHECKPOINT.digest()
    pairs = {
        2: sign_digest(KEYS[2], digest),
        0: sign_digest(KEYS[0], digest),
        1: sign_digest(KEYS[1], digest),
    }
    certificate = build_ecdsa_certificate(COMMITTEE, digest, pairs)
    assert certificate == _certificate()
    assert certificate.signer_indices(4) == [0, 1, 2]
    assert _verify(certificate) == 3
    with pytest.raises(InvalidSignature) as raised:
        build_ecdsa_certificate(COMMITTEE, digest, {0: pairs[0], 3: pairs[1]})
    assert raised.value.fields["member_index"] == 3
    with pytest.raises(DuplicateSigner):
        build_ecdsa_certificate(COMMITTEE, digest, [(0, pairs[0]), (0, pairs[0])])
    with pytest.raises(UnknownSigner):
        build_ecdsa_certificate(COMMITTEE, digest, [(4, pairs[0])])


def _edit_first(edit: Callable[[bytes], bytes]) -> EcdsaCertificate:
    certificate = _certificate()
    return EcdsaCertificate(
        certificate.signers, edit(certificate.signature[:65]) + certificate.signature[65:]
    )


def _high_s(signature: bytes) -> bytes:
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_ORDER - s).to_bytes(32, "big") + bytes([55 - signature[64]])


def _forged() -> EcdsaCertificate:
    certificate = _certificate(order=(0, 1))
    forged = sign_ecdsa_checkpoint(OUTSIDER, CHECKPOINT)
    return EcdsaCertificate(encode_bitfield((0, 1, 2), 4), certificate.signature + forged)


ECDSA_REJECTIONS: dict[str, tuple[Callable[[], int], type[Exception]]] = {
    "signature of a non-member": (lambda: _verify(_forged()), InvalidSignature),
    "root tampered": (
        lambda: _verify(_certificate(), replace(CHECKPOINT, root=b"\x01" * 32)),
        InvalidSignature,
    ),
    "index tampered": (lambda: _verify(_certificate(), replace(CHECKPOINT, index=7)), InvalidSignature),
    "epoch tampered": (lambda: _verify(_certificate(), replace(CHECKPOINT, epoch=2)), EpochMismatch),
    "origin tampered": (lambda: _verify(_certificate(), replace(CHECKPOINT, origin=2)), OriginMismatch),
    "gateway tampered": (
        lambda: _verify(_certificate(), replace(CHECKPOINT, gateway=b"\x05" * 32)),
        GatewayMismatch,
    ),
    "high s": (lambda: _verify(_edit_first(_high_s)), InvalidSignature),
    "v of 29": (lambda: _verify(_edit_first(lambda s: s[:64] + b"\x1d")), InvalidSignature),
    "v of 0": (lambda: _verify(_edit_first(lambda s: s[:64] + b"\x00")), InvalidSignature),
    "zero r": (lambda: _verify(_edit_first(lambda s: bytes(32) + s[32:])), InvalidSignature),
    "r not below n": (
        lambda: _verify(_edit_first(lambda s: SECP256K1_ORDER.to_bytes(32, "big") + s[32:])),
        InvalidSignature,
    ),
    "a byte short": (
        lambda: _verify(EcdsaCertificate(b"\x07", _certificate().signature[:-1])),
        InvalidSignature,
    ),
    "a byte too many": (
        lambda: _verify(EcdsaCertificate(b"\x07", _certificate().signature + b"\0")),
        InvalidSignature,
    ),
    "signatures out of order": (
        lambda: _verify(EcdsaCertificate(b"\x07", _certificate(order=(1, 0, 2)).signature)),
        InvalidSignature,
    ),
    "a signature twice": (
        lambda: _verify(EcdsaCertificate(b"\x07", _certificate(order=(0, 0, 2)).signature)),
        InvalidSignature,
    ),
    "bit beyond the committee": (
        lambda: _verify(EcdsaCertificate(b"\x17", _certificate().signature)),
        UnknownSigner,
    ),
    "bitfield too long": (
        lambda: _verify(EcdsaCertificate(b"\x07\x00", _certificate().signature)),
        UnknownSigner,
    ),
    "weight below the threshold": (lambda: _verify(_certificate(order=(0, 1))), QuorumNotReached),
    "BLS certificate": (lambda: _verify(EcdsaCertificate(b"\x07", b"\x01" * 256)), InvalidSignature),
}


@pytest.mark.parametrize("case", sorted(ECDSA_REJECTIONS))
def test_verify_ecdsa_checkpoint_rejects(case: str) -> None:
    run, error = ECDSA_REJECTIONS[case]
    with pytest.raises(error):
        run()


def test_a_refused_signature_names_its_member() -> None:
    with pytest.raises(InvalidSignature) as raised:
        _verify(EcdsaCertificate(b"\x07", _certificate(order=(1, 0, 2)).signature))
    assert raised.value.fields["member_index"] == 0
    assert raised.value.fields["recovered"] == ADDRESSES[1]
    with pytest.raises(InvalidSignature, match="high s") as raised:
        _verify(_edit_first(_high_s))
    assert raised.value.fields["member_index"] == 0


def test_committee_rules_match_the_gateway() -> None:
    with pytest.raises(InvalidCommittee, match="non-zero"):
        EcdsaCommittee.create(1, [ADDRESSES[0], bytes(20)], threshold=2)
    with pytest.raises(InvalidCommittee, match="distinct"):
        EcdsaCommittee.create(1, [ADDRESSES[0], ADDRESSES[1], ADDRESSES[0]])
    with pytest.raises(InvalidCommittee, match="positive"):
        EcdsaCommittee.create(1, ADDRESSES[:2], [1, 0])
    with pytest.raises(InvalidCommittee, match="threshold"):
        EcdsaCommittee.create(1, ADDRESSES[:4], threshold=0)
    with pytest.raises(InvalidCommittee, match="two thirds"):
        EcdsaCommittee.create(1, ADDRESSES[:4], threshold=2)
    assert EcdsaCommittee.create(1, ADDRESSES[:4], threshold=2, allow_low_threshold=True).threshold == 2
    with pytest.raises(InvalidCommittee, match="too many"):
        EcdsaCommittee.create(1, [keccak256(bytes([i, j]))[:20] for i in range(2) for j in range(65)])
    with pytest.raises(InvalidCommittee, match="equal in length"):
        EcdsaCommittee.create(1, ADDRESSES[:2], [1])
    with pytest.raises(InvalidCommittee, match="epoch"):
        EcdsaCommittee.create(2**64, ADDRESSES[:2])


def test_committee_hash_is_the_documented_preimage() -> None:
    """docs/protocol.md: keccak(tag || epoch u64 || threshold u64 || count u32 || (address || weight u64)*);
    the contract test checks the Gateway computes the same hash."""
    committee = EcdsaCommittee.create(7, ADDRESSES[:2], [5, 1], threshold=5)
    preimage = (
        b"RELAY/ECDSA-COMMITTEE/V1".ljust(32, b"\0")
        + (7).to_bytes(8, "big")
        + (5).to_bytes(8, "big")
        + (2).to_bytes(4, "big")
        + ADDRESSES[0]
        + (5).to_bytes(8, "big")
        + ADDRESSES[1]
        + (1).to_bytes(8, "big")
    )
    assert committee.hash() == keccak256(preimage)
    assert committee.hash() != EcdsaCommittee.create(8, ADDRESSES[:2], [5, 1], threshold=5).hash()
    assert committee.hash() != EcdsaCommittee.create(7, ADDRESSES[1::-1], [5, 1], threshold=5).hash()


def test_ecdsa_handover() -> None:
    following = EcdsaCommittee.create(2, ADDRESSES[1:5], threshold=3)
    digest = compute_handover_digest(1, GATEWAY, 1, COMMITTEE.hash(), following.hash())
    certificate = build_ecdsa_certificate(
        COMMITTEE, digest, {i: sign_digest(KEYS[i], digest) for i in (1, 2, 3)}
    )
    handover = EcdsaHandover(following, certificate)
    assert verify_ecdsa_handover(COMMITTEE, handover, origin=1, gateway=GATEWAY) is following
    with pytest.raises(InvalidHandover):  # another gateway: another digest
        verify_ecdsa_handover(COMMITTEE, handover, origin=1, gateway=b"\x05" * 32)
    with pytest.raises(InvalidHandover):  # replayed from the new committee's epoch
        verify_ecdsa_handover(following, handover, origin=1, gateway=GATEWAY)
    stale = compute_handover_digest(1, GATEWAY, 1, b"\x09" * 32, following.hash())
    stale_certificate = build_ecdsa_certificate(
        COMMITTEE, stale, {i: sign_digest(KEYS[i], stale) for i in (0, 1, 2)}
    )
    with pytest.raises(InvalidHandover):  # signed over another current committee hash
        verify_ecdsa_handover(
            COMMITTEE, EcdsaHandover(following, stale_certificate), origin=1, gateway=GATEWAY
        )
    forged = EcdsaCertificate(
        encode_bitfield((0, 1, 2), 4),
        b"".join(sign_digest(k, digest) for k in (KEYS[0], KEYS[1], OUTSIDER)),
    )
    with pytest.raises(InvalidHandover):
        verify_ecdsa_handover(COMMITTEE, EcdsaHandover(following, forged), origin=1, gateway=GATEWAY)
    skipping = EcdsaCommittee.create(3, ADDRESSES[1:5], threshold=3)
    with pytest.raises(InvalidHandover):
        verify_ecdsa_handover(COMMITTEE, EcdsaHandover(skipping, certificate), origin=1, gateway=GATEWAY)
