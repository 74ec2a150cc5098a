"""The relayer role: carries messages from source gateways to destination submitters.

It holds no chain keys and trusts nobody it talks to. This module is the composition root: it
builds the per-chain state and wires the stages, each a small module with one job, which talk only
through the store and typed `Transition`s (docs/adr/0001-relayer-stages.md):

| stage | module | moves messages |
|---|---|---|
| ingest (watch, reorgs) | `ingest` | -> OBSERVED -> FINAL, orphans removed |
| committees | `committees` | (the committee of each origin, followed from hand-overs and the destination gateways); messages attested under an older epoch -> FINAL |
| tree | `tree` | (the in-memory Merkle tree of each origin, synced from the store) |
| attestation collection | `attest` | FINAL -> ATTESTED |
| proving | `prove` | ATTESTED -> VERIFIED or REJECTED |
| light-client origins (no committee) | `lightclient` | FINAL -> WAITING_FOR_HEADER -> HEADER_SUBMITTED -> VERIFIED (receipt proof) or REJECTED |
| delivery (per destination) | `deliver` (+ `policy`, `costs`, `held` re-checks, `deliver_receipts` for light-client origins) | VERIFIED, RETRYING -> SUBMITTED or UNPAID; UNPAID -> VERIFIED |
| outcomes | `outcomes` | SUBMITTED -> DELIVERED, PARKED, REJECTED or RETRYING |
| readiness, gauges | `readiness`, `gauges` | (observe only) |
| service | `service` (+ `relay.rpc.relay_service`) | operator retry: PARKED -> VERIFIED or FINAL |

`wiring` builds the stages and holds the factories of every outside dependency (watchers, peer
clients, chain readers); `sizing` is what a message costs a delivery in bytes and gas.

Each source has its own thread for ingest, attestation and proving, and each destination its own
delivery thread, so a slow chain (or a slow RPC of one) does not stall the others. Attestors and submitters are
reached through the `relay.peers` Protocols; their gRPC clients live in `relay.rpc.clients`.
Replicas may share one store: leases and claims split the work (`replicas`, `source_pass`, docs/adr/0007).
`RelayService` is served like every role (`relay.rpc.server`), and with `metrics_listen` set the
same HTTP server as `/metrics` serves a status page (`/`, polling `/api/status`; see `relay.status`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from typing import Any

from prometheus_client import CollectorRegistry

from relay.errors import ConfigurationError, InvalidProof, RelayError
from relay.handover import HandoverCertificate
from relay.handover_ecdsa import EcdsaHandoverCertificate
from relay.health import GrpcServingProbe
from relay.metrics import RelayMetrics
from relay.relayer.committees import HandoverSubmission
from relay.relayer.common import Clock
from relay.relayer.config import (
    BatchingConfig,
    DestinationConfig,
    RelayerConfig,
    RetryConfig,
    SourceConfig,
)
from relay.relayer.costs import RouteCost
from relay.relayer.ingest import DeferredCursors, WatcherFactory
from relay.relayer.lightclient import inert_committee
from relay.relayer.readiness import StoreProbe, compute_readiness
from relay.relayer.service import (
    ChainStatus,
    Subscriber,
    Subscriptions,
    check_token,
    compute_chain_statuses,
    retry_message,
)
from relay.relayer.source_pass import SourcePass
from relay.relayer.state import DestinationState, SourceState
from relay.relayer.tree import OriginTree
from relay.relayer.wiring import (
    AttestorFactory,
    CommitteeReaderFactory,
    DeliveryReaderFactory,
    Factories,
    GasMarketReaderFactory,
    LightClientOriginFactory,
    LightClientReaderFactory,
    PaymentReaderFactory,
    Stages,
    SubmitterFactory,
)
from relay.rpc.limits import CallLimits
from relay.rpc.server import GrpcServer, split_address, start_grpc_server
from relay.rpc.tls import first_subject_name, open_channel
from relay.store import open_store
from relay.store.base import MessageRecord, Store
from relay.verify.bls import BlsBackend, get_backend

__all__ = [
    "BatchingConfig",
    "DestinationConfig",
    "Relayer",
    "RelayerConfig",
    "RetryConfig",
    "SourceConfig",
]

log = logging.getLogger("relay.relayer")

STRANDED_CHECK_SECONDS = 15.0  # at most this (and lease_seconds / 4): SUBMITTED with an expired claim?
FOUND_DELIVERED_CHECK_SECONDS = 30.0  # how often PARKED / RETRYING messages are looked up on-chain
ATTESTOR_POOL_SIZE = 16


class Relayer:
    """The relayer process: the stages, their threads and the `RelayService` server.

    `Relayer(config).start()` opens the store, rebuilds the trees, starts serving and looping;
    `.port` is the bound RelayService port; `.stop()` shuts down cleanly. Tests drive the pipeline
    synchronously with `open()` + `run_once()` instead of `start()`. Peers are gRPC clients unless
    `attestor_factory` / `submitter_factory` supply others (address -> client); a destination's
    `chain:` section is read through the chain registry unless `delivery_reader_factory` supplies
    another reader (chain config -> `DeliveryReader`); likewise the gas policy's readers of a
    source's payments (`payment_reader_factory`) and a destination's gas market
    (`gas_market_reader_factory`); and a light-client origin's adapter (`light_client_origin_factory`:
    source chain config -> `LightClientOrigin`) and a destination's light client of an origin
    (`light_client_reader_factory`: destination chain config, origin -> `LightClientReader`).
    """

    def __init__(
        self,
        config: RelayerConfig,
        *,
        store: Store | None = None,
        watcher_factory: WatcherFactory | None = None,
        clock: Clock = time.time,
        registry: CollectorRegistry | None = None,
        attestor_factory: AttestorFactory | None = None,
        submitter_factory: SubmitterFactory | None = None,
        delivery_reader_factory: DeliveryReaderFactory | None = None,
        payment_reader_factory: PaymentReaderFactory | None = None,
        gas_market_reader_factory: GasMarketReaderFactory | None = None,
        committee_reader_factory: CommitteeReaderFactory | None = None,
        light_client_origin_factory: LightClientOriginFactory | None = None,
        light_client_reader_factory: LightClientReaderFactory | None = None,
    ) -> None:
        self.config = config
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = RelayMetrics(self.registry)
        self._store = store
        self._owns_store = store is None
        self.factories = Factories.with_defaults(
            self.metrics,
            tls=config.tls,
            watcher=watcher_factory,
            attestor=attestor_factory,
            submitter=submitter_factory,
            delivery_reader=delivery_reader_factory,
            payment_reader=payment_reader_factory,
            gas_market_reader=gas_market_reader_factory,
            committee_reader=committee_reader_factory,
            light_client_origin=light_client_origin_factory,
            light_client_reader=light_client_reader_factory,
        )
        self._clock = clock
        self._operator_token = config.operator_token.reveal() if config.operator_token else None
        self.sources: dict[int, SourceState] = {}
        self.destinations: dict[int, DestinationState] = {}
        self.subscriptions = Subscriptions()
        self._stop = threading.Event()
        self._gauges_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._grpc: GrpcServer | None = None
        self._serving_probe: GrpcServingProbe | None = None
        self._store_probe: StoreProbe | None = None
        self._http: Any = None
        self._pool: futures.ThreadPoolExecutor | None = None
        self._stages: Stages | None = None

    # --- lifetime ---------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The open store."""
        if self._store is None:
            raise RuntimeError("the relayer is not open")
        return self._store

    @property
    def stages(self) -> Stages:
        """The wired stages (after `open()`)."""
        if self._stages is None:
            raise RuntimeError("the relayer is not open")
        return self._stages

    @property
    def grpc_server(self) -> GrpcServer | None:
        """The started RelayService server (None until `serve()`), for embedding and tests."""
        return self._grpc

    @property
    def port(self) -> int:
        """The port RelayService is bound to (0 until served)."""
        return self._grpc.port if self._grpc is not None else 0

    @property
    def address(self) -> str:
        """host:port of RelayService."""
        host = self.config.listen.rsplit(":", 1)[0] or "127.0.0.1"
        return f"{host}:{self.port}"

    @property
    def operator_port(self) -> int:
        """The port of the operator listener (0 until served, or without `operator_listen`)."""
        return self._grpc.operator_port if self._grpc is not None else 0

    @property
    def operator_address(self) -> str:
        """host:port of the operator listener ("" without `operator_listen`)."""
        if self.config.operator_listen is None:
            return ""
        host = self.config.operator_listen.rsplit(":", 1)[0] or "127.0.0.1"
        return f"{host}:{self.operator_port}"

    def open(self) -> Relayer:
        """Open the store, build committees, watchers and trees, wire the stages, recover deliveries."""
        if self._stages is not None:
            return self
        backend = get_backend(self.config.bls_backend)
        if self._store is None:
            self._store = open_store(self.config.store, password=self.config.store_password())
        store = self._store
        store.add_listener(self.subscriptions.publish)
        self._pool = futures.ThreadPoolExecutor(
            max_workers=ATTESTOR_POOL_SIZE, thread_name_prefix="relayer-attestor"
        )
        for source_config in self.config.sources:
            source = self._open_source(source_config, store, backend)
            self.sources[source.domain] = source
            source.tree.rebuild()
        for destination_config in self.config.destinations:
            reader = None
            if destination_config.chain is not None:
                reader = self.factories.delivery_reader(destination_config.chain)
            else:
                log.warning(
                    "deliveries to this destination are not confirmed independently: configure its "
                    "chain section so the relayer reads the gateway's delivered flags itself",
                    extra={"destination": destination_config.domain},
                )
            self.destinations[destination_config.domain] = DestinationState(
                destination_config, self.factories.submitter(destination_config.submitter), reader
            )
        stages = Stages(
            self.config,
            store,
            self.metrics,
            self.now,
            backend,
            self._pool,
            self.sources,
            self.destinations,
            self.factories,
            self._interrupted,
        )
        stages.replica.register(self._stop.wait)  # refused if this replica id runs elsewhere
        for source in self.sources.values():
            if not source.config.is_light_client:  # a light-client origin has no committee to follow
                stages.committees.restore(source)
        stages.outcomes.recover_submitted(expired_only=store.shared)  # shared: live claims are others'

        self._stages = stages  # open only once recovery succeeded: a failed open() is retried whole
        log.info(
            "relayer opened",
            extra={
                "store": self.config.store if self._owns_store else "injected",
                "sources": sorted(self.sources),
                "destinations": sorted(self.destinations),
                "bls_backend": backend.name,
                "replica": self.config.replica_id,
            },
        )
        return self

    def _open_source(self, config: SourceConfig, store: Store, backend: BlsBackend) -> SourceState:
        chain = config.chain
        try:
            committee = (
                inert_committee() if config.is_light_client else config.trusted_committee().build(backend)
            )
        except InvalidProof as error:
            raise ConfigurationError(
                f"committee of source {chain.name!r} is invalid: {error.reason}",
                domain=chain.domain,
                cause=str(error),
            ) from error
        cursors = DeferredCursors(store)
        return SourceState(
            config=config,
            committee=committee,
            gateway=chain.gateway_bytes32(),
            cursors=cursors,
            watcher=self.factories.watcher(chain, cursors),
            attestors=[self.factories.attestor(address) for address in config.attestors],
            tree=OriginTree(store, chain.domain, chain.name),
        )

    def serve(self) -> int:
        """Start the RelayService gRPC server (with health and reflection); return the bound port."""
        if self._grpc is not None:
            return self._grpc.port
        self.open()
        from relay.rpc.relay_service import SERVICE_NAME, add_relay_service

        def register(server: Any) -> None:
            add_relay_service(server, self)

        self._grpc = start_grpc_server(
            self.config.listen,
            self.metrics,
            register,
            [SERVICE_NAME],
            limits=CallLimits(streams=self.config.max_watch_streams, unary=self.config.max_unary_calls),
            thread_prefix="relayer-grpc",
            tls=self.config.tls,
            require_client_certificate=False,  # dApps and dashboards: server TLS only
            operator_listen=self.config.operator_listen,
        )
        loopback = self._loopback_address()
        # Our certificate names the service, not the loopback address we probe ourselves at.
        server_name = first_subject_name(self.config.tls) if self.config.tls is not None else None
        self._store_probe = StoreProbe(self.store, self._clock)
        self._serving_probe = GrpcServingProbe(
            loopback,
            channel=open_channel(loopback, self.config.tls, server_name=server_name),
            timeout=1.0,
            cache_for=3.0,
        )
        if self.config.metrics_listen and self._http is None:
            from relay.health import HealthServer
            from relay.status.api import render_status_json, render_status_page

            host, http_port = split_address(self.config.metrics_listen)
            self._http = HealthServer(
                self.registry,
                host,
                http_port,
                readiness=self.readiness,
                routes={
                    "/": render_status_page,
                    "/api/status": lambda: render_status_json(self),
                },
            ).start()
        log.info(
            "relay service listening",
            extra={
                "address": self.address,
                "operator_address": self.operator_address or None,
                "transport": "tls" if self.config.tls is not None else "plaintext (insecure_plaintext)",
                "metrics": f"{self._http.host}:{self._http.port}" if self._http else None,
            },
        )
        if self._http is not None:
            log.info(f"status page: {self.status_url}", extra={"url": self.status_url})
        return self._grpc.port

    def _loopback_address(self) -> str:
        host = self.config.listen.rsplit(":", 1)[0]
        if host in ("", "0.0.0.0", "[::]", "::"):
            host = "127.0.0.1"
        return f"{host}:{self.port}"

    @property
    def metrics_port(self) -> int:
        """The bound /metrics port (0 without `metrics_listen`)."""
        return int(self._http.port) if self._http is not None else 0

    @property
    def status_url(self) -> str:
        """`http://host:port/` of the status page ("" until served with `metrics_listen`).

        A wildcard bind address is shown as 127.0.0.1, the address that works from the same host.
        """
        if self._http is None:
            return ""
        host = self._http.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        return f"http://{host}:{self._http.port}/"

    def now(self) -> float:
        """The relayer's current time in unix seconds (its injected clock)."""
        return self._clock()

    def readiness(self) -> tuple[bool, str]:
        """/readyz: see `relay.relayer.readiness.compute_readiness`."""
        probe, store = self._serving_probe, self._store_probe
        return compute_readiness(
            self.config,
            list(self.sources.values()),
            list(self.destinations.values()),
            self._clock(),
            probe.check() if probe is not None else None,
            store.check() if store is not None else None,
        )

    def start(self) -> Relayer:
        """Open, serve, and run the pipeline in background threads."""
        self.open()
        self.serve()
        self._stop.clear()
        self._threads = [
            threading.Thread(
                target=self._source_loop, args=(source,), name=f"relayer-source-{source.domain}", daemon=True
            )
            for source in self.sources.values()
        ]
        for destination in self.destinations.values():
            self._threads.append(
                threading.Thread(
                    target=self._delivery_loop,
                    args=(destination,),
                    name=f"relayer-deliver-{destination.domain}",
                    daemon=True,
                )
            )
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, grace: float = 2.0) -> None:
        """Stop the loops (each finishes its current store transaction), the server, then close."""
        self.request_stop()
        for thread in self._threads:
            thread.join(timeout=max(grace, 0.1) + self.config.attestor_timeout + 1.0)
        if self._stages is not None:
            # The batches in flight end promptly: they see the stop while the loops' threads are set.
            self._stages.deliverer.close()
        self._threads = []
        self.subscriptions.close_all()
        if self._grpc is not None:
            self._grpc.stop(grace)
            self._grpc = None
        if self._serving_probe is not None:
            self._serving_probe.close()
            self._serving_probe = None
        self._store_probe = None
        if self._http is not None:
            self._http.stop()
            self._http = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for source in self.sources.values():
            for attestor in source.attestors:
                attestor.close()
        for destination in self.destinations.values():
            destination.submitter.close()
        if self._stages is not None:
            self._stages.replica.release(self.sources.values())
        if self._store is not None:
            self._store.remove_listener(self.subscriptions.publish)
            if self._owns_store:
                self._store.close()
                self._store = None
        self.sources.clear()
        self.destinations.clear()
        self._stages = None
        log.info("relayer stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until `stop()` was called (or `timeout`); True if stopped."""
        return self._stop.wait(timeout)

    def request_stop(self) -> None:
        """Ask the loops to stop (safe from a signal handler); `stop()` completes the shutdown."""
        self._stop.set()
        for destination in self.destinations.values():
            destination.wake.set()

    @property
    def stopping(self) -> bool:
        """Whether shutdown was requested."""
        return self._stop.is_set()

    def _interrupted(self) -> bool:
        # Only the background loops stop mid-pass; a synchronous `run_once` always completes.
        return self._stop.is_set() and bool(self._threads)

    # --- loops ------------------------------------------------------------------------------

    def _source_loop(self, source: SourceState) -> None:
        while not self._stop.is_set():
            if self._http is not None:
                self._http.heartbeat()
            try:
                if self.process_source(source):
                    for destination in self.destinations.values():
                        destination.wake.set()
                self._refresh_gauges()
            except Exception:
                log.exception("source pass failed", extra={"origin": source.domain, "chain": source.name})
            self._stop.wait(self.config.poll_interval)

    def _refresh_gauges(self) -> None:
        # Every source thread offers; one refresh at a time runs (the others skip, not wait).
        if self._gauges_lock.acquire(blocking=False):
            try:
                self.stages.gauges.refresh()
            finally:
                self._gauges_lock.release()

    def _delivery_loop(self, destination: DestinationState) -> None:
        interval = min(self.config.poll_interval, max(self.config.batching.max_wait, 0.05))
        checked_at = found_at = self._clock()
        stages = self.stages
        while not self._stop.is_set():
            destination.wake.clear()
            try:
                if not stages.replica.renew_registration():  # also while every source pass hangs
                    destination.wake.wait(interval)
                    continue  # another process runs under this replica id: work no more
                stages.deliverer.probe(destination, self.config.attestor_timeout)
                try:
                    stages.deliverer.deliver(destination, flush=False, wait=False)
                except Exception:  # a failed pass must not keep a dead replica's claims from requeue
                    log.exception("delivery pass failed", extra={"destination": destination.domain})
                if self._clock() - checked_at >= min(STRANDED_CHECK_SECONDS, self.config.lease_seconds / 4):
                    checked_at = self._clock()
                    stages.deliverer.requeue_stranded(destination)
                if self._clock() - found_at >= FOUND_DELIVERED_CHECK_SECONDS:
                    found_at = self._clock()
                    self.find_delivered_on_chain(destination.domain)
            except Exception:
                log.exception("delivery pass failed", extra={"destination": destination.domain})
            destination.wake.wait(interval)

    def run_once(self, *, flush: bool = True) -> None:
        """One synchronous pass of every stage; `flush` sends partial batches without waiting."""
        self.open()
        self.process_sources()
        self.process_deliveries(flush=flush)

    def process_sources(self) -> bool:
        """Ingest, attest and prove every source once, in turn; True if some message became VERIFIED."""
        progressed = False
        for source in list(self.sources.values()):
            if self._interrupted():
                break
            progressed = self.process_source(source) or progressed
        self._refresh_gauges()
        return progressed

    def process_source(self, source: SourceState) -> bool:
        """Ingest, attest and prove one source once, if this replica holds its lease (else follow
        the holder's tree from the store); True if some message became VERIFIED."""
        return SourcePass(self.stages, self.factories.watcher, self._clock).run(source)

    def process_deliveries(self, *, flush: bool = False) -> None:
        """Deliver what is ready to every destination once."""
        for destination in list(self.destinations.values()):
            self.stages.deliverer.deliver(destination, flush=flush)

    def find_delivered_on_chain(self, domain: int) -> list[bytes]:
        """PARKED / RETRYING messages of destination `domain` that its chain shows delivered become
        DELIVERED (a bounded batch per call); nothing without the destination's `chain:` section."""
        destination = self.destinations[domain]
        if destination.reader is None:
            return []
        try:
            return self.stages.outcomes.find_delivered_on_chain(domain, destination.reader)
        except RelayError as error:
            log.warning(
                "could not look up parked deliveries on the destination chain",
                extra={"destination": domain, "reason": error.reason, "error": str(error)},
            )
            return []

    def requeue_stranded(self, domain: int) -> list[bytes]:
        """Queue again the SUBMITTED messages of destination `domain` whose delivery claim expired
        (no replica waits for their call any more)."""
        return self.stages.deliverer.requeue_stranded(self.destinations[domain])

    # --- operator actions and status (the `relay.rpc.relay_service.RelayApi`) ---------------

    def check_operator_token(self, token: str) -> bool:
        """Whether `token` is the operator token (constant-time; False if none is configured)."""
        return check_token(token, self._operator_token)

    def retry_message(self, message_id: bytes, *, force: bool = False) -> MessageRecord:
        """Operator retry (see `relay.relayer.service.retry_message`); wakes the delivery loops."""
        record = retry_message(self.store, message_id, self._clock(), force=force)
        for destination in self.destinations.values():
            destination.wake.set()
        return record

    def submit_handover(
        self, certificate: HandoverCertificate | EcdsaHandoverCertificate
    ) -> tuple[int, list[HandoverSubmission]]:
        """Operator call: verify and keep a hand-over certificate, submit it where a gateway lags.

        Returns the relayer's committee epoch of the origin and what happened per destination.
        Raises `LookupError` for an origin this relayer does not watch, `InvalidProof` subclasses
        for a certificate that does not verify.
        """
        source = self.sources.get(certificate.proposal.origin)
        if source is None:
            raise LookupError("origin not watched by this relayer")
        committees = self.stages.committees
        committees.accept(source, certificate)
        submissions = committees.submit_where_lagging(source)
        source.committee_sync_due = True
        return max(source.committees), submissions

    def route_costs(self) -> dict[tuple[int, int], RouteCost]:
        """Gas and native amounts spent and paid per (origin, destination) since the start."""
        return self.stages.deliverer.costs.snapshot()

    def chain_statuses(self) -> list[ChainStatus]:
        """Head, finalized block, cursor and lag of every source chain."""
        return compute_chain_statuses(self.sources, self._clock())

    def subscribe(self, ids: Sequence[bytes] = ()) -> Subscriber:
        """A bounded queue of changed message ids (all, or only `ids`) until `unsubscribe`."""
        return self.subscriptions.subscribe(ids)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop feeding `subscriber`."""
        self.subscriptions.unsubscribe(subscriber)
