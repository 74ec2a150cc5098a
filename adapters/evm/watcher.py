"""`EvmWatcher`: a source Gateway's Dispatch events, with finality, a durable cursor and reorgs.

Each `poll()`:

1. reads the head and the finalized block (the `finalized` tag, or `head - confirmations`);
2. checks that the stored cursor's block is still on the chain (same hash at that height). If
   not, a reorganisation happened above the last common block: it walks back over the blocks it
   remembers (every non-final block that held a Dispatch, and the cursor) to the highest one
   the chain still has, or to the finalized block, reports the ids seen above that point as
   orphaned (unless the re-scan finds them again) and re-scans from there;
3. reads Dispatch logs from the cursor to the head, at most `max_block_range` blocks per poll;
4. stores the new cursor (number and hash of the last block scanned) in the `CursorStore`.

After a restart it resumes from the stored cursor, first stepping back to the finalized block
so that it remembers the non-final blocks again (messages there are reported a second time; the
relayer keys messages by id, so that is harmless). Limitation: a reorg that happens entirely
while the watcher is down cannot name its orphaned ids (their blocks were never remembered);
such a message never becomes provable under the new chain's checkpoints and is rejected by the
relayer's Merkle check instead of being delivered.

Every read goes through `adapters.evm.source_reads.QuorumSource`: answers are parsed defensively
(a malformed one is `RpcUnavailable`), and what the configured quorum of endpoints does not say
alike is `SourceDisagreement`, which halts the origin (`relay_source_halted`) until they agree.

Every Dispatch log of the gateway is a leaf of its tree, decodable or not (`leaf_of_dispatch`): a
log whose message does not decode becomes a malformed leaf under the id the log names, so the
relayer's tree has no gap and the messages after it flow; the leaf itself ends REJECTED.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from adapters.evm.config import EvmCompatibleChainConfig
from adapters.evm.rpc import DISPATCH_TOPIC, EvmEndpoint, checksum_address, endpoints_for
from adapters.evm.source_reads import QuorumSource, RawLog
from relay.chains import Cursor, CursorStore, ObservedMessage, WatchUpdate
from relay.errors import InvalidProof, SourceDisagreement
from relay.metrics import RelayMetrics
from relay.verify.ethereum.dispatch import compute_stand_in, decode_dispatch_data
from relay.verify.hashing import keccak256
from relay.verify.message import Message

log = logging.getLogger(__name__)

_UINT32_MAX = 2**32 - 1


@dataclass
class _SeenBlock:
    """A non-final block the watcher scanned: its hash and the message ids it held."""

    block_hash: bytes
    ids: list[bytes] = field(default_factory=list)


class EvmWatcher:
    """Watches one source Gateway's Dispatch events (a `relay.chains.SourceWatcher`)."""

    def __init__(
        self,
        chain: EvmCompatibleChainConfig,
        cursors: CursorStore,
        *,
        endpoints: list[EvmEndpoint] | None = None,
        metrics: RelayMetrics | None = None,
    ) -> None:
        self.chain = chain
        self.domain = chain.domain
        self.gateway = checksum_address(chain.gateway, "gateway address")
        self.cursors = cursors
        self.metrics = metrics
        endpoints = endpoints or endpoints_for(chain, metrics)
        quorum = min(chain.source_quorum(), len(endpoints))
        self.source = QuorumSource(endpoints, quorum, chain_name=chain.name, metrics=metrics)
        self._cursor: Cursor | None = None
        self._started = False
        # Non-final blocks scanned, by number: what a reorg below them would orphan.
        self._seen: dict[int, _SeenBlock] = {}

    # --- chain view ---------------------------------------------------------------------------

    def finalized_block(self, head: int) -> int:
        """The highest final block: by the `finalized` tag, or `confirmations` below `head`."""
        if self.chain.confirmations > 0:
            return max(head - self.chain.confirmations, 0)
        return self.source.finalized()

    def _hash_at(self, number: int) -> bytes | None:
        return self.source.block_hash(number)

    def block_hash(self, number: int) -> bytes | None:
        """The canonical chain's block hash at `number` now (None past the head).

        The relayer asks it to settle a conflicting observation after a restart: a stored,
        not-yet-final message whose block is no longer canonical was orphaned while it was down.
        """
        self.source.head()
        return self._hash_at(number)

    # --- the poll -----------------------------------------------------------------------------

    def poll(self) -> WatchUpdate:
        """Scan from the cursor towards the head (bounded range), persist the cursor, report."""
        # A failed poll leaves no trace: the cursor and the remembered blocks (and so the orphans
        # a reorg produced) are exactly as before, and the next poll starts over.
        cursor = self._cursor
        seen = {number: _SeenBlock(block.block_hash, list(block.ids)) for number, block in self._seen.items()}
        try:
            update = self._poll()
        except BaseException as error:
            self._cursor, self._seen = cursor, seen
            if isinstance(error, SourceDisagreement):
                self._set_halted(True)
                log.error(
                    "source RPC endpoints disagree: origin halted (alert)",
                    extra={"domain": self.domain, "chain": self.chain.name, "error": str(error)},
                )
            raise
        self._set_halted(False)
        return update

    def _set_halted(self, halted: bool) -> None:
        if self.metrics is not None:
            self.metrics.source_halted.labels(self.chain.name).set(1 if halted else 0)

    def _poll(self) -> WatchUpdate:
        head = self.source.head()
        finalized = min(self.finalized_block(head), head)
        cursor = self._load_cursor(finalized)
        orphan_candidates: list[bytes] = []
        if cursor.block_number >= 0 and not cursor.block_hash:
            # Stored without a hash (the relayer's tree repair, `Ingest.repair`): anchor it here.
            cursor = Cursor(cursor.block_number, self._hash_at(cursor.block_number) or b"")
        elif cursor.block_number >= 0 and cursor.block_hash:
            canonical = self._hash_at(cursor.block_number) if cursor.block_number <= head else None
            if canonical != cursor.block_hash:
                cursor, orphan_candidates = self._rewind(cursor, finalized)
        update = WatchUpdate(head_block=head, finalized_block=finalized, cursor=cursor)
        first = cursor.block_number + 1
        last = min(head, first + self.chain.max_block_range - 1)
        last_hash = self._hash_at(last) if first <= last else None
        if last_hash is not None:  # None: the head moved back meanwhile; the next poll sees the reorg
            update.observed = self._scan(first, last)
            cursor = Cursor(last, last_hash)
        if cursor.block_hash and cursor != self.cursors.load_cursor(self.domain):
            self.cursors.save_cursor(self.domain, cursor)
        self._cursor = update.cursor = cursor
        seen_again = {observed.id for observed in update.observed}
        update.orphaned_ids = [i for i in orphan_candidates if i not in seen_again]
        self._forget_final(finalized)
        if self.metrics is not None:
            self.metrics.set_chain_progress(self.chain.name, head, finalized, cursor.block_number)
        return update

    def _load_cursor(self, finalized: int) -> Cursor:
        if self._cursor is not None:
            return self._cursor
        stored = self.cursors.load_cursor(self.domain)
        start = Cursor(self.chain.start_block - 1, b"")
        if stored is None or stored.block_number < start.block_number:
            cursor = start
        elif stored.block_number > finalized:
            # Back-fill: re-scan the non-final blocks so a reorg of them can be reported.
            if self._hash_at(stored.block_number) != stored.block_hash:
                log.warning(
                    "source chain reorganised while the watcher was down",
                    extra={"domain": self.domain, "block": stored.block_number},
                )
                self._count_reorg()
            anchor = max(finalized, start.block_number)
            cursor = Cursor(anchor, self._hash_at(anchor) or b"") if anchor >= 0 else start
        else:
            cursor = stored
        self._cursor = cursor
        return cursor

    def _rewind(self, cursor: Cursor, finalized: int) -> tuple[Cursor, list[bytes]]:
        """Walk back to the highest remembered block still on the chain; return it and the orphans."""
        self._count_reorg()
        common = None
        for number in sorted(self._seen, reverse=True):
            if number <= finalized:
                break
            if self._hash_at(number) == self._seen[number].block_hash:
                common = number
                break
        if common is None:
            # Nothing remembered survived: go back to the finalized block, which cannot move.
            common = min(finalized, cursor.block_number)
            if cursor.block_number <= finalized:
                log.error(
                    "a block the watcher took as final was reorganised away (alert)",
                    extra={"domain": self.domain, "block": cursor.block_number, "finalized": finalized},
                )
        orphaned = [i for number, seen in sorted(self._seen.items()) if number > common for i in seen.ids]
        for number in [n for n in self._seen if n > common]:
            del self._seen[number]
        rewound = Cursor(common, self._hash_at(common) or b"")
        log.warning(
            "source chain reorganisation",
            extra={
                "domain": self.domain,
                "from_block": cursor.block_number,
                "to_block": common,
                "orphan_candidates": len(orphaned),
            },
        )
        return rewound, orphaned

    def _scan(self, first: int, last: int) -> list[ObservedMessage]:
        logs = self.source.logs(self.gateway, DISPATCH_TOPIC, first, last)
        gateway = bytes.fromhex(self.gateway[2:])
        leaves: list[tuple[RawLog, ObservedMessage | None]] = []
        for entry in logs:
            if entry.address != gateway or not entry.topics or entry.topics[0] != DISPATCH_TOPIC:
                self._skip(entry, "another address or event")  # not what was asked for
                continue
            if len(entry.topics) < 2:
                self._skip(entry, "no id topic")
                continue
            leaves.append((entry, leaf_of_dispatch(entry, self.domain)))
        observed = []
        for position, (entry, leaf) in enumerate(leaves):
            if leaf is None:
                leaf = self._place(entry, position, leaves)
                if leaf is None:
                    self._skip(entry, "undecodable and unplaceable")
                    continue
            if leaf.is_malformed:
                log.error(
                    "Dispatch log whose message does not decode: recorded as a malformed leaf",
                    extra={"domain": self.domain, "id": leaf.id.hex(), "reason": leaf.malformed_reason},
                )
            observed.append(leaf)
            seen = self._seen.setdefault(entry.block_number, _SeenBlock(entry.block_hash))
            if seen.block_hash != entry.block_hash:  # logs of a newer fork than remembered: start over
                self._seen[entry.block_number] = seen = _SeenBlock(entry.block_hash)
            seen.ids.append(leaf.id)
        return observed

    def _place(
        self, entry: RawLog, position: int, leaves: list[tuple[RawLog, ObservedMessage | None]]
    ) -> ObservedMessage | None:
        """A leaf for a Dispatch log with no readable nonce, placed by its neighbours in the scan.

        Leaf index == nonce, and Dispatch logs come in leaf order, so the nonce is the previous
        placed leaf's plus the distance to it (or the next one's minus it).
        """
        for step in (-1, 1):
            other = position + step
            while 0 <= other < len(leaves):
                neighbour = leaves[other][1]
                if neighbour is not None:
                    nonce = neighbour.message.nonce - step * abs(other - position)
                    if 0 <= nonce <= _UINT32_MAX:
                        return malformed_leaf(entry, self.domain, nonce, "Dispatch data does not decode")
                    return None
                other += step
        return None

    def _skip(self, entry: RawLog, reason: str) -> None:
        log.error(
            "log ignored",
            extra={"domain": self.domain, "reason": reason, "transaction": entry.transaction_hash.hex()},
        )
        if self.metrics is not None:
            self.metrics.watcher_skipped_logs.labels(self.chain.name, reason).inc()

    def _forget_final(self, finalized: int) -> None:
        for number in [n for n in self._seen if n <= finalized]:
            del self._seen[number]

    def _count_reorg(self) -> None:
        if self.metrics is not None:
            self.metrics.reorgs.labels(self.chain.name).inc()


