"""The relayer's `/readyz` verdict, from the runtime state the stages keep up to date.

Ready when the relayer's own gRPC server answers a loopback health call and can open a stream
(`relay.health.GrpcServingProbe`, when served), every source was polled recently, its watcher is within the allowed lag of the finalized
block, the attestor weight that answered (as last measured) reaches the threshold, and every
submitter answered recently.
"""

from __future__ import annotations

from collections.abc import Iterable

from relay.errors import RelayError
from relay.relayer.common import Clock
from relay.relayer.config import RelayerConfig
from relay.relayer.state import DestinationState, SourceState
from relay.store.base import Store


class StoreProbe:
    """Whether the store answers (one cheap read, its verdict kept `cache_for` seconds), so a
    replica that lost its database is not ready while it cannot work."""

    def __init__(self, store: Store, clock: Clock, cache_for: float = 2.0) -> None:
        self._store = store
        self._clock = clock
        self._cache_for = cache_for
        self._checked_at = float("-inf")
        self._verdict: tuple[bool, str] = (True, "")

    def check(self) -> tuple[bool, str]:
        """(answers, reason)."""
        now = self._clock()
        if now - self._checked_at >= self._cache_for:
            try:
                self._store.leases("replica/")
                self._verdict = (True, "")
            except RelayError as error:
                self._verdict = (False, f"store unavailable: {error.reason}")
            self._checked_at = now
        return self._verdict


def compute_readiness(
    config: RelayerConfig,
    sources: Iterable[SourceState],
    destinations: Iterable[DestinationState],
    now: float,
    grpc_serving: tuple[bool, str] | None = None,
    store: tuple[bool, str] | None = None,
) -> tuple[bool, str]:
    """(ready, reason) at time `now`; the reason names the first thing that is not ready.

    `grpc_serving` is the verdict of the loopback probe of RelayService's server (None: not served);
    `store` that of the `StoreProbe` (None: not checked).
    """
    if grpc_serving is not None and not grpc_serving[0]:
        return False, grpc_serving[1]
    if store is not None and not store[0]:
        return False, store[1]
    sources = list(sources)
    for source in sources:
        if not source.last_poll_at:
            return False, f"{source.name}: not polled yet"
        if now - source.last_poll_at > config.ready_max_poll_age:
            return False, f"{source.name}: last successful poll {now - source.last_poll_at:.0f} s ago"
        lag = source.finalized - source.cursor_block()
        if lag > config.ready_max_lag_blocks:
            return False, f"{source.name}: watcher {lag} blocks behind the finalized block"
        weight = source.reachable_weight
        if weight is not None and weight < source.committee.threshold:
            return False, (
                f"{source.name}: attestor quorum unreachable "
                f"({weight} of {source.committee.threshold} weight answered)"
            )
    for destination in destinations:
        if now - destination.answered_at > config.ready_max_poll_age:
            return False, f"submitter of domain {destination.domain} not answering"
    return True, f"{len(sources)} sources synced, attestors and submitters answering"
