"""`SignHandover` for a member of an ECDSA committee: check an ECDSA proposal against the chain, sign it.

The ECDSA twin of `relay.roles.membership.HandoverSigner`, with the same checks in the same
order: the operator token (constant time); the committee chain's current ECDSA committee
(`currentEcdsaCommittee`, whose members the reader hashed and matched with `committeeOf`); the
proposal's origin, source Gateway, epoch (current + 1) and current committee hash
(`verify_proposal`); this attestor's address in the current committee; the next committee's
rules (distinct non-zero addresses, positive weights, the threshold rule, below two thirds only
when the attestor's own config allows it); never two different hand-overs from one committee
(`HandoverLog`); only then the EIP-191 signature over the hand-over digest.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from relay.chains import CommitteeReader, EcdsaCommitteeReader
from relay.handover import NotACommitteeMember, verify_proposal
from relay.handover_ecdsa import EcdsaHandoverProposal, EcdsaHandoverSignature, compute_ecdsa_proposal_digest
from relay.roles.ledger import CheckpointLedger
from relay.roles.membership import HandoverLog, NoCommitteeChain, check_operator_token
from relay.verify.ecdsa import sign_digest

log = logging.getLogger(__name__)


class EcdsaHandoverSigner:
    """`SignHandover` of an attestor with `ecdsa_key`: check an ECDSA proposal, sign its digest."""

    scheme = "ecdsa"

    def __init__(
        self,
        ledger: CheckpointLedger,
        reader: CommitteeReader | None,
        ecdsa_key: bytes,
        operator_token: str | None,
        *,
        allow_low_threshold: bool = False,
        handover_log: HandoverLog | None = None,
    ) -> None:
        self.ledger = ledger
        self.reader = reader
        self._ecdsa_key = ecdsa_key
        self._operator_token = operator_token
        # As for BLS: only the attestor's own config may allow a threshold below two thirds.
        self.allow_low_threshold = allow_low_threshold
        self.handover_log = handover_log or HandoverLog(None)

    def check_token(self, given: str) -> None:
        """Raise `SigningRefused` unless `given` is the configured operator token (constant time)."""
        check_operator_token(self._operator_token, given)

    def sign(self, proposal: EcdsaHandoverProposal) -> EcdsaHandoverSignature:
        """Check `proposal` (see the module docstring) and sign it; typed errors say what failed.

        `OriginMismatch`, `GatewayMismatch`, `StaleProposal`, `NotACommitteeMember`,
        `InvalidCommittee`, `ConflictingHandover`: refused; `TransientError`: the chain did not
        answer (or holds a BLS committee for the origin); `NoCommitteeChain`: nothing to check against.
        """
        if self.reader is None or not isinstance(self.reader, EcdsaCommitteeReader):
            raise NoCommitteeChain(
                "no committee_chain that reads ECDSA committees: a hand-over cannot be checked against the chain"
            )
        identity = self.ledger.identity
        current = self.reader.current_ecdsa_committee(identity.origin)
        if current is None:
            raise NotACommitteeMember("origin is not enrolled on the committee chain", origin=identity.origin)
        verify_proposal(
            proposal,
            origin=identity.origin,
            gateway=identity.gateway,
            chain_epoch=current.epoch,
            chain_hash=current.committee_hash,
        )
        addresses = [address for address, _ in current.members]
        if identity.public_key not in addresses:
            raise NotACommitteeMember(
                "this attestor is not a member of the current committee", epoch=current.epoch
            )
        if proposal.allow_low_threshold and not self.allow_low_threshold:
            proposal = replace(proposal, allow_low_threshold=False)
        following = proposal.build_committee()  # addresses, weights, the threshold rule
        digest = compute_ecdsa_proposal_digest(
            identity.origin, identity.gateway, current.epoch, current.committee_hash, following.hash()
        )
        self.handover_log.record(identity.origin, current.epoch, following.hash())
        signature = sign_digest(self._ecdsa_key, digest)
        log.warning(
            "hand-over signed",
            extra={
                "origin": identity.origin,
                "epoch": current.epoch,
                "next_epoch": proposal.epoch,
                "next_committee_hash": following.hash(),
                "members": len(following),
                "threshold": following.threshold,
                "scheme": "ecdsa",
            },
        )
        return EcdsaHandoverSignature(
            origin=identity.origin,
            epoch=current.epoch,
            signer_index=addresses.index(identity.public_key),
            signer_address=identity.public_key,
            signature=signature,
            current_committee_hash=current.committee_hash,
            next_committee_hash=following.hash(),
        )


__all__ = ["EcdsaHandoverSigner"]