def malformed_leaf(
    entry: RawLog, domain: int, nonce: int, reason: str, encoded: bytes = b""
) -> ObservedMessage:
    """The leaf of a Dispatch log whose message does not decode, with what could be read of it.

    The stand-in message carries the nonce, this origin, and the destination, sender and recipient
    from the message header if it has one (else the destination topic); its body is empty.
    """
    destination = int.from_bytes(entry.topics[2], "big") if len(entry.topics) > 2 else 0
    stand_in = compute_stand_in(encoded, nonce, domain, destination)
    return ObservedMessage(
        message=stand_in,
        block_number=entry.block_number,
        block_hash=entry.block_hash,
        transaction_hash=entry.transaction_hash,
        log_index=entry.log_index,
        malformed_reason=reason[:500],
        leaf_id=entry.topics[1],
    )


def leaf_of_dispatch(entry: RawLog, domain: int) -> ObservedMessage | None:
    """The leaf of one Dispatch log (topic1 is its id), or None if its nonce cannot be read.

    A message that decodes, hashes to the id and agrees with the log (nonce, origin, destination)
    is a normal observation; anything else is a malformed leaf under the log's id, explained.
    """
    try:
        nonce, encoded = decode_dispatch_data(entry.data)
    except InvalidProof:
        return None
    leaf_id = entry.topics[1]
    if keccak256(encoded) != leaf_id:
        return malformed_leaf(
            entry, domain, nonce, "the log's id is not the keccak256 of its message", encoded
        )
    try:
        message = Message.decode(encoded)
    except InvalidProof as error:
        return malformed_leaf(entry, domain, nonce, f"{error.reason}: {error}", encoded)
    destination = int.from_bytes(entry.topics[2], "big") if len(entry.topics) > 2 else message.destination
    for name, found, expected in (
        ("nonce", message.nonce, nonce),
        ("origin", message.origin, domain),
        ("destination", message.destination, destination),
    ):
        if found != expected:
            return malformed_leaf(
                entry, domain, nonce, f"message {name} {found} is not the log's {expected}", encoded
            )
    return ObservedMessage(
        message=message,
        block_number=entry.block_number,
        block_hash=entry.block_hash,
        transaction_hash=entry.transaction_hash,
        log_index=entry.log_index,
    )
