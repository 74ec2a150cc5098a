"""The attestor role as a member of an ECDSA committee: its key file, its signatures, its wire form."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from coincurve import PrivateKey

from relay.config import load_config
from relay.errors import ConfigurationError, InvalidSignature, MalformedEncoding
from relay.roles.attestor import Attestor, AttestorConfig, parse_ecdsa_secret_key
from relay.rpc.convert import partial_signature_from_proto, partial_signature_to_proto
from relay.v1 import attestation_pb2, types_pb2
from relay.verify.ecdsa import SECP256K1_ORDER, compute_eth_signed_message_hash, recover_address
from relay.verify.hashing import keccak256
from relay.verify.merkle import MerkleTree

SECRET = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDRESS = keccak256(PrivateKey(SECRET).public_key.format(compressed=False)[1:])[12:]
GATEWAY_ADDRESS = "0x" + "42" * 20
LEAVES = [bytes([i]) * 32 for i in range(1, 4)]


class FixedFinality:
    """A finality source whose final tree is `LEAVES` (with its history, so extension is checked)."""

    domain = 7
    gateway = bytes(12) + bytes.fromhex("42" * 20)

    def finalized_checkpoint_state(self) -> tuple[bytes, int] | None:
        return MerkleTree(LEAVES).root(), len(LEAVES)

    def leaves(self, first: int, end: int) -> list[bytes]:
        return LEAVES[first:end]

    def frontier(self) -> list[bytes]:
        from relay.verify.merkle import IncrementalTree

        tree = IncrementalTree()
        for leaf in LEAVES:
            tree.insert(leaf)
        return list(tree.frontier)


def config(key: dict[str, Any], **extra: Any) -> AttestorConfig:
    data = {
        "chain": {
            "name": "alpha",
            "domain": 7,
            "rpc_urls": ["http://127.0.0.1:1"],
            "gateway": GATEWAY_ADDRESS,
        },
        "signer_index": 2,
        "epoch": 5,
        "insecure_plaintext": True,
        **key,
        **extra,
    }
    return load_config(AttestorConfig, environ={}, overrides=data)


def key_file(tmp_path: Path, mode: int, text: str = "0x" + SECRET.hex()) -> str:
    path = tmp_path / "ecdsa.key"
    path.write_text(text + "\n")
    os.chmod(path, mode)
    return str(path)


def test_an_ecdsa_attestor_signs_the_checkpoint_digest_as_eip191_low_s(tmp_path: Path) -> None:
    attestor = Attestor(config({"ecdsa_key": {"file": key_file(tmp_path, 0o600)}}), finality=FixedFinality())  # type: ignore[arg-type]
    assert attestor.handover_signer.scheme == "ecdsa"  # it signs ECDSA hand-overs only
    signed = attestor.poll_once()
    assert signed is not None and signed.checkpoint.index == 2 and signed.checkpoint.epoch == 5
    assert signed.public_key == ADDRESS and signed.signer_index == 2
    signature = signed.signature
    assert len(signature) == 65 and signature[64] in (27, 28)
    assert int.from_bytes(signature[32:64], "big") <= SECP256K1_ORDER // 2
    assert recover_address(compute_eth_signed_message_hash(signed.checkpoint.digest()), signature) == ADDRESS
    # On the wire: the address and the 65-byte signature in their own fields, the BLS ones empty.
    wire = partial_signature_to_proto(signed)
    assert wire.signer_address == ADDRESS and wire.ecdsa_signature == signature
    assert wire.signer_public_key == b"" and wire.signature == b""
    assert (
        partial_signature_from_proto(types_pb2.CheckpointSignature.FromString(wire.SerializeToString()))
        == signed
    )
    from relay.roles.attestor import AttestationServicer

    identity = AttestationServicer(attestor.ledger, attestor.stopping).GetIdentity(
        attestation_pb2.GetIdentityRequest(),
        None,  # type: ignore[arg-type]
    )
    assert (
        identity.signer_address == ADDRESS
        and identity.public_key == b""
        and identity.proof_of_possession == b""
    )


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="chmod 600"):
        Attestor(config({"ecdsa_key": {"file": key_file(tmp_path, 0o644)}}), finality=FixedFinality())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["", "0x" + "00" * 32, "0x" + SECP256K1_ORDER.to_bytes(32, "big").hex(), "ab" * 31, "zz" * 32, "ab" * 33],
)
def test_a_malformed_ecdsa_key_is_a_configuration_error_without_its_value(text: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_ecdsa_secret_key(text)
    assert text == "" or text not in str(raised.value)


def test_exactly_one_key_scheme() -> None:
    with pytest.raises(ConfigurationError, match="exactly one of bls_key"):
        config({"ecdsa_key": {"value": SECRET.hex()}, "bls_key": {"value": "0x1"}})
    with pytest.raises(ConfigurationError, match="exactly one of bls_key"):
        config({})


def test_a_checkpoint_signature_mixing_the_schemes_is_malformed() -> None:
    checkpoint = types_pb2.Checkpoint(origin=7, gateway=b"\x01" * 32, epoch=1, root=b"\x02" * 32, index=0)
    mixed = types_pb2.CheckpointSignature(
        checkpoint=checkpoint, signer_address=ADDRESS, ecdsa_signature=b"\x01" * 65, signature=b"\x02" * 96
    )
    with pytest.raises(MalformedEncoding, match="not both"):
        partial_signature_from_proto(mixed)
    for address, signature in ((ADDRESS[:19], b"\x01" * 65), (ADDRESS, b"\x01" * 64)):
        with pytest.raises(MalformedEncoding):
            partial_signature_from_proto(
                types_pb2.CheckpointSignature(
                    checkpoint=checkpoint, signer_address=address, ecdsa_signature=signature
                )
            )
    with pytest.raises(InvalidSignature):  # well-formed on the wire, refused by the verifier
        recover_address(b"\x00" * 32, b"\x01" * 64 + b"\x1d")


def test_an_ecdsa_certificate_travels_in_its_own_field() -> None:
    from relay.rpc.convert import certificate_from_proto, certificate_to_proto
    from relay.verify.committee import QuorumCertificate

    certificate = QuorumCertificate(b"\x07", b"\x01" * 195)
    wire = certificate_to_proto(certificate)
    assert wire.ecdsa_signatures == b"\x01" * 195 and wire.signature == b""
    assert certificate_from_proto(wire) == certificate
    bls = QuorumCertificate(b"\x07", b"\x02" * 96)
    assert (
        certificate_to_proto(bls).signature == b"\x02" * 96
        and certificate_from_proto(certificate_to_proto(bls)) == bls
    )
    for bad in (
        types_pb2.QuorumCertificate(signers=b"\x07", ecdsa_signatures=b"\x01" * 194),
        types_pb2.QuorumCertificate(signers=b"\x07", ecdsa_signatures=b"\x01" * 65 * 129),
        types_pb2.QuorumCertificate(signers=b"\x07", ecdsa_signatures=b"\x01" * 65, signature=b"\x02" * 96),
    ):
        with pytest.raises(MalformedEncoding):
            certificate_from_proto(bad)


class EcdsaChain:
    """A committee chain whose Gateway holds an ECDSA committee (addresses) for origin 7."""

    domain = 2

    def __init__(self, epoch: int, addresses: list[bytes]) -> None:
        self.set(epoch, addresses)
        self.lie = False  # answer members that do not hash to committeeOf's hash

    def set(self, epoch: int, addresses: list[bytes]) -> None:
        from relay.chains import OnChainEcdsaCommittee
        from relay.verify.ecdsa import EcdsaCommittee

        threshold = len(addresses) * 2 // 3 + 1
        committee_hash = EcdsaCommittee(epoch, tuple(addresses), (1,) * len(addresses), threshold).hash()
        self.committee = OnChainEcdsaCommittee(
            epoch, committee_hash, threshold, tuple((a, 1) for a in addresses)
        )

    def committee_of(self, origin: int) -> tuple[int, bytes] | None:
        return (self.committee.epoch, self.committee.committee_hash) if origin == 7 else None

    def current_committee(self, origin: int) -> Any:
        raise AssertionError("an ECDSA member never reads a BLS committee")

    def current_ecdsa_committee(self, origin: int) -> Any:
        from dataclasses import replace

        return replace(self.committee, committee_hash=b"\x00" * 32) if self.lie else self.committee


def test_an_ecdsa_attestor_follows_its_committee_on_the_chain(tmp_path: Path) -> None:
    others = [bytes([0x30 + i]) * 20 for i in range(3)]
    chain = EcdsaChain(5, [others[0], others[1], ADDRESS, others[2]])
    attestor = Attestor(
        config({"ecdsa_key": {"file": key_file(tmp_path, 0o600)}}),
        finality=FixedFinality(),  # type: ignore[arg-type]
        committee_reader=chain,  # type: ignore[arg-type]
    )
    assert not attestor.membership.refresh(0.0, force=True)  # in step: epoch 5, index 2
    chain.set(6, [ADDRESS, *others])  # the owner re-enrolled it: epoch 6, this member at index 0
    chain.lie = True
    assert not attestor.membership.refresh(10.0, force=True)  # members that do not hash: ignored
    assert attestor.ledger.identity.epoch == 5
    chain.lie = False
    assert attestor.membership.refresh(20.0, force=True)
    signed = attestor.poll_once()
    assert signed is not None and (signed.checkpoint.epoch, signed.signer_index) == (6, 0)
    assert (
        recover_address(compute_eth_signed_message_hash(signed.checkpoint.digest()), signed.signature)
        == ADDRESS
    )
    chain.set(7, others)  # removed
    assert attestor.membership.refresh(30.0, force=True)
    assert not attestor.ledger.signing and attestor.poll_once() is None


def test_the_identity_of_an_ecdsa_member_is_its_checksummed_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse
    import json

    from relay.cli.committee import run_identity
    from relay.config import parse_address

    args = argparse.Namespace(attestor=None, key_file=Path(key_file(tmp_path, 0o600)), ecdsa=True, weight=2)
    assert run_identity(args) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == {"address": document["address"], "weight": 2}
    assert document["address"] != document["address"].lower()  # mixed case: the EIP-55 checksum
    assert parse_address(document["address"]) == ADDRESS  # a committees' members entry as it is
