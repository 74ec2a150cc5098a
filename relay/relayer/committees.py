"""Stage 0, committees: which committee each origin is attested under, followed from the chain.

The configured committee of a source is only the trusted start (its first enrollment). From there:

- **Known hand-overs.** A hand-over certificate handed in by an operator (`RelayService.SubmitHandover`,
  `relay committee handover --submit`) is verified against the committee of the epoch it leaves
  (quorum, the current committee's hash, every proof of possession of the next one) and kept in
  the store, so a restarted relayer follows the same chain of hand-overs from its trusted start.
- **Submitting them where they lag.** Every `sync_interval` seconds (and right after a new
  hand-over) each destination gateway's `committeeOf(origin)` is read; where it is behind a known
  hand-over, the submitter of that destination submits it (`DestinationService.SubmitHandover`).
  Anyone may submit a hand-over: the gateway verifies it.
- **Following the gateways.** The origin is attested under the newest epoch a destination gateway
  holds: that is when its attestors (which follow the same gateway) sign under it. A committee
  this relayer has a certificate for (or its trusted start) is taken from it, up to the newest
  epoch a gateway holds. One it learns only from the chain (someone else's hand-over) is read
  with `currentCommittee(origin)`, its hash computed from the members read, and taken only one
  epoch past the proven ones (from any one gateway), or further only when every gateway holds the
  same epoch (an owner's re-enrollment). It is given up, back to what the gateways hold, once no
  gateway holds it (epoch and hash) any more. So one lying destination RPC costs at most its
  own deliveries plus, while it lies about the next epoch, the origin's; never a forged delivery
  (every gateway re-verifies everything on-chain), and never more than while the lie lasts.
- **Re-attesting.** Messages attested under another epoch and not yet delivered (ATTESTED,
  VERIFIED, RETRYING, and PARKED by the gateway's `WrongEpoch`) go back to FINAL and are attested
  again under the current committee; so do messages PARKED by `WrongEpoch` of a destination whose
  gateway has since moved to the current epoch (it refused them while it lagged).

Everything runs in the source's own thread (`follow`) except `accept`, which only verifies,
stores and queues; so the prover never sees a committee change half-way through a pass.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relay.chains import CommitteeReader, EcdsaCommitteeReader, OnChainCommittee, OnChainEcdsaCommittee
from relay.errors import EpochMismatch, GatewayMismatch, InvalidHandover, InvalidProof, RelayError
from relay.handover import (
    HandoverCertificate,
    StaleProposal,
    build_committee_from_chain,
    certificate_from_dict,
    certificate_to_dict,
    verify_handover_certificate,
)
from relay.handover_ecdsa import (
    EcdsaHandoverCertificate,
    ecdsa_certificate_from_dict,
    ecdsa_certificate_to_dict,
    is_ecdsa_document,
    verify_ecdsa_handover_certificate,
)
from relay.lifecycle import LeaseLost, MessageState, StaleState
from relay.metrics import RelayMetrics
from relay.peers import HandoverSubmitter
from relay.relayer.common import Clock, describe
from relay.store.base import Lease, Store, Transition
from relay.verify.bls import BlsBackend
from relay.verify.committee import Committee
from relay.verify.ecdsa import EcdsaCommittee
from relay.verify.ecdsa_quorum import CheckpointCommittee, EcdsaCheckpointCommittee, EcdsaMember

if TYPE_CHECKING:
    from relay.relayer.state import DestinationState, SourceState

log = logging.getLogger("relay.relayer")

S = MessageState
REATTEST_STATES = (S.ATTESTED, S.VERIFIED, S.RETRYING)
REATTEST_BATCH = 1000  # messages per state looked at per pass
HANDOVER_SUBMIT_TIMEOUT = 120.0  # a hand-over transaction: simulate, send, wait for the receipt


@dataclass(frozen=True)
class HandoverSubmission:
    """What happened when a hand-over was offered to one destination."""

    destination: int
    transaction_hash: bytes = b""
    epoch: int = 0
    error: str = ""


AnyHandoverCertificate = HandoverCertificate | EcdsaHandoverCertificate


def handover_to_dict(certificate: AnyHandoverCertificate) -> dict[str, Any]:
    """A hand-over certificate of either scheme as JSON data (an ECDSA one says `"scheme": "ecdsa"`)."""
    if isinstance(certificate, EcdsaHandoverCertificate):
        return ecdsa_certificate_to_dict(certificate)
    return certificate_to_dict(certificate)


def handover_from_document(document: str) -> AnyHandoverCertificate:
    """A stored hand-over certificate of either scheme (`MalformedEncoding`, `ValueError` if broken)."""
    data = json.loads(document)
    if is_ecdsa_document(data):
        return ecdsa_certificate_from_dict(data)
    return certificate_from_dict(data)


def to_checkpoint_committee(committee: EcdsaCommittee) -> EcdsaCheckpointCommittee:
    """The relayer's form of an ECDSA committee verified by a hand-over (rules already applied)."""
    following = EcdsaCheckpointCommittee(
        committee.epoch,
        [EcdsaMember(a, w) for a, w in zip(committee.signers, committee.weights, strict=True)],
        committee.threshold,
        _validated=True,
    )
    following.rules = committee
    return following


