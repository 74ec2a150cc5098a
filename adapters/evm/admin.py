"""The Gateway's administrative calls: committees, hand-overs, ownership, guardian and pauses.

`GatewayAdmin` signs with one key (the owner's, the guardian's, or anyone's for a hand-over) and
sends each call after simulating it, so a refusal comes back as a typed error naming the
Gateway's custom error (`AdminCallRefused`, e.g. `NotGuardian(0x...)`, `EpochNotIncreasing(3, 2)`,
`InvalidProofOfPossession(1)`) instead of a bare revert. Every call waits for its receipt.

Who may call what (docs/operations.md, "Emergency controls"):

| call | who |
|---|---|
| `enroll_origin`, `enroll_origin_ecdsa`, `enroll_origin_verifier`, `set_low_threshold_allowed`, `set_guardian`, `transfer_ownership`, `unpause_*` | owner |
| `pause_delivery`, `pause_dispatch` | guardian or owner |
| `accept_ownership` | the pending owner |
| `handover`, `handover_ecdsa` | anyone (the current committee's quorum certificate is the authority) |

Committees go on-chain with every member's proof of possession (`committee_struct`): the Gateway
verifies the proof of each key it has not proven before (about 180k gas per new key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from web3 import exceptions as web3_errors

from adapters.evm.deploy import (
    ENROLL_GAS_BASE,
    ENROLL_GAS_CAP,
    ENROLL_GAS_PER_MEMBER,
    ENROLL_VERIFIER_GAS,
    TransactionSender,
    committee_struct,
    contract,
    ecdsa_committee_struct,
)
from adapters.evm.errors import ContractError, decode_contract_error, revert_data
from relay.errors import PermanentError
from relay.verify.bls import signature_to_eip2537
from relay.verify.committee import Committee, QuorumCertificate
from relay.verify.ecdsa import EcdsaCertificate, EcdsaCommittee
from relay.verify.message import address_to_bytes32

ADMIN_CALL_GAS = 200_000


class AdminCallRefused(PermanentError):
    """The Gateway refused an administrative call; `contract_error` names its custom error."""


@dataclass(frozen=True)
class GatewayRoles:
    """Who controls a Gateway right now."""

    owner: str
    pending_owner: str
    guardian: str


class GatewayAdmin:
    """Administrative calls on the Gateway at `gateway`, signed with `private_key`."""

    def __init__(self, rpc_url: str, private_key: str, gateway: str) -> None:
        self.sender = TransactionSender(rpc_url, private_key)
        self.gateway = contract(self.sender.web3, "Gateway", gateway)
        self.address = self.sender.address

    # --- committees ---------------------------------------------------------------------------

    def enroll_origin(self, origin: int, source_gateway: str, committee: Committee) -> Any:
        """Trust `committee` for `origin` (owner). Re-enrolling needs a higher epoch."""
        call = self.gateway.functions.enrollOrigin(
            origin, address_to_bytes32(source_gateway), committee_struct(committee)
        )
        return self._transact(call, committee_gas(len(committee)))

    def handover(self, origin: int, next_committee: Committee, certificate: QuorumCertificate) -> Any:
        """Submit the hand-over of `origin` to `next_committee`, certified by the current
        committee's quorum over `compute_handover_digest` (anyone may send it)."""
        call = self.gateway.functions.handover(
            origin,
            committee_struct(next_committee),
            certificate.signers,
            signature_to_eip2537(certificate.signature),
        )
        return self._transact(call, committee_gas(len(next_committee)))

    def enroll_origin_ecdsa(self, origin: int, source_gateway: str, committee: EcdsaCommittee) -> Any:
        """Trust the ECDSA `committee` for `origin` (owner); a higher epoch than the current one."""
        call = self.gateway.functions.enrollOriginEcdsa(
            origin, address_to_bytes32(source_gateway), ecdsa_committee_struct(committee)
        )
        return self._transact(call, committee_gas(len(committee)))

    def enroll_origin_verifier(self, origin: int, source_gateway: str, verifier: str) -> Any:
        """Let the contract `verifier` prove `origin`'s messages (owner): no committee, the
        verifier calls `deliverVerified` (e.g. an EthereumInbox with receipt proofs). Calling it
        again switches verifier; a later committee enrolment then needs a higher epoch."""
        call = self.gateway.functions.enrollOriginVerifier(
            origin, address_to_bytes32(source_gateway), to_checksum_address(verifier)
        )
        return self._transact(call, ENROLL_VERIFIER_GAS)

    def handover_ecdsa(
        self, origin: int, next_committee: EcdsaCommittee, certificate: EcdsaCertificate
    ) -> Any:
        """Submit the ECDSA hand-over of `origin` to `next_committee`, certified by the current
        ECDSA committee (bitfield and concatenated 65-byte signatures; anyone may send it)."""
        call = self.gateway.functions.handoverEcdsa(
            origin, ecdsa_committee_struct(next_committee), certificate.signers, certificate.signature
        )
        return self._transact(call, committee_gas(len(next_committee)))

    def set_low_threshold_allowed(self, origin: int, allowed: bool) -> Any:
        """Allow (or stop allowing) committees of `origin` below two thirds of their weight (owner)."""
        return self._transact(self.gateway.functions.setLowThresholdAllowed(origin, allowed))

    # --- emergency controls -------------------------------------------------------------------

    def pause_delivery(self, origin: int) -> Any:
        """Stop delivery of messages from `origin` (guardian or owner)."""
        return self._transact(self.gateway.functions.pauseDelivery(origin))

    def unpause_delivery(self, origin: int) -> Any:
        """Let messages from `origin` be delivered again (owner)."""
        return self._transact(self.gateway.functions.unpauseDelivery(origin))

    def pause_dispatch(self, destination: int) -> Any:
        """Stop dispatch of messages to `destination` (guardian or owner)."""
        return self._transact(self.gateway.functions.pauseDispatch(destination))

    def unpause_dispatch(self, destination: int) -> Any:
        """Let messages to `destination` be dispatched again (owner)."""
        return self._transact(self.gateway.functions.unpauseDispatch(destination))

    def set_guardian(self, guardian: str) -> Any:
        """Name the guardian; the zero address removes it (owner)."""
        return self._transact(self.gateway.functions.setGuardian(guardian))

    # --- ownership ----------------------------------------------------------------------------

    def transfer_ownership(self, new_owner: str) -> Any:
        """Name `new_owner` as pending owner (owner); it must `accept_ownership`."""
        return self._transact(self.gateway.functions.transferOwnership(new_owner))

    def accept_ownership(self) -> Any:
        """Become the owner (the pending owner only)."""
        return self._transact(self.gateway.functions.acceptOwnership())

    # --- reads --------------------------------------------------------------------------------

    def roles(self) -> GatewayRoles:
        """The owner, the pending owner (zero if none) and the guardian (zero if none)."""
        functions = self.gateway.functions
        return GatewayRoles(
            str(functions.owner().call()),
            str(functions.pendingOwner().call()),
            str(functions.guardian().call()),
        )

    def delivery_paused(self, origin: int) -> bool:
        return bool(self.gateway.functions.deliveryPaused(origin).call())

    def dispatch_paused(self, destination: int) -> bool:
        return bool(self.gateway.functions.dispatchPaused(destination).call())

    def low_threshold_allowed(self, origin: int) -> bool:
        return bool(self.gateway.functions.lowThresholdAllowed(origin).call())

    def committee_of(self, origin: int) -> tuple[int, bytes]:
        """The epoch and committee_hash the Gateway trusts for `origin`."""
        epoch, committee_hash = self.gateway.functions.committeeOf(origin).call()
        return int(epoch), bytes(committee_hash)

    # --- sending ------------------------------------------------------------------------------

    def _transact(self, call: Any, gas: int = ADMIN_CALL_GAS) -> Any:
        """Simulate `call` from this key (a refusal raises `AdminCallRefused`), send it, wait."""
        try:
            call.call({"from": self.address})
        except (web3_errors.ContractLogicError, web3_errors.ContractCustomError) as error:
            raise refused(decode_contract_error(revert_data(error)), call.fn_name) from error
        (receipt,) = self.sender.wait([self.sender.send_call(call, gas)])
        return receipt


def committee_gas(size: int) -> int:
    """The gas limit for an `enrollOrigin` / `handover` of a committee of `size` members."""
    return min(ENROLL_GAS_BASE + ENROLL_GAS_PER_MEMBER * size, ENROLL_GAS_CAP)


def refused(error: ContractError, function: str) -> AdminCallRefused:
    """The typed refusal of administrative call `function` with the Gateway's decoded error."""
    return AdminCallRefused(
        f"gateway refused {function}: {error.describe()}",
        contract_error=error.name,
        arguments=error.describe(),
        error_arguments=error.arguments,
    )
