"""The relayer role: carries messages from source gateways to destination submitters.

It holds no chain keys and trusts nobody it talks to. One pass of its pipeline, per source chain:

1. **watch** — poll the source watcher; store new Dispatch events as OBSERVED (idempotent), delete
   orphaned ones (only ever before FINAL), move those at or below the finalized block to FINAL.
   The watcher's cursor is persisted only after its messages are stored, so a crash re-reads
   blocks instead of skipping them.
2. **attest** — ask every attestor (`AttestationService.GetCheckpoint(origin, min_index)`) for its
   signature on a checkpoint covering the lowest FINAL nonce; check each partial signature against
   the committee member it claims to be (a bad one is stored with its reason and ignored); once
   signatures over the *same* checkpoint reach the threshold weight, aggregate them and move the
   FINAL messages the checkpoint covers (nonce <= index) to ATTESTED. Unreachable attestors are
   skipped; below quorum nothing moves and the next pass asks again.
3. **verify** — off-chain, exactly what the destination gateway will check: `verify_checkpoint`
   (epoch, gateway, quorum, BLS aggregate), the checkpoint root equal to the relayer's own tree of
   the source gateway at `index + 1` leaves, and each message's Merkle branch. VERIFIED, or
   REJECTED with the error's reason (never retried by itself).

and per destination (its own thread, so a slow chain does not stall the others):

4. **deliver** — VERIFIED and due RETRYING messages, grouped by origin under the newest verified
   checkpoint among them (one certificate serves every message with nonce <= its index), in
   batches of up to `max_batch` (or older than `max_wait`): SUBMITTED, then
   `DestinationService.Deliver`; per result DELIVERED, PARKED (recipient reverted), REJECTED (the
   gateway refused the proof) or, on a transient failure, RETRYING with the persisted backoff
   schedule, PARKED once out of attempts.

The Merkle tree per origin is rebuilt from the stored ids in nonce order on start (leaf index ==
nonce); it covers the contiguous prefix of nonces from 0, so the watcher must start at or before
the gateway's first Dispatch. `RelayService` (gRPC) serves message status, listings, a watch
stream, operator retries and chain lag. With `metrics_listen` set, the same HTTP server as
`/metrics` serves a status page for people (`/`, polling `/api/status`; see `relay.status`).
"""

from __future__ import annotations

import hmac
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from prometheus_client import CollectorRegistry
from pydantic import Field, model_validator

from relay.chains import Cursor, CursorStore, DeliveryItem, SourceWatcher
from relay.chains.registry import ChainConfig, create_watcher
from relay.config import CommitteeConfig, SecretRef, StrictModel
from relay.errors import (
    AttemptsExhausted,
    ConfigurationError,
    EpochMismatch,
    GatewayMismatch,
    InvalidMerkleProof,
    InvalidProof,
    MalformedEncoding,
    OriginMismatch,
    PermanentError,
    RelayError,
    RpcUnavailable,
    TransientError,
    UnknownSigner,
)
from relay.lifecycle import MessageState, StaleState
from relay.metrics import MetricsInterceptor, RelayMetrics
from relay.retry import ATTESTOR_READ, WATCHER_POLL, BackoffSchedule
from relay.rpc import convert
from relay.store import open_store
from relay.store.base import (
    CertifiedCheckpoint,
    MessageFilter,
    MessageRecord,
    SignatureRecord,
    Store,
    Transition,
)
from relay.v1 import (
    attestation_pb2,
    attestation_pb2_grpc,
    destination_pb2,
    destination_pb2_grpc,
    relay_service_pb2,
    relay_service_pb2_grpc,
)
from relay.verify.bls import BlsBackend, get_backend
from relay.verify.committee import Checkpoint, Committee, verify_checkpoint
from relay.verify.merkle import MerkleTree, verify_branch
from relay.verify.message import address_to_bytes32

log = logging.getLogger("relay.relayer")

S = MessageState
SERVICE_NAME = "relay.v1.RelayService"

# gRPC codes that say "try again later"; any other failure code is permanent for that request.
TRANSIENT_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED,
})

# Reconnect quickly to a peer that comes back: gRPC's default backoff grows to two minutes.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
STRANDED_CHECK_SECONDS = 15.0  # how often SUBMITTED messages without a waiting call are looked for
STRANDED_GRACE_SECONDS = 30.0  # beyond the submitter timeout, before such a message is sent again
MAX_BATCHES_IN_FLIGHT = 4  # delivery transactions one destination may have pending at once
QUORUM_PROBE_SECONDS = 5.0  # how often an idle relayer checks which attestors answer


# --- configuration --------------------------------------------------------------------------


class SourceConfig(StrictModel):
    """A source chain: where to watch, whose signatures count, and where the attestors listen."""

    chain: ChainConfig
    committee: CommitteeConfig
    attestors: list[str]

    @model_validator(mode="after")
    def _check(self) -> SourceConfig:
        if not self.attestors:
            raise ValueError("attestors needs at least one gRPC address")
        return self


class DestinationConfig(StrictModel):
    """A destination chain, reached through its submitter's `DestinationService`."""

    domain: int
    submitter: str
    name: str = ""


class BatchingConfig(StrictModel):
    """How deliveries are grouped: at most `max_batch` messages, sent at the latest `max_wait` s after ready."""

    max_batch: int = 50
    max_wait: float = 0.5

    @model_validator(mode="after")
    def _check(self) -> BatchingConfig:
        if not 1 <= self.max_batch <= 1000 or self.max_wait < 0:
            raise ValueError("max_batch must be in 1..1000 and max_wait >= 0")
        return self


class RetryConfig(StrictModel):
    """The per-message delivery backoff (see `relay.retry.BackoffSchedule`)."""

    max_attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 300.0
    jitter: float = 0.2

    def schedule(self) -> BackoffSchedule:
        """The backoff schedule these settings describe."""
        return BackoffSchedule(self.base_delay, self.max_delay, self.max_attempts, self.jitter)

    @model_validator(mode="after")
    def _check(self) -> RetryConfig:
        if self.max_attempts < 1 or self.base_delay <= 0 or self.max_delay < self.base_delay:
            raise ValueError("max_attempts >= 1, base_delay > 0 and max_delay >= base_delay")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        return self


