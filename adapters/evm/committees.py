"""Committees on an EVM destination Gateway: reading them, and submitting hand-overs.

`EvmCommitteeReader` (a `relay.chains.CommitteeReader`) reads `committeeOf(origin)` and
`currentCommittee(origin)` with no key; the relayer and the attestors follow an origin's committee
through it. `submit_handover` sends `handover(origin, next, signers, signature)` from a
submitter's account (`EvmDestination.submit_handover`): simulated first, so a refusal costs
nothing and comes back typed.

The Gateway keeps public keys as 128-byte EIP-2537 points; `public_key_from_eip2537` turns them
back into the 48-byte compressed keys the rest of the relay uses.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from web3 import exceptions as web3_errors

from adapters.evm.bls_encoding import public_key_to_eip2537, signature_to_eip2537
from adapters.evm.config import EvmCompatibleChainConfig
from adapters.evm.errors import decode_contract_error, error_for_revert, revert_data
from adapters.evm.fees import compute_gas_limit
from adapters.evm.rpc import checksum_address, endpoints_for, gateway_abi
from relay import errors
from relay.chains import OnChainCommittee, OnChainEcdsaCommittee
from relay.handover import HandoverCertificate, build_committee_from_chain
from relay.handover_ecdsa import EcdsaHandoverCertificate
from relay.metrics import RelayMetrics
from relay.verify.bls import proof_of_possession_to_eip2537
from relay.verify.ecdsa import EcdsaCommittee

if TYPE_CHECKING:
    from adapters.evm.submitter import EvmDestination

log = logging.getLogger(__name__)

_FIELD_MODULUS = int(
    "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab", 16
)


def public_key_from_eip2537(point: bytes) -> bytes:
    """A 128-byte EIP-2537 G1 point as the 48-byte compressed (ZCash) key; `MalformedEncoding` if off."""
    if len(point) != 128 or any(point[:16]) or any(point[64:80]):
        raise errors.MalformedEncoding("not an EIP-2537 G1 point", length=len(point))
    x = int.from_bytes(point[16:64], "big")
    y = int.from_bytes(point[80:128], "big")
    if not (x or y):
        raise errors.InvalidPublicKey("the identity is not a public key")
    flags = 0x80 | (0x20 if y > (_FIELD_MODULUS - 1) // 2 else 0)
    compressed = bytes([flags | (x >> 376)]) + (x % (1 << 376)).to_bytes(47, "big")
    if public_key_to_eip2537(compressed) != point:
        raise errors.InvalidPublicKey("the point is not on the curve", point=point)
    return compressed


def _revert_name(error: Exception) -> str | None:
    try:
        return decode_contract_error(revert_data(error)).name
    except Exception:  # noqa: BLE001 - anything undecodable is simply not one of ours
        return None


def _is_unknown_origin(error: Exception) -> bool:
    return _revert_name(error) == "UnknownOrigin"


class EvmCommitteeReader:
    """`committeeOf` / `currentCommittee` of one EVM Gateway (`relay.chains.CommitteeReader`)."""

    def __init__(self, chain: EvmCompatibleChainConfig, metrics: RelayMetrics | None = None) -> None:
        self.domain = chain.domain
        self.endpoint = endpoints_for(chain, metrics)[0]
        self.gateway = self.endpoint.web3.eth.contract(
            address=checksum_address(chain.gateway, "gateway address"), abi=gateway_abi()
        )

    def _call(self, name: str, origin: int) -> Any:
        function = getattr(self.gateway.functions, name)(origin)
        try:
            return self.endpoint.read_chain("eth_call", function.call)
        except (web3_errors.ContractLogicError, web3_errors.ContractCustomError) as error:
            reason = _revert_name(error)
            if reason == "UnknownOrigin":
                return None
            if reason == "WrongCommitteeScheme":
                # Permanent until the config names the Gateway's scheme: not an RPC outage.
                raise errors.ConfigurationError(
                    f"{name}: the Gateway holds another committee scheme for this origin; set the "
                    "origin's committee `scheme` in the config to match the chain",
                    origin=origin,
                ) from error
            raise errors.RpcUnavailable(f"{name} reverted", origin=origin, error=str(error)[:200]) from error
        except web3_errors.Web3Exception as error:
            # An answer that does not decode (no contract there yet, a node mid-reset): ask again later.
            raise errors.RpcUnavailable(
                f"{name} answer unusable", origin=origin, error=str(error)[:200]
            ) from error

    def source_gateway_of(self, origin: int) -> bytes | None:
        """The source Gateway enrolled for `origin` (32 bytes); None if it is not enrolled."""
        answer = self._call("sourceGatewayOf", origin)
        if answer is None or bytes(answer) == bytes(32):
            return None
        return bytes(answer)

    def committee_of(self, origin: int) -> tuple[int, bytes] | None:
        """(epoch, committee_hash) of `origin` on this Gateway; None if it is not enrolled."""
        answer = self._call("committeeOf", origin)
        if answer is None:
            return None
        epoch, committee_hash = answer
        return int(epoch), bytes(committee_hash)

    def current_committee(self, origin: int) -> OnChainCommittee | None:
        """`origin`'s committee in full (compressed keys); None if it is not enrolled.

        Its `committee_hash` is computed from the members read; `RpcUnavailable` if it is not the
        hash `committeeOf` answered (a lying or inconsistent RPC), or the committee changed between
        the two reads.
        """
        summary = self.committee_of(origin)
        answer = self._call("currentCommittee", origin)
        if summary is None or answer is None:
            return None
        epoch, threshold, members = answer[0], answer[1], answer[2]
        if int(epoch) != summary[0]:
            raise errors.RpcUnavailable("the committee changed between two reads", origin=origin)
        decoded = []
        for member in members:
            # Member is (publicKey, proofOfPossession, weight); the Gateway keeps no proofs (returned empty).
            decoded.append((public_key_from_eip2537(bytes(member[0])), int(member[-1])))
        read = OnChainCommittee(int(epoch), b"", int(threshold), tuple(decoded))
        # The hash is computed from the members read (docs/protocol.md), never passed on from the
        # RPC: two answers of one RPC that do not agree are not a committee.
        try:
            computed = build_committee_from_chain(read).hash()
        except errors.RelayError as error:
            raise errors.RpcUnavailable(
                "currentCommittee answer unusable", origin=origin, error=str(error)[:200]
            ) from error
        if computed != summary[1]:
            log.error(
                "currentCommittee's members do not hash to committeeOf's hash",
                extra={"origin": origin, "epoch": int(epoch), "destination": self.domain},
            )
            raise errors.RpcUnavailable(
                "the members currentCommittee returned do not hash to committeeOf's hash",
                origin=origin,
                epoch=int(epoch),
            )
        return replace(read, committee_hash=computed)

    def current_ecdsa_committee(self, origin: int) -> OnChainEcdsaCommittee | None:
        """`origin`'s ECDSA committee in full (`relay.chains.EcdsaCommitteeReader`); None if it is
        not enrolled. `RpcUnavailable` when its members do not hash to `committeeOf`'s hash (a
        lying or inconsistent RPC, or a change between the two reads), or for a BLS origin."""
        summary = self.committee_of(origin)
        answer = self._call("currentEcdsaCommittee", origin)
        if summary is None or answer is None:
            return None
        epoch, threshold, signers, weights = int(answer[0]), int(answer[1]), answer[2], answer[3]
        if len(signers) != len(weights):  # the ABI decodes the two arrays with their own lengths
            raise errors.RpcUnavailable(
                "currentEcdsaCommittee returned signers and weights of different lengths",
                origin=origin,
                signers=len(signers),
                weights=len(weights),
            )
        members = tuple(
            (bytes.fromhex(str(signer)[2:]), int(weight))
            for signer, weight in zip(signers, weights, strict=True)
        )
        # The hash is computed from the members read, never passed on from the RPC.
        computed = EcdsaCommittee(
            epoch, tuple(a for a, _ in members), tuple(w for _, w in members), threshold
        ).hash()
        if epoch != summary[0] or computed != summary[1]:
            log.error(
                "currentEcdsaCommittee's members do not hash to committeeOf's hash",
                extra={"origin": origin, "epoch": epoch, "destination": self.domain},
            )
            raise errors.RpcUnavailable(
                "the members currentEcdsaCommittee returned do not hash to committeeOf's hash",
                origin=origin,
                epoch=epoch,
            )
        return OnChainEcdsaCommittee(epoch, computed, threshold, members)


def compute_committee_argument(
    certificate: HandoverCertificate,
) -> tuple[int, int, list[tuple[bytes, bytes, int]]]:
    """The Gateway's `Committee` struct for `handover`: EIP-2537 keys and proofs of possession."""
    proposal = certificate.proposal
    members = [
        (public_key_to_eip2537(m.public_key), proof_of_possession_to_eip2537(m.proof_of_possession), m.weight)
        for m in proposal.members
    ]
    return proposal.epoch, proposal.threshold, members


