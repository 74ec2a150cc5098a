"""Stage 2, attestation collection: gather the committee's signatures and aggregate a quorum.

For the lowest FINAL nonce of a source, every attestor is asked (in parallel) for its signature on
a checkpoint covering it. Each partial signature is checked against the committee member it claims
to be and stored with its verdict (a bad one is kept with its reason, counted, and never counts).
Once valid signatures over the *same* checkpoint reach the threshold weight, they are aggregated
and the FINAL messages the checkpoint covers (nonce <= index) move to ATTESTED. Unreachable
attestors are skipped; below quorum nothing moves and the next pass asks again. While nothing
waits, attestors are asked who they are instead, so the quorum gauges and readiness stay live.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, defaultdict
from concurrent import futures
from dataclasses import replace
from typing import TYPE_CHECKING

from relay.errors import (
    EpochMismatch,
    GatewayMismatch,
    InvalidProof,
    OriginMismatch,
    RelayError,
    TransientError,
    UnknownSigner,
)
from relay.lifecycle import LeaseLost, MessageState, StaleState
from relay.metrics import RelayMetrics
from relay.peers import AttestorClient, PartialSignature
from relay.relayer.common import Clock, describe, retry_counter
from relay.retry import ATTESTOR_READ
from relay.store.base import Lease, SignatureRecord, Store
from relay.verify.bls import BlsBackend
from relay.verify.committee import Checkpoint, Committee
from relay.verify.ecdsa_quorum import CheckpointCommittee

if TYPE_CHECKING:
    from relay.relayer.state import SourceState

log = logging.getLogger("relay.relayer")

QUORUM_PROBE_SECONDS = 5.0  # how often an idle relayer checks which attestors answer
VERDICT_CACHE_SIZE = 10_000  # partial signatures whose verdict is remembered (skips re-pairing)


def member_index(committee: CheckpointCommittee, public_key: bytes) -> int | None:
    """The position of `public_key` in `committee` (an ECDSA member's: its address), None if it is not a member."""
    if not isinstance(committee, Committee):
        return committee.index_of(public_key)
    for index, member in enumerate(committee.members):
        if member.public_key == public_key:
            return index
    return None


class AttestationCollector:
    """Collects, checks and aggregates attestor signatures for each source."""

    def __init__(
        self,
        store: Store,
        metrics: RelayMetrics,
        clock: Clock,
        backend: BlsBackend,
        pool: futures.Executor,
        timeout: float,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._backend = backend
        self._pool = pool
        self._timeout = timeout
        # (digest, signer, signature, claimed key) -> "" (valid) or the rejection reason, least recent first.
        self._verdicts: OrderedDict[tuple[bytes, int, bytes, bytes], str] = OrderedDict()
        self._verdicts_lock = threading.Lock()  # each source's thread records partials

    def collect(self, source: SourceState, lease: Lease | None = None) -> None:
        """One attestation pass for `source` (or a quorum probe when nothing is FINAL); the
        attestation is written under the source `lease` when given (`LeaseLost` if it moved on)."""
        final = self._store.messages_in_state(MessageState.FINAL, origin=source.domain)
        if not final:
            self.probe_quorum(source)
            return
        min_index = final[0].message.nonce
        usable = source.tree.final_leaves()
        if min_index >= usable:
            return  # the relayer's own tree does not reach the message yet
        reachable: set[int] = set()
        for address, partial in self.ask_attestors(source, min_index):
            if not self.record_partial(source, address, partial):
                index = member_index(source.committee, partial.public_key)
                if index is not None:
                    reachable.add(index)
        source.reachable_weight = source.committee.signed_weight(sorted(reachable))
        self._metrics.set_quorum(source.domain, source.reachable_weight, source.committee.threshold)
        chosen = self.choose_checkpoint(source, min_index, usable)
        if chosen is None:
            return
        checkpoint, signatures = chosen
        try:
            certificate = source.committee.aggregate(
                checkpoint.digest(), sorted(signatures.items()), self._backend, verify_each=False
            )
        except InvalidProof as error:
            log.error(
                "signature aggregation failed",
                extra={"chain": source.name, "origin": source.domain, "error": describe(error)},
            )
            return
        ids = [r.id for r in final if r.message.nonce <= checkpoint.index]
        try:
            checkpoint_id = self._store.attest_messages(
                checkpoint, certificate, ids, self._clock(), lease=lease
            )
        except LeaseLost:
            raise  # another replica took the source over: the caller stops this pass
        except StaleState as error:
            log.info("attestation raced another writer; retried next pass", extra={"error": str(error)})
            return
        self._store.prune_signatures(source.domain, min_index)
        log.info(
            "checkpoint attested",
            extra={
                "chain": source.name,
                "origin": source.domain,
                "checkpoint_id": checkpoint_id,
                "index": checkpoint.index,
                "root": checkpoint.root,
                "signers": sorted(signatures),
                "messages": len(ids),
            },
        )

    def probe_quorum(self, source: SourceState) -> None:
        """While idle, ask each attestor who it is, so the quorum gauges (and alerts) stay live.

        An attestor counts as reachable when it answers as the committee member it claims to be
        (same index and public key, same origin). At most once per `QUORUM_PROBE_SECONDS`; while
        messages wait, `collect` measures reachability from the signatures instead.
        """
        now = self._clock()
        if now - source.last_quorum_probe_at < QUORUM_PROBE_SECONDS:
            return
        source.last_quorum_probe_at = now
        jobs = [self._pool.submit(self.identify_attestor, source, attestor) for attestor in source.attestors]
        reachable: set[int] = set()
        for job in jobs:
            try:
                index = job.result()
            except Exception:  # noqa: BLE001 - a broken attestor is simply unreachable
                index = None
            if index is not None:
                reachable.add(index)
        source.reachable_weight = source.committee.signed_weight(sorted(reachable))
        self._metrics.set_quorum(source.domain, source.reachable_weight, source.committee.threshold)

    def identify_attestor(self, source: SourceState, attestor: AttestorClient) -> int | None:
        """The member index of the key `attestor` names (same origin, still a member), else None."""
        try:
            identity = attestor.get_identity(self._timeout)
        except RelayError:
            return None
        if identity.origin != source.domain or not identity.member:
            return None
        if identity.epoch > source.committee.epoch:
            source.committee_sync_due = True
        return member_index(source.committee, identity.public_key)

    def ask_attestors(self, source: SourceState, min_index: int) -> list[tuple[str, PartialSignature]]:
        """Every answering attestor's signature covering `min_index`, as (address, partial)."""
        jobs = [
            self._pool.submit(self.ask_attestor, source, attestor, min_index) for attestor in source.attestors
        ]
        answers = []
        for attestor, job in zip(source.attestors, jobs, strict=True):
            try:
                partial = job.result()
            except Exception:
                log.exception("attestor query crashed", extra={"attestor": attestor.address})
                continue
            if partial is not None:
                answers.append((attestor.address, partial))
        return answers

    def ask_attestor(
        self, source: SourceState, attestor: AttestorClient, min_index: int
    ) -> PartialSignature | None:
        """One attestor's signature (retried under `attestor_read`); None if it has none or fails."""
        fields = {"chain": source.name, "origin": source.domain, "attestor": attestor.address}
        try:
            return ATTESTOR_READ.call(
                lambda: attestor.get_checkpoint(source.domain, min_index, self._timeout),
                on_retry=retry_counter(self._metrics, ATTESTOR_READ.name),
            )
        except TransientError as error:
            log.debug("attestor unreachable; skipped this pass", extra={**fields, "error": describe(error)})
        except InvalidProof as error:
            log.warning("attestor answered malformed data", extra={**fields, "error": describe(error)})
        except RelayError as error:
            if "not a member" in str(error):
                log.debug("attestor is not a member of the committee", extra=fields)
            else:
                log.warning("attestor refused the request", extra={**fields, "error": describe(error)})
        return None

    def record_partial(self, source: SourceState, address: str, partial: PartialSignature) -> str:
        """Check one partial signature against the member whose key it names; store it with the verdict.

        The signer index is the key's position in the committee (what the attestor claims is not
        trusted). A signature under an earlier epoch this relayer followed is skipped, not counted
        as a forgery (the attestor has not switched yet); a newer one is rejected as usual and asks
        the committee stage to sync. Returns the rejection reason, "" for a valid signature.
        """
        epoch = source.committee.epoch
        if partial.checkpoint.epoch > epoch:
            source.committee_sync_due = True  # maybe a hand-over this relayer has not seen yet
        elif partial.checkpoint.epoch < epoch and partial.checkpoint.epoch in source.committees:
            log.debug(
                "attestor still signs under the previous committee epoch; skipped",
                extra={"attestor": address, "epoch": partial.checkpoint.epoch, "expected": epoch},
            )
            return "epoch"
        index = member_index(source.committee, partial.public_key)
        if index is not None and index != partial.signer_index:
            partial = replace(partial, signer_index=index)
        # The claimed key is part of the verdict: the same signature replayed under a wrong key is
        # rejected without poisoning the verdict for the member's own copy.
        key = (partial.checkpoint.digest(), partial.signer_index, partial.signature, partial.public_key)
        with self._verdicts_lock:
            cached = self._verdicts.get(key)
            if cached is not None:
                self._verdicts.move_to_end(key)
        if cached is not None:
            reason = cached  # verified before: skip the pairing, still make sure it is stored
        else:
            reason = ""
            try:
                self.verify_partial(source, partial)
            except InvalidProof as error:
                reason = describe(error)
                self._metrics.record_rejection(source.domain, error)  # counted once per distinct signature
                log.warning(
                    "attestor signature rejected",
                    extra={
                        "chain": source.name,
                        "origin": source.domain,
                        "attestor": address,
                        "signer_index": partial.signer_index,
                        "index": partial.checkpoint.index,
                        "reason": reason,
                    },
                )
            with self._verdicts_lock:
                self._verdicts[key] = reason
                while len(self._verdicts) > VERDICT_CACHE_SIZE:
                    self._verdicts.popitem(last=False)
        self._store.save_signature(
            SignatureRecord(
                partial.checkpoint,
                partial.signer_index,
                partial.public_key,
                partial.signature,
                address,
                reason,
                self._clock(),
            )
        )
        return reason

    def verify_partial(self, source: SourceState, partial: PartialSignature) -> None:
        """Raise `InvalidProof` unless `partial` is the named member's valid signature for this source."""
        committee = source.committee
        checkpoint = partial.checkpoint
        # A signature over another origin, gateway or epoch must never count toward a quorum here.
        if checkpoint.origin != source.domain:
            raise OriginMismatch(
                "attestor signed another origin", origin=checkpoint.origin, expected=source.domain
            )
        if checkpoint.gateway != source.gateway:
            raise GatewayMismatch(
                "attestor signed another gateway", gateway=checkpoint.gateway, expected=source.gateway
            )
        if checkpoint.epoch != committee.epoch:
            raise EpochMismatch(
                "attestor signed for another committee epoch",
                epoch=checkpoint.epoch,
                expected=committee.epoch,
            )
        index = partial.signer_index
        if not 0 <= index < len(committee):
            raise UnknownSigner("signer index outside the committee", index=index, size=len(committee))
        if committee.members[index].public_key != partial.public_key:
            # Checked before the signature: a key outside the committee never counts for a member.
            raise UnknownSigner(
                "signer public key is not the committee member's", index=index, public_key=partial.public_key
            )
        with self._metrics.time_verification("signature"):
            if isinstance(committee, Committee):
                self._backend.verify_with_key(
                    committee.keys(self._backend)[index], checkpoint.digest(), partial.signature
                )
            else:
                # ECDSA: the signature must recover (EIP-191, low s, v 27/28) to the member's address.
                committee.verify_member_signature(index, checkpoint.digest(), partial.signature)

    def choose_checkpoint(
        self, source: SourceState, min_index: int, usable: int
    ) -> tuple[Checkpoint, dict[int, bytes]] | None:
        """The newest checkpoint the relayer can check whose valid signatures reach the threshold."""
        groups: dict[Checkpoint, dict[int, bytes]] = defaultdict(dict)
        for record in self._store.signatures_for(source.domain, min_index):
            groups[record.checkpoint].setdefault(record.signer_index, record.signature)
        committee = source.committee
        best: tuple[Checkpoint, dict[int, bytes]] | None = None
        best_rank = (-1, False)
        best_weight = 0
        for checkpoint, signatures in groups.items():
            if checkpoint.epoch != committee.epoch:
                continue  # signed under another committee (before or during a hand-over)
            weight = committee.signed_weight(list(signatures))
            best_weight = max(best_weight, weight)
            if weight < committee.threshold or checkpoint.index >= usable:
                continue
            # Newest first; at the same index, one whose root is the relayer's tree (a quorum over
            # another root only leads the prover to re-read the source, see `Prover.request_repair`).
            with source.tree.view() as tree:
                matches = (
                    tree.count > checkpoint.index and tree.root_at(checkpoint.index + 1) == checkpoint.root
                )
            rank = (checkpoint.index, matches)
            if best is None or rank > best_rank:
                best, best_rank = (checkpoint, signatures), rank
        if best is None and groups:
            log.debug(
                "no quorum yet",
                extra={
                    "chain": source.name,
                    "origin": source.domain,
                    "weight": best_weight,
                    "threshold": committee.threshold,
                },
            )
        return best
