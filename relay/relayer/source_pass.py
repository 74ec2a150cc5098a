"""One pass over a source: the committees, then ingest, attestation and proving while this replica
holds the source's lease (docs/adr/0007-replicas-leases-fencing.md).

The lease is taken or renewed before each stage and passed to every write the stage makes; a write
refused with `LeaseLost` (another replica took the origin over while this one was slow) ends the
pass, counted in `relay_fenced_writes_total{stage}`. Without the lease the pass only follows: the
committees in memory, the origin's tree from the store (the holder's inserts), and the attestor
quorum for readiness. A lease taken (back) after a pass without it first restarts the watcher from
the stored cursor and rebuilds the tree, so nothing the replica saw before it lost the lease is
written on top of the previous holder's work.
"""

from __future__ import annotations

import logging

from relay.errors import RelayError
from relay.lifecycle import LeaseLost
from relay.relayer.common import Clock
from relay.relayer.ingest import WatcherFactory
from relay.relayer.state import SourceState
from relay.relayer.wiring import Stages
from relay.store.base import Lease

log = logging.getLogger("relay.relayer")


class SourcePass:
    """Runs one source's pass for this replica (see the module docstring)."""

    def __init__(self, stages: Stages, watchers: WatcherFactory, clock: Clock) -> None:
        self._stages = stages
        self._replica = stages.replica
        self._watchers = watchers
        self._clock = clock

    def run(self, source: SourceState) -> bool:
        """One pass over `source`; True if some message became VERIFIED."""
        stages = self._stages
        if not self._replica.renew_registration():
            return False  # another process runs under this replica id: work no more
        lease = self.hold(source)
        if source.config.is_light_client:
            return self.run_light_client(source, lease)
        try:
            stages.committees.follow(source, lease=lease, holding=lease is not None)
        except LeaseLost as error:
            self._replica.fenced(source, "committees", error)
            lease = None
        except RelayError as error:
            log.warning("committee sync failed", extra={"origin": source.domain, "error": str(error)})
        if lease is None:
            self.follow(source)
            return False
        stage = "ingest"
        try:
            stages.ingest.poll(source, lease)
            stage = "attest"
            if (lease := self.hold(source)) is None:
                return False
            stages.attestations.collect(source, lease)
            stage = "prove"
            if (lease := self.hold(source)) is None:
                return False
            return stages.prover.verify_attested(source, lease)
        except LeaseLost as error:
            self._replica.fenced(source, stage, error)
            return False

    def run_light_client(self, source: SourceState, lease: Lease | None) -> bool:
        """A light-client origin's pass: ingest, then headers and receipt proofs (no committee)."""
        if lease is None:
            self.follow(source)
            return False
        stage = "ingest"
        try:
            self._stages.ingest.poll(source, lease)
            stage = "lightclient"
            if (lease := self.hold(source)) is None:
                return False
            return self._stages.headers.advance(source, lease)
        except LeaseLost as error:
            self._replica.fenced(source, stage, error)
            return False

    def hold(self, source: SourceState) -> Lease | None:
        """Take or renew `source`'s lease; freshly (re)acquired after a pass without it, restart the
        watcher from the stored cursor and rebuild the tree from the store first."""
        lease, acquired = self._replica.hold_source(source)
        if lease is not None and acquired and source.stale:
            source.cursors.discard()
            source.watcher = self._watchers(source.config.chain, source.cursors)
            source.tree.rebuild()
            source.stale = False
            # A rebuild of a long tree can take a good part of the lease: renew before writing.
            lease, _ = self._replica.hold_source(source)
        return lease

    def follow(self, source: SourceState) -> None:
        """A pass without the source's lease: another replica writes the origin; follow its tree
        from the store and keep the attestor quorum measured (readiness, gauges)."""
        source.stale = True
        self._stages.metrics.forget_chain_progress(source.name)
        source.tree.extend()
        source.last_poll_at = self._clock()
        if not source.config.is_light_client:
            self._stages.attestations.probe_quorum(source)
