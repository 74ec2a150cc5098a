"""Every retry the relay performs, as named policies in one place.

Two kinds, on purpose separate:

- **In-call policies** (tenacity): a short burst of retries around one idempotent remote read,
  inside one pass of a loop. They retry only `relay.errors.TransientError` (so a forged proof or a
  bad request is never retried), then re-raise the last error unchanged for the caller to
  classify. Each policy's schedule is in its docstring and pinned by tests/unit/test_retry.py.
- **The per-message backoff** (`BackoffSchedule`): how long a message waits in RETRYING after its
  n-th failed delivery, and when it is PARKED instead. It is a pure function of the attempt count
  (persisted in the store), so retry counts survive restarts and nothing is queued in memory.

Deliveries themselves are never retried in-call: a transaction costs fees, and the destination's
replay protection plus the submitter's "already delivered?" check make the per-message schedule
the right place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from relay.errors import ConfigurationError, TransientError

T = TypeVar("T")


@dataclass(frozen=True)
class CallPolicy:
    """A named in-call retry policy: attempts, then exponential waits `initial * 2**k`, capped."""

    name: str
    attempts: int
    initial: float
    maximum: float

    def waits(self) -> list[float]:
        """The waits between attempts (len = attempts - 1), as tenacity will sleep them."""
        wait = wait_exponential(multiplier=self.initial, min=self.initial, max=self.maximum, exp_base=2)
        return [float(wait(_state(attempt))) for attempt in range(1, self.attempts)]

    def retrying(
        self,
        sleep: Callable[[float], None] | None = None,
        on_retry: Callable[[RetryCallState], None] | None = None,
    ) -> Retrying:
        """A tenacity `Retrying` for this policy (re-raises the last `TransientError`)."""
        extra = {} if sleep is None else {"sleep": sleep}
        return Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.initial, min=self.initial, max=self.maximum, exp_base=2),
            reraise=True,
            before_sleep=on_retry,
            **extra,  # type: ignore[arg-type]
        )

    def call(
        self,
        operation: Callable[[], T],
        sleep: Callable[[float], None] | None = None,
        on_retry: Callable[[RetryCallState], None] | None = None,
    ) -> T:
        """Run an idempotent `operation` under this policy; `on_retry` hears each retry (metrics)."""
        return self.retrying(sleep, on_retry)(operation)


def _state(attempt: int) -> RetryCallState:
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return state


ATTESTOR_READ = CallPolicy("attestor_read", attempts=2, initial=0.05, maximum=0.05)
"""`AttestationService.GetCheckpoint` (a read): 2 attempts, one wait of 0.05 s.

Kept short on purpose: an unreachable attestor is skipped for this pass (the quorum may be reached
without it) and asked again on the next one.
"""

DESTINATION_READ = CallPolicy("destination_read", attempts=3, initial=0.1, maximum=1.0)
"""`DestinationService.GetDelivered` / `GetStatus` (reads): 3 attempts, waits 0.1 s then 0.2 s."""

WATCHER_POLL = CallPolicy("watcher_poll", attempts=3, initial=0.2, maximum=2.0)
"""`SourceWatcher.poll` (reads the chain, moves only its own cursor): 3 attempts, waits 0.2 s, 0.4 s."""

SUBMITTER_READ = CallPolicy("submitter_read", attempts=5, initial=0.2, maximum=2.0)
"""Every chain read a submitter does to deliver (gas estimate, fees, nonces, receipts, delivered
flags, chain id) on `TransientError` (`RpcUnavailable`: HTTP 5xx, 429, a dropped connection, a
timeout): 5 attempts, waiting 0.2 s, 0.4 s, 0.8 s, then 1.6 s (3 s in all).

Longer than `chain_read` because a failure here costs a whole delivery attempt (and the message's
backoff) rather than one poll: it rides out a rate-limit burst or a node restart. A revert of the
gas estimate is not transient and is never retried. Sending a transaction is not a read: only the
identical signed bytes are ever sent again (same hash, so at most one of them can be mined).
"""

POLICIES: dict[str, CallPolicy] = {
    p.name: p for p in (ATTESTOR_READ, DESTINATION_READ, WATCHER_POLL, SUBMITTER_READ)
}


# --- per-message backoff ---------------------------------------------------------------------


@dataclass(frozen=True)
class BackoffSchedule:
    """The per-message delivery backoff: `base * 2**(attempt-1)` seconds, capped at `cap`.

    With the defaults (base 1 s, cap 300 s, 8 attempts) the waits after failures 1..7 are
    1, 2, 4, 8, 16, 32, 64 s (before jitter); the 8th failure parks the message. Jitter shrinks a
    delay by up to `jitter` (a fraction) so that messages failing together do not retry together;
    it is derived from the message id and attempt (deterministic, so a test can pin it), and it
    never lengthens a delay past the cap: no backoff cliff.
    """

    base: float = 1.0
    cap: float = 300.0
    max_attempts: int = 8
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.max_attempts < 1 or not 0 <= self.jitter < 1:
            raise ConfigurationError(
                "backoff needs base > 0, cap >= base, max_attempts >= 1, 0 <= jitter < 1",
                base=self.base,
                cap=self.cap,
                max_attempts=self.max_attempts,
                jitter=self.jitter,
            )

    def compute_delay(self, attempt: int, key: bytes = b"") -> float:
        """Seconds to wait after the `attempt`-th failure (attempt >= 1), jittered by `key`."""
        if attempt < 1:
            raise ValueError("attempts count from 1")
        # Cap the exponent first: 2**attempt for a large attempt count would overflow a float.
        raw = min(self.cap, self.base * 2.0 ** min(attempt - 1, 64))
        if not self.jitter or not key:
            return raw
        return raw * (1.0 - self.jitter * _unit_interval(key, attempt))

    def is_exhausted(self, attempts: int) -> bool:
        """Whether a message that has failed `attempts` times must be PARKED instead of retried."""
        return attempts >= self.max_attempts

    def delays(self, key: bytes = b"") -> list[float]:
        """The whole schedule: the wait after each failure that is still retried."""
        return [self.compute_delay(n, key) for n in range(1, self.max_attempts)]


def _unit_interval(key: bytes, attempt: int) -> float:
    """A deterministic number in [0, 1) from (key, attempt)."""
    digest = hashlib.sha256(key + attempt.to_bytes(4, "big")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64
