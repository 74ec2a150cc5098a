"""BLS backends: the consensus-spec vectors on both, byte-for-byte agreement, and key validation."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from relay.errors import (
    BackendUnavailable,
    InvalidProof,
    InvalidProofOfPossession,
    InvalidPublicKey,
    InvalidSignature,
)
from relay.verify import bls
from relay.verify.bls import IDENTITY_PUBLIC_KEY, IDENTITY_SIGNATURE, eth_fast_aggregate_verify, get_backend
from tests.conftest import VECTORS, hex_bytes
from tests.unit.bls_points import g1_point_outside_subgroup, g2_point_outside_subgroup

BACKENDS = ["blst", "py_ecc"]
CASE_FILES = sorted((VECTORS / "bls").glob("general/*/bls/*/bls/*/data.yaml"))


def _run_case(backend: bls.BlsBackend, kind: str, data: dict) -> bool:
    given = data["input"]
    try:
        if kind == "verify":
            backend.verify(
                hex_bytes(given["pubkey"]), hex_bytes(given["message"]), hex_bytes(given["signature"])
            )
        elif kind == "fast_aggregate_verify":
            backend.verify_fast_aggregate_bytes(
                [hex_bytes(k) for k in given["pubkeys"]],
                hex_bytes(given["message"]),
                hex_bytes(given["signature"]),
            )
        elif kind == "eth_fast_aggregate_verify":
            eth_fast_aggregate_verify(
                backend,
                [hex_bytes(k) for k in given["pubkeys"]],
                hex_bytes(given["message"]),
                hex_bytes(given["signature"]),
            )
        elif kind == "aggregate_verify":
            keys = [backend.decode_public_key(hex_bytes(k)) for k in given["pubkeys"]]
            backend.verify_aggregate(
                keys, [hex_bytes(m) for m in given["messages"]], hex_bytes(given["signature"])
            )
        else:
            raise AssertionError(f"unknown case kind {kind}")
    except InvalidProof:
        return False
    return True


def test_every_vector_folder_is_found() -> None:
    kinds = {path.parts[-4] for path in CASE_FILES}
    assert kinds == {"verify", "fast_aggregate_verify", "eth_fast_aggregate_verify", "aggregate_verify"}
    assert len(CASE_FILES) >= 11


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("path", CASE_FILES, ids=[p.parts[-2] for p in CASE_FILES])
def test_consensus_spec_vector(backend_name: str, path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    assert _run_case(get_backend(backend_name), path.parts[-4], data) is data["output"]


def test_backends_agree_byte_for_byte_and_on_every_verdict() -> None:
    """Random keys, messages and signer subsets: identical signatures, aggregates and verdicts."""
    fast, reference = get_backend("blst"), get_backend("py_ecc")
    rng = random.Random(20261129)
    secret_keys = [rng.randrange(1, bls.CURVE_ORDER) for _ in range(5)]
    public_keys = [fast.secret_to_public_key(k) for k in secret_keys]
    assert public_keys == [reference.secret_to_public_key(k) for k in secret_keys]
    assert [fast.prove_possession(k) for k in secret_keys[:2]] == [
        reference.prove_possession(k) for k in secret_keys[:2]
    ]
    for round_number in range(3):
        message = rng.randbytes(rng.choice([0, 1, 32, 77]))
        subset = sorted(rng.sample(range(5), rng.randint(1, 5)))
        signatures = [fast.sign(secret_keys[i], message) for i in subset]
        assert signatures == [reference.sign(secret_keys[i], message) for i in subset]
        aggregate = fast.aggregate_signatures(signatures)
        assert aggregate == reference.aggregate_signatures(signatures)
        keys = [public_keys[i] for i in subset]
        wrong_keys = keys[:-1] + [public_keys[(subset[-1] + 1) % 5]] if len(subset) < 5 else keys[:-1]
        for candidate_keys, candidate_message in (
            (keys, message),
            (wrong_keys, message),
            (keys, message + b"!"),
        ):
            verdicts = []
            for backend in (fast, reference):
                try:
                    backend.verify_fast_aggregate_bytes(candidate_keys, candidate_message, aggregate)
                    verdicts.append(True)
                except InvalidSignature:
                    verdicts.append(False)
            assert verdicts[0] == verdicts[1], (round_number, candidate_keys, candidate_message)
            assert verdicts[0] is (candidate_keys == keys and candidate_message == message)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_identity_public_key_is_rejected(backend_name: str) -> None:
    backend = get_backend(backend_name)
    with pytest.raises(InvalidPublicKey, match="identity"):
        backend.decode_public_key(IDENTITY_PUBLIC_KEY)
    with pytest.raises(InvalidPublicKey):
        backend.verify(IDENTITY_PUBLIC_KEY, b"msg", IDENTITY_SIGNATURE)
    with pytest.raises(InvalidProofOfPossession):
        backend.verify_possession(IDENTITY_PUBLIC_KEY, IDENTITY_SIGNATURE)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_points_outside_the_subgroup_are_rejected(backend_name: str) -> None:
    backend = get_backend(backend_name)
    with pytest.raises(InvalidPublicKey):
        backend.decode_public_key(g1_point_outside_subgroup())
    key = backend.secret_to_public_key(7)
    with pytest.raises(InvalidSignature):
        backend.verify(key, b"msg", g2_point_outside_subgroup())
    with pytest.raises(InvalidSignature):
        backend.aggregate_signatures([g2_point_outside_subgroup()])


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_malformed_lengths_and_empty_aggregates(backend_name: str) -> None:
    backend = get_backend(backend_name)
    with pytest.raises(InvalidPublicKey):
        backend.decode_public_key(b"\x01" * 47)
    with pytest.raises(InvalidSignature):
        backend.aggregate_signatures([])
    with pytest.raises(InvalidSignature):
        backend.verify_fast_aggregate([], b"m", IDENTITY_SIGNATURE)
    with pytest.raises(InvalidSignature):
        backend.verify(backend.secret_to_public_key(3), b"m", b"\x00" * 95)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_proof_of_possession(backend_name: str) -> None:
    backend = get_backend(backend_name)
    proof = backend.prove_possession(11)
    backend.verify_possession(backend.secret_to_public_key(11), proof)
    with pytest.raises(InvalidProofOfPossession):
        backend.verify_possession(backend.secret_to_public_key(12), proof)
    # A signature of the key bytes under the *signature* DST is not a proof of possession.
    public_key = backend.secret_to_public_key(11)
    with pytest.raises(InvalidProofOfPossession):
        backend.verify_possession(public_key, backend.sign(11, public_key))


def test_backend_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(bls.ENV_VARIABLE, raising=False)
    assert get_backend().name == "blst"  # the fast one is the default where installed
    monkeypatch.setenv(bls.ENV_VARIABLE, "py_ecc")
    assert get_backend().name == "py_ecc"
    assert get_backend("blst").name == "blst"  # an explicit name wins over the environment
    monkeypatch.setenv(bls.ENV_VARIABLE, "nonsense")
    with pytest.raises(BackendUnavailable) as caught:
        get_backend()
    assert caught.value.backend == "nonsense"
    assert bls.available_backends() == ["blst", "py_ecc"]


def test_eip2537_encodings_are_the_uncompressed_points() -> None:
    from py_ecc.bls.g2_primitives import pubkey_to_G1, signature_to_G2
    from py_ecc.optimized_bls12_381 import normalize

    backend = get_backend("blst")
    public_key = backend.secret_to_public_key(5)
    encoded = bls.public_key_to_eip2537(public_key)
    x, y = normalize(pubkey_to_G1(public_key))
    assert len(encoded) == 128 and encoded[:16] == b"\x00" * 16
    assert int.from_bytes(encoded[:64], "big") == x.n and int.from_bytes(encoded[64:], "big") == y.n
    signature = backend.sign(5, b"m")
    g2 = bls.signature_to_eip2537(signature)
    sx, sy = normalize(signature_to_G2(signature))
    assert [int.from_bytes(g2[i : i + 64], "big") for i in range(0, 256, 64)] == [*sx.coeffs, *sy.coeffs]