def build_any_committee_from_chain(
    committee: OnChainCommittee | OnChainEcdsaCommittee,
) -> CheckpointCommittee:
    """The committee a destination gateway holds, of its scheme (the gateway checked its rules,
    and a BLS member's proof of possession, when it was enrolled)."""
    if isinstance(committee, OnChainEcdsaCommittee):
        return EcdsaCheckpointCommittee.create(
            committee.epoch,
            [EcdsaMember(address, weight) for address, weight in committee.members],
            committee.threshold,
            allow_low_threshold=True,  # the gateway's owner allowed it (setLowThresholdAllowed)
        )
    return build_committee_from_chain(committee)


class CommitteeFollower:
    """Keeps each source's committee current (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        metrics: RelayMetrics,
        clock: Clock,
        backend: BlsBackend,
        destinations: dict[int, DestinationState],
        readers: dict[int, CommitteeReader],
        sync_interval: float,
        wake_deliveries: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._backend = backend
        self._destinations = destinations
        self._readers = readers
        self._sync_interval = sync_interval
        self._wake_deliveries = wake_deliveries
        self._lock = threading.RLock()  # accept / submit from RelayService threads, follow from the source's
        # Per origin: epochs of committees read from a gateway only (no certificate chain proves them).
        self._read_only: dict[int, set[int]] = {}
        # Per origin: each destination gateway's committee hash, at its epoch in destination_epochs.
        self._held_hashes: dict[int, dict[int, bytes]] = {}
        # Per origin: destinations whose gateway epoch changed since the source's last pass.
        self._moved_destinations: dict[int, set[int]] = {}

    # --- known hand-overs -----------------------------------------------------------------------

    def restore(self, source: SourceState) -> None:
        """Follow the stored hand-overs of `source` from its trusted start (at open)."""
        for epoch, document in self._store.handovers(source.domain):
            try:
                self._verify(source, handover_from_document(document))
            except (InvalidProof, ValueError) as error:
                log.error(
                    "stored hand-over does not follow from the trusted committee; ignored",
                    extra={"origin": source.domain, "epoch": epoch, "error": str(error)[:300]},
                )
                continue
        latest = max(source.committees)
        source.committee = source.committees[latest]
        source.committee_sync_due = True

    def _verify(self, source: SourceState, certificate: AnyHandoverCertificate) -> CheckpointCommittee:
        if certificate.proposal.gateway != source.gateway:
            raise GatewayMismatch(
                "hand-over for another source gateway",
                gateway=certificate.proposal.gateway,
                expected=source.gateway,
            )
        epoch = certificate.proposal.epoch
        known = source.handovers.get(epoch)
        if known is not None:
            if handover_to_dict(known)["proposal"] == handover_to_dict(certificate)["proposal"]:
                return source.committees[epoch]
            raise StaleProposal("another hand-over to this epoch is known", epoch=epoch)
        current = source.committees.get(epoch - 1)
        if current is None:
            raise EpochMismatch(
                "hand-over from an epoch this relayer does not know",
                epoch=epoch - 1,
                known=sorted(source.committees),
            )
        following: CheckpointCommittee
        if isinstance(certificate, EcdsaHandoverCertificate):
            # ECDSA -> ECDSA only: switching scheme is the owner's re-enrollment (docs/operations.md).
            if not isinstance(current, EcdsaCheckpointCommittee):
                raise InvalidHandover("an ECDSA hand-over from a BLS committee", epoch=epoch - 1)
            following = to_checkpoint_committee(verify_ecdsa_handover_certificate(current.rules, certificate))
        else:
            if not isinstance(current, Committee):
                raise InvalidHandover("a BLS hand-over from an ECDSA committee", epoch=epoch - 1)
            following = verify_handover_certificate(current, certificate, self._backend)
        source.handovers[epoch] = certificate
        source.committees[epoch] = following
        self._read_only.get(source.domain, set()).discard(epoch)  # now proven by a certificate
        return following

    def accept(self, source: SourceState, certificate: AnyHandoverCertificate) -> CheckpointCommittee:
        """Verify a hand-over certificate of `source`, keep it durably, and sync at the next pass.

        Raises `InvalidProof` subclasses for a certificate that does not verify (or an epoch not
        reachable from the committees this relayer knows).
        """
        if certificate.proposal.origin != source.domain:
            raise EpochMismatch("hand-over of another origin", origin=certificate.proposal.origin)
        with self._lock:
            following = self._verify(source, certificate)
            document = json.dumps(handover_to_dict(certificate), sort_keys=True)
            if self._store.save_handover(source.domain, following.epoch, document, self._clock()):
                log.warning(
                    "hand-over accepted",
                    extra={"origin": source.domain, "epoch": following.epoch, "members": len(following)},
                )
        source.committee_sync_due = True
        return following

    # --- destinations ---------------------------------------------------------------------------

    def submit_where_lagging(self, source: SourceState) -> list[HandoverSubmission]:
        """Read each destination's committee of `source`; submit the known hand-overs it lacks."""
        with self._lock:
            return self._submit_where_lagging(source)

    def _submit_where_lagging(self, source: SourceState, *, submit: bool = True) -> list[HandoverSubmission]:
        results = []
        for domain, reader in self._readers.items():
            destination = self._destinations.get(domain)
            try:
                summary = reader.committee_of(source.domain)
            except RelayError as error:
                results.append(HandoverSubmission(domain, error=describe(error)))
                continue
            if summary is None:
                continue  # this destination does not accept the origin
            epoch = summary[0]
            previous = source.destination_epochs.get(domain)
            source.destination_epochs[domain] = epoch
            held_hashes = self._held_hashes.setdefault(source.domain, {})
            held_hashes[domain] = summary[1]
            transaction = b""
            error_text = ""
            while submit and epoch + 1 in source.handovers:
                submitter = destination.submitter if destination is not None else None
                if not isinstance(submitter, HandoverSubmitter):
                    error_text = "no submitter that submits hand-overs for this destination"
                    break
                try:
                    sent, after = submitter.submit_handover(
                        source.handovers[epoch + 1], HANDOVER_SUBMIT_TIMEOUT
                    )
                except RelayError as error:
                    error_text = describe(error)
                    log.warning(
                        "hand-over submission failed; tried again next sync",
                        extra={"origin": source.domain, "destination": domain, "error": error_text},
                    )
                    break
                if after <= epoch:
                    # The submitter's word that the gateway moved on is all that ends this loop:
                    # an answer that does not move it on (0, the same epoch) must not spin here
                    # holding the lock. The next sync reads the gateway again.
                    error_text = (
                        f"the submitter reported epoch {after} after submitting hand-over {epoch + 1}"
                    )
                    log.error(
                        "hand-over submission did not move the gateway on; tried again next sync",
                        extra={
                            "origin": source.domain,
                            "destination": domain,
                            "epoch": epoch,
                            "reported": after,
                        },
                    )
                    break
                epoch = after
                transaction = sent or transaction
                source.destination_epochs[domain] = epoch
                known = source.committees.get(epoch)
                held_hashes[domain] = known.hash() if known is not None else b""
                self._metrics.handovers_submitted.labels(str(source.domain), str(domain)).inc()
            if source.destination_epochs[domain] != previous:
                self._moved_destinations.setdefault(source.domain, set()).add(domain)
            results.append(HandoverSubmission(domain, transaction, epoch, error_text))
        return results

    # --- the source's pass ----------------------------------------------------------------------

    def follow(self, source: SourceState, *, lease: Lease | None = None, holding: bool = True) -> bool:
        """Sync `source`'s committee with its destinations if due; re-attest what an older epoch
        signed, and what a destination refused while it lagged and no longer lags. True if the
        committee changed.

        Every replica follows the committees (in memory); only the one `holding` the source's lease
        submits hand-overs where a gateway lags and re-attests, its writes under `lease`."""
        now = self._clock()
        if not source.committee_sync_due and now - source.last_committee_sync < self._sync_interval:
            return False
        source.committee_sync_due = False
        source.last_committee_sync = now
        with self._lock:
            self._submit_where_lagging(source, submit=holding)
            changed = self._adopt(source)
            if not holding:
                return changed  # destinations that moved on are re-attested by the holder
            moved_on = self._moved_destinations.pop(source.domain, set())
        caught_up = {d for d in moved_on if source.destination_epochs.get(d) == source.committee.epoch}
        moved = self.reattest(source, caught_up, lease)
        if moved:
            self._wake_deliveries()
        return changed

    def _choose_epoch(self, source: SourceState) -> int:
        """The epoch to attest `source` under, from the epochs its destination gateways hold.

        A committee proven by certificates (the trusted start, verified hand-overs) is taken up to
        the newest epoch a gateway holds. Beyond it, a committee read from a gateway only is taken
        one epoch at a time (any one gateway holding it), or further only when every gateway
        holds that same epoch: so one lying destination RPC cannot move the origin far ahead, and
        a committee only it shows is given up once no gateway holds it any more.
        """
        read_only = self._read_only.get(source.domain, set())
        proven = [epoch for epoch in source.committees if epoch not in read_only]
        if not self._readers or not source.destination_epochs:
            return max(proven)  # no gateway to follow: the newest verified hand-over
        held = set(source.destination_epochs.values())
        top = max(held)
        best = max((epoch for epoch in proven if epoch <= top), default=source.committee.epoch)
        if best + 1 in held:
            return best + 1
        if top > best + 1:
            if held == {top}:
                return top  # every gateway shows the jump: an owner's re-enrollment, missed hand-overs
            log.error(
                "a destination gateway shows an epoch more than one ahead of the committees this "
                "relayer can prove, and not every destination agrees; not followed",
                extra={
                    "origin": source.domain,
                    "epochs": dict(sorted(source.destination_epochs.items())),
                    "proven": best,
                },
            )
        return best

    def _forget_unheld(self, source: SourceState, read_only: set[int]) -> None:
        """Drop the committees read from a gateway that no gateway holds any more (epoch and hash):
        what a lying RPC showed is not kept once it stops showing it; read again if shown again."""
        hashes = self._held_hashes.get(source.domain, {})
        held = {(epoch, hashes.get(domain)) for domain, epoch in source.destination_epochs.items()}
        for epoch in sorted(read_only):
            committee = source.committees.get(epoch)
            if committee is None or (epoch, committee.hash()) not in held:
                if epoch + 1 not in source.handovers:  # a verified hand-over leaves from it: kept
                    source.committees.pop(epoch, None)
                    read_only.discard(epoch)

    def _adopt(self, source: SourceState) -> bool:
        current = source.committee
        read_only = self._read_only.setdefault(source.domain, set())
        if self._readers:
            self._forget_unheld(source, read_only)
        target = self._choose_epoch(source)
        still_held = source.committees.get(current.epoch) is current
        if target < current.epoch and still_held:
            return False  # epochs only go up, except to leave a committee no gateway holds any more
        if target == current.epoch and still_held:
            return False
        committee = source.committees.get(target)
        if committee is not None and committee.epoch == current.epoch and committee.hash() == current.hash():
            source.committee = committee  # the same committee, now proven by a certificate
            return False
        if committee is None:
            committee = self._read_from_chain(source, target)
            if committee is None:
                return False
            source.committees[target] = committee
            read_only.add(target)
        source.committee = committee
        self._metrics.committee_epoch.labels(str(source.domain)).set(committee.epoch)
        # Back (or sideways) only from a committee read from one gateway that none holds any more.
        stepped_back = target <= current.epoch
        log.log(
            logging.ERROR if stepped_back else logging.WARNING,
            "committee epoch stepped back: no destination gateway holds the committee read from one"
            if stepped_back
            else "committee epoch changed",
            extra={
                "origin": source.domain,
                "epoch": committee.epoch,
                "previous": current.epoch,
                "members": len(committee),
                "threshold": committee.threshold,
                "from": "destination gateway" if target in read_only else "hand-over certificate",
            },
        )
        return True

    def _read_from_chain(self, source: SourceState, epoch: int) -> CheckpointCommittee | None:
        """`currentCommittee` of every gateway at `epoch`, if they all show the same one."""
        found: CheckpointCommittee | None = None
        for domain, reader in self._readers.items():
            if source.destination_epochs.get(domain) != epoch:
                continue
            on_chain: OnChainCommittee | OnChainEcdsaCommittee | None
            try:
                # An ECDSA origin is read as one (its scheme changes only with this relayer's config).
                if not isinstance(source.committee, EcdsaCheckpointCommittee):
                    on_chain = reader.current_committee(source.domain)
                elif isinstance(reader, EcdsaCommitteeReader):
                    on_chain = reader.current_ecdsa_committee(source.domain)
                else:
                    on_chain = None
            except RelayError as error:
                log.warning(
                    "committee read failed", extra={"origin": source.domain, "error": describe(error)}
                )
                return None
            if on_chain is None or on_chain.epoch != epoch:
                return None
            try:
                # The hash is computed from the members read, never taken from the gateway's answer.
                committee = build_any_committee_from_chain(on_chain)
                computed = committee.hash()
            except RelayError as error:
                log.error(
                    "destination's committee does not decode; ignored",
                    extra={"origin": source.domain, "destination": domain, "error": describe(error)},
                )
                return None
            if computed != on_chain.committee_hash or (found is not None and computed != found.hash()):
                log.error(
                    "destination's committee does not hash to its committeeOf, or gateways holding "
                    "one epoch disagree on it; ignored",
                    extra={"origin": source.domain, "destination": domain, "epoch": epoch},
                )
                return None
            found = committee
        return found

    def reattest(
        self, source: SourceState, caught_up: Collection[int] = (), lease: Lease | None = None
    ) -> list[bytes]:
        """Send back to FINAL every pending message of `source` attested under another epoch than
        the current one, and those PARKED by a `WrongEpoch` of a destination in `caught_up` (its
        gateway moved to the current epoch since: it refused them while it lagged)."""
        epoch = source.committee.epoch
        epochs: dict[int, int] = {}
        transitions = []

        def checkpoint_epoch(checkpoint_id: int | None) -> int | None:
            if checkpoint_id is None:
                return None
            if checkpoint_id not in epochs:
                certified = self._store.get_certificate(checkpoint_id)
                epochs[checkpoint_id] = certified.checkpoint.epoch if certified is not None else epoch
            return epochs[checkpoint_id]

        reset = {"checkpoint_id": None, "branch": (), "attempts": 0, "next_attempt_at": 0.0}
        for state in REATTEST_STATES:
            for record in self._store.messages_in_state(state, origin=source.domain, limit=REATTEST_BATCH):
                old = checkpoint_epoch(record.checkpoint_id)
                if old is not None and old != epoch:
                    transitions.append(Transition(record.id, state, S.FINAL, dict(reset)))
        for record in self._store.messages_in_state(S.PARKED, origin=source.domain, limit=REATTEST_BATCH):
            old = checkpoint_epoch(record.checkpoint_id)
            if old is None or "WrongEpoch" not in record.last_error:
                continue
            if old != epoch or record.message.destination in caught_up:
                transitions.append(
                    Transition(record.id, S.PARKED, S.FINAL, {**reset, "last_error": "", "error_reason": ""})
                )
        moved = []
        for transition in transitions:
            try:
                self._store.apply_transition(transition, self._clock(), lease=lease)
            except LeaseLost:
                raise  # another replica took the source over: the caller stops this pass
            except StaleState:
                continue  # moved meanwhile (delivered, submitted): its outcome decides
            moved.append(transition.id)
        if moved:
            self._metrics.reattested.labels(str(source.domain)).inc(len(moved))
            log.warning(
                "messages attested under an older committee epoch go back to be attested again",
                extra={"origin": source.domain, "epoch": epoch, "messages": len(moved)},
            )
        return moved
