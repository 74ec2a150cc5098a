"""ECDSA -> ECDSA hand-over end to end on a real chain: four attestors with `ecdsa_key` (real gRPC
servers, mutual TLS) check a proposal against the destination Gateway on anvil and sign it; the
certificate lands through the submitter's `handoverEcdsa` path (and the CLI's `--send-with-key`); the attestors follow the new committee from the chain.

Attacks: a forged certificate (an outsider's signature in a member's place) and a replayed one
are refused by the Gateway; stale, wrong-epoch, other-gateway, low-threshold and BLS proposals
are refused by the attestors with their typed gRPC status and no signature.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from web3 import Web3

from adapters.evm.admin import AdminCallRefused, GatewayAdmin
from adapters.evm.anvil import DEV_PRIVATE_KEYS
from adapters.evm.ecdsa_gas import EcdsaSigningCommittee, address_of
from adapters.evm.submitter import EvmDestination
from relay.config import SecretRef
from relay.errors import RelayError
from relay.handover import HandoverProposal
from relay.handover_ecdsa import (
    EcdsaHandoverCertificate,
    compute_ecdsa_proposal_digest,
    ecdsa_certificate_from_dict,
)
from relay.roles.attestor import Attestor, AttestorConfig
from relay.rpc.clients import GrpcAttestorClient
from relay.rpc.tls import ClientTls
from relay.tools.rotation_ecdsa import (
    certify_ecdsa,
    collect_ecdsa_signatures,
    propose_ecdsa,
    read_ecdsa_committee,
    submit_ecdsa_handover,
)
from relay.verify.committee import Member
from relay.verify.ecdsa import EcdsaCertificate, sign_digest
from relay.verify.hashing import keccak256
from tests.integration.gateway_bridge import ORIGIN, Bridge
from tests.integration.test_contracts_ecdsa import make_ecdsa_bridge
from tests.integration.test_handover_signing import NothingFinal, chain_config
from tests.pki import Pki

pytestmark = [pytest.mark.anvil]

TOKEN = "ecdsa-attestor-operator-token"
DESTINATION = 2
NEW_KEY = keccak256(b"a new member of the ECDSA committee")
OUTSIDER_KEY = keccak256(b"never a member")


@pytest.fixture
def current() -> EcdsaSigningCommittee:
    return EcdsaSigningCommittee.generate(4, epoch=1, seed=b"ecdsa hand-over committee")


@pytest.fixture
def bridge(w3: Web3, current: EcdsaSigningCommittee) -> Bridge:
    return make_ecdsa_bridge(w3, current)


@pytest.fixture
def operator(pki: Pki) -> ClientTls:
    return pki.client("operator")


@pytest.fixture
def attestors(bridge: Bridge, current: EcdsaSigningCommittee, pki: Pki) -> Iterator[list[Attestor]]:
    started = []
    for index, key in enumerate(current.secret_keys):
        config = AttestorConfig(
            tls=pki.issue(f"ecdsa-attestor-{index}"),
            chain=chain_config(bridge.w3, "source", ORIGIN, bridge.source.address),
            ecdsa_key=SecretRef(value=key.hex()),
            signer_index=index,
            epoch=1,
            listen="127.0.0.1:0",
            committee_chain=chain_config(bridge.w3, "destination", DESTINATION, bridge.destination.address),
            operator_token=SecretRef(value=TOKEN),
        )
        attestor = Attestor(config, finality=NothingFinal(bridge.source_word)).start()  # type: ignore[arg-type]
        attestor.membership.refresh(time.monotonic(), force=True)
        started.append(attestor)
    yield started
    for attestor in started:
        attestor.stop()


def grpc_address(attestor: Attestor) -> str:
    return f"127.0.0.1:{attestor.grpc_port}"


def test_ecdsa_attestors_sign_a_handover_the_gateway_accepts_and_refuses_forged_and_replayed(
    bridge: Bridge, current: EcdsaSigningCommittee, attestors: list[Attestor], operator: ClientTls
) -> None:
    url = bridge.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    gateway = bridge.destination.address
    on_chain = read_ecdsa_committee(url, gateway, ORIGIN)
    assert on_chain.epoch == 1 and on_chain.committee_hash == current.committee.hash()
    # Member 0 leaves, a new address joins: 3 of 4.
    members = [(address, 1) for address in current.committee.signers[1:]] + [(address_of(NEW_KEY), 1)]
    proposal = propose_ecdsa(ORIGIN, bridge.source_word, on_chain, members)
    results = collect_ecdsa_signatures(proposal, [grpc_address(a) for a in attestors], TOKEN, operator)
    assert [r.error for r in results] == ["", "", "", ""]
    certificate = certify_ecdsa(proposal, on_chain, results)
    assert len(certificate.certificate.signature) == 4 * 65

    # Forged: member 3's signature replaced by an outsider's over the same digest.
    signatures = certificate.certificate.signatures()
    digest_owner = results[0].signature
    assert digest_owner is not None
    digest = compute_ecdsa_proposal_digest(
        ORIGIN, bridge.source_word, 1, on_chain.committee_hash, digest_owner.next_committee_hash
    )
    forged_signatures = b"".join(signatures[:3]) + sign_digest(OUTSIDER_KEY, digest)
    forged = EcdsaHandoverCertificate(
        proposal, EcdsaCertificate(certificate.certificate.signers, forged_signatures)
    )
    admin = GatewayAdmin(url, DEV_PRIVATE_KEYS[3], gateway)
    with pytest.raises(AdminCallRefused) as refusal:
        admin.handover_ecdsa(ORIGIN, proposal.build_committee(), forged.certificate)
    assert "Signature" in str(refusal.value) or "Signer" in str(refusal.value)
    assert admin.committee_of(ORIGIN)[0] == 1

    # Through the submitter's code path (DestinationService.SubmitHandover -> handoverEcdsa).
    submitter = EvmDestination(
        chain_config(bridge.w3, "destination", DESTINATION, gateway), DEV_PRIVATE_KEYS[3]
    )
    transaction, epoch = submitter.submit_handover(certificate)
    assert transaction and epoch == 2
    assert admin.committee_of(ORIGIN) == (2, proposal.build_committee().hash())
    assert submitter.submit_handover(certificate) == (b"", 2)  # already there: nothing sent
    assert submit_ecdsa_handover(url, gateway, DEV_PRIVATE_KEYS[3], certificate) == (b"", 2)
    with pytest.raises(AdminCallRefused):  # replayed: the Gateway is past epoch 1
        admin.handover_ecdsa(ORIGIN, proposal.build_committee(), certificate.certificate)

    # The attestors follow the chain: member 0 stops, the others move to their new indices.
    for attestor in attestors:
        attestor.membership.refresh(time.monotonic(), force=True)
    assert not attestors[0].ledger.signing
    assert [a.ledger.identity.signer_index for a in attestors[1:]] == [0, 1, 2]
    assert all(a.ledger.signing and a.ledger.identity.epoch == 2 for a in attestors[1:])
    # The same proposal is now stale for every attestor (epoch and current committee hash).
    (stale,) = collect_ecdsa_signatures(proposal, [grpc_address(attestors[1])], TOKEN, operator)
    assert stale.signature is None and "FAILED_PRECONDITION" in stale.error

    # The owner's recovery path (GatewayAdmin.enroll_origin_ecdsa): owner only, a higher epoch only.
    recovery = EcdsaSigningCommittee.generate(3, epoch=3, seed=b"recovery committee").committee
    with pytest.raises(AdminCallRefused, match="NotOwner"):
        admin.enroll_origin_ecdsa(ORIGIN, bridge.source.address, recovery)
    owner = GatewayAdmin(url, DEV_PRIVATE_KEYS[0], gateway)
    owner.enroll_origin_ecdsa(ORIGIN, bridge.source.address, recovery)
    assert owner.committee_of(ORIGIN) == (3, recovery.hash())
    with pytest.raises(AdminCallRefused, match="EpochNotIncreasing"):
        owner.enroll_origin_ecdsa(ORIGIN, bridge.source.address, recovery)


def test_ecdsa_sign_handover_refuses_bad_proposals_with_typed_statuses(
    bridge: Bridge, current: EcdsaSigningCommittee, attestors: list[Attestor], operator: ClientTls
) -> None:
    url = bridge.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    on_chain = read_ecdsa_committee(url, bridge.destination.address, ORIGIN)
    members = tuple((address, 1) for address in current.committee.signers)
    valid = propose_ecdsa(ORIGIN, bridge.source_word, on_chain, [*members[1:], (address_of(NEW_KEY), 1)])
    attacks = {
        "wrong epoch": (replace(valid, epoch=3), "FAILED_PRECONDITION"),
        "stale current hash": (replace(valid, current_committee_hash=b"\x11" * 32), "FAILED_PRECONDITION"),
        "another source gateway": (replace(valid, gateway=b"\x66" * 32), "FAILED_PRECONDITION"),
        "another origin": (replace(valid, origin=ORIGIN + 1), "FAILED_PRECONDITION"),
        "threshold below 2/3, allowed by the proposal only": (
            replace(valid, threshold=2, allow_low_threshold=True),
            "INVALID_ARGUMENT",
        ),
        "duplicate member": (replace(valid, members=(members[1],) * 4), "INVALID_ARGUMENT"),
    }
    client = GrpcAttestorClient(grpc_address(attestors[1]), operator)
    try:
        outcomes = {}
        for name, (proposal, _) in attacks.items():
            try:
                client.sign_ecdsa_handover(proposal, TOKEN, 30.0)
                outcomes[name] = "signed"
            except RelayError as error:
                outcomes[name] = str(error)
        for name, (_, code) in attacks.items():
            assert code in outcomes[name], (name, outcomes[name])
        with pytest.raises(RelayError, match="PERMISSION_DENIED"):
            client.sign_ecdsa_handover(valid, "wrong token", 30.0)
        # A BLS proposal to an ECDSA attestor: refused, whatever it holds.
        member = Member(b"\x01" * 48, b"\x02" * 96, 1)
        bls = HandoverProposal(ORIGIN, bridge.source_word, 2, 1, (member,), on_chain.committee_hash)
        with pytest.raises(RelayError, match="FAILED_PRECONDITION"):
            client.sign_handover(bls, TOKEN, 30.0)
    finally:
        client.close()
    # After all of that the attestor still signs the valid proposal (nothing was recorded).
    (result,) = collect_ecdsa_signatures(valid, [grpc_address(attestors[1])], TOKEN, operator)
    assert result.signature is not None


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", "committee", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_committee_cli_proposes_certifies_and_sends_an_ecdsa_handover(
    bridge: Bridge,
    current: EcdsaSigningCommittee,
    attestors: list[Attestor],
    operator: ClientTls,
    tmp_path: Path,
) -> None:
    tls = ["--ca", operator.ca, "--cert", str(operator.cert), "--key", str(operator.key)]
    url = bridge.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    chain = ["--origin", str(ORIGIN), "--rpc", url, "--gateway", bridge.destination.address]
    kept = run_cli("identity", "--attestor", grpc_address(attestors[1]), *tls)  # as the attestor says
    assert kept.returncode == 0, kept.stderr
    new_key = tmp_path / "new.hex"
    new_key.write_text(NEW_KEY.hex())
    new_key.chmod(0o600)
    new = run_cli("identity", "--ecdsa", "--key-file", str(new_key))
    assert new.returncode == 0, new.stderr
    members = [json.loads(kept.stdout)]
    members += [{"address": "0x" + a.hex(), "weight": 1} for a in current.committee.signers[2:]]
    members.append(json.loads(new.stdout))
    (tmp_path / "members.json").write_text(json.dumps(members))

    proposal_file = tmp_path / "proposal.json"
    proposed = run_cli(
        "propose", "--ecdsa", *chain, "--member", str(tmp_path / "members.json"), "--out", str(proposal_file)
    )
    assert proposed.returncode == 0, proposed.stderr
    proposal = json.loads(proposal_file.read_text())
    assert proposal["scheme"] == "ecdsa" and proposal["epoch"] == 2 and proposal["threshold"] == 3

    token_file = tmp_path / "attestor-token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    sender_key = tmp_path / "sender.hex"
    sender_key.write_text(DEV_PRIVATE_KEYS[2])
    sender_key.chmod(0o600)
    certificate_file = tmp_path / "certificate.json"
    handed = run_cli(
        "handover",
        *chain,
        "--proposal",
        str(proposal_file),
        *[part for a in attestors for part in ("--attestor", grpc_address(a))],
        "--attestor-token-file",
        str(token_file),
        "--out",
        str(certificate_file),
        "--send-with-key",
        str(sender_key),
        *tls,
    )
    assert handed.returncode == 0, handed.stderr
    assert handed.stderr.count("signed as member") == 4 and "epoch 2: submitted in 0x" in handed.stderr
    assert bridge.destination.functions.committeeOf(ORIGIN).call()[0] == 2
    certificate = ecdsa_certificate_from_dict(json.loads(certificate_file.read_text()))
    assert certificate.proposal.build_committee().hash() == bytes(
        bridge.destination.functions.committeeOf(ORIGIN).call()[1]
    )
    # --submit (to the relayer) needs the relayer's operator token: refused before anything is asked.
    relayed = run_cli(
        "handover",
        *chain,
        "--proposal",
        str(proposal_file),
        "--attestor",
        "127.0.0.1:1",
        "--attestor-token-file",
        str(token_file),
        "--submit",
        *tls,
    )
    assert relayed.returncode == 2 and "--operator-token-file" in relayed.stderr