class RelayerConfig(StrictModel):
    """The relayer's configuration (YAML/JSON file, `RELAY_*` environment, flags)."""

    store: str = "relayer.db"
    listen: str = "127.0.0.1:0"
    operator_token: SecretRef | None = None
    sources: list[SourceConfig]
    destinations: list[DestinationConfig] = Field(default_factory=list)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    bls_backend: str | None = None
    poll_interval: float = 0.5
    attestor_timeout: float = 2.0
    submitter_timeout: float = 120.0
    # host:port for /metrics, /healthz, /readyz; None: no HTTP endpoint.
    metrics_listen: str | None = None
    # /readyz: every source polled within `ready_max_poll_age` s and at most this many blocks behind.
    ready_max_lag_blocks: int = 100
    ready_max_poll_age: float = 60.0
    # Status page links: chain domain -> transaction URL template with `{tx}` for the 0x hash,
    # e.g. {1: "https://explorer.example/tx/{tx}"}. A chain without one shows the plain hash.
    explorers: dict[int, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> RelayerConfig:
        if not self.sources:
            raise ValueError("sources needs at least one source chain")
        domains = [s.chain.domain for s in self.sources]
        if len(set(domains)) != len(domains):
            raise ValueError(f"source domains must be unique (got {domains})")
        targets = [d.domain for d in self.destinations]
        if len(set(targets)) != len(targets):
            raise ValueError(f"destination domains must be unique (got {targets})")
        if self.poll_interval <= 0 or self.attestor_timeout <= 0 or self.submitter_timeout <= 0:
            raise ValueError("poll_interval, attestor_timeout and submitter_timeout must be positive")
        if self.bls_backend is not None and self.bls_backend not in ("blst", "py_ecc"):
            raise ValueError("bls_backend must be 'blst' or 'py_ecc'")
        known = set(domains) | set(targets)
        for domain, template in self.explorers.items():
            if domain not in known:
                raise ValueError(f"explorers.{domain}: not a source or destination domain (known: {sorted(known)})")
            if "{tx}" not in template or not template.startswith(("http://", "https://")):
                raise ValueError(f"explorers.{domain}: needs an http(s) URL with a {{tx}} placeholder (got {template!r})")
        return self


# --- runtime state --------------------------------------------------------------------------


class DeferredCursors:
    """The `CursorStore` a watcher gets: its cursor is held back until the relayer stored its report.

    A watcher persists its cursor inside `poll()`; if the relayer then crashed before storing the
    messages, they would be skipped for ever. Holding the cursor until `flush()` (called after the
    messages are committed) turns that crash into a harmless re-read (inserts are idempotent).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: dict[int, Cursor] = {}
        self._lock = threading.Lock()

    def load_cursor(self, domain: int) -> Cursor | None:
        with self._lock:
            pending = self._pending.get(domain)
        return pending if pending is not None else self._store.load_cursor(domain)

    def save_cursor(self, domain: int, cursor: Cursor) -> None:
        with self._lock:
            self._pending[domain] = cursor

    def flush(self) -> None:
        """Persist the held-back cursors."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for domain, cursor in pending.items():
            self._store.save_cursor(domain, cursor)

    def discard(self) -> None:
        """Forget held-back cursors (their messages were not stored)."""
        with self._lock:
            self._pending.clear()


@dataclass
class _Attestor:
    address: str
    channel: grpc.Channel
    stub: attestation_pb2_grpc.AttestationServiceStub


@dataclass
class _Source:
    config: SourceConfig
    committee: Committee
    gateway: bytes
    cursors: DeferredCursors
    watcher: SourceWatcher
    attestors: list[_Attestor]
    tree: MerkleTree = field(default_factory=MerkleTree)
    lock: threading.RLock = field(default_factory=threading.RLock)
    head: int = 0
    finalized: int = 0
    behind_since: float = 0.0
    last_poll_at: float = 0.0
    last_quorum_probe_at: float = 0.0
    reachable_weight: int | None = None  # attestor weight that answered last time it was measured
    verified_partials: dict[tuple[bytes, int, bytes], str] = field(default_factory=dict)

    @property
    def domain(self) -> int:
        return self.config.chain.domain

    @property
    def name(self) -> str:
        return self.config.chain.name


@dataclass
class _Destination:
    config: DestinationConfig
    channel: grpc.Channel
    stub: destination_pb2_grpc.DestinationServiceStub
    wake: threading.Event = field(default_factory=threading.Event)
    answered_at: float = 0.0  # when its submitter last answered (a delivery or a status probe)


WatcherFactory = Callable[[ChainConfig, CursorStore], SourceWatcher]
Clock = Callable[[], float]


def _rpc_error(error: grpc.RpcError, peer: str, method: str) -> RelayError:
    """Classify a gRPC failure: transient codes become `RpcUnavailable`, the rest `PermanentError`."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    if code in TRANSIENT_CODES:
        return RpcUnavailable(f"{method} failed", peer=peer, code=code.name, details=details)
    return PermanentError(f"{method} refused", peer=peer, code=code.name, details=details)


def _describe(error: RelayError) -> str:
    return f"{error.reason}: {error}"


# --- the relayer ------------------------------------------------------------------------------


class Relayer:
    """The relayer process: pipeline threads plus the `RelayService` gRPC server.

    `Relayer(config).start()` opens the store, rebuilds the trees, starts serving and looping;
    `.port` is the bound RelayService port; `.stop()` shuts down cleanly. Tests drive the pipeline
    synchronously with `open()` + `run_once()` instead of `start()`.
    """

    def __init__(
        self, config: RelayerConfig, *, store: Store | None = None,
        watcher_factory: WatcherFactory | None = None, clock: Clock = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.config = config
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = RelayMetrics(self.registry)
        self._http: Any = None
        self._metrics_refreshed_at = 0.0
        self._routes: set[tuple[int, int]] = set()
        self._store = store
        self._owns_store = store is None
        self._watcher_factory: WatcherFactory = watcher_factory or (lambda chain, cursors: create_watcher(chain, cursors, self.metrics))
        self._clock = clock
        self._backend: BlsBackend | None = None
        self._sources: dict[int, _Source] = {}
        self._destinations: dict[int, _Destination] = {}
        self._schedule = config.retry.schedule()
        self._operator_token = config.operator_token.reveal() if config.operator_token else None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: grpc.Server | None = None
        self._health: Any = None
        self._port = 0
        self._pool: futures.ThreadPoolExecutor | None = None
        self._in_flight: set[bytes] = set()
        self._in_flight_lock = threading.Lock()
        self._subscribers: set[_Subscriber] = set()
        self._subscribers_lock = threading.Lock()
        self._opened = False

    # --- lifetime ---------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The open store."""
        if self._store is None:
            raise RuntimeError("the relayer is not open")
        return self._store

    @property
    def port(self) -> int:
        """The port RelayService is bound to (0 until served)."""
        return self._port

    @property
    def address(self) -> str:
        """host:port of RelayService."""
        host = self.config.listen.rsplit(":", 1)[0] or "127.0.0.1"
        return f"{host}:{self._port}"

    def open(self) -> Relayer:
        """Open the store, build committees, watchers and trees, recover interrupted deliveries."""
        if self._opened:
            return self
        self._backend = get_backend(self.config.bls_backend)
        if self._store is None:
            self._store = open_store(self.config.store)
        self._store.add_listener(self._on_state_change)
        self._pool = futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="relayer-attestor")
        for source_config in self.config.sources:
            source = self._open_source(source_config)
            self._sources[source.domain] = source
            self._rebuild_tree(source)
        for destination_config in self.config.destinations:
            channel = grpc.insecure_channel(destination_config.submitter, options=CHANNEL_OPTIONS)
            self._destinations[destination_config.domain] = _Destination(
                destination_config, channel, destination_pb2_grpc.DestinationServiceStub(channel)
            )
        self._recover_submitted()
        self._opened = True
        log.info("relayer opened", extra={
            "store": self.config.store if self._owns_store else "injected",
            "sources": sorted(self._sources), "destinations": sorted(self._destinations),
            "bls_backend": self._backend.name,
        })
        return self

    def _open_source(self, config: SourceConfig) -> _Source:
        chain = config.chain
        try:
            committee = config.committee.build(self._backend)
        except InvalidProof as error:
            raise ConfigurationError(
                f"committee of source {chain.name!r} is invalid: {error.reason}", domain=chain.domain,
                cause=str(error),
            ) from error
        cursors = DeferredCursors(self.store)
        attestors = []
        for address in config.attestors:
            channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
            attestors.append(_Attestor(address, channel, attestation_pb2_grpc.AttestationServiceStub(channel)))
        return _Source(
            config=config, committee=committee, gateway=address_to_bytes32(chain.gateway), cursors=cursors,
            watcher=self._watcher_factory(chain, cursors), attestors=attestors,
        )

    def serve(self) -> int:
        """Start the RelayService gRPC server (with health and reflection); return the bound port."""
        if self._server is not None:
            return self._port
        self.open()
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc
        from grpc_reflection.v1alpha import reflection

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="relayer-grpc"),
                             interceptors=[MetricsInterceptor(self.metrics)])
        relay_service_pb2_grpc.add_RelayServiceServicer_to_server(RelayServicer(self), server)
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        for name in ("", SERVICE_NAME):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection(
            [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            server,
        )
        port = server.add_insecure_port(self.config.listen)
        if port == 0:
            raise RelayError("cannot bind the RelayService address", listen=self.config.listen)
        server.start()
        self._server, self._port = server, port
        if self.config.metrics_listen and self._http is None:
            from relay.health import HealthServer
            from relay.status.api import render_status_json, render_status_page

            host, _, http_port = self.config.metrics_listen.rpartition(":")
            self._http = HealthServer(self.registry, host or "127.0.0.1", int(http_port),
                                      readiness=self.readiness, routes={
                                          "/": render_status_page,
                                          "/api/status": lambda: render_status_json(self),
                                      }).start()
        log.info("relay service listening", extra={
            "address": self.address, "metrics": f"{self._http.host}:{self._http.port}" if self._http else None})
        if self._http is not None:
            log.info(f"status page: {self.status_url}", extra={"url": self.status_url})
        return port

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
        """/readyz: every source polled recently, its watcher within the allowed lag and its attestors'
        reachable weight (as last measured) at the threshold; every submitter answered recently."""
        now = self._clock()
        for source in list(self._sources.values()):
            if not source.last_poll_at:
                return False, f"{source.name}: not polled yet"
            if now - source.last_poll_at > self.config.ready_max_poll_age:
                return False, f"{source.name}: last successful poll {now - source.last_poll_at:.0f} s ago"
            cursor = source.cursors.load_cursor(source.domain)
            lag = source.finalized - (cursor.block_number if cursor is not None else 0)
            if lag > self.config.ready_max_lag_blocks:
                return False, f"{source.name}: watcher {lag} blocks behind the finalized block"
            weight = source.reachable_weight
            if weight is not None and weight < source.committee.threshold:
                return False, (f"{source.name}: attestor quorum unreachable "
                               f"({weight} of {source.committee.threshold} weight answered)")
        for destination in list(self._destinations.values()):
            if now - destination.answered_at > self.config.ready_max_poll_age:
                return False, f"submitter of domain {destination.config.domain} not answering"
        return True, f"{len(self._sources)} sources synced, attestors and submitters answering"

    def start(self) -> Relayer:
        """Open, serve, and run the pipeline in background threads."""
        self.open()
        self.serve()
        self._stop.clear()
        self._threads = [threading.Thread(target=self._source_loop, name="relayer-sources", daemon=True)]
        for destination in self._destinations.values():
            self._threads.append(threading.Thread(
                target=self._delivery_loop, args=(destination,),
                name=f"relayer-deliver-{destination.config.domain}", daemon=True,
            ))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, grace: float = 2.0) -> None:
        """Stop the loops (each finishes its current store transaction), the server, then close."""
        self._stop.set()
        for destination in self._destinations.values():
            destination.wake.set()
        for thread in self._threads:
            thread.join(timeout=max(grace, 0.1) + self.config.attestor_timeout + 1.0)
        self._threads = []
        if self._health is not None:
            self._health.enter_graceful_shutdown()
        with self._subscribers_lock:
            for subscriber in self._subscribers:
                subscriber.close()
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        if self._http is not None:
            self._http.stop()
            self._http = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for source in self._sources.values():
            for attestor in source.attestors:
                attestor.channel.close()
        for destination in self._destinations.values():
            destination.channel.close()
        if self._store is not None:
            self._store.remove_listener(self._on_state_change)
            if self._owns_store:
                self._store.close()
                self._store = None
        self._sources.clear()
        self._destinations.clear()
        self._opened = False
        log.info("relayer stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until `stop()` was called (or `timeout`); True if stopped."""
        return self._stop.wait(timeout)

    def request_stop(self) -> None:
        """Ask the loops to stop (safe from a signal handler); `stop()` completes the shutdown."""
        self._stop.set()
        for destination in self._destinations.values():
            destination.wake.set()

    # --- loops ------------------------------------------------------------------------------

    def _source_loop(self) -> None:
        while not self._stop.is_set():
            if self._http is not None:
                self._http.heartbeat()
            try:
                if self.process_sources():
                    for destination in self._destinations.values():
                        destination.wake.set()
            except Exception:  # noqa: BLE001 - the loop must outlive any single failure
                log.exception("source pass failed")
            self._stop.wait(self.config.poll_interval)

    def _delivery_loop(self, destination: _Destination) -> None:
        interval = min(self.config.poll_interval, max(self.config.batching.max_wait, 0.05))
        checked_at = self._clock()
        while not self._stop.is_set():
            destination.wake.clear()
            try:
                self._probe_destination(destination)
                self._deliver_to(destination, flush=False)
                if self._clock() - checked_at >= STRANDED_CHECK_SECONDS:
                    checked_at = self._clock()
                    self._requeue_stranded(destination.config.domain)
            except Exception:  # noqa: BLE001 - the loop must outlive any single failure
                log.exception("delivery pass failed", extra={"destination": destination.config.domain})
            destination.wake.wait(interval)

    def _probe_destination(self, destination: _Destination) -> None:
        """Ask the submitter for its status when it has not answered for a while (for /readyz)."""
        if self._clock() - destination.answered_at < QUORUM_PROBE_SECONDS:
            return
        try:
            destination.stub.GetStatus(destination_pb2.GetStatusRequest(), timeout=self.config.attestor_timeout)
        except grpc.RpcError as error:
            if error.code() in TRANSIENT_CODES:
                return  # not answering
        destination.answered_at = self._clock()  # answered (even an error status is an answer)

    def _requeue_stranded(self, domain: int) -> list[bytes]:
        """SUBMITTED messages no call is waiting for (a failure between the SUBMITTED write and the
        outcome): queue them again once the submitter's timeout has surely passed. The submitter
        skips whatever was delivered meanwhile, so nothing runs twice."""
        now = self._clock()
        cutoff = now - (self.config.submitter_timeout + STRANDED_GRACE_SECONDS)
        with self._in_flight_lock:
            in_flight = set(self._in_flight)
        stranded = [r for r in self.store.messages_in_state(S.SUBMITTED, destination=domain)
                    if r.id not in in_flight and r.updated_at < cutoff]
        if not stranded:
            return []
        try:
            self.store.apply_transitions([
                Transition(r.id, S.SUBMITTED, S.RETRYING, {
                    "next_attempt_at": now, "last_error": "no delivery outcome arrived; sent again",
                    "error_reason": "Stranded",
                }) for r in stranded
            ], now)
        except StaleState:
            return []  # an outcome landed meanwhile; the next check looks again
        log.warning("stranded deliveries queued again", extra={"destination": domain, "messages": len(stranded)})
        return [r.id for r in stranded]

    def run_once(self, *, flush: bool = True) -> None:
        """One synchronous pass of every stage; `flush` sends partial batches without waiting."""
        self.open()
        self.process_sources()
        self.process_deliveries(flush=flush)

    def process_sources(self) -> bool:
        """Watch, attest and verify every source once; True if some message became VERIFIED."""
        progressed = False
        for source in list(self._sources.values()):
            if self._stop.is_set() and self._threads:
                break
            self._watch(source)
            self._attest(source)
            progressed = self._verify(source) or progressed
        self._refresh_metrics()
        return progressed

    def process_deliveries(self, *, flush: bool = False) -> None:
        """Deliver what is ready to every destination once."""
        for destination in list(self._destinations.values()):
            self._deliver_to(destination, flush=flush)

    # --- stage 1: watch ---------------------------------------------------------------------

    def _watch(self, source: _Source) -> None:
        fields = {"chain": source.name, "origin": source.domain}
        try:
            update = WATCHER_POLL.call(source.watcher.poll, on_retry=self._count_retry(WATCHER_POLL.name))
        except TransientError as error:
            source.cursors.discard()
            log.warning("source poll failed", extra={**fields, "error": _describe(error)})
            return
        except RelayError as error:
            source.cursors.discard()
            log.error("source poll failed", extra={**fields, "error": _describe(error)})
            return
        now = self._clock()
        try:
            self._store_update(source, update, now)
        except Exception:
            # What the watcher reported is not stored: start it again from the stored cursor.
            source.cursors.discard()
            source.watcher = self._watcher_factory(source.config.chain, source.cursors)
            raise
        source.cursors.flush()
        if update.cursor is not None and source.cursors.load_cursor(source.domain) != update.cursor:
            self.store.save_cursor(source.domain, update.cursor)
        source.head = max(source.head, update.head_block)
        source.finalized = max(source.finalized, update.finalized_block)
        source.last_poll_at = now
        cursor = source.cursors.load_cursor(source.domain)
        behind = cursor is not None and cursor.block_number < source.finalized
        source.behind_since = (source.behind_since or now) if behind else 0.0
        self.metrics.set_chain_progress(source.name, source.head, source.finalized,
                                        cursor.block_number if cursor is not None else 0)

    def _store_update(self, source: _Source, update: Any, now: float) -> None:
        fields = {"chain": source.name, "origin": source.domain}
        if update.orphaned_ids:
            removed, refused = self.store.remove_orphans(update.orphaned_ids)
            for message_id in removed:
                log.warning("message orphaned by a reorg", extra={**fields, "message_id": message_id})
            for message_id in refused:
                log.error("reorg reported for a message past FINAL: ignored (alert)",
                          extra={**fields, "message_id": message_id})
            if removed:
                self._rebuild_tree(source)
        observed = []
        for item in update.observed:
            if item.message.origin != source.domain:
                log.error("watcher reported a message of another origin: ignored",
                          extra={**fields, "message_id": item.message.id, "message_origin": item.message.origin})
                continue
            observed.append(item)
        new, conflicts = self.store.insert_observed(observed, now)
        if conflicts:
            replacements = self._settle_conflicts(source, [o for o in observed if o.message.id in set(conflicts)])
            if replacements:
                more, conflicts = self.store.insert_observed(replacements, now)
                new += more
                self._rebuild_tree(source)
        for message_id in conflicts:
            log.error("conflicting observation: another message holds this nonce (alert)",
                      extra={**fields, "message_id": message_id})
        final = self.store.mark_final(source.domain, update.finalized_block, now)
        if new:
            self._extend_tree(source)
        for message_id in new:
            log.info("message observed", extra={**fields, "message_id": message_id})
        for message_id in final:
            log.info("message final", extra={**fields, "message_id": message_id})

    def _settle_conflicts(self, source: _Source, challengers: list[Any]) -> list[Any]:
        """Drop stored messages orphaned while nobody watched; return the observations replacing them.

        A conflict is a new observation at a nonce another stored message holds. If that stored
        message is not final yet and its block is no longer on the canonical chain, a reorg took it
        while the relayer was down: it goes, the new observation takes its place. A conflict with
        a FINAL message, or with one whose block is still canonical, stays a conflict (an alert).
        """
        canonical = getattr(source.watcher, "block_hash", None)
        if canonical is None:
            return []
        by_nonce = dict(self.store.message_ids_by_nonce(source.domain))
        orphans: list[bytes] = []
        replacements = []
        for challenger in challengers:
            held = by_nonce.get(challenger.message.nonce)
            record = self.store.get(held) if held is not None else None
            if record is None or record.state is not S.OBSERVED:
                continue
            try:
                current = canonical(record.source_block)
            except RelayError:
                continue  # cannot tell now; the next poll reports the conflict again
            if current is not None and current != record.source_block_hash:
                orphans.append(record.id)
                replacements.append(challenger)
        if orphans:
            removed, _refused = self.store.remove_orphans(orphans)
            for message_id in removed:
                log.warning("message orphaned by a reorg while the relayer was down", extra={
                    "chain": source.name, "origin": source.domain, "message_id": message_id})
            replacements = [r for r, o in zip(replacements, orphans, strict=True) if o in set(removed)]
        return replacements

    def _rebuild_tree(self, source: _Source) -> None:
        leaves: list[bytes] = []
        for nonce, message_id in self.store.message_ids_by_nonce(source.domain):
            if nonce != len(leaves):
                log.warning("gap in the source's nonces: messages past it wait for the missing ones",
                            extra={"chain": source.name, "origin": source.domain, "missing_nonce": len(leaves)})
                break
            leaves.append(message_id)
        with source.lock:
            source.tree = MerkleTree(leaves)

    def _extend_tree(self, source: _Source) -> None:
        with source.lock:
            tree = source.tree
            for nonce, message_id in self.store.message_ids_by_nonce(source.domain, tree.count):
                if nonce != tree.count:
                    break
                tree.insert(message_id)

    def _final_leaves(self, source: _Source) -> int:
        """How many leaves (from nonce 0) the relayer holds and knows to be final."""
        with source.lock:
            count = source.tree.count
        lowest_observed = self.store.lowest_nonce(source.domain, S.OBSERVED)
        return count if lowest_observed is None else min(count, lowest_observed)

    # --- stage 2: attest --------------------------------------------------------------------

    def _attest(self, source: _Source) -> None:
        final = self.store.messages_in_state(S.FINAL, origin=source.domain)
        if not final:
            self._probe_quorum(source)
            return
        min_index = final[0].message.nonce
        usable = self._final_leaves(source)
        if min_index >= usable:
            return  # the relayer's own tree does not reach the message yet
        reachable: set[int] = set()
        for address, partial in self._ask_attestors(source, min_index):
            if not self._record_partial(source, address, partial):
                reachable.add(partial.signer_index)
        source.reachable_weight = source.committee.signed_weight(sorted(reachable))
        self.metrics.set_quorum(source.domain, source.reachable_weight, source.committee.threshold)
        chosen = self._choose_checkpoint(source, min_index, usable)
        if chosen is None:
            return
        checkpoint, signatures = chosen
        try:
            certificate = source.committee.aggregate(
                checkpoint.digest(), sorted(signatures.items()), self._backend, verify_each=False
            )
        except InvalidProof as error:
            log.error("signature aggregation failed", extra={
                "chain": source.name, "origin": source.domain, "error": _describe(error)})
            return
        ids = [r.id for r in final if r.message.nonce <= checkpoint.index]
        try:
            checkpoint_id = self.store.attest_messages(checkpoint, certificate, ids, self._clock())
        except StaleState as error:
            log.info("attestation raced another writer; retried next pass", extra={"error": str(error)})
            return
        self.store.prune_signatures(source.domain, min_index)
        log.info("checkpoint attested", extra={
            "chain": source.name, "origin": source.domain, "checkpoint_id": checkpoint_id,
            "index": checkpoint.index, "root": checkpoint.root, "signers": sorted(signatures),
            "messages": len(ids),
        })

    def _probe_quorum(self, source: _Source) -> None:
        """While idle, ask each attestor who it is, so the quorum gauges (and alerts) stay live.

        An attestor counts as reachable when it answers GetIdentity as the committee member it
        claims to be (same index and public key, same origin). At most once per
        `QUORUM_PROBE_SECONDS`; while messages wait, `_attest` measures reachability instead.
        """
        now = self._clock()
        pool = self._pool
        if pool is None or now - source.last_quorum_probe_at < QUORUM_PROBE_SECONDS:
            return
        source.last_quorum_probe_at = now
        jobs = [pool.submit(self._identify_attestor, source, attestor) for attestor in source.attestors]
        reachable: set[int] = set()
        for job in jobs:
            try:
                index = job.result()
            except Exception:  # noqa: BLE001 - a broken attestor is simply unreachable
                index = None
            if index is not None:
                reachable.add(index)
        source.reachable_weight = source.committee.signed_weight(sorted(reachable))
        self.metrics.set_quorum(source.domain, source.reachable_weight, source.committee.threshold)

    def _identify_attestor(self, source: _Source, attestor: _Attestor) -> int | None:
        try:
            identity = attestor.stub.GetIdentity(attestation_pb2.GetIdentityRequest(),
                                                 timeout=self.config.attestor_timeout)
        except grpc.RpcError:
            return None
        index = int(identity.signer_index)
        members = source.committee.members
        if identity.origin != source.domain or not 0 <= index < len(members):
            return None
        if bytes(identity.public_key) != members[index].public_key:
            return None
        return index

    def _ask_attestors(self, source: _Source, min_index: int) -> list[tuple[str, convert.PartialSignature]]:
        pool = self._pool
        if pool is None:
            return []
        jobs = [pool.submit(self._ask_attestor, source, attestor, min_index) for attestor in source.attestors]
        answers = []
        for attestor, job in zip(source.attestors, jobs, strict=True):
            try:
                partial = job.result()
            except Exception:  # noqa: BLE001 - one broken attestor must not stop the others
                log.exception("attestor query crashed", extra={"attestor": attestor.address})
                continue
            if partial is not None:
                answers.append((attestor.address, partial))
        return answers

    def _ask_attestor(self, source: _Source, attestor: _Attestor,
                      min_index: int) -> convert.PartialSignature | None:
        request = attestation_pb2.GetCheckpointRequest(origin=source.domain, min_index=min_index)
        fields = {"chain": source.name, "origin": source.domain, "attestor": attestor.address}

        def call() -> Any:
            try:
                return attestor.stub.GetCheckpoint(request, timeout=self.config.attestor_timeout)
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    return None  # not signed that far yet: a normal answer, not a failure
                raise _rpc_error(error, attestor.address, "GetCheckpoint") from error

        try:
            response = ATTESTOR_READ.call(call, on_retry=self._count_retry(ATTESTOR_READ.name))
        except TransientError as error:
            log.debug("attestor unreachable; skipped this pass", extra={**fields, "error": _describe(error)})
            return None
        except RelayError as error:
            log.warning("attestor refused the request", extra={**fields, "error": _describe(error)})
            return None
        if response is None:
            return None
        try:
            partial = convert.partial_signature_from_proto(response)
            if partial.checkpoint.origin != source.domain:
                raise OriginMismatch("attestor signed another origin", origin=partial.checkpoint.origin,
                                     expected=source.domain)
        except InvalidProof as error:
            log.warning("attestor answered malformed data", extra={**fields, "error": _describe(error)})
            return None
        return partial

    def _record_partial(self, source: _Source, address: str, partial: convert.PartialSignature) -> str:
        """Check one partial signature against the member it claims to be; store it with the verdict.

        Returns the rejection reason, "" for a valid signature.
        """
        key = (partial.checkpoint.digest(), partial.signer_index, partial.signature)
        cached = source.verified_partials.get(key)
        if cached is not None:
            reason = cached  # verified before: skip the pairing, still make sure it is stored
        else:
            reason = ""
            try:
                self._verify_partial(source, partial)
            except InvalidProof as error:
                reason = _describe(error)
                self.metrics.record_rejection(source.domain, error)  # counted once per distinct signature
                log.warning("attestor signature rejected", extra={
                    "chain": source.name, "origin": source.domain, "attestor": address,
                    "signer_index": partial.signer_index, "index": partial.checkpoint.index, "reason": reason,
                })
        self.store.save_signature(SignatureRecord(
            partial.checkpoint, partial.signer_index, partial.public_key, partial.signature, address, reason,
            self._clock(),
        ))
        if len(source.verified_partials) > 10_000:
            source.verified_partials.clear()
        source.verified_partials[key] = reason
        return reason

    def _verify_partial(self, source: _Source, partial: convert.PartialSignature) -> None:
        committee = source.committee
        checkpoint = partial.checkpoint
        # A signature over another origin, gateway or epoch must never count toward a quorum here.
        if checkpoint.origin != source.domain:
            raise OriginMismatch("attestor signed another origin", origin=checkpoint.origin, expected=source.domain)
        if checkpoint.gateway != source.gateway:
            raise GatewayMismatch("attestor signed another gateway", gateway=checkpoint.gateway,
                                  expected=source.gateway)
        if checkpoint.epoch != committee.epoch:
            raise EpochMismatch("attestor signed for another committee epoch", epoch=checkpoint.epoch,
                                expected=committee.epoch)
        index = partial.signer_index
        if not 0 <= index < len(committee):
            raise UnknownSigner("signer index outside the committee", index=index, size=len(committee))
        if committee.members[index].public_key != partial.public_key:
            # Checked before the signature: a key outside the committee never counts for a member.
            raise UnknownSigner("signer public key is not the committee member's", index=index,
                                public_key=partial.public_key)
        backend = self._backend or get_backend()
        with self.metrics.time_verification("signature"):
            backend.verify_with_key(committee.keys(backend)[index], partial.checkpoint.digest(), partial.signature)

    def _choose_checkpoint(self, source: _Source, min_index: int,
                           usable: int) -> tuple[Checkpoint, dict[int, bytes]] | None:
        """The newest checkpoint the relayer can check whose valid signatures reach the threshold."""
        groups: dict[Checkpoint, dict[int, bytes]] = defaultdict(dict)
        for record in self.store.signatures_for(source.domain, min_index):
            groups[record.checkpoint].setdefault(record.signer_index, record.signature)
        committee = source.committee
        best: tuple[Checkpoint, dict[int, bytes]] | None = None
        best_weight = 0
        for checkpoint, signatures in groups.items():
            weight = committee.signed_weight(list(signatures))
            best_weight = max(best_weight, weight)
            if weight < committee.threshold or checkpoint.index >= usable:
                continue
            if best is None or checkpoint.index > best[0].index:
                best = (checkpoint, signatures)
        if best is None and groups:
            log.debug("no quorum yet", extra={
                "chain": source.name, "origin": source.domain, "weight": best_weight,
                "threshold": committee.threshold,
            })
        return best

    # --- stage 3: verify --------------------------------------------------------------------

    def _verify(self, source: _Source) -> bool:
        attested = self.store.messages_in_state(S.ATTESTED, origin=source.domain)
        by_checkpoint: dict[int, list[MessageRecord]] = defaultdict(list)
        for record in attested:
            by_checkpoint[record.checkpoint_id or 0].append(record)
        progressed = False
        for checkpoint_id, records in by_checkpoint.items():
            certified = self.store.get_certificate(checkpoint_id) if checkpoint_id else None
            transitions = self._verify_batch(source, certified, records)
            try:
                self.store.apply_transitions(transitions, self._clock())
            except StaleState as error:
                log.info("verification raced another writer; retried next pass", extra={"error": str(error)})
                continue
            for transition in transitions:
                fields = {"chain": source.name, "origin": source.domain, "message_id": transition.id}
                if transition.new is S.VERIFIED:
                    progressed = True
                    log.info("message verified", extra={**fields, "checkpoint_id": checkpoint_id})
                elif transition.new is S.REJECTED:
                    self.metrics.rejections.labels(str(source.domain), str(transition.updates["error_reason"])).inc()
                    log.warning("message rejected", extra={**fields, "reason": transition.updates["last_error"]})
        return progressed

    def _verify_batch(self, source: _Source, certified: CertifiedCheckpoint | None,
                      records: Sequence[MessageRecord]) -> list[Transition]:
        def reject(record: MessageRecord, error: RelayError) -> Transition:
            return Transition(record.id, S.ATTESTED, S.REJECTED,
                              {"last_error": _describe(error), "error_reason": error.reason})

        if certified is None:
            # Not possible through this code; be safe: attest again.
            return [Transition(r.id, S.ATTESTED, S.FINAL, {"checkpoint_id": None}) for r in records]
        checkpoint = certified.checkpoint
        with source.lock:
            tree = source.tree
            if checkpoint.index >= tree.count:
                return [Transition(r.id, S.ATTESTED, S.FINAL, {"checkpoint_id": None}) for r in records]
            try:
                with self.metrics.time_verification("checkpoint"):
                    verify_checkpoint(source.committee, checkpoint, certified.certificate, origin=source.domain,
                                      gateway=source.gateway, backend=self._backend)
                expected = tree.root_at(checkpoint.index + 1)
                if expected != checkpoint.root:
                    # The committee signed a root the source gateway's Dispatch events do not produce.
                    raise InvalidMerkleProof(
                        "checkpoint root differs from the source gateway's tree", index=checkpoint.index,
                        root=checkpoint.root, expected=expected,
                    )
            except InvalidProof as error:
                return [reject(r, error) for r in records]
            transitions = []
            for record in records:
                nonce = record.message.nonce
                try:
                    if nonce > checkpoint.index:
                        raise InvalidMerkleProof("checkpoint does not cover the message", nonce=nonce,
                                                 index=checkpoint.index)
                    branch = tree.branch(nonce, checkpoint.index + 1)
                    with self.metrics.time_verification("merkle"):
                        verify_branch(record.id, branch, nonce, checkpoint.root)
                except InvalidProof as error:
                    transitions.append(reject(record, error))
                    continue
                transitions.append(Transition(record.id, S.ATTESTED, S.VERIFIED, {"branch": branch}))
        return transitions

    # --- stage 4: deliver -------------------------------------------------------------------

    def _deliver_to(self, destination: _Destination, *, flush: bool) -> None:
        domain = destination.config.domain
        limit = self.config.batching.max_batch * 20
        now = self._clock()
        ready = self.store.messages_in_state(S.VERIFIED, destination=domain, limit=limit)
        ready += self.store.due_for_retry(now, destination=domain, limit=limit)
        by_origin: dict[int, list[MessageRecord]] = defaultdict(list)
        for record in ready:
            by_origin[record.message.origin].append(record)
        for origin, records in by_origin.items():
            if self._stop.is_set() and self._threads:
                return
            source = self._sources.get(origin)
            if source is None:
                log.warning("no source configured for verified messages", extra={"origin": origin})
                continue
            certificates = {
                cid: c for cid in {r.checkpoint_id for r in records if r.checkpoint_id}
                if (c := self.store.get_certificate(cid)) is not None
            }
            if not certificates:
                continue
            newest = max(certificates.values(), key=lambda c: c.checkpoint.index)
            waited = now - min(r.verified_at if r.state is S.VERIFIED else r.next_attempt_at for r in records)
            if not flush and len(records) < self.config.batching.max_batch and waited < self.config.batching.max_wait:
                continue
            records.sort(key=lambda r: r.message.nonce)
            size = self.config.batching.max_batch
            chunks = [records[start:start + size] for start in range(0, len(records), size)]
            if len(chunks) == 1:
                self._submit_batch(destination, source, newest, chunks[0])
                continue
            # Several batches at once: the submitter gives them consecutive nonces, so they can
            # land in the same block instead of one block each. Each batch keeps its own outcome.
            with futures.ThreadPoolExecutor(max_workers=min(len(chunks), MAX_BATCHES_IN_FLIGHT),
                                            thread_name_prefix=f"relayer-batch-{domain}") as batches:
                for job in [batches.submit(self._submit_batch, destination, source, newest, chunk)
                            for chunk in chunks]:
                    job.result()

    def _submit_batch(self, destination: _Destination, source: _Source, certified: CertifiedCheckpoint,
                      records: Sequence[MessageRecord]) -> None:
        checkpoint = certified.checkpoint
        items: list[DeliveryItem] = []
        submitted: list[MessageRecord] = []
        transitions: list[Transition] = []
        for record in records:
            branch = tuple(record.branch)
            if record.checkpoint_id != certified.checkpoint_id:
                # A newer verified checkpoint covers it too: prove it under that root instead.
                try:
                    with source.lock:
                        branch = tuple(source.tree.branch(record.message.nonce, checkpoint.index + 1))
                    verify_branch(record.id, branch, record.message.nonce, checkpoint.root)
                except InvalidProof as error:
                    log.error("message does not prove under the batch checkpoint; sent alone later",
                              extra={"message_id": record.id, "error": _describe(error)})
                    continue
            items.append(DeliveryItem(record.message, branch))
            submitted.append(record)
            transitions.append(Transition(record.id, record.state, S.SUBMITTED,
                                          {"checkpoint_id": certified.checkpoint_id, "branch": branch}))
        if not items:
            return
        try:
            self.store.apply_transitions(transitions, self._clock())
        except StaleState as error:
            log.info("delivery raced another writer; retried next pass", extra={"error": str(error)})
            return
        ids = {record.id for record in submitted}
        with self._in_flight_lock:
            self._in_flight |= ids
        try:
            self._send_batch(destination, source, certified, submitted, items)
        finally:
            with self._in_flight_lock:
                self._in_flight -= ids

    def _send_batch(self, destination: _Destination, source: _Source, certified: CertifiedCheckpoint,
                    submitted: Sequence[MessageRecord], items: Sequence[DeliveryItem]) -> None:
        checkpoint = certified.checkpoint
        fields = {"origin": source.domain, "destination": destination.config.domain}
        log.info("batch submitted", extra={**fields, "messages": len(items), "index": checkpoint.index})
        request = convert.deliver_request_to_proto(checkpoint, certified.certificate, items)
        call = destination.stub.Deliver.future(request, timeout=self.config.submitter_timeout)
        try:
            while True:
                try:
                    response = call.result(timeout=0.2)
                    break
                except grpc.FutureTimeoutError:
                    if self._stop.is_set() and self._threads:
                        # Shutting down: leave the batch SUBMITTED; the next start asks again, and the
                        # submitter skips whatever this call delivered.
                        call.cancel()
                        log.info("delivery abandoned for shutdown", extra={**fields, "messages": len(items)})
                        return
        except grpc.RpcError as rpc_error:
            self._fail(submitted, _rpc_error(rpc_error, destination.config.submitter, "Deliver"), fields)
            return
        destination.answered_at = self._clock()
        self._apply_results(destination, certified, submitted, response, fields)

    def _apply_results(self, destination: _Destination, certified: CertifiedCheckpoint,
                       submitted: Sequence[MessageRecord], response: destination_pb2.DeliverResponse,
                       fields: dict[str, Any]) -> None:
        now = self._clock()
        transaction = bytes(response.transaction_hash)
        if transaction:
            from relay.store.base import SubmittedTransaction

            self.store.record_transaction(SubmittedTransaction(
                transaction, destination.config.domain, certified.checkpoint_id, tuple(r.id for r in submitted),
                response.block_number, response.gas_used, now,
            ))
        results = {bytes(r.id): r for r in response.results}
        transitions: list[Transition] = []
        failed: list[MessageRecord] = []
        outcome = destination_pb2.DeliveryOutcome
        for record in submitted:
            result = results.get(record.id)
            code = result.outcome if result is not None else outcome.DELIVERY_OUTCOME_UNSPECIFIED
            reason = result.reason if result is not None else ""
            if code == outcome.DELIVERY_OUTCOME_DELIVERED:
                transitions.append(Transition(record.id, S.SUBMITTED, S.DELIVERED,
                                              {"destination_transaction": transaction}))
            elif code == outcome.DELIVERY_OUTCOME_ALREADY_DELIVERED:
                transitions.append(Transition(record.id, S.SUBMITTED, S.DELIVERED, {}))
            elif code == outcome.DELIVERY_OUTCOME_RECIPIENT_REVERTED:
                transitions.append(Transition(record.id, S.SUBMITTED, S.PARKED, {
                    "last_error": f"RecipientReverted: {reason or 'the recipient reverted'}",
                    "error_reason": "RecipientReverted", "destination_transaction": transaction,
                }))
            elif code == outcome.DELIVERY_OUTCOME_REJECTED:
                transitions.append(Transition(record.id, S.SUBMITTED, S.REJECTED, {
                    "last_error": f"GatewayRejected: {reason or 'the destination gateway rejected the proof'}",
                    "error_reason": "GatewayRejected",
                }))
            else:
                failed.append(record)
        self.store.apply_transitions(transitions, now)
        for transition in transitions:
            extra = {**fields, "message_id": transition.id, "transaction": transaction}
            if transition.new is S.DELIVERED:
                self._observe_delivery(transition.id)
                log.info("message delivered", extra=extra)
            elif transition.new is S.REJECTED:
                self.metrics.rejections.labels(str(fields["origin"]), "GatewayRejected").inc()
                log.warning("message rejected by the destination gateway",
                            extra={**extra, "reason": transition.updates["last_error"]})
            else:
                log.warning(f"message {transition.new.value}", extra={**extra, "reason": transition.updates["last_error"]})
        if failed:
            self._fail(failed, RpcUnavailable("the submitter reported no outcome", peer=destination.config.submitter),
                       fields)

    def _fail(self, records: Sequence[MessageRecord], error: RelayError, fields: dict[str, Any]) -> None:
        """A delivery attempt failed for `records` (all SUBMITTED): back off, or park."""
        now = self._clock()
        transitions = []
        for record in records:
            attempts = record.attempts + 1
            if isinstance(error, TransientError) and not self._schedule.is_exhausted(attempts):
                delay = self._schedule.compute_delay(attempts, record.id)
                transitions.append(Transition(record.id, S.SUBMITTED, S.RETRYING, {
                    "attempts": attempts, "next_attempt_at": now + delay, "last_error": _describe(error),
                    "error_reason": error.reason,
                }))
            else:
                final_error = error if not isinstance(error, TransientError) else AttemptsExhausted(
                    "out of delivery attempts", attempts=attempts, last=_describe(error))
                transitions.append(Transition(record.id, S.SUBMITTED, S.PARKED, {
                    "attempts": attempts, "last_error": _describe(final_error), "error_reason": final_error.reason,
                }))
        self.store.apply_transitions(transitions, now)
        for transition in transitions:
            if transition.new is S.RETRYING:
                self.metrics.retries.labels("delivery").inc()
            log.warning(f"delivery failed: message {transition.new.value}", extra={
                **fields, "message_id": transition.id, "attempts": transition.updates["attempts"],
                "reason": transition.updates["last_error"],
            })

    def _recover_submitted(self) -> None:
        """Deliveries in flight when the relayer stopped: ask again (the submitter skips delivered ids)."""
        now = self._clock()
        while True:
            records = self.store.messages_in_state(S.SUBMITTED, limit=1000)
            if not records:
                return
            self.store.apply_transitions([
                Transition(r.id, S.SUBMITTED, S.RETRYING, {
                    "next_attempt_at": now, "last_error": "relayer restarted while the delivery was in flight",
                    "error_reason": "Interrupted",
                }) for r in records
            ], now)
            log.info("interrupted deliveries queued again", extra={"messages": len(records)})

    # --- metrics ------------------------------------------------------------------------------

    def _count_retry(self, policy: str) -> Callable[[Any], None]:
        def count(_: Any) -> None:
            self.metrics.retries.labels(policy).inc()
        return count

    def _observe_delivery(self, message_id: bytes) -> None:
        record = self.store.get(message_id)
        if record is None:
            return
        route = (str(record.message.origin), str(record.message.destination))
        self.metrics.messages_delivered.labels(*route).inc()
        if record.observed_at:
            self.metrics.end_to_end_latency.labels(*route).observe(max(0.0, record.delivered_at - record.observed_at))
        stages = [("observe", record.observed_at, record.final_at), ("attest", record.final_at, record.attested_at),
                  ("prove", record.attested_at, record.verified_at), ("submit", record.verified_at, record.submitted_at),
                  ("confirm", record.submitted_at, record.delivered_at)]
        for stage, start, end in stages:
            if start and end >= start:
                self.metrics.stage_latency.labels(*route, stage).observe(end - start)

    def _refresh_metrics(self, *, every: float = 1.0) -> None:
        """Message gauges from the store (at most once per `every` seconds: they are GROUP BY scans)."""
        now = self._clock()
        if now - self._metrics_refreshed_at < every:
            return
        self._metrics_refreshed_at = now
        counts: dict[tuple[int, int], dict[str, int]] = defaultdict(dict)
        for (origin, destination, state), count in self.store.count_by_route_and_state().items():
            counts[(origin, destination)][state.value] = count
        self._routes |= set(counts)
        waiting = self.store.oldest_by_route(
            [S.FINAL, S.ATTESTED, S.VERIFIED, S.SUBMITTED, S.RETRYING])
        for route in self._routes:
            route_counts = counts.get(route, {})
            self.metrics.set_message_counts(*route, route_counts)
            labels = (str(route[0]), str(route[1]))
            self.metrics.queue_depth.labels(*labels).set(
                route_counts.get(S.VERIFIED.value, 0) + route_counts.get(S.RETRYING.value, 0))
            oldest = waiting.get(route)
            self.metrics.oldest_pending_age.labels(*labels).set(max(0.0, now - oldest) if oldest else 0.0)

    # --- operator actions and status --------------------------------------------------------

    def check_operator_token(self, token: str) -> bool:
        """Whether `token` is the operator token (constant-time; False if none is configured)."""
        if not self._operator_token or not token:
            return False
        return hmac.compare_digest(token.encode(), self._operator_token.encode())

    def retry_message(self, message_id: bytes, *, force: bool = False) -> MessageRecord:
        """Move a PARKED message (or, with `force`, a REJECTED one) back to be tried again.

        PARKED with a verified proof goes back to VERIFIED (attempts reset); otherwise to FINAL,
        which attests and verifies it again from scratch. Raises `LookupError` if unknown,
        `StaleState` if the message is in another state.
        """
        record = self.store.get(message_id)
        if record is None:
            raise LookupError("unknown message")
        reset: dict[str, object] = {"attempts": 0, "next_attempt_at": 0.0}
        if record.state is S.PARKED and record.checkpoint_id is not None and record.branch:
            target = S.VERIFIED
        elif record.state is S.PARKED or (record.state is S.REJECTED and force):
            target = S.FINAL
            reset.update(checkpoint_id=None, branch=())
        else:
            raise StaleState("only PARKED messages (or REJECTED with force) can be retried",
                             id=message_id, state=record.state.name, force=force)
        self.store.apply_transition(Transition(message_id, record.state, target, reset), self._clock())
        log.info("operator retry", extra={"message_id": message_id, "from": record.state.value, "to": target.value,
                                          "origin": record.message.origin,
                                          "destination": record.message.destination})
        for destination in self._destinations.values():
            destination.wake.set()
        updated = self.store.get(message_id)
        if updated is None:  # pragma: no cover - the row was just updated
            raise LookupError("unknown message")
        return updated

    def chain_statuses(self) -> list[relay_service_pb2.ChainStatus]:
        """Head, finalized block, cursor and lag of every source chain."""
        now = self._clock()
        statuses = []
        for source in self._sources.values():
            cursor = source.cursors.load_cursor(source.domain)
            position = cursor.block_number if cursor is not None else 0
            statuses.append(relay_service_pb2.ChainStatus(
                domain=source.domain, name=source.name, head=source.head, finalized=source.finalized,
                cursor=position, lag_blocks=max(0, source.finalized - position),
                lag_seconds=(now - source.behind_since) if source.behind_since else 0.0,
            ))
        return statuses

    # --- state-change subscriptions (WatchMessages) -----------------------------------------

    def subscribe(self, ids: Sequence[bytes] = ()) -> _Subscriber:
        """A bounded queue of changed message ids (all, or only `ids`) until `unsubscribe`."""
        subscriber = _Subscriber(frozenset(ids))
        with self._subscribers_lock:
            self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: _Subscriber) -> None:
        """Stop feeding `subscriber`."""
        with self._subscribers_lock:
            self._subscribers.discard(subscriber)

    def _on_state_change(self, ids: Sequence[bytes]) -> None:
        with self._subscribers_lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.offer(ids)

    @property
    def stopping(self) -> bool:
        """Whether shutdown was requested."""
        return self._stop.is_set()


