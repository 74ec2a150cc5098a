"""What the relayer offers dApps and operators, in domain types: the core of `RelayService`.

Message status and listings straight from the store, change subscriptions for watch streams
(bounded per subscriber: a stuck client loses its stream, never the relayer's memory), operator
retries of PARKED (or, forced, REJECTED) messages, and the lag of every source chain. The gRPC
servicer (`relay.rpc.relay_service`) converts these to and from the wire.
"""

from __future__ import annotations

import hmac
import logging
import queue
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from relay.lifecycle import MessageState, StaleState
from relay.relayer.state import SourceState
from relay.store.base import MessageRecord, Store, Transition

log = logging.getLogger("relay.relayer")

S = MessageState


@dataclass(frozen=True)
class ChainStatus:
    """A source chain's progress as the relayer sees it."""

    domain: int
    name: str
    head: int
    finalized: int
    cursor: int
    lag_blocks: int
    lag_seconds: float


class Subscriber:
    """One watch stream's inbox of changed ids; an overflow (a stuck client) ends the stream."""

    CAPACITY = 10_000

    def __init__(self, ids: frozenset[bytes]) -> None:
        self.ids = ids
        self.inbox: queue.Queue[bytes | None] = queue.Queue(self.CAPACITY)
        self.overflowed = False

    def offer(self, ids: Sequence[bytes]) -> None:
        """Queue the ids this subscriber asked for (all when it named none).

        No ids at all is the store saying changes may have been missed (`Store.add_listener`): a
        stream watching given ids re-reads each of them; one watching everything ends as if it had
        overflowed, and its client watches again from the current state."""
        if not ids:
            if not self.ids:
                self.overflowed = True
                return
            ids = sorted(self.ids)
        for message_id in ids:
            if self.ids and message_id not in self.ids:
                continue
            try:
                self.inbox.put_nowait(message_id)
            except queue.Full:
                self.overflowed = True
                return

    def close(self) -> None:
        """Tell the stream to end (a `None` in its inbox)."""
        try:
            self.inbox.put_nowait(None)
        except queue.Full:
            self.overflowed = True


class Subscriptions:
    """The set of live subscribers, fed by the store's state-change listener."""

    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        """How many subscribers are live."""
        with self._lock:
            return len(self._subscribers)

    def subscribe(self, ids: Sequence[bytes] = ()) -> Subscriber:
        """A bounded queue of changed message ids (all, or only `ids`) until `unsubscribe`."""
        subscriber = Subscriber(frozenset(ids))
        with self._lock:
            self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop feeding `subscriber`."""
        with self._lock:
            self._subscribers.discard(subscriber)

    def publish(self, ids: Sequence[bytes]) -> None:
        """Offer changed ids to every subscriber (the store's listener)."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.offer(ids)

    def close_all(self) -> None:
        """End every stream (shutdown)."""
        with self._lock:
            for subscriber in self._subscribers:
                subscriber.close()


def check_token(given: str, expected: str | None) -> bool:
    """Whether `given` is the operator token (constant-time; False if none is configured)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def retry_message(store: Store, message_id: bytes, now: float, *, force: bool = False) -> MessageRecord:
    """Move a PARKED message (or, with `force`, a REJECTED one) back to be tried again.

    PARKED with a verified proof goes back to VERIFIED (attempts reset); otherwise to FINAL,
    which attests and verifies it again from scratch. Raises `LookupError` if unknown,
    `StaleState` if the message is in another state.
    """
    record = store.get(message_id)
    if record is None:
        raise LookupError("unknown message")
    reset: dict[str, object] = {"attempts": 0, "next_attempt_at": 0.0}
    if record.state is S.PARKED and record.checkpoint_id is not None and record.branch:
        target = S.VERIFIED
    elif record.state is S.PARKED or (record.state is S.REJECTED and force):
        target = S.FINAL
        reset.update(checkpoint_id=None, branch=())
    else:
        raise StaleState(
            "only PARKED messages (or REJECTED with force) can be retried",
            id=message_id,
            state=record.state.name,
            force=force,
        )
    store.apply_transition(Transition(message_id, record.state, target, reset), now)
    log.info(
        "operator retry",
        extra={
            "message_id": message_id,
            "from": record.state.value,
            "to": target.value,
            "origin": record.message.origin,
            "destination": record.message.destination,
        },
    )
    updated = store.get(message_id)
    if updated is None:  # pragma: no cover - the row was just updated
        raise LookupError("unknown message")
    return updated


def compute_chain_statuses(sources: Mapping[int, SourceState], now: float) -> list[ChainStatus]:
    """Head, finalized block, cursor and lag of every source chain."""
    statuses = []
    for source in sources.values():
        position = source.cursor_block()
        statuses.append(
            ChainStatus(
                domain=source.domain,
                name=source.name,
                head=source.head,
                finalized=source.finalized,
                cursor=position,
                lag_blocks=max(0, source.finalized - position),
                lag_seconds=(now - source.behind_since) if source.behind_since else 0.0,
            )
        )
    return statuses