HANDOVER_GAS_FLOOR = 300_000


def _ecdsa_committee_argument(committee: EcdsaCommittee) -> tuple[int, int, list[str], list[int]]:
    """The Gateway's `EcdsaCommittee` struct (as `adapters.evm.deploy.ecdsa_committee_struct`)."""
    from eth_utils import to_checksum_address

    signers = [str(to_checksum_address(signer)) for signer in committee.signers]
    return committee.epoch, committee.threshold, signers, list(committee.weights)


def submit_handover(
    destination: EvmDestination, certificate: HandoverCertificate | EcdsaHandoverCertificate
) -> tuple[bytes, int]:
    """Send `handover` (or, for an ECDSA certificate, `handoverEcdsa`) for `certificate` from
    `destination`'s account unless it is not needed.

    Returns (transaction hash or b"", the Gateway's epoch of the origin afterwards).
    """
    proposal = certificate.proposal
    reader = destination.committee_reader
    summary = reader.committee_of(proposal.origin)
    if summary is None:
        raise errors.PermanentError("origin is not enrolled on this gateway", origin=proposal.origin)
    if summary[0] >= proposal.epoch:
        return b"", summary[0]
    if isinstance(certificate, EcdsaHandoverCertificate):
        # Shapes only (the Gateway verifies the signatures); an invalid committee is refused here.
        call = destination.gateway.functions.handoverEcdsa(
            proposal.origin,
            _ecdsa_committee_argument(certificate.proposal.build_committee()),
            certificate.certificate.signers,
            certificate.certificate.signature,
        )
    else:
        call = destination.gateway.functions.handover(
            proposal.origin,
            compute_committee_argument(certificate),
            certificate.certificate.signers,
            signature_to_eip2537(certificate.certificate.signature),
        )

    def estimate() -> int:
        return int(call.estimate_gas({"from": destination.account}))

    try:
        estimated = destination.transactions.read("eth_estimateGas", estimate)
    except (web3_errors.ContractLogicError, web3_errors.ContractCustomError) as error:
        contract_error = decode_contract_error(revert_data(error))
        raise errors.InvalidHandover(
            "the gateway refuses the hand-over", contract_error=contract_error.describe()
        ) from error_for_revert(contract_error)
    sent = destination.transactions.send(call, max(compute_gas_limit(estimated), HANDOVER_GAS_FLOOR))
    transaction_hash, receipt = destination.transactions.wait(sent)
    if int(receipt["status"]) != 1:
        after = reader.committee_of(proposal.origin)
        if after is not None and after[0] >= proposal.epoch:
            return b"", after[0]  # someone else's hand-over landed first
        raise errors.DeliveryNotConfirmed("hand-over transaction reverted", transaction=transaction_hash)
    log.info(
        "hand-over submitted",
        extra={
            "destination": destination.domain,
            "origin": proposal.origin,
            "epoch": proposal.epoch,
            "transaction": transaction_hash,
            "gas_used": int(receipt["gasUsed"]),
        },
    )
    return transaction_hash, proposal.epoch
