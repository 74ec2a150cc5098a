"""An attestor's place in its origin's committee, followed from the chain, and its hand-over signing.

The configured `epoch` / `signer_index` are only where an attestor starts. With a
`committee_chain` (a destination chain whose gateway has the attestor's origin enrolled) it reads
that gateway's `committeeOf(origin)` every `committee_poll_interval` seconds and, when the epoch
moved on, `currentCommittee(origin)`: it finds its own key there and signs under the new epoch
and signer index from then on, or, removed from the committee, stops signing and reports it is
not a member (`GetIdentity` answers `not_member: true`). Epochs only go up: a read that shows an older epoch
than the one followed is logged and ignored, except to leave an epoch jumped to by more than one
(see `CommitteeMembership`). The committee's hash is computed from the members read.

Trust: the committee chain's RPC is trusted to say which committee the gateway holds. A lying
RPC can make the attestor sign under a wrong epoch or stop signing (liveness) while it lies; it
cannot make it sign a checkpoint it does not believe final, nor a hand-over it did not check.

`HandoverSigner.sign` is `AttestationService.SignHandover`: it checks a proposal against the
chain (origin, next epoch, the current committee's hash, this attestor being a member of it),
every proof of possession and the threshold rule (below two thirds only when the attestor's own
config allows it), that it never signed a different hand-over from the same committee
(`HandoverLog`), and only then signs the hand-over digest.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
from dataclasses import replace
from typing import Any, NoReturn, Protocol

import grpc

from relay.chains import CommitteeReader, EcdsaCommitteeReader, OnChainCommittee
from relay.errors import (
    ConfigurationError,
    GatewayMismatch,
    InvalidProof,
    OriginMismatch,
    PermanentError,
    RelayError,
    TransientError,
)
from relay.handover import (
    HandoverProposal,
    HandoverSignature,
    NotACommitteeMember,
    StaleProposal,
    build_committee_from_chain,
    compute_proposal_digest,
    verify_proposal,
)
from relay.roles.ledger import AttestorIdentity, CheckpointLedger, append_durably
from relay.verify.bls import BlsBackend

ECDSA_ADDRESS_LENGTH = 20  # an ECDSA committee member is named by its address, not a BLS key

log = logging.getLogger(__name__)


class SigningRefused(PermanentError):
    """The caller may not ask for this signature (no or a wrong operator token, or none configured)."""


class NoCommitteeChain(PermanentError):
    """The attestor has no `committee_chain`, so it cannot check a hand-over against the chain."""


class ConflictingHandover(PermanentError):
    """This attestor already signed a different hand-over from the same committee (origin, epoch)."""


class HandoverLog:
    """Which next committee this attestor signed a hand-over to, per (origin, epoch): at most one.

    Two certificates from one committee to two different next committees could fork the
    destinations onto different committees; with a threshold above half the weight, honest
    attestors that never sign twice make that impossible. Kept in a JSON-lines file (appended and
    fsynced before the signature is returned) so a restart does not forget; in memory without one.
    An operator who must abandon a signed proposal that never reached a quorum removes its line.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._signed: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()
        if path is not None and os.path.exists(path):
            self._load(path)

    def _load(self, path: str) -> None:
        with open(path, encoding="utf-8") as file:
            lines = file.read().split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                key = (int(entry["origin"]), int(entry["epoch"]))
                self._signed[key] = bytes.fromhex(entry["next_committee_hash"])
            except (ValueError, KeyError, TypeError) as error:
                if number == len(lines):  # a torn last line: the write it belongs to never returned
                    log.warning("hand-over log ends in a partial line; ignored", extra={"file": path})
                    continue
                raise ConfigurationError(
                    "hand-over log has a malformed line", file=path, line=number, cause=str(error)
                ) from error

    def record(self, origin: int, epoch: int, next_committee_hash: bytes) -> None:
        """Remember the hand-over; `ConflictingHandover` if another one was signed for (origin, epoch)."""
        with self._lock:
            signed = self._signed.get((origin, epoch))
            if signed == next_committee_hash:
                return
            if signed is not None:
                raise ConflictingHandover(
                    "this attestor already signed a hand-over from this committee to another next committee",
                    origin=origin,
                    epoch=epoch,
                    signed_next_committee_hash=signed,
                    proposed_next_committee_hash=next_committee_hash,
                )
            if self.path is not None:
                append_durably(
                    self.path,
                    {"origin": origin, "epoch": epoch, "next_committee_hash": next_committee_hash.hex()},
                )
            self._signed[(origin, epoch)] = next_committee_hash


