"""Stage 2 for a light-client origin (`verification: lightclient`): headers, then receipt proofs.

Such an origin has no committee and no attestors: each destination Gateway verifies it with an
on-chain light client of the origin's sync committee and a receipt-proof inbox
(`relay.chains.lightclient`). Per origin, this stage moves its messages:

- FINAL -> WAITING_FOR_HEADER, at once (nothing to attest);
- per destination, while its light client's `latestExecutionBlockNumber()` (read from the
  destination chain itself) is below a waiting message's block: the origin's adapter fetches
  updates from the beacon node and verifies them with the relayer's own light client
  (`LightClientOrigin.updates_to_reach`); the destination's submitter sends them
  (`SubmitLightClientUpdate`); the messages they reach -> HEADER_SUBMITTED. A HEADER_SUBMITTED
  message the destination still stores no block for goes back to WAITING_FOR_HEADER (refused,
  or raced), and is driven again;
- once the light client stores a block at or after the message's: the receipt proof is built from
  the execution RPC and verified against the stored receipts root (through the parent-hash walk
  when the message's block is older than the stored one) -> VERIFIED, the proof kept in
  `ReceiptProofs` for the delivery stage (`relay.relayer.deliver_receipts`); receipts that,
  proven, do not hold the message -> REJECTED (`MessageNotInBlock`).

Whatever a party gets wrong stays with it: a beacon node or RPC whose answers do not verify
(`UntrustedAnswer` and other `InvalidProof`s of the adapter), a submitter that refuses or is
away, a destination chain that does not answer: the messages concerned keep waiting (counted in
`relay_rejections_total` / logged), and every other destination and origin carries on, since each
destination is handled on its own and each origin has its own source thread.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from relay.chains.lightclient import (
    LightClientOrigin,
    LightClientReader,
    LightClientSubmitter,
    ProvenReceipt,
    StoredHeaders,
)
from relay.errors import (
    HeaderWalkTooLong,
    InvalidProof,
    MessageNotInBlock,
    PermanentError,
    RelayError,
    TransientError,
)
from relay.lifecycle import LeaseLost, MessageState, StaleState
from relay.metrics import RelayMetrics
from relay.relayer.common import Clock, describe
from relay.store.base import Lease, MessageRecord, Store, Transition
from relay.verify.ecdsa_quorum import EcdsaCheckpointCommittee, EcdsaMember
from relay.verify.hashing import keccak256

if TYPE_CHECKING:
    from relay.relayer.state import DestinationState, SourceState

log = logging.getLogger("relay.relayer")

S = MessageState
PROOF_CACHE_SIZE = 50_000  # verified receipt proofs kept for the delivery stage (rebuilt on a miss)
DEFAULT_MAX_HEADER_WALK = 256  # blocks a receipt proof may walk back from a stored header
PASS_LIMIT = 1000  # messages of one origin driven per pass and state

# The committee a light-client origin's `SourceState` carries, only to satisfy the type: one ECDSA
# "member" whose address is a hash nobody holds a key for, so nothing could ever verify under it.
# No stage asks it anything: the light-client stage replaces attestation and proving.
_NOBODY = keccak256(b"relay: a light-client origin has no committee")[:20]


def inert_committee() -> EcdsaCheckpointCommittee:
    """The placeholder committee of a light-client origin (see `_NOBODY`)."""
    return EcdsaCheckpointCommittee.create(0, [EcdsaMember(_NOBODY, 1)], 1)


ReaderFactory = Callable[[int, int], LightClientReader | None]  # (origin, destination) -> reader


class ReceiptProofs:
    """Verified receipt proofs by message id, bounded (least recently stored dropped first)."""

    def __init__(self, size: int = PROOF_CACHE_SIZE) -> None:
        self._size = size
        self._proofs: OrderedDict[bytes, ProvenReceipt] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, message_id: bytes, proof: ProvenReceipt) -> None:
        """Keep `proof` for `message_id`."""
        with self._lock:
            self._proofs[message_id] = proof
            self._proofs.move_to_end(message_id)
            while len(self._proofs) > self._size:
                self._proofs.popitem(last=False)

    def get(self, message_id: bytes) -> ProvenReceipt | None:
        """The proof kept for `message_id`, if any."""
        with self._lock:
            return self._proofs.get(message_id)


class HeaderDriver:
    """Moves a light-client origin's messages from FINAL to VERIFIED (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        metrics: RelayMetrics,
        clock: Clock,
        destinations: Mapping[int, DestinationState],
        origins: Mapping[int, LightClientOrigin],
        readers: ReaderFactory,
        *,
        submitter_timeout: float,
        max_header_walk: int = DEFAULT_MAX_HEADER_WALK,
        proofs: ReceiptProofs | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._destinations = destinations
        self._origins = origins
        self._readers = readers
        self._timeout = submitter_timeout
        self._max_walk = max_header_walk
        self.proofs = proofs if proofs is not None else ReceiptProofs()
        self._headers_seen: dict[tuple[int, int], tuple[bytes, bytes] | None] = {}
        # (reader, block) -> the latest stored block when no stored header was near enough: not
        # scanned again until the light client stores a newer one.
        self._too_far: dict[tuple[int, int], int] = {}

    # --- the pass -----------------------------------------------------------------------------

    def advance(self, source: SourceState, lease: Lease | None = None) -> bool:
        """One pass over light-client origin `source`; True if some message became VERIFIED.

        Writes go under the source `lease` when given (`LeaseLost` if it moved on)."""
        origin = self._origins.get(source.domain)
        if origin is None:
            log.error("no light-client origin adapter for this source", extra={"origin": source.domain})
            return False
        self._headers_seen.clear()  # stored headers are read afresh every pass
        self._await_headers(source, lease)
        pending = self._store.messages_in_state(S.WAITING_FOR_HEADER, origin=source.domain, limit=PASS_LIMIT)
        pending += self._store.messages_in_state(S.HEADER_SUBMITTED, origin=source.domain, limit=PASS_LIMIT)
        by_destination: dict[int, list[MessageRecord]] = defaultdict(list)
        for record in pending:
            by_destination[record.message.destination].append(record)
        progressed = False
        for domain, records in sorted(by_destination.items()):
            try:
                progressed = self.drive_destination(source, origin, domain, records, lease) or progressed
            except LeaseLost:
                raise
            except RelayError as error:  # one destination's trouble never holds back another's
                log.warning(
                    "light-client pass for a destination failed; retried next pass",
                    extra={"origin": source.domain, "destination": domain, "error": describe(error)},
                )
        return progressed

    def _await_headers(self, source: SourceState, lease: Lease | None) -> None:
        final = self._store.messages_in_state(S.FINAL, origin=source.domain, limit=PASS_LIMIT)
        if final:
            self._apply([Transition(r.id, S.FINAL, S.WAITING_FOR_HEADER, {}) for r in final], lease)

    def drive_destination(
        self,
        source: SourceState,
        origin: LightClientOrigin,
        domain: int,
        records: Sequence[MessageRecord],
        lease: Lease | None,
    ) -> bool:
        """Drive `records` (WAITING_FOR_HEADER / HEADER_SUBMITTED, all to `domain`) one step or two."""
        reader = self._readers(source.domain, domain)
        if reader is None:
            log.warning(
                "no light client of this origin configured at the destination; messages wait",
                extra={"origin": source.domain, "destination": domain},
            )
            return False
        states = {r.id: r.state for r in records}
        stored = reader.stored_headers()
        self._metrics.light_client_stored_block.labels(str(source.domain), str(domain)).set(
            stored.latest_block
        )
        behind = [r for r in records if r.source_block > stored.latest_block]
        if behind:
            reached = self._send_updates(source, origin, domain, min(r.source_block for r in behind), stored)
            moves = []
            for record in behind:
                state = states[record.id]
                if reached is not None and record.source_block <= reached and state is S.WAITING_FOR_HEADER:
                    moves.append(Transition(record.id, state, S.HEADER_SUBMITTED, {}))
                elif reached is None and state is S.HEADER_SUBMITTED:
                    moves.append(Transition(record.id, state, S.WAITING_FOR_HEADER, {}))
            for transition in self._apply(moves, lease):
                states[transition.id] = transition.new
            if reached is not None:
                stored = reader.stored_headers()
        ready = [r for r in records if r.source_block <= stored.latest_block]
        return self._prove(source, origin, reader, stored, ready, states, lease)

    def _send_updates(
        self,
        source: SourceState,
        origin: LightClientOrigin,
        domain: int,
        block: int,
        stored: StoredHeaders,
    ) -> int | None:
        """Have `domain`'s light client reach `block`; the execution block it stores afterwards,
        None when nothing could be sent (the origin has not finalized it yet, or a party failed)."""
        labels = (str(source.domain), str(domain))
        try:
            updates = origin.updates_to_reach(block, stored)
        except InvalidProof as error:  # the beacon node served something that does not verify
            self._metrics.record_rejection(source.domain, error)
            self._metrics.light_client_updates.labels(*labels, "unverified").inc()
            log.warning(
                "beacon node served light-client data that does not verify; nothing sent",
                extra={"origin": source.domain, "destination": domain, "error": describe(error)},
            )
            return None
        except TransientError as error:
            log.info(
                "beacon node unavailable; updates fetched again next pass",
                extra={"origin": source.domain, "error": describe(error)},
            )
            return None
        if not updates:
            return None  # the origin's light client has not finalized the block yet
        submitter = light_client_submitter(self._destinations[domain])
        if submitter is None:
            log.error(
                "the destination's submitter does not serve light-client updates",
                extra={"origin": source.domain, "destination": domain},
            )
            return None
        latest = stored.latest_block
        for update in updates:
            try:
                transaction, latest = submitter.submit_light_client_update(
                    source.domain, update, self._timeout
                )
            except RelayError as error:
                self._metrics.light_client_updates.labels(*labels, error.reason).inc()
                log.warning(
                    "light-client update not accepted by the destination; driven again next pass",
                    extra={
                        "origin": source.domain,
                        "destination": domain,
                        "finalized_slot": update.finalized_slot,
                        "error": describe(error),
                    },
                )
                return None
            self._metrics.light_client_updates.labels(*labels, "sent" if transaction else "not_needed").inc()
            log.info(
                "light-client update submitted",
                extra={
                    "origin": source.domain,
                    "destination": domain,
                    "finalized_slot": update.finalized_slot,
                    "finalized_block": update.finalized_block,
                    "transaction": transaction,
                    "stored_block": latest,
                },
            )
        return latest

    def _prove(
        self,
        source: SourceState,
        origin: LightClientOrigin,
        reader: LightClientReader,
        stored: StoredHeaders,
        ready: Sequence[MessageRecord],
        states: dict[bytes, MessageState],
        lease: Lease | None,
    ) -> bool:
        transitions = []
        for record in ready:
            state = states[record.id]
            try:
                proven = self.prove(origin, reader, stored, record)
            except MessageNotInBlock as error:
                self._metrics.record_rejection(source.domain, error)
                transitions.append(
                    Transition(
                        record.id,
                        state,
                        S.REJECTED,
                        {"last_error": describe(error), "error_reason": error.reason},
                    )
                )
                continue
            except InvalidProof as error:  # the execution RPC lied: not the message's fault
                self._metrics.record_rejection(source.domain, error)
                log.warning(
                    "execution RPC answers do not verify against the stored header; message waits",
                    extra={"origin": source.domain, "message_id": record.id, "error": describe(error)},
                )
                continue
            except RelayError as error:
                log.warning(
                    "receipt proof not built; retried next pass",
                    extra={"origin": source.domain, "message_id": record.id, "error": describe(error)},
                )
                continue
            self.proofs.put(record.id, proven)
            transitions.append(
                Transition(record.id, state, S.VERIFIED, {"last_error": "", "error_reason": ""})
            )
        applied = self._apply(transitions, lease)
        for transition in applied:
            fields = {"chain": source.name, "origin": source.domain, "message_id": transition.id}
            if transition.new is S.VERIFIED:
                log.info("message verified by receipt proof", extra=fields)
            else:
                log.warning("message rejected", extra={**fields, "reason": transition.updates["last_error"]})
        return any(t.new is S.VERIFIED for t in applied)

    def proof_for(self, source: SourceState, domain: int, record: MessageRecord) -> ProvenReceipt:
        """The verified receipt proof of `record` (to `domain`): kept since it was VERIFIED, else
        built and verified again against what the destination's light client stores now."""
        kept = self.proofs.get(record.id)
        if kept is not None:
            return kept
        origin = self._origins.get(source.domain)
        reader = self._readers(source.domain, domain)
        if origin is None or reader is None:
            raise PermanentError(
                "light-client origin not configured for this destination", destination=domain
            )
        proven = self.prove(origin, reader, reader.stored_headers(), record)
        self.proofs.put(record.id, proven)
        return proven

    def prove(
        self,
        origin: LightClientOrigin,
        reader: LightClientReader,
        stored: StoredHeaders,
        record: MessageRecord,
    ) -> ProvenReceipt:
        """The verified receipt proof of `record` against a header `reader`'s light client stores
        (`find_anchor`)."""
        block = record.source_block
        anchor_block, (block_hash, receipts_root) = self.find_anchor(reader, stored, block)
        return origin.prove_message(record.id, block, anchor_block, block_hash, receipts_root)

    def find_anchor(
        self, reader: LightClientReader, stored: StoredHeaders, block: int
    ) -> tuple[int, tuple[bytes, bytes]]:
        """The stored header a proof of `block` walks back from, with its (hash, receipts root): the
        block itself if stored; else the newest stored one when at most `max_header_walk` above;
        else the nearest stored one within that distance (a backlog older than the newest
        finality update). `HeaderWalkTooLong` when none is that near."""
        own = self._stored_header(reader, block)
        if own is not None:
            return block, own
        latest = stored.latest_block
        if latest - block <= self._max_walk:
            newest = self._stored_header(reader, latest)
            if newest is None:
                raise TransientError("stored header not readable yet", block=latest)
            return latest, newest
        key = (id(reader), block)
        if self._too_far.get(key) != latest:  # the light client stores only newer headers since
            for candidate in range(block + 1, block + self._max_walk + 1):
                found = self._stored_header(reader, candidate)
                if found is not None:
                    return candidate, found
            self._too_far[key] = latest
            while len(self._too_far) > PROOF_CACHE_SIZE:
                self._too_far.pop(next(iter(self._too_far)))
        raise HeaderWalkTooLong(
            "no stored header within the walk above the message's block",
            block=block,
            latest=latest,
            max_walk=self._max_walk,
        )

    def _stored_header(self, reader: LightClientReader, block: int) -> tuple[bytes, bytes] | None:
        """`reader.execution_header(block)`, remembered for this pass (many messages share blocks)."""
        key = (id(reader), block)
        try:
            return self._headers_seen[key]
        except KeyError:  # (a delivery thread may ask while the source thread starts a pass)
            found = self._headers_seen[key] = reader.execution_header(block)
            return found

    def _apply(self, transitions: Sequence[Transition], lease: Lease | None) -> list[Transition]:
        """Apply `transitions` (all at once, else one by one past a race); those applied."""
        if not transitions:
            return []
        now = self._clock()
        try:
            self._store.apply_transitions(transitions, now, lease=lease)
            return list(transitions)
        except LeaseLost:
            raise
        except StaleState:
            pass
        applied = []
        for transition in transitions:
            try:
                self._store.apply_transitions([transition], now, lease=lease)
            except LeaseLost:
                raise
            except StaleState:
                continue
            applied.append(transition)
        return applied


def _serves_light_client(submitter: object) -> bool:
    return callable(getattr(submitter, "submit_light_client_update", None))


def light_client_submitter(destination: DestinationState) -> LightClientSubmitter | None:
    """`destination`'s submitter as a `LightClientSubmitter`, None if it does not serve the RPCs."""
    submitter = destination.submitter
    return submitter if _serves_light_client(submitter) else None  # type: ignore[return-value]
