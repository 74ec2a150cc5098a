"""The measurement probes of docs/adr/0008-gas-per-message.md are real verifiers (GasProbes.sol).

The ADR prices signatures in G1 under keys in G2 with `SignatureOrientationProbe`; these tests
show that what it measured accepts a genuine signature and refuses forged ones, that its hash to
G1 is RFC 9380's (checked against py_ecc, itself checked against the RFC's test vector), and that
the root-cache probe refuses a root it was not told about, and that the ECDSA quorum probe
(priced beside them) refuses forged, reordered and short certificates.
"""

from __future__ import annotations

import hashlib

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from py_ecc.bls.hash_to_curve import hash_to_G1
from py_ecc.optimized_bls12_381 import normalize
from web3 import Web3
from web3.contract import Contract

from adapters.evm.bls_encoding import encode_g1_point, public_key_to_eip2537
from adapters.evm.gas import SigningCommittee, deploy_contract
from adapters.evm.gas_ideas import (
    MIN_SIG_DST,
    encode_probe_committee,
    min_sig_public_key,
    min_sig_sign,
)
from relay.verify.committee import encode_bitfield
from relay.verify.hashing import keccak256
from tests.integration.gateway_bridge import assert_reverts, transact

pytestmark = [pytest.mark.anvil]

SECRET_KEYS = (11, 22, 33, 44)
DIGEST = keccak256(b"a checkpoint digest")


@pytest.fixture(scope="module")
def probe(w3: Web3) -> Contract:
    contract = deploy_contract(w3, "SignatureOrientationProbe")
    keys = [min_sig_public_key(key) for key in SECRET_KEYS]
    transact(w3, contract.functions.storeCommittee(True, encode_probe_committee(1, 3, keys, [1] * 4)))
    return contract


def test_py_ecc_hash_to_g1_matches_the_rfc_9380_vector() -> None:
    # RFC 9380 appendix J.9.1, BLS12381G1_XMD:SHA-256_SSWU_RO_, msg = ""
    point = normalize(hash_to_G1(b"", b"QUUX-V01-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_", hashlib.sha256))
    assert point[0].n == int(
        "052926add2207b76ca4fa57a8734416c8dc95e24501772c814278700eed6d1e4e8cf62d9c09db0fac349612b759e79a1", 16
    )


@pytest.mark.parametrize("message", [b"", b"abc", DIGEST])
def test_hash_to_g1_matches_py_ecc(probe: Contract, message: bytes) -> None:
    expected = encode_g1_point(hash_to_G1(message, MIN_SIG_DST, hashlib.sha256))
    assert probe.functions.hashToG1(message).call() == expected


def test_g1_signature_under_g2_key_verifies_and_forgeries_do_not(probe: Contract) -> None:
    key = min_sig_public_key(SECRET_KEYS[0])
    signature = min_sig_sign([SECRET_KEYS[0]], DIGEST)
    verify = probe.functions.verifyG1Signature
    assert verify(key, DIGEST, signature).call() is True
    assert verify(key, keccak256(b"another digest"), signature).call() is False
    assert verify(min_sig_public_key(SECRET_KEYS[1]), DIGEST, signature).call() is False
    assert verify(key, DIGEST, min_sig_sign([SECRET_KEYS[0]], b"other")).call() is False
    tampered = signature[:-1] + bytes([signature[-1] ^ 1])  # off the curve
    assert verify(key, DIGEST, tampered).call() is False
    assert verify(bytes(256), DIGEST, signature).call() is False  # the identity key
    assert verify(key, DIGEST, signature[:127]).call() is False


def test_quorum_certificate_in_g1_verifies_and_forgeries_revert(probe: Contract) -> None:
    signers = [0, 1, 3]
    bitfield = encode_bitfield(signers, 4)
    signature = min_sig_sign([SECRET_KEYS[i] for i in signers], DIGEST)
    check = probe.functions.verifyWithG2Keys
    check(DIGEST, bitfield, signature).call()  # no revert
    # Signed by 0, 1, 3 but claimed as 0, 1, 2: the aggregate key does not match.
    assert_reverts(probe, check(DIGEST, encode_bitfield([0, 1, 2], 4), signature), "InvalidSignature")
    assert_reverts(probe, check(keccak256(b"tampered"), bitfield, signature), "InvalidSignature")
    two = min_sig_sign([SECRET_KEYS[0], SECRET_KEYS[1]], DIGEST)
    assert_reverts(probe, check(DIGEST, encode_bitfield([0, 1], 4), two), "QuorumNotReached", 2, 3)


def test_current_orientation_probe_matches_the_gateway_certificate(w3: Web3) -> None:
    signing = SigningCommittee.generate(4, seed=b"probe test")
    contract = deploy_contract(w3, "SignatureOrientationProbe")
    keys = [public_key_to_eip2537(m.public_key) for m in signing.committee.members]
    encoded = encode_probe_committee(1, signing.committee.threshold, keys, [1] * 4)
    transact(w3, contract.functions.storeCommittee(False, encoded))
    bitfield, signature = signing.certify(DIGEST, signing.quorum_signers())
    contract.functions.verifyWithG1Keys(DIGEST, bitfield, signature).call()
    assert_reverts(
        contract,
        contract.functions.verifyWithG1Keys(keccak256(b"x"), bitfield, signature),
        "InvalidSignature",
    )


def test_root_cache_probe_accepts_only_the_remembered_checkpoint(w3: Web3) -> None:
    cache = deploy_contract(w3, "RootCacheProbe")
    root = keccak256(b"root")
    transact(w3, cache.functions.remember(5, 1, root, 9))
    cache.functions.check(5, 1, root, 9).call()
    assert_reverts(cache, cache.functions.check(5, 1, root, 10), "RootNotVerified", 5, root)
    assert_reverts(cache, cache.functions.check(5, 2, root, 9), "RootNotVerified", 5, root)
    assert_reverts(cache, cache.functions.check(6, 1, root, 9), "RootNotVerified", 6, root)


def test_ecdsa_quorum_probe_accepts_a_quorum_and_refuses_forgeries(w3: Web3) -> None:
    accounts = [Account.from_key(keccak256(b"probe ecdsa" + bytes([i]))) for i in range(5)]
    probe = deploy_contract(w3, "EcdsaQuorumProbe")
    transact(w3, probe.functions.storeCommittee([a.address for a in accounts], [1] * 5, 3))

    def sign(index: int, digest: bytes = DIGEST) -> bytes:
        return bytes(accounts[index].sign_message(encode_defunct(primitive=digest)).signature)

    verify = probe.functions.verify
    verify(DIGEST, encode_bitfield([0, 2, 4], 5), sign(0) + sign(2) + sign(4)).call()  # no revert
    # signatures in the wrong order name the wrong signer
    assert_reverts(
        probe,
        verify(DIGEST, encode_bitfield([0, 2, 4], 5), sign(2) + sign(0) + sign(4)),
        "InvalidSignature",
        0,
    )
    assert_reverts(
        probe,
        verify(DIGEST, encode_bitfield([0, 2, 4], 5), sign(0) + sign(2) + sign(4, b"x" * 32)),
        "InvalidSignature",
        4,
    )
    assert_reverts(
        probe, verify(DIGEST, encode_bitfield([0, 2], 5), sign(0) + sign(2)), "QuorumNotReached", 2, 3
    )