class CommitteeMembership:
    """Follows the origin's committee on the committee chain and keeps the ledger's identity in step.

    The committee read is checked against itself: its hash is computed from the members read and
    must be the `committeeOf` hash. An epoch one past the one followed (a hand-over) is taken as
    it comes. A jump of more than one (an owner's re-enrollment after a recovery, hand-overs
    missed while the attestor was down, or a lying RPC) is taken too, logged as an error, but only
    provisionally: `anchor_epoch`, the newest epoch reached one hand-over at a time from the
    configured start, stays where it was, and if the chain later shows an epoch between the anchor
    and the provisional one, the attestor follows it back down. So a lying RPC's 2^64-1 holds the
    attestor only while the lie lasts.
    """

    def __init__(
        self, ledger: CheckpointLedger, reader: CommitteeReader | None, poll_interval: float
    ) -> None:
        self.ledger = ledger
        self.reader = reader
        self.poll_interval = poll_interval
        self.member = True  # until the chain says otherwise
        self.committee_hash = b""
        self.anchor_epoch = ledger.identity.epoch
        self._lock = threading.Lock()
        self._last_poll = float("-inf")

    def refresh(self, now: float, *, force: bool = False) -> bool:
        """Read the chain's committee if due; True if the attestor's epoch or membership changed.

        Raises `TransientError` when the chain cannot be read.
        """
        if self.reader is None or (not force and now - self._last_poll < self.poll_interval):
            return False
        self._last_poll = now
        identity = self.ledger.identity
        summary = self.reader.committee_of(identity.origin)
        if summary is None:
            log.warning("origin not enrolled on the committee chain", extra={"origin": identity.origin})
            return False
        epoch, committee_hash = summary
        with self._lock:
            if epoch == identity.epoch and committee_hash == self.committee_hash:
                return False
            provisional = identity.epoch > self.anchor_epoch
            if epoch < identity.epoch and not (provisional and epoch >= self.anchor_epoch):
                log.error(
                    "the committee chain shows an older epoch than the one followed; ignored",
                    extra={"origin": identity.origin, "epoch": epoch, "followed": identity.epoch},
                )
                return False
            keys = self._read_member_keys(identity, epoch, committee_hash)
            if keys is None:
                return False
            self._log_unusual_step(identity.origin, identity.epoch, epoch)
            if epoch <= self.anchor_epoch + 1:
                self.anchor_epoch = max(self.anchor_epoch, epoch)
            member = identity.public_key in keys
            index = keys.index(identity.public_key) if member else identity.signer_index
            changed = epoch != identity.epoch or member != self.member or index != identity.signer_index
            self.committee_hash = committee_hash
            self.member = member
            if changed:
                self.ledger.change_identity(
                    replace(identity, epoch=epoch, signer_index=index), signing=member
                )
                log.warning(
                    "committee changed on chain"
                    + ("" if member else ": this attestor is not a member of it"),
                    extra={
                        "origin": identity.origin,
                        "epoch": epoch,
                        "signer_index": index if member else None,
                        "member": member,
                    },
                )
            return changed

    def _read_member_keys(
        self, identity: AttestorIdentity, epoch: int, committee_hash: bytes
    ) -> list[bytes] | None:
        """The members of the committee the chain holds at `epoch`, in signer order: BLS public keys,
        or for a member of an ECDSA committee (a 20-byte address as its key) the addresses read with
        `currentEcdsaCommittee`. None (logged) when the read is not that committee."""
        assert self.reader is not None  # noqa: S101 - checked by refresh
        if len(identity.public_key) == ECDSA_ADDRESS_LENGTH:
            if not isinstance(self.reader, EcdsaCommitteeReader):
                log.error(
                    "the committee chain's reader cannot read ECDSA committees",
                    extra={"origin": identity.origin},
                )
                return None
            ecdsa = self.reader.current_ecdsa_committee(identity.origin)
            if ecdsa is None or ecdsa.epoch != epoch:
                return None
            if ecdsa.committee_hash != committee_hash:  # the reader computed it from the members read
                log.error(
                    "the committee chain's members do not hash to its committeeOf; ignored",
                    extra={"origin": identity.origin, "epoch": epoch},
                )
                return None
            return [address for address, _ in ecdsa.members]
        committee = self.reader.current_committee(identity.origin)
        if committee is None or committee.epoch != epoch:
            return None
        if not _hashes_to(committee, committee_hash):
            log.error(
                "the committee chain's members do not hash to its committeeOf; ignored",
                extra={"origin": identity.origin, "epoch": epoch},
            )
            return None
        return [key for key, _ in committee.members]

    def _log_unusual_step(self, origin: int, followed: int, epoch: int) -> None:
        if epoch > followed + 1:
            log.error(
                "the committee chain's epoch jumped by more than one hand-over: followed "
                "provisionally (re-enrollment, missed hand-overs, or a lying committee_chain RPC); "
                "an epoch between the last one reached hand-over by hand-over and this one, if "
                "the chain shows it again, is followed back",
                extra={"origin": origin, "epoch": epoch, "followed": followed, "anchor": self.anchor_epoch},
            )
        elif epoch < followed:
            log.error(
                "the committee chain no longer shows the epoch jumped to: following it back",
                extra={"origin": origin, "epoch": epoch, "followed": followed, "anchor": self.anchor_epoch},
            )


