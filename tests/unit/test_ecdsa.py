"""ECDSA threshold checkpoints: Hyperlane's signed checkpoints recover to their signers."""

from __future__ import annotations

import pytest
from coincurve import PrivateKey

from relay.errors import DuplicateSigner, InvalidCommittee, InvalidSignature, QuorumNotReached, UnknownSigner
from relay.verify.ecdsa import (
    SECP256K1_ORDER,
    EcdsaCommittee,
    compute_eth_signed_message_hash,
    compute_hyperlane_checkpoint_digest,
    compute_hyperlane_domain_hash,
    recover_address,
    sign_digest,
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
