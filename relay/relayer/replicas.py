"""Several relayer replicas on one store: this replica's leases (docs/adr/0007-replicas-leases-fencing.md).

- **Registration.** A replica holds the lease "replica/<id>" as `<id>:<pid>:<random>`, so a second
  live process started with the same `replica_id` is refused at open (it waits up to
  `lease_seconds` for a dead previous incarnation's lease to run out first; on SQLite, one host,
  a holder whose pid is gone is freed at once). Source leases are owned by that per-process owner
  too: a stalled previous incarnation that wakes up cannot write under its successor's fence.
  Message claims are owned by the plain replica id (each claim takes a new fence anyway).
- **Source leases.** "source/<domain>": only its holder ingests, attests and proves the origin,
  every write passing the lease (the store refuses it with `LeaseLost` once another replica took
  the lease over). `hold_source` takes or renews it before each stage; a lease this replica did not
  hold at its previous pass is reported as freshly acquired, so the caller reloads the watcher and
  the tree from the store before writing anything.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable

from relay.errors import ConfigurationError
from relay.lifecycle import LeaseLost
from relay.metrics import RelayMetrics
from relay.relayer.common import Clock
from relay.relayer.state import SourceState
from relay.store.base import Lease, Store

log = logging.getLogger("relay.relayer")

REGISTRATION_RETRY_SECONDS = 0.25  # how often open() asks again for a replica id still held


def replica_lease_name(replica_id: str) -> str:
    """The lease that makes `replica_id` unique among live processes."""
    return f"replica/{replica_id}"


def source_lease_name(domain: int) -> str:
    """The lease of origin `domain`: one replica watches, attests and proves it at a time."""
    return f"source/{domain}"


class ReplicaLeases:
    """This replica's registration and source leases on a shared store (see the module docstring)."""

    def __init__(
        self, store: Store, metrics: RelayMetrics, clock: Clock, replica_id: str, lease_seconds: float
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self.replica_id = replica_id
        self.lease_seconds = lease_seconds
        # One process: a restarted one (same id) gets a new token, so two live ones never share it.
        self.process_owner = f"{replica_id}:{os.getpid()}:{secrets.token_hex(8)}"
        self.registration: Lease | None = None
        self._lock = threading.Lock()

    # --- registration -----------------------------------------------------------------------

    def register(self, wait: Callable[[float], bool]) -> Lease:
        """Take "replica/<id>", waiting up to `lease_seconds` (+1 s) for a previous holder's lease
        to run out (`wait(seconds)` sleeps, returning True to give up early); raise
        `ConfigurationError` if a live process holds it."""
        name = replica_lease_name(self.replica_id)
        deadline = time.monotonic() + self.lease_seconds + 1.0
        while True:
            lease = self._store.acquire_lease(name, self.process_owner, self._clock(), self.lease_seconds)
            if lease is not None:
                break
            if not self._store.shared and self._release_dead_holder(name):
                continue
            if time.monotonic() >= deadline or wait(REGISTRATION_RETRY_SECONDS):
                holder = next((held.owner for held in self._store.leases(name) if held.name == name), "")
                raise ConfigurationError(
                    f"replica id {self.replica_id} is held by a live process; give each replica its own"
                    " replica_id",
                    replica_id=self.replica_id,
                    holder=holder,
                )
        with self._lock:
            self.registration = lease
        self._metrics.replica_info.labels(self.replica_id).set(1)
        log.info("replica registered", extra={"replica": self.replica_id, "fence": lease.fence})
        return lease

    def _release_dead_holder(self, name: str) -> bool:
        """On a store only one host uses (SQLite), free the lease `name` at once if the process
        that holds it is gone (killed without releasing it): its pid names no live process here. A
        shared store's holder may live on another host, so there the lease has to run out."""
        held = self._current(name)
        if held is None:
            return False
        parts = held.owner.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdecimal() or int(parts[1]) == os.getpid():
            return False
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            log.info(
                "the previous process of this replica id is gone: its registration is taken at once",
                extra={"replica": self.replica_id, "previous_owner": held.owner},
            )
            return self._store.release_lease(held, self._clock())
        except OSError:
            return False  # alive, under another user
        return False

    def renew_registration(self, *, force: bool = False) -> bool:
        """Renew "replica/<id>" if a third of its time passed (or `force`); False once another
        process took this replica id over (logged once): this process must then do no more work,
        its claims being indistinguishable from the other's."""
        with self._lock:
            held = self.registration
        if held is None:
            return False
        if not force and held.expires_at - self._clock() > self.lease_seconds * 2 / 3:
            return True
        lease = self._store.acquire_lease(held.name, self.process_owner, self._clock(), self.lease_seconds)
        if lease is None:
            log.error(
                "another process took this replica id over while this one was stalled: this one "
                "stops working; give each replica its own replica_id (alert)",
                extra={"replica": self.replica_id},
            )
            with self._lock:
                self.registration = None
            self._metrics.replica_info.labels(self.replica_id).set(0)
            return False
        with self._lock:
            self.registration = lease
        return True

    # --- source leases ------------------------------------------------------------------------

    def hold_source(self, source: SourceState) -> tuple[Lease | None, bool]:
        """Take or renew `source`'s lease: (lease or None if another replica holds it, whether it
        was acquired now rather than renewed)."""
        name = source_lease_name(source.domain)
        previous = source.lease
        before = None if previous is not None else self._current(name)
        lease = self._store.acquire_lease(name, self.process_owner, self._clock(), self.lease_seconds)
        if lease is None and not self._store.shared and self._release_dead_holder(name):
            lease = self._store.acquire_lease(name, self.process_owner, self._clock(), self.lease_seconds)
        if lease is None:
            if previous is not None:
                log.warning(
                    "source lease lost: another replica watches this origin now",
                    extra={"origin": source.domain, "replica": self.replica_id},
                )
            self._set(source, None)
            return None, False
        acquired = previous is None or previous.fence != lease.fence
        if previous is not None and acquired:
            source.stale = True  # another replica held it since this one's last pass: reload
        if acquired:
            # Fences change hands only with the owner: a new fence since our last pass, or a
            # previous owner other than us, means another replica held the lease in between.
            took_over = previous is not None or (before is not None and before.owner != self.process_owner)
            if took_over:
                self._metrics.lease_takeovers.labels(name).inc()
            log.log(
                logging.WARNING if took_over else logging.INFO,
                "source lease taken over from another replica" if took_over else "source lease acquired",
                extra={
                    "origin": source.domain,
                    "replica": self.replica_id,
                    "fence": lease.fence,
                    "previous_owner": before.owner if before is not None else None,
                },
            )
        self._set(source, lease)
        return lease, acquired

    def fenced(self, source: SourceState, stage: str, error: LeaseLost) -> None:
        """A source-stage write was refused (`LeaseLost`): count it and forget the lease."""
        self._metrics.fenced_writes.labels(stage).inc()
        log.warning(
            "source write fenced: another replica took the origin over",
            extra={"origin": source.domain, "stage": stage, "replica": self.replica_id, "error": str(error)},
        )
        self._set(source, None)

    def release(self, sources: Iterable[SourceState]) -> None:
        """Give up every lease this replica holds (at stop), so another takes over at once."""
        for source in sources:
            if source.lease is not None:
                self._release(source.lease)
                self._set(source, None)
        with self._lock:
            registration, self.registration = self.registration, None
        if registration is not None:
            self._release(registration)

    def _release(self, lease: Lease) -> None:
        try:
            self._store.release_lease(lease, self._clock())
        except Exception:  # noqa: BLE001 - stopping: the lease simply expires
            log.warning("could not release a lease; it expires by itself", extra={"lease": lease.name})

    def _current(self, name: str) -> Lease | None:
        return next((lease for lease in self._store.leases(name) if lease.name == name), None)

    def _set(self, source: SourceState, lease: Lease | None) -> None:
        if lease is None:
            source.stale = True
        source.lease = lease
        self._metrics.lease_held.labels(source_lease_name(source.domain)).set(0 if lease is None else 1)
