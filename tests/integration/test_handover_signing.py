"""Hand-over end to end on a real chain: attestors (real gRPC servers) check proposals against the
destination Gateway on anvil and sign only valid ones; the certificate lands on-chain through the
submitter's code path; the attestors follow the new committee from the chain.

Attacks: a rogue key (`x·G − Σ others`, with a borrowed proof of possession), a wrong epoch, a
stale current committee hash, another origin, a malformed key, the identity as a key, a huge
proposal, a threshold below two thirds, a missing or wrong operator token. Each gets its typed
gRPC status and no signature.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from py_ecc.bls.g2_primitives import G1_to_pubkey, pubkey_to_G1
from py_ecc.optimized_bls12_381 import G1, add, multiply, neg
from web3 import Web3

from adapters.evm.anvil import DEV_PRIVATE_KEYS
from adapters.evm.config import EvmChainConfig
from adapters.evm.gas import SigningCommittee
from adapters.evm.submitter import EvmDestination
from relay.config import SecretRef
from relay.errors import PermanentError
from relay.handover import (
    HandoverProposal,
    build_committee_from_chain,
    certificate_from_dict,
    verify_handover_certificate,
)
from relay.roles.attestor import Attestor, AttestorConfig
from relay.rpc.tls import ClientTls
from relay.tools.rotation import certify, collect_signatures, propose, read_committee
from relay.verify.bls import get_backend, keygen
from relay.verify.committee import Member
from tests.integration.gateway_bridge import DESTINATION, ORIGIN, Bridge
from tests.pki import Pki

BLS = get_backend()
TOKEN = "attestor-operator-token"
NEW_SECRETS = [keygen(bytes([0x60 + i]) * 32) for i in range(2)]
NEW_MEMBERS = [Member(BLS.secret_to_public_key(s), BLS.prove_possession(s), 1) for s in NEW_SECRETS]


class NothingFinal:
    """A finality source with nothing final: these attestors only sign hand-overs here."""

    def __init__(self, gateway: bytes) -> None:
        self.domain = ORIGIN
        self.gateway = gateway

    def finalized_checkpoint_state(self) -> None:
        return None


def chain_config(w3: Web3, name: str, domain: int, gateway: str) -> EvmChainConfig:
    return EvmChainConfig(name=name, domain=domain, rpc_urls=[w3.provider.endpoint_uri], gateway=gateway)  # type: ignore[attr-defined]


@pytest.fixture
def operator(pki: Pki) -> ClientTls:
    """The operator's client certificate, of the attestors' CA (SignHandover is mutual TLS only)."""
    return pki.client("operator")


@pytest.fixture
def attestors(bridge: Bridge, signing: SigningCommittee, pki: Pki) -> Iterator[list[Attestor]]:
    started = []
    for index, secret in enumerate((*signing.secret_keys, *NEW_SECRETS)):
        config = AttestorConfig(
            tls=pki.issue(f"attestor-{index}"),
            chain=chain_config(bridge.w3, "source", ORIGIN, bridge.source.address),
            bls_key=SecretRef(value=hex(secret)),
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


def address(attestor: Attestor) -> str:
    return f"127.0.0.1:{attestor.grpc_port}"


def rogue_member(signing: SigningCommittee) -> Member:
    """x·G − Σ(the other proposed keys): with it, x alone would sign for every member of the committee."""
    others = [m.public_key for m in signing.committee.members[1:]] + [m.public_key for m in NEW_MEMBERS]
    point = multiply(G1, 12345)
    for key in others:
        point = add(point, neg(pubkey_to_G1(key)))
    # No proof of possession for it can be made without the discrete log: borrow a member's.
    return Member(G1_to_pubkey(point), signing.committee.members[0].proof_of_possession, 1)


def next_members(signing: SigningCommittee) -> list[Member]:
    return [*signing.committee.members[1:], *NEW_MEMBERS]  # member 0 removed, two added


def test_attestors_sign_a_valid_handover_which_lands_and_is_followed(
    bridge: Bridge, signing: SigningCommittee, attestors: list[Attestor], operator: ClientTls
) -> None:
    destination_chain = chain_config(bridge.w3, "destination", DESTINATION, bridge.destination.address)
    url = bridge.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    current = read_committee(url, bridge.destination.address, ORIGIN)
    assert current.epoch == 1 and current.committee_hash == signing.committee.hash()
    proposal = propose(ORIGIN, bridge.source_word, current, next_members(signing))
    assert proposal.threshold == 4  # more than two thirds of 5
    results = collect_signatures(proposal, [address(a) for a in attestors], TOKEN, operator)
    signed = [r for r in results if r.signature is not None]
    assert len(signed) == 4  # the current members; the two new ones are not members yet
    assert all("not a member" in r.error for r in results[4:])
    certificate = certify(proposal, current, results)

    submitter = EvmDestination(destination_chain, DEV_PRIVATE_KEYS[3])
    transaction, epoch = submitter.submit_handover(certificate)
    assert transaction and epoch == 2
    assert submitter.submit_handover(certificate) == (b"", 2)  # already there: nothing sent
    assert bridge.destination.functions.committeeOf(ORIGIN).call()[0] == 2

    for attestor in attestors:
        attestor.membership.refresh(time.monotonic(), force=True)
    removed, kept, added = attestors[0], attestors[1:4], attestors[4:]
    assert not removed.ledger.signing and removed.ledger.identity.epoch == 2
    assert [a.ledger.identity.signer_index for a in kept] == [0, 1, 2]
    assert [a.ledger.identity.signer_index for a in added] == [3, 4]
    assert all(a.ledger.signing and a.ledger.identity.epoch == 2 for a in (*kept, *added))
    # The removed member can no longer sign a hand-over either.
    again = propose(
        ORIGIN,
        bridge.source_word,
        read_committee(url, bridge.destination.address, ORIGIN),
        next_members(signing)[:4],
    )
    (refused,) = collect_signatures(again, [address(removed)], TOKEN, operator)
    assert refused.signature is None and "not a member" in refused.error


def attacks(signing: SigningCommittee, source: bytes, current_hash: bytes) -> dict[str, tuple[Any, str]]:
    members = tuple(next_members(signing))
    valid = HandoverProposal(ORIGIN, source, 2, 4, members, current_hash)
    rogue = (*members[:-1], rogue_member(signing))
    malformed = (*members[:-1], replace(members[-1], public_key=members[-1].public_key[:47]))
    identity = (*members[:-1], replace(members[-1], public_key=b"\xc0" + bytes(47)))
    huge = tuple(members[0] for _ in range(129))
    return {
        "rogue key": (replace(valid, members=rogue), "INVALID_ARGUMENT"),
        "wrong epoch": (replace(valid, epoch=3), "FAILED_PRECONDITION"),
        "same epoch": (replace(valid, epoch=1), "FAILED_PRECONDITION"),
        "stale current hash": (replace(valid, current_committee_hash=b"\x11" * 32), "FAILED_PRECONDITION"),
        "another origin": (replace(valid, origin=7), "FAILED_PRECONDITION"),
        # A hand-over for another deployment's source Gateway (same origin id): never signed.
        "another source gateway": (replace(valid, gateway=b"\x66" * 32), "FAILED_PRECONDITION"),
        "malformed key": (malformed, "INVALID_ARGUMENT"),
        "identity as a key": (identity, "INVALID_ARGUMENT"),
        "129 members": (huge, "INVALID_ARGUMENT"),
        "threshold below 2/3": (replace(valid, threshold=3), "INVALID_ARGUMENT"),
        # The proposal cannot switch the rule off: only the attestor's own config can.
        "threshold below 2/3, allowed by the proposal only": (
            replace(valid, threshold=3, allow_low_threshold=True),
            "INVALID_ARGUMENT",
        ),
        "duplicate member": ((*members[:-1], members[0]), "INVALID_ARGUMENT"),
    }


def test_sign_handover_refuses_every_attack_with_a_typed_status(
    bridge: Bridge, signing: SigningCommittee, attestors: list[Attestor], operator: ClientTls
) -> None:
    from relay.rpc import convert
    from relay.rpc.clients import GrpcAttestorClient
    from relay.v1 import attestation_pb2, types_pb2

    client = GrpcAttestorClient(address(attestors[1]), operator)
    stub = client._stub
    outcomes = {}
    for name, (proposal, _expected) in attacks(signing, bridge.source_word, signing.committee.hash()).items():
        if isinstance(proposal, tuple):  # members that the domain type refuses to hold: sent raw
            message = convert.proposal_to_proto(
                HandoverProposal(
                    ORIGIN, bridge.source_word, 2, 4, tuple(next_members(signing)), signing.committee.hash()
                )
            )
            del message.members[:]
            message.members.extend(
                types_pb2.CommitteeMember(
                    public_key=m.public_key, proof_of_possession=m.proof_of_possession, weight=m.weight
                )
                for m in proposal
            )
        else:
            message = convert.proposal_to_proto(proposal)
        try:
            stub.SignHandover(
                attestation_pb2.SignHandoverRequest(proposal=message, operator_token=TOKEN), timeout=10
            )
            outcomes[name] = "OK: SIGNED"
        except Exception as error:  # noqa: BLE001 - the status code is the result
            outcomes[name] = error.code().name  # type: ignore[attr-defined]
    assert outcomes == {
        name: expected
        for name, (_, expected) in attacks(signing, bridge.source_word, signing.committee.hash()).items()
    }

    valid = HandoverProposal(
        ORIGIN, bridge.source_word, 2, 4, tuple(next_members(signing)), signing.committee.hash()
    )
    for token in ("", "wrong-token"):
        with pytest.raises(PermanentError) as refused:
            client.sign_handover(valid, token, timeout=10)
        assert refused.value.fields["code"] == "PERMISSION_DENIED"
    assert client.sign_handover(
        valid, TOKEN, timeout=10
    ).signature  # the same proposal with the token: signed
    assert client.sign_handover(valid, TOKEN, timeout=10).signature  # again: the same hand-over
    # A different next committee from the same committee: never signed by the same attestor.
    other = replace(valid, members=valid.members[:4], threshold=3)
    with pytest.raises(PermanentError) as conflicting:
        client.sign_handover(other, TOKEN, timeout=10)
    assert conflicting.value.fields["code"] == "FAILED_PRECONDITION"
    assert "already signed a hand-over" in conflicting.value.fields["details"]
    client.close()

    # An attestor whose own config allows low thresholds signs one the proposal asks for.
    permissive = GrpcAttestorClient(address(attestors[2]), operator)
    attestors[2].handover_signer.allow_low_threshold = True
    low = replace(valid, threshold=3, allow_low_threshold=True)
    assert permissive.sign_handover(low, TOKEN, timeout=10).signature
    with pytest.raises(PermanentError):  # but not without the proposal asking for it
        permissive.sign_handover(replace(low, allow_low_threshold=False), TOKEN, timeout=10)
    permissive.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", "committee", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_committee_cli_proposes_and_certifies_a_handover(
    bridge: Bridge, signing: SigningCommittee, attestors: list[Attestor], operator: ClientTls, tmp_path: Path
) -> None:
    tls = ["--ca", operator.ca, "--cert", str(operator.cert), "--key", str(operator.key)]
    url = bridge.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    chain = ["--origin", str(ORIGIN), "--rpc", url, "--gateway", bridge.destination.address]
    member_files = []
    for index, attestor in enumerate(attestors[1:4]):  # the kept members, as their attestors say
        identity = run_cli("identity", "--attestor", address(attestor), *tls)
        assert identity.returncode == 0, identity.stderr
        member_files += ["--member", str(tmp_path / f"kept-{index}.json")]
        (tmp_path / f"kept-{index}.json").write_text(identity.stdout)
    for index, secret in enumerate(NEW_SECRETS):  # the new members, from their key files
        key_file = tmp_path / f"new-{index}.hex"
        key_file.write_text(hex(secret))
        key_file.chmod(0o600)
        identity = run_cli("identity", "--key-file", str(key_file))
        assert identity.returncode == 0, identity.stderr
        member_files += ["--member", str(tmp_path / f"new-{index}.json")]
        (tmp_path / f"new-{index}.json").write_text(identity.stdout)

    low = run_cli("propose", *chain, *member_files, "--threshold", "3")
    assert low.returncode == 1 and "two thirds" in low.stderr
    proposal_file = tmp_path / "proposal.json"
    proposed = run_cli("propose", *chain, *member_files, "--out", str(proposal_file))
    assert proposed.returncode == 0, proposed.stderr
    proposal = json.loads(proposal_file.read_text())
    assert proposal["epoch"] == 2 and proposal["threshold"] == 4 and len(proposal["members"]) == 5

    token_file = tmp_path / "attestor-token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    wrong_token_file = tmp_path / "member-1-token"
    wrong_token_file.write_text("not-member-1s-token")
    wrong_token_file.chmod(0o600)
    certificate_file = tmp_path / "certificate.json"
    handed = run_cli(
        "handover",
        *chain,
        "--proposal",
        str(proposal_file),
        # Member 1's organisation gives its own token file (a wrong one here): only it is refused.
        "--attestor",
        f"{address(attestors[1])}={wrong_token_file}",
        *[part for a in attestors if a is not attestors[1] for part in ("--attestor", address(a))],
        "--attestor-token-file",
        str(token_file),
        "--out",
        str(certificate_file),
        *tls,
    )
    assert handed.returncode == 0, handed.stderr
    assert handed.stderr.count("signed as member") == 3 and handed.stderr.count(": refused: ") == 3
    assert handed.stderr.count("PERMISSION_DENIED") == 1
    certificate = certificate_from_dict(json.loads(certificate_file.read_text()))
    current = build_committee_from_chain(read_committee(url, bridge.destination.address, ORIGIN))
    assert verify_handover_certificate(current, certificate).epoch == 2

    tampered = json.loads(proposal_file.read_text())
    tampered["members"][0]["proof_of_possession"] = tampered["members"][1]["proof_of_possession"]
    proposal_file.write_text(json.dumps(tampered))
    refused = run_cli(
        "handover",
        *chain,
        "--proposal",
        str(proposal_file),
        "--attestor",
        address(attestors[1]),
        "--attestor-token-file",
        str(token_file),
        *tls,
    )
    assert refused.returncode == 1 and "INVALID_ARGUMENT" in refused.stderr


def test_sign_handover_refuses_the_operator_token_over_plaintext(
    bridge: Bridge, signing: SigningCommittee
) -> None:
    """Even in development mode the token never counts when it crossed the network in the clear."""
    from relay.rpc.clients import GrpcAttestorClient

    config = AttestorConfig(
        insecure_plaintext=True,
        chain=chain_config(bridge.w3, "source", ORIGIN, bridge.source.address),
        bls_key=SecretRef(value=hex(signing.secret_keys[1])),
        signer_index=1,
        epoch=1,
        listen="127.0.0.1:0",
        committee_chain=chain_config(bridge.w3, "destination", DESTINATION, bridge.destination.address),
        operator_token=SecretRef(value=TOKEN),
    )
    attestor = Attestor(config, finality=NothingFinal(bridge.source_word)).start()  # type: ignore[arg-type]
    client = GrpcAttestorClient(address(attestor), None)
    try:
        valid = HandoverProposal(
            ORIGIN, bridge.source_word, 2, 4, tuple(next_members(signing)), signing.committee.hash()
        )
        with pytest.raises(PermanentError) as refused:
            client.sign_handover(valid, TOKEN, timeout=10)
        assert refused.value.fields["code"] == "PERMISSION_DENIED"
        assert "only over mutual TLS" in refused.value.fields["details"]
    finally:
        client.close()
        attestor.stop()


def test_concurrent_submissions_of_one_handover_send_one_transaction(
    bridge: Bridge, signing: SigningCommittee, attestors: list[Attestor], operator: ClientTls
) -> None:
    """Anyone with a certificate may call SubmitHandover; several at once must not each pay for a
    transaction (all but the first would revert on-chain). Blocks are mined every 0.3 s, so the
    calls overlap while the first transaction waits in the pool."""
    import threading

    from eth_account import Account

    from relay.roles.submitter import DestinationServicer
    from relay.rpc.convert import handover_certificate_to_proto
    from relay.v1 import destination_pb2

    url = bridge.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    current = read_committee(url, bridge.destination.address, ORIGIN)
    proposal = propose(ORIGIN, bridge.source_word, current, next_members(signing))
    signatures = collect_signatures(proposal, [address(a) for a in attestors[:4]], TOKEN, operator)
    certificate = certify(proposal, current, signatures)
    destination_chain = chain_config(bridge.w3, "destination", DESTINATION, bridge.destination.address)
    servicer = DestinationServicer(EvmDestination(destination_chain, DEV_PRIVATE_KEYS[3]))
    request = destination_pb2.SubmitHandoverRequest(handover=handover_certificate_to_proto(certificate))
    account = Account.from_key(DEV_PRIVATE_KEYS[3]).address
    nonce_before = bridge.w3.eth.get_transaction_count(account)
    answers: list[Any] = []
    start = threading.Barrier(3)
    mining = threading.Event()

    def submit() -> None:
        start.wait()
        answers.append(servicer.SubmitHandover(request, None))  # type: ignore[arg-type]

    def mine() -> None:
        while not mining.wait(0.3):
            bridge.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    bridge.w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    miner = threading.Thread(target=mine)
    miner.start()
    try:
        threads = [threading.Thread(target=submit) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        mining.set()
        miner.join()
        bridge.w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    assert len(answers) == 3 and all(answer.epoch == 2 for answer in answers)
    assert sum(1 for answer in answers if answer.transaction_hash) == 1
    assert bridge.w3.eth.get_transaction_count(account) - nonce_before == 1  # one transaction paid for
