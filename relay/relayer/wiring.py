"""How an open relayer's parts are built: its peers and chain readers (`Factories`) and its stages.

`Factories` holds one factory per outside dependency: the source watcher, attestor and submitter
clients, and the chain readers (delivery flags, gas payments, gas market). By default they are the
gRPC clients and the chain registry's adapters, counting on the relayer's metrics; tests and
embedders replace any of them. `Stages` wires every stage to the store, metrics, clock and the
per-chain state; `build_gas_policy` gives the gas policy its readers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass

from relay.chains import ChainConfigBase, CommitteeReader, DeliveryReader, GasMarketReader, PaymentReader
from relay.chains.lightclient import LightClientOrigin, LightClientReader
from relay.chains.registry import (
    create_committee_reader,
    create_delivery_reader,
    create_gas_market_reader,
    create_light_client_origin,
    create_light_client_reader,
    create_payment_reader,
    create_watcher,
)
from relay.config import TlsConfig
from relay.metrics import RelayMetrics
from relay.peers import AttestorClient, SubmitterClient
from relay.relayer.attest import AttestationCollector
from relay.relayer.committees import CommitteeFollower
from relay.relayer.common import Clock
from relay.relayer.config import RelayerConfig
from relay.relayer.costs import RouteCosts
from relay.relayer.deliver import Deliverer
from relay.relayer.gauges import Gauges
from relay.relayer.ingest import Ingest, WatcherFactory
from relay.relayer.lightclient import HeaderDriver
from relay.relayer.outcomes import Outcomes
from relay.relayer.policy import GasPolicy
from relay.relayer.prove import Prover
from relay.relayer.replicas import ReplicaLeases
from relay.relayer.state import DestinationState, SourceState
from relay.store.base import Store
from relay.verify.bls import BlsBackend

AttestorFactory = Callable[[str], AttestorClient]
SubmitterFactory = Callable[[str], SubmitterClient]
DeliveryReaderFactory = Callable[[ChainConfigBase], DeliveryReader]
PaymentReaderFactory = Callable[[ChainConfigBase], PaymentReader]
GasMarketReaderFactory = Callable[[ChainConfigBase], GasMarketReader]
CommitteeReaderFactory = Callable[[ChainConfigBase], CommitteeReader]
# A light-client origin's adapter (its source chain config); a destination chain's light client of
# an origin (destination chain config, origin domain).
LightClientOriginFactory = Callable[[ChainConfigBase], LightClientOrigin]
LightClientReaderFactory = Callable[[ChainConfigBase, int], LightClientReader]


def grpc_attestor(address: str, tls: TlsConfig | None) -> AttestorClient:
    """The attestor at `address` over gRPC (mutual TLS with `tls`; None: plaintext, development only)."""
    from relay.rpc.clients import GrpcAttestorClient

    return GrpcAttestorClient(address, tls)


def grpc_submitter(address: str, tls: TlsConfig | None) -> SubmitterClient:
    """The submitter at `address` over gRPC (mutual TLS with `tls`; None: plaintext, development only)."""
    from relay.rpc.clients import GrpcSubmitterClient

    return GrpcSubmitterClient(address, tls)


@dataclass(frozen=True)
class Factories:
    """Where an open relayer gets each outside dependency (see the module docstring)."""

    watcher: WatcherFactory
    attestor: AttestorFactory
    submitter: SubmitterFactory
    delivery_reader: DeliveryReaderFactory
    payment_reader: PaymentReaderFactory
    gas_market_reader: GasMarketReaderFactory
    committee_reader: CommitteeReaderFactory
    light_client_origin: LightClientOriginFactory
    light_client_reader: LightClientReaderFactory

    @classmethod
    def with_defaults(
        cls,
        metrics: RelayMetrics,
        *,
        tls: TlsConfig | None = None,
        watcher: WatcherFactory | None = None,
        attestor: AttestorFactory | None = None,
        submitter: SubmitterFactory | None = None,
        delivery_reader: DeliveryReaderFactory | None = None,
        payment_reader: PaymentReaderFactory | None = None,
        gas_market_reader: GasMarketReaderFactory | None = None,
        committee_reader: CommitteeReaderFactory | None = None,
        light_client_origin: LightClientOriginFactory | None = None,
        light_client_reader: LightClientReaderFactory | None = None,
    ) -> Factories:
        """The given factories, and the gRPC clients (with `tls`) and registry adapters (on `metrics`)
        for the rest."""
        return cls(
            watcher=watcher or (lambda chain, cursors: create_watcher(chain, cursors, metrics)),
            attestor=attestor or (lambda address: grpc_attestor(address, tls)),
            submitter=submitter or (lambda address: grpc_submitter(address, tls)),
            delivery_reader=delivery_reader or (lambda chain: create_delivery_reader(chain, metrics)),
            payment_reader=payment_reader or (lambda chain: create_payment_reader(chain, metrics)),
            gas_market_reader=gas_market_reader or (lambda chain: create_gas_market_reader(chain, metrics)),
            committee_reader=committee_reader or (lambda chain: create_committee_reader(chain, metrics)),
            light_client_origin=light_client_origin
            or (lambda chain: create_light_client_origin(chain, metrics)),
            light_client_reader=light_client_reader
            or (lambda chain, origin: create_light_client_reader(chain, origin, metrics)),
        )


def build_gas_policy(config: RelayerConfig, factories: Factories, clock: Clock) -> GasPolicy:
    """The gas policy with its readers: each source's payments (not read in `allow_all` mode) and
    the gas market of each destination with a `chain:` section."""
    payments: dict[int, PaymentReader] = {}
    if config.gas_policy.mode != "allow_all":
        payments = {s.chain.domain: factories.payment_reader(s.chain) for s in config.sources}
    markets = {
        d.domain: factories.gas_market_reader(d.chain) for d in config.destinations if d.chain is not None
    }
    return GasPolicy(config.gas_policy, payments, markets, clock)


def build_header_driver(
    config: RelayerConfig,
    store: Store,
    metrics: RelayMetrics,
    clock: Clock,
    destinations: Mapping[int, DestinationState],
    factories: Factories,
) -> HeaderDriver:
    """The light-client stage: an origin adapter per light-client source, and each destination's
    light client of it read lazily (once, then kept) from the destination's `chain:` section."""
    origins = {
        s.chain.domain: factories.light_client_origin(s.chain) for s in config.sources if s.is_light_client
    }
    readers: dict[tuple[int, int], LightClientReader | None] = {}

    def reader(origin: int, domain: int) -> LightClientReader | None:
        key = (origin, domain)
        if key not in readers:
            destination = destinations.get(domain)
            chain = destination.config.chain if destination is not None else None
            readers[key] = factories.light_client_reader(chain, origin) if chain is not None else None
        return readers[key]

    return HeaderDriver(
        store,
        metrics,
        clock,
        destinations,
        origins,
        reader,
        submitter_timeout=config.submitter_timeout,
        max_header_walk=config.light_client_max_header_walk,
    )