class _Subscriber:
    """One WatchMessages stream's inbox; overflows (a stuck client) end the stream, not the relayer."""

    CAPACITY = 10_000

    def __init__(self, ids: frozenset[bytes]) -> None:
        self.ids = ids
        self.inbox: queue.Queue[bytes | None] = queue.Queue(self.CAPACITY)
        self.overflowed = False

    def offer(self, ids: Sequence[bytes]) -> None:
        for message_id in ids:
            if self.ids and message_id not in self.ids:
                continue
            try:
                self.inbox.put_nowait(message_id)
            except queue.Full:
                self.overflowed = True
                return

    def close(self) -> None:
        try:
            self.inbox.put_nowait(None)
        except queue.Full:
            self.overflowed = True


# --- RelayService --------------------------------------------------------------------------------


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, details)
    raise RuntimeError("grpc abort returned")  # pragma: no cover - abort always raises


def _invalid(context: grpc.ServicerContext, error: Exception) -> NoReturn:
    _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(error))


class RelayServicer(relay_service_pb2_grpc.RelayServiceServicer):
    """`relay.v1.RelayService` over a `Relayer`: dApps track messages, operators retry and watch lag."""

    def __init__(self, relayer: Relayer) -> None:
        self.relayer = relayer

    def GetMessage(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC names
        try:
            message_id = convert.message_id_from_bytes(request.id)
        except MalformedEncoding as error:
            _invalid(context, error)
        record = self.relayer.store.get(message_id)
        if record is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"message 0x{message_id.hex()} was never observed")
        return convert.message_status_to_proto(record)

    def ListMessages(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            states = frozenset(convert.state_from_proto(s) for s in request.states)
            size = request.page_size or DEFAULT_PAGE_SIZE
            where = MessageFilter(states=states, origin=request.origin, destination=request.destination)
            page = self.relayer.store.list_messages(where, min(size, MAX_PAGE_SIZE), request.page_token)
        except (MalformedEncoding, ValueError) as error:
            _invalid(context, error)
        return relay_service_pb2.ListMessagesResponse(
            messages=[convert.message_status_to_proto(r) for r in page.records], next_page_token=page.next_token,
        )

    def WatchMessages(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        try:
            ids = [convert.message_id_from_bytes(i, "ids") for i in request.ids]
        except MalformedEncoding as error:
            _invalid(context, error)
        relayer = self.relayer
        subscriber = relayer.subscribe(ids)
        try:
            last: dict[bytes, tuple[MessageState, float]] = {}

            def status(record: MessageRecord) -> Any:
                last[record.id] = (record.state, record.updated_at)
                return convert.message_status_to_proto(record)

            # The current state first: the given ids, or every message still in flight.
            if ids:
                current = [r for r in (relayer.store.get(i) for i in ids) if r is not None]
            else:
                current = []
                token = ""
                pending = frozenset(s for s in MessageState if s.is_pending)
                while True:
                    page = relayer.store.list_messages(MessageFilter(states=pending), MAX_PAGE_SIZE, token)
                    current.extend(page.records)
                    token = page.next_token
                    if not token:
                        break
                current.reverse()
            for record in current:
                yield status(record)
            while context.is_active() and not relayer.stopping:
                if subscriber.overflowed:
                    _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, "watcher fell too far behind; watch again")
                try:
                    message_id = subscriber.inbox.get(timeout=0.5)
                except queue.Empty:
                    continue
                if message_id is None:
                    return
                changed = relayer.store.get(message_id)
                if changed is None or last.get(changed.id) == (changed.state, changed.updated_at):
                    continue
                yield status(changed)
        finally:
            relayer.unsubscribe(subscriber)

    def RetryMessage(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        if not self.relayer.check_operator_token(request.operator_token):
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, "RetryMessage needs the operator token")
        try:
            message_id = convert.message_id_from_bytes(request.id)
        except MalformedEncoding as error:
            _invalid(context, error)
        try:
            record = self.relayer.retry_message(message_id, force=request.force)
        except LookupError:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"message 0x{message_id.hex()} was never observed")
        except StaleState as error:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(error))
        return convert.message_status_to_proto(record)

    def ListChains(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return relay_service_pb2.ListChainsResponse(chains=self.relayer.chain_statuses())
