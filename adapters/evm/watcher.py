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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError

from adapters.evm.config import EvmCompatibleChainConfig
from adapters.evm.rpc import DISPATCH_TOPIC, EvmEndpoint, checksum_address, endpoints_for
from relay.chains import Cursor, CursorStore, ObservedMessage, WatchUpdate
from relay.errors import MalformedEncoding, RpcUnavailable
from relay.metrics import RelayMetrics
from relay.verify.message import Message

log = logging.getLogger(__name__)


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
        self._endpoints = endpoints or endpoints_for(chain, metrics)
        self._active = 0
        self._cursor: Cursor | None = None
        self._started = False
        # Non-final blocks scanned, by number: what a reorg below them would orphan.
        self._seen: dict[int, _SeenBlock] = {}

    # --- endpoint failover --------------------------------------------------------------------

    @property
    def endpoint(self) -> EvmEndpoint:
        """The endpoint in use; another one takes over after an `RpcUnavailable`."""
        return self._endpoints[self._active]

    def _fail_over(self) -> None:
        self._active = (self._active + 1) % len(self._endpoints)

    # --- chain view ---------------------------------------------------------------------------

    def finalized_block(self, head: int) -> int:
        """The highest final block: by the `finalized` tag, or `confirmations` below `head`."""
        if self.chain.confirmations > 0:
            return max(head - self.chain.confirmations, 0)
        block = self.endpoint.block("finalized")
        return int(block["number"]) if block is not None else 0

    def _hash_at(self, number: int) -> bytes | None:
        block = self.endpoint.block(number)
        return bytes(block["hash"]) if block is not None else None

    def block_hash(self, number: int) -> bytes | None:
        """The canonical chain's block hash at `number` now (None past the head).

        The relayer asks it to settle a conflicting observation after a restart: a stored,
        not-yet-final message whose block is no longer canonical was orphaned while it was down.
        """
        return self._hash_at(number)

    # --- the poll -----------------------------------------------------------------------------

    def poll(self) -> WatchUpdate:
        """Scan from the cursor towards the head (bounded range), persist the cursor, report."""
        # A failed poll leaves no trace: the cursor and the remembered blocks (and so the orphans
        # a reorg produced) are exactly as before, and the next poll starts over.
        cursor = self._cursor
        seen = {number: _SeenBlock(block.block_hash, list(block.ids)) for number, block in self._seen.items()}
        try:
            return self._poll()
        except BaseException as error:
            self._cursor, self._seen = cursor, seen
            if isinstance(error, RpcUnavailable):
                self._fail_over()
            raise

    def _poll(self) -> WatchUpdate:
        head = self.endpoint.block_number()
        finalized = min(self.finalized_block(head), head)
        cursor = self._load_cursor(finalized)
        orphan_candidates: list[bytes] = []
        if cursor.block_number >= 0 and cursor.block_hash:
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
        seen_again = {observed.message.id for observed in update.observed}
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
        logs = self.endpoint.read_chain(
            "eth_getLogs",
            lambda: self.endpoint.web3.eth.get_logs(
                {
                    "address": self.gateway,
                    "topics": ["0x" + DISPATCH_TOPIC.hex()],
                    "fromBlock": first,
                    "toBlock": last,
                }
            ),
        )
        observed = []
        for entry in logs:
            if entry.get("removed"):
                continue
            message = decode_dispatch(entry)
            if message is None:
                continue
            number = int(entry["blockNumber"])
            block_hash = bytes(entry["blockHash"])
            observed.append(
                ObservedMessage(
                    message=message,
                    block_number=number,
                    block_hash=block_hash,
                    transaction_hash=bytes(entry["transactionHash"]),
                    log_index=int(entry["logIndex"]),
                )
            )
            seen = self._seen.setdefault(number, _SeenBlock(block_hash))
            if seen.block_hash != block_hash:  # logs of a newer fork than remembered: start over
                self._seen[number] = seen = _SeenBlock(block_hash)
            seen.ids.append(message.id)
        return observed

    def _forget_final(self, finalized: int) -> None:
        for number in [n for n in self._seen if n <= finalized]:
            del self._seen[number]

    def _count_reorg(self) -> None:
        if self.metrics is not None:
            self.metrics.reorgs.labels(self.chain.name).inc()


def decode_dispatch(entry: Any) -> Message | None:
    """The message of one Dispatch log, or None (logged) if it does not decode or match its topic."""
    try:
        _nonce, encoded = abi_decode(["uint32", "bytes"], bytes(entry["data"]))
        message = Message.decode(encoded)
    except (MalformedEncoding, DecodingError, ValueError, TypeError) as error:
        log.error(
            "undecodable Dispatch log",
            extra={"transaction": bytes(entry["transactionHash"]).hex(), "error": str(error)},
        )
        return None
    topics = entry["topics"]
    if len(topics) > 1 and bytes(topics[1]) != message.id:
        log.error("Dispatch log id does not match its message", extra={"id": message.id.hex()})
        return None
    return message