class Stages:
    """The stages of one open relayer, wired to its store, metrics, clock and per-chain state."""

    def __init__(
        self,
        config: RelayerConfig,
        store: Store,
        metrics: RelayMetrics,
        clock: Clock,
        backend: BlsBackend,
        pool: futures.Executor,
        sources: Mapping[int, SourceState],
        destinations: Mapping[int, DestinationState],
        factories: Factories,
        interrupted: Callable[[], bool],
    ) -> None:
        # This replica's registration and source leases (several relayers on one store).
        self.metrics = metrics
        self.replica = ReplicaLeases(store, metrics, clock, config.replica_id, config.lease_seconds)
        self.gauges = Gauges(store, metrics, clock)
        self.ingest = Ingest(store, metrics, clock, factories.watcher)
        self.attestations = AttestationCollector(
            store, metrics, clock, backend, pool, config.attestor_timeout
        )
        self.prover = Prover(store, metrics, clock, backend)
        self.headers = build_header_driver(config, store, metrics, clock, destinations, factories)
        committee_readers = {
            d.domain: factories.committee_reader(d.config.chain)
            for d in destinations.values()
            if d.config.chain is not None
        }

        def wake_deliveries() -> None:
            for destination in destinations.values():
                destination.wake.set()

        self.committees = CommitteeFollower(
            store,
            metrics,
            clock,
            backend,
            dict(destinations),
            committee_readers,
            config.committee_sync_interval,
            wake_deliveries,
        )
        readers = {d.domain: d.reader for d in destinations.values() if d.reader is not None}
        self.outcomes = Outcomes(
            store,
            metrics,
            clock,
            config.retry.schedule(),
            self.gauges,
            readers,
            paused_recheck=config.retry.paused_recheck,
        )
        self.policy = build_gas_policy(config, factories, clock)
        self.deliverer = Deliverer(
            store,
            clock,
            config.batching,
            config.submitter_timeout,
            sources,
            self.outcomes,
            interrupted,
            policy=self.policy,
            metrics=metrics,
            costs=RouteCosts(metrics),
            owner=config.replica_id,
            lease_seconds=config.lease_seconds,
            receipts=self.headers,
        )
