"""Stage 3, proving: verify off-chain exactly what the destination gateway will verify on-chain.

For each ATTESTED message, grouped by checkpoint: `verify_committee_checkpoint` (epoch, gateway,
quorum, and the BLS aggregate or every ECDSA signature, by the committee's scheme), the checkpoint root equal to the relayer's own tree of the source gateway at
`index + 1` leaves, and the message's Merkle branch. The outcome is VERIFIED (with the branch
stored), or REJECTED with the error's reason (never retried by itself): a forged certificate, or
a malformed leaf (`MalformedMessage`, once the committee confirmed it is in the tree). A
checkpoint the tree does not reach yet sends its messages back to FINAL, to be attested again;
so does a genuine checkpoint whose root differs from the tree, which also asks the ingest stage
to re-read the source (`Ingest.repair`): the relayer's observation was wrong, not the messages.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from relay.errors import InvalidMerkleProof, InvalidProof, MalformedMessage, RelayError
from relay.lifecycle import LeaseLost, MessageState, StaleState
from relay.metrics import RelayMetrics
from relay.relayer.common import Clock, describe
from relay.store.base import CertifiedCheckpoint, Lease, MessageRecord, Store, Transition
from relay.verify.bls import BlsBackend
from relay.verify.ecdsa_quorum import verify_committee_checkpoint
from relay.verify.merkle import verify_branch

if TYPE_CHECKING:
    from relay.relayer.state import SourceState

log = logging.getLogger("relay.relayer")

S = MessageState

# Verdicts are computed and committed this many messages at a time, so that a long backlog (a
# restarted relayer proving thousands of messages under one checkpoint) has its first messages
# VERIFIED, and in the delivery stage's hands, while the rest are still being proved. Each chunk
# is a transition batch of its own under the source lease (fencing unchanged).
PROVE_CHUNK = 256


class Prover:
    """Moves ATTESTED messages to VERIFIED or REJECTED."""

    def __init__(self, store: Store, metrics: RelayMetrics, clock: Clock, backend: BlsBackend) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._backend = backend

    def verify_attested(self, source: SourceState, lease: Lease | None = None) -> bool:
        """Verify every ATTESTED message of `source`; True if some message became VERIFIED.

        Verdicts are written under the source `lease` when given (`LeaseLost` if it moved on)."""
        attested = self._store.messages_in_state(S.ATTESTED, origin=source.domain)
        by_checkpoint: dict[int, list[MessageRecord]] = defaultdict(list)
        for record in attested:
            by_checkpoint[record.checkpoint_id or 0].append(record)
        progressed = False
        checked: set[int] = set()  # certificates already verified in this pass (by object id)
        certificates = {
            checkpoint_id: self._store.get_certificate(checkpoint_id) if checkpoint_id else None
            for checkpoint_id in by_checkpoint
        }
        chunks = (
            (checkpoint_id, records[start : start + PROVE_CHUNK])
            for checkpoint_id, records in by_checkpoint.items()
            for start in range(0, len(records), PROVE_CHUNK)
        )
        for checkpoint_id, records in chunks:
            certified = certificates[checkpoint_id]
            transitions = self.compute_transitions(source, certified, records, checked=checked)
            try:
                self._store.apply_transitions(transitions, self._clock(), lease=lease)
            except LeaseLost:
                raise  # another replica took the source over: the caller stops this pass
            except StaleState as error:
                log.info("verification raced another writer; retried next pass", extra={"error": str(error)})
                continue
            for transition in transitions:
                fields = {"chain": source.name, "origin": source.domain, "message_id": transition.id}
                if transition.new is S.VERIFIED:
                    progressed = True
                    log.info("message verified", extra={**fields, "checkpoint_id": checkpoint_id})
                elif transition.new is S.REJECTED:
                    self._metrics.rejections.labels(
                        str(source.domain), str(transition.updates["error_reason"])
                    ).inc()
                    log.warning(
                        "message rejected", extra={**fields, "reason": transition.updates["last_error"]}
                    )
        return progressed

    def request_repair(self, source: SourceState, index: int, root: bytes, expected: bytes) -> None:
        """Ask the ingest stage to re-read `source` from its last confirmed leaf (`Ingest.repair`)."""
        if not source.repair_requested:
            self._metrics.tree_repairs.labels(str(source.domain)).inc()
            log.error(
                "a committee checkpoint disagrees with the relayer's tree: re-reading the source (alert)",
                extra={
                    "chain": source.name,
                    "origin": source.domain,
                    "index": index,
                    "root": root.hex(),
                    "expected": expected.hex(),
                },
            )
        source.repair_requested = True

    def compute_transitions(
        self,
        source: SourceState,
        certified: CertifiedCheckpoint | None,
        records: Sequence[MessageRecord],
        *,
        checked: set[int] | None = None,
    ) -> list[Transition]:
        """The verdict for `records` (all ATTESTED under `certified`), as transitions; no store writes.

        `checked`: ids of certificate objects whose committee signature this pass already verified
        (the next chunk of the same checkpoint skips that check only; its root and every branch are
        still checked); a certificate that verifies is added.

        A certificate that verifies but whose root is not the relayer's tree sends the records
        back to FINAL and flags `source` for a repair: a wrong observation never rejects a message.
        """

        def reject(record: MessageRecord, error: RelayError) -> Transition:
            return Transition(
                record.id,
                S.ATTESTED,
                S.REJECTED,
                {"last_error": describe(error), "error_reason": error.reason},
            )

        def attest_again() -> list[Transition]:
            return [Transition(r.id, S.ATTESTED, S.FINAL, {"checkpoint_id": None}) for r in records]

        if certified is None:
            return attest_again()  # not possible through the attestation stage; be safe
        checkpoint = certified.checkpoint
        with source.tree.view() as tree:
            if checkpoint.index >= tree.count:
                return attest_again()
            try:
                if checked is None or id(certified) not in checked:
                    with self._metrics.time_verification("checkpoint"):
                        verify_committee_checkpoint(
                            source.committee,
                            checkpoint,
                            certified.certificate,
                            origin=source.domain,
                            gateway=source.gateway,
                            backend=self._backend,
                        )
                    if checked is not None:
                        checked.add(id(certified))
                expected = tree.root_at(checkpoint.index + 1)
            except InvalidProof as error:
                return [reject(r, error) for r in records]
            if expected != checkpoint.root:
                # A genuine certificate over another tree: the relayer's observation of the source
                # is what is suspect, never the messages. Re-read the chain, attest again.
                self.request_repair(source, checkpoint.index, checkpoint.root, expected)
                return attest_again()
            transitions = []
            for record in records:
                nonce = record.message.nonce
                try:
                    if nonce > checkpoint.index:
                        raise InvalidMerkleProof(
                            "checkpoint does not cover the message", nonce=nonce, index=checkpoint.index
                        )
                    branch = tree.branch(nonce, checkpoint.index + 1)
                    with self._metrics.time_verification("merkle"):
                        verify_branch(record.id, branch, nonce, checkpoint.root)
                    if record.is_malformed:
                        # The committee confirmed the leaf; its message can never be delivered.
                        raise MalformedMessage(
                            "the source gateway dispatched a message that does not decode",
                            nonce=nonce,
                            reason=record.malformed_reason,
                        )
                except InvalidProof as error:
                    transitions.append(reject(record, error))
                    continue
                transitions.append(Transition(record.id, S.ATTESTED, S.VERIFIED, {"branch": branch}))
        return transitions
