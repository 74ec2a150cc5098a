"""Running an ECDSA -> ECDSA committee hand-over: what `relay committee propose|handover` do for
an origin whose committee is ECDSA (`relay.tools.rotation` is the BLS twin).

1. `read_ecdsa_committee` / `propose_ecdsa`: read the origin's current ECDSA committee from a
   destination gateway (`committeeOf`, `currentEcdsaCommittee`, its hash computed from the members
   read) and build the `EcdsaHandoverProposal` to epoch + 1 with the next members (address, weight).
2. `collect_ecdsa_signatures`: ask each current attestor to check and sign it (`SignHandover` with
   `ecdsa_proposal`, the operator token, mutual TLS); a refusal is reported per attestor.
3. `certify_ecdsa`: combine the signatures (each counted for the member it recovers to; one
   recovering to no member is left out) into an `EcdsaHandoverCertificate` verified off-chain
   with the Gateway's rules.
4. `submit_ecdsa_handover`: send `handoverEcdsa` to a destination Gateway (anyone may: the
   certificate is the authority), or nothing when the Gateway already holds the next epoch.

Docs: docs/operations.md, "Rotating the committee" and "ECDSA committees".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from relay.chains import OnChainEcdsaCommittee
from relay.errors import ConfigurationError, RelayError
from relay.handover_ecdsa import (
    EcdsaHandoverCertificate,
    EcdsaHandoverProposal,
    EcdsaHandoverSignature,
    aggregate_ecdsa_handover,
    compute_ecdsa_proposal_digest,
)
from relay.rpc.tls import TlsFiles, require_client_certificate
from relay.tools.rotation import SIGN_TIMEOUT, _committee_reader
from relay.verify.committee import compute_default_threshold
from relay.verify.ecdsa import EcdsaCommittee, compute_eth_signed_message_hash, recover_member_signature

log = logging.getLogger(__name__)


def read_ecdsa_committee(rpc_url: str, gateway: str, origin: int) -> OnChainEcdsaCommittee:
    """`origin`'s current ECDSA committee on the gateway at `gateway` (read through `rpc_url`)."""
    committee: OnChainEcdsaCommittee | None = _committee_reader(rpc_url, gateway).current_ecdsa_committee(
        origin
    )
    if committee is None:
        raise ConfigurationError("origin is not enrolled on that gateway", origin=origin, gateway=gateway)
    return committee


def committee_from_chain(current: OnChainEcdsaCommittee) -> EcdsaCommittee:
    """The `EcdsaCommittee` the gateway holds; `ConfigurationError` if its members do not hash to
    the hash read (they were read and hashed by the reader: a mismatch is a broken read)."""
    committee = EcdsaCommittee.create(
        current.epoch,
        [address for address, _ in current.members],
        [weight for _, weight in current.members],
        current.threshold,
        allow_low_threshold=True,  # the gateway accepted it: its owner allowed it if low
    )
    if committee.hash() != current.committee_hash:
        raise ConfigurationError("the members read do not hash to the committee's hash", epoch=current.epoch)
    return committee


def propose_ecdsa(
    origin: int,
    source_gateway: bytes,
    current: OnChainEcdsaCommittee,
    members: Sequence[tuple[bytes, int]],
    *,
    threshold: int | None = None,
    epoch: int | None = None,
    allow_low_threshold: bool = False,
) -> EcdsaHandoverProposal:
    """The proposal to hand `current` over to `members` (validated: addresses, threshold rule)."""
    total = sum(weight for _, weight in members)
    proposal = EcdsaHandoverProposal(
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
class EcdsaSigningResult:
    """One attestor's answer: a signature, or why there is none."""

    address: str
    signature: EcdsaHandoverSignature | None = None
    error: str = ""


def collect_ecdsa_signatures(
    proposal: EcdsaHandoverProposal,
    attestors: Sequence[str],
    operator_token: str | Mapping[str, str],
    tls: TlsFiles | None,
    timeout: float = SIGN_TIMEOUT,
) -> list[EcdsaSigningResult]:
    """Ask every attestor (gRPC `SignHandover` with `ecdsa_proposal`, mutual TLS) for its signature."""
    from relay.rpc.clients import GrpcAttestorClient

    require_client_certificate(tls, "SignHandover")
    results = []
    for address in attestors:
        client = GrpcAttestorClient(address, tls)
        try:
            token = operator_token if isinstance(operator_token, str) else operator_token[address]
            results.append(EcdsaSigningResult(address, client.sign_ecdsa_handover(proposal, token, timeout)))
        except RelayError as error:
            results.append(EcdsaSigningResult(address, error=f"{error.reason}: {error}"))
        finally:
            client.close()
    return results


def certify_ecdsa(
    proposal: EcdsaHandoverProposal, current: OnChainEcdsaCommittee, results: Sequence[EcdsaSigningResult]
) -> EcdsaHandoverCertificate:
    """Combine the signatures into a certificate verified against `current` (raises if short).

    Each answer counts for the member its signature recovers to, whatever address it names: an
    answer that recovers to no current member (a compromised attestor, a wrong address in the
    list) is left out with a warning, never fatal, and never replaces a member's genuine one.
    """
    committee = committee_from_chain(current)
    digest = compute_ecdsa_proposal_digest(
        proposal.origin,
        proposal.gateway,
        committee.epoch,
        committee.hash(),
        proposal.build_committee().hash(),
    )
    message_hash = compute_eth_signed_message_hash(digest)
    signatures: dict[bytes, bytes] = {}
    for result in results:
        if result.signature is None:
            continue
        try:
            recovered = recover_member_signature(message_hash, result.signature.signature)
        except RelayError as error:
            recovered, reason = b"", error.reason
        else:
            reason = "recovers to no member of the current committee"
        if recovered in committee.signers:
            signatures.setdefault(recovered, result.signature.signature)
            continue
        log.warning(
            "hand-over signature left out",
            extra={"attestor": result.address, "named": result.signature.signer_address, "reason": reason},
        )
    return aggregate_ecdsa_handover(committee, proposal, signatures)


def submit_ecdsa_handover(
    rpc_url: str, gateway: str, private_key: str, certificate: EcdsaHandoverCertificate
) -> tuple[bytes, int]:
    """Send `handoverEcdsa` to the destination Gateway at `gateway`: (transaction hash or b"" when
    it already holds the certificate's epoch, the gateway's epoch of the origin afterwards).
    A refusal is `adapters.evm.admin.AdminCallRefused` with the contract's error."""
    from adapters.evm.admin import GatewayAdmin

    admin = GatewayAdmin(rpc_url, private_key, gateway)
    proposal = certificate.proposal
    epoch, _ = admin.committee_of(proposal.origin)
    if epoch >= proposal.epoch:
        return b"", epoch
    receipt = admin.handover_ecdsa(proposal.origin, proposal.build_committee(), certificate.certificate)
    return bytes(receipt["transactionHash"]), admin.committee_of(proposal.origin)[0]


__all__ = [
    "EcdsaSigningResult",
    "certify_ecdsa",
    "collect_ecdsa_signatures",
    "committee_from_chain",
    "propose_ecdsa",
    "read_ecdsa_committee",
    "submit_ecdsa_handover",
]