def _hashes_to(committee: OnChainCommittee, committee_hash: bytes) -> bool:
    """Whether the members read hash (docs/protocol.md) to `committee_hash` (and to the answer's own)."""
    try:
        computed = build_committee_from_chain(committee).hash()
    except RelayError:
        return False  # a member key that does not decode
    return computed == committee_hash == committee.committee_hash


class ProposalSigner(Protocol):
    """What `sign_handover_call` drives: a `HandoverSigner` (BLS) or an `EcdsaHandoverSigner`."""

    scheme: str
    allow_low_threshold: bool

    def check_token(self, given: str) -> None: ...

    def sign(self, proposal: Any) -> Any: ...


def check_operator_token(configured: str | None, given: str) -> None:
    """Raise `SigningRefused` unless `given` is the `configured` operator token (constant time);
    with none configured, SignHandover is disabled."""
    if not configured:
        raise SigningRefused("SignHandover is disabled: this attestor has no operator_token configured")
    if not given or not hmac.compare_digest(given.encode(), configured.encode()):
        raise SigningRefused("SignHandover needs the attestor's operator token")


class HandoverSigner:
    """`SignHandover`: check a proposal against the chain, then sign its hand-over digest."""

    scheme = "bls"

    def __init__(
        self,
        ledger: CheckpointLedger,
        reader: CommitteeReader | None,
        secret_key: int,
        backend: BlsBackend,
        operator_token: str | None,
        *,
        allow_low_threshold: bool = False,
        handover_log: HandoverLog | None = None,
    ) -> None:
        self.ledger = ledger
        self.reader = reader
        self._secret_key = secret_key
        self._backend = backend
        self._operator_token = operator_token
        # The attestor's own configuration decides whether a threshold below two thirds may be
        # signed; a proposal's allow_low_threshold only counts when this allows it too.
        self.allow_low_threshold = allow_low_threshold
        self.handover_log = handover_log or HandoverLog(None)

    def check_token(self, given: str) -> None:
        """Raise `SigningRefused` unless `given` is the configured operator token (constant time)."""
        check_operator_token(self._operator_token, given)

    def sign(self, proposal: HandoverProposal) -> HandoverSignature:
        """Check `proposal` (see the module docstring) and sign it; typed errors say what failed.

        `OriginMismatch`, `StaleProposal`, `NotACommitteeMember`, `InvalidCommittee`,
        `InvalidPublicKey`, `InvalidProofOfPossession`: refused; `TransientError`: the chain did
        not answer; `NoCommitteeChain`: nothing to check against.
        """
        if self.reader is None:
            raise NoCommitteeChain(
                "no committee_chain configured: a hand-over cannot be checked against the chain"
            )
        identity: AttestorIdentity = self.ledger.identity
        current = self.reader.current_committee(identity.origin)
        if current is None:
            raise NotACommitteeMember("origin is not enrolled on the committee chain", origin=identity.origin)
        verify_proposal(
            proposal,
            origin=identity.origin,
            gateway=identity.gateway,
            chain_epoch=current.epoch,
            chain_hash=current.committee_hash,
        )
        keys = [key for key, _ in current.members]
        if identity.public_key not in keys:
            raise NotACommitteeMember(
                "this attestor is not a member of the current committee", epoch=current.epoch
            )
        if proposal.allow_low_threshold and not self.allow_low_threshold:
            # Checked by the threshold rule below: the proposal cannot switch it off by itself.
            proposal = replace(proposal, allow_low_threshold=False)
        following = proposal.build_committee(self._backend)  # every proof of possession, the threshold rule
        digest = compute_proposal_digest(
            identity.origin, identity.gateway, current.epoch, current.committee_hash, following.hash()
        )
        self.handover_log.record(identity.origin, current.epoch, following.hash())
        signature = self._backend.sign(self._secret_key, digest)
        log.warning(
            "hand-over signed",
            extra={
                "origin": identity.origin,
                "epoch": current.epoch,
                "next_epoch": proposal.epoch,
                "next_committee_hash": following.hash(),
                "members": len(following),
                "threshold": following.threshold,
            },
        )
        return HandoverSignature(
            origin=identity.origin,
            epoch=current.epoch,
            signer_index=keys.index(identity.public_key),
            public_key=identity.public_key,
            signature=signature,
            current_committee_hash=current.committee_hash,
            next_committee_hash=following.hash(),
        )


