"""Running a committee hand-over: what `relay committee` and `relay devnet --rotate-after` do.

1. `propose`: read the origin's current committee and source Gateway from a destination gateway
   (`committeeOf`, `currentCommittee`, `sourceGatewayOf`) and build the `HandoverProposal` to epoch + 1 with the next members.
2. `collect_signatures`: ask each current attestor to check and sign it (`SignHandover`, with the
   attestors' operator token, over mutual TLS); a refusal is reported per attestor, never fatal by itself.
3. `certify`: aggregate the signatures (each verified first) into a `HandoverCertificate` and
   verify it off-chain against the committee the chain holds.
4. `submit_to_relayer`: hand it to the relayer (`RelayService.SubmitHandover` on its operator
   port: mutual TLS and the operator token), which submits it to every destination gateway whose committee lags.

Docs: docs/operations.md, "Rotating the committee".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relay.chains import OnChainCommittee
from relay.errors import ConfigurationError, RelayError
from relay.handover import (
    HandoverCertificate,
    HandoverProposal,
    HandoverSignature,
    NotACommitteeMember,
    aggregate_handover,
    build_committee_from_chain,
    compute_proposal_digest,
)
from relay.handover_ecdsa import EcdsaHandoverCertificate
from relay.rpc.tls import TlsFiles, require_client_certificate
from relay.verify.bls import get_backend
from relay.verify.committee import Member, compute_default_threshold

SIGN_TIMEOUT = 30.0  # an attestor reads the chain and checks every proof of possession
SUBMIT_TIMEOUT = 300.0  # the relayer submits to every lagging destination and waits for receipts

log = logging.getLogger(__name__)


def _committee_reader(rpc_url: str, gateway: str) -> Any:
    """The `adapters.evm.committees.EvmCommitteeReader` of the gateway at `gateway`."""
    from adapters.evm.committees import EvmCommitteeReader
    from adapters.evm.config import EvmChainConfig

    chain = EvmChainConfig(name="committee-chain", domain=0, rpc_urls=[rpc_url], gateway=gateway)
    return EvmCommitteeReader(chain)


def read_committee(rpc_url: str, gateway: str, origin: int) -> OnChainCommittee:
    """`origin`'s current committee on the gateway at `gateway` (read through `rpc_url`)."""
    committee = _committee_reader(rpc_url, gateway).current_committee(origin)
    if committee is None:
        raise ConfigurationError("origin is not enrolled on that gateway", origin=origin, gateway=gateway)
    return committee


def read_source_gateway(rpc_url: str, gateway: str, origin: int) -> bytes:
    """The source Gateway (32 bytes) that the gateway at `gateway` enrolled for `origin`."""
    source = _committee_reader(rpc_url, gateway).source_gateway_of(origin)
    if source is None:
        raise ConfigurationError("origin is not enrolled on that gateway", origin=origin, gateway=gateway)
    return source


def propose(
    origin: int,
    source_gateway: bytes,
    current: OnChainCommittee,
    members: Sequence[Member],
    *,
    threshold: int | None = None,
    epoch: int | None = None,
    allow_low_threshold: bool = False,
) -> HandoverProposal:
    """The proposal to hand `current` over to `members` (validated: proofs, threshold rule)."""
    total = sum(m.weight for m in members)
    proposal = HandoverProposal(
        origin=origin,
        gateway=source_gateway,
        epoch=current.epoch + 1 if epoch is None else epoch,
        threshold=compute_default_threshold(total) if threshold is None else threshold,
        members=tuple(members),
        current_committee_hash=current.committee_hash,
        allow_low_threshold=allow_low_threshold,
    )
    proposal.build_committee()  # refuse now what every attestor would refuse
    return proposal


@dataclass(frozen=True)
class SigningResult:
    """One attestor's answer: a signature, or why there is none."""

    address: str
    signature: HandoverSignature | None = None
    error: str = ""


def collect_signatures(
    proposal: HandoverProposal,
    attestors: Sequence[str],
    operator_token: str | Mapping[str, str],
    tls: TlsFiles | None,
    timeout: float = SIGN_TIMEOUT,
) -> list[SigningResult]:
    """Ask every attestor (gRPC `SignHandover`, mutual TLS with `tls`) for its signature on `proposal`.

    `operator_token`: one token for every attestor, or one per address (each member organisation
    its own). Without a client certificate in `tls` nothing is sent (`ConfigurationError`).
    """
    from relay.rpc.clients import GrpcAttestorClient

    require_client_certificate(tls, "SignHandover")
    results = []
    for address in attestors:
        client = GrpcAttestorClient(address, tls)
        try:
            token = operator_token if isinstance(operator_token, str) else operator_token[address]
            results.append(SigningResult(address, client.sign_handover(proposal, token, timeout)))
        except RelayError as error:
            results.append(SigningResult(address, error=f"{error.reason}: {error}"))
        finally:
            client.close()
    return results


def certify(
    proposal: HandoverProposal, current: OnChainCommittee, results: Sequence[SigningResult]
) -> HandoverCertificate:
    """Aggregate the signatures into a certificate verified against `current` (raises if short)."""
    committee = build_committee_from_chain(current)
    bls = get_backend()
    digest = compute_proposal_digest(
        proposal.origin,
        proposal.gateway,
        committee.epoch,
        committee.hash(),
        proposal.build_committee(bls).hash(),
    )
    members = {member.public_key for member in committee.members}
    signatures: dict[bytes, bytes] = {}
    for result in results:
        if result.signature is None:
            continue
        key, signature = result.signature.public_key, result.signature.signature
        try:
            if key not in members:
                raise NotACommitteeMember(
                    "key is not a member of the current committee", epoch=committee.epoch
                )
            bls.verify(key, digest, signature)
        except RelayError as error:
            # One hostile or mistaken answer is left out, never fatal, and never replaces a
            # member's genuine signature (the first valid one per member is kept).
            log.warning(
                "hand-over signature left out",
                extra={"attestor": result.address, "reason": error.reason, "error": str(error)},
            )
            continue
        signatures.setdefault(key, signature)
    return aggregate_handover(committee, proposal, signatures, bls)


def submit_to_relayer(
    address: str,
    operator_token: str,
    certificate: HandoverCertificate | EcdsaHandoverCertificate,
    tls: TlsFiles | None,
    timeout: float = SUBMIT_TIMEOUT,
) -> Any:
    """`RelayService.SubmitHandover` on the relayer's operator port (`address`; mutual TLS with
    `tls`, a client certificate of its CA): the relayer's answer (epoch, per-destination submissions)."""
    import grpc

    from relay.rpc import convert
    from relay.rpc.clients import CHANNEL_OPTIONS, classify_rpc_error
    from relay.rpc.tls import open_channel
    from relay.v1 import relay_service_pb2, relay_service_pb2_grpc

    require_client_certificate(tls, "SubmitHandover")
    channel = open_channel(address, tls, options=CHANNEL_OPTIONS)
    try:
        stub = relay_service_pb2_grpc.RelayServiceStub(channel)
        if isinstance(certificate, EcdsaHandoverCertificate):
            request = relay_service_pb2.SubmitHandoverRelayRequest(
                ecdsa_handover=convert.ecdsa_handover_certificate_to_proto(certificate),
                operator_token=operator_token,
            )
        else:
            request = relay_service_pb2.SubmitHandoverRelayRequest(
                handover=convert.handover_certificate_to_proto(certificate), operator_token=operator_token
            )
        try:
            return stub.SubmitHandover(request, timeout=timeout)
        except grpc.RpcError as error:
            raise classify_rpc_error(error, address, "SubmitHandover") from error
    finally:
        channel.close()
