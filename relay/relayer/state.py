"""The relayer's runtime state per source and per destination, shared by its stages.

Everything durable lives in the store; these objects hold what is derived or only observed:
the peers' clients, the in-memory tree, the watcher's last view of the chain and the measured
reachability that readiness and the gauges report.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from relay.chains import DeliveryReader, SourceWatcher
from relay.handover import HandoverCertificate
from relay.handover_ecdsa import EcdsaHandoverCertificate
from relay.peers import AttestorClient, SubmitterClient
from relay.relayer.config import DestinationConfig, SourceConfig
from relay.relayer.ingest import DeferredCursors
from relay.relayer.tree import OriginTree
from relay.store.base import Lease
from relay.verify.ecdsa_quorum import CheckpointCommittee


@dataclass
class SourceState:
    """One source chain: its committee, gateway, watcher, attestors, tree and last observed progress."""

    config: SourceConfig
    committee: CheckpointCommittee  # BLS or ECDSA, as the origin's destination Gateways verify it
    gateway: bytes
    cursors: DeferredCursors
    watcher: SourceWatcher
    attestors: list[AttestorClient]
    tree: OriginTree
    head: int = 0
    finalized: int = 0
    behind_since: float = 0.0
    last_poll_at: float = 0.0
    last_quorum_probe_at: float = 0.0
    reachable_weight: int | None = None  # attestor weight that answered last time it was measured
    repair_requested: bool = False  # a genuine checkpoint disagreed with the tree: re-read the source
    # Every committee of this origin the relayer knows, by epoch (the trusted start, those verified
    # through hand-over certificates, and those read from a destination gateway).
    committees: dict[int, CheckpointCommittee] = field(default_factory=dict)
    # Verified, by next epoch (an ECDSA committee's are `EcdsaHandoverCertificate`s).
    handovers: dict[int, HandoverCertificate | EcdsaHandoverCertificate] = field(default_factory=dict)
    destination_epochs: dict[int, int] = field(default_factory=dict)  # each gateway's epoch, last read
    committee_sync_due: bool = True
    last_committee_sync: float = float("-inf")
    # The "source/<domain>" lease while this replica holds it (None: another replica watches the
    # origin); `stale`: the watcher and tree may lag the store (a pass ran without the lease), so
    # they are rebuilt from the stored cursor and messages before the next pass holding it.
    lease: Lease | None = None
    stale: bool = False

    def __post_init__(self) -> None:
        self.committees.setdefault(self.committee.epoch, self.committee)

    @property
    def domain(self) -> int:
        """The origin domain."""
        return self.config.chain.domain

    @property
    def name(self) -> str:
        """The chain's configured name."""
        return self.config.chain.name

    def cursor_block(self) -> int:
        """The block the watcher has processed up to (0 before the first poll)."""
        cursor = self.cursors.load_cursor(self.domain)
        return cursor.block_number if cursor is not None else 0


@dataclass
class DestinationState:
    """One destination chain, reached through its submitter."""

    config: DestinationConfig
    submitter: SubmitterClient
    reader: DeliveryReader | None = None  # the chain's own delivered flags (None: not configured)
    wake: threading.Event = field(default_factory=threading.Event)
    answered_at: float = 0.0  # when its submitter last answered (a delivery or a status probe)

    @property
    def domain(self) -> int:
        """The destination domain."""
        return self.config.domain