def sign_handover_call(signer: ProposalSigner | None, request: Any, context: grpc.ServicerContext) -> Any:
    """`AttestationService.SignHandover`: token, shapes, checks, signature; typed status codes.

    PERMISSION_DENIED over plaintext or without the operator token (checked before anything else
    is looked at);
    INVALID_ARGUMENT for a malformed proposal, a bad key or proof of possession, a refused
    threshold; FAILED_PRECONDITION for another origin, a stale epoch or current hash, a
    non-member, no committee chain, a proposal of the other scheme than this attestor's committee
    (a BLS `proposal` to an ECDSA attestor, an `ecdsa_proposal` to a BLS one); UNAVAILABLE when
    the chain cannot be read.
    """
    from relay.rpc.convert import ecdsa_proposal_from_proto, proposal_from_proto
    from relay.rpc.limits import shorten_details
    from relay.v1 import attestation_pb2

    def abort(code: grpc.StatusCode, error: RelayError) -> NoReturn:
        context.abort(code, shorten_details(f"{error.reason}: {error}"))
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    if signer is None:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "this attestor does not sign hand-overs")
        raise AssertionError("unreachable: abort raises")  # pragma: no cover
    from relay.rpc.tls import is_tls_connection

    if not is_tls_connection(context):
        # The token would have crossed the network in the clear: refuse it before looking at it.
        context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            "SignHandover takes the attestor's operator token only over mutual TLS (configure tls)",
        )
        raise AssertionError("unreachable: abort raises")  # pragma: no cover
    try:
        signer.check_token(request.operator_token)
    except SigningRefused as error:
        abort(grpc.StatusCode.PERMISSION_DENIED, error)
    ecdsa = request.HasField("ecdsa_proposal")
    if ecdsa and request.HasField("proposal"):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "set one of proposal and ecdsa_proposal, not both")
        raise AssertionError("unreachable: abort raises")  # pragma: no cover
    if ecdsa != (signer.scheme == "ecdsa"):
        context.abort(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"this attestor's committee is {signer.scheme.upper()}: it signs only "
            + ("ecdsa_proposal" if signer.scheme == "ecdsa" else "proposal")
            + " hand-overs",
        )
        raise AssertionError("unreachable: abort raises")  # pragma: no cover
    try:
        proposal = (
            ecdsa_proposal_from_proto(request.ecdsa_proposal)
            if ecdsa
            else proposal_from_proto(request.proposal)
        )
        signed = signer.sign(proposal)
    except (
        OriginMismatch,
        GatewayMismatch,
        StaleProposal,
        NotACommitteeMember,
        NoCommitteeChain,
        ConflictingHandover,
    ) as error:
        abort(grpc.StatusCode.FAILED_PRECONDITION, error)
    except InvalidProof as error:
        abort(grpc.StatusCode.INVALID_ARGUMENT, error)
    except TransientError as error:
        abort(grpc.StatusCode.UNAVAILABLE, error)
    except RelayError as error:
        abort(grpc.StatusCode.FAILED_PRECONDITION, error)
    if ecdsa:
        return attestation_pb2.HandoverSignature(
            origin=signed.origin,
            epoch=signed.epoch,
            signer_index=signed.signer_index,
            signer_address=signed.signer_address,
            ecdsa_signature=signed.signature,
            current_committee_hash=signed.current_committee_hash,
            next_committee_hash=signed.next_committee_hash,
        )
    return attestation_pb2.HandoverSignature(
        origin=signed.origin,
        epoch=signed.epoch,
        signer_index=signed.signer_index,
        public_key=signed.public_key,
        signature=signed.signature,
        current_committee_hash=signed.current_committee_hash,
        next_committee_hash=signed.next_committee_hash,
    )


__all__ = [
    "CommitteeMembership",
    "ConflictingHandover",
    "HandoverLog",
    "HandoverSignature",
    "HandoverSigner",
    "NoCommitteeChain",
    "ProposalSigner",
    "SigningRefused",
    "sign_handover_call",
]
