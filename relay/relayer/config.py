"""The relayer's configuration: sources (chain, committee, attestors), destinations, batching,
retries, and the gas policy (`relay.relayer.policy`).

Strict like every role's config (unknown keys are errors, see `relay.config`); read from a YAML or
JSON file, then `RELAY_*` environment variables, then flags.
"""

from __future__ import annotations

import math
import re
import socket
from typing import Any, Literal

from pydantic import Field, model_validator

from relay.chains.registry import ChainConfig
from relay.config import CommitteeConfig, GrpcRoleConfig, SecretRef, StrictModel
from relay.relayer.policy import GasPolicyConfig
from relay.retry import DEFAULT_GIVE_UP_AFTER, BackoffSchedule
from relay.store import is_postgres_dsn

# A replica id names leases ("replica/<id>") and message claims: a host or pod name fits.
MAX_LEASE_SECONDS = 600.0  # a dead replica's sources and deliveries wait at most this long
REPLICA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def default_replica_id() -> str:
    """The host name (a pod's name in Kubernetes), reduced to the characters a replica id allows."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).lstrip("._-")[:128]
    return name or "relayer"


VERIFICATION_MODES = ("committee", "lightclient")


class SourceConfig(StrictModel):
    """A source chain: where to watch, and how its messages are proven to the destinations.

    `verification: committee` (the default): a committee signs checkpoints; `committee` is its
    trusted start and `attestors` where its members serve signatures. `verification: lightclient`:
    no committee and no attestors; the destination Gateways follow the origin's sync committee
    with an on-chain light client, and the relayer feeds it updates from a beacon node and proves
    each message by its receipt. The chain must then be `kind: ethereum` with a `light_client`
    section (`beacon_url`, `trusted_block_root`, `network` or `network_config` +
    `genesis_validators_root`; the execution RPC is `light_client.execution_url`, else the chain's
    first `rpc_urls`), and every destination names the origin's light client and inbox in its
    `chain.light_client_origins` (see `RelayerConfig`).
    """

    chain: ChainConfig
    verification: Literal["committee", "lightclient"] = "committee"
    committee: CommitteeConfig | None = None
    attestors: list[str] = Field(default_factory=list)

    @property
    def is_light_client(self) -> bool:
        """Whether the origin is verified by the destinations' light clients (no committee)."""
        return self.verification == "lightclient"

    @model_validator(mode="after")
    def _check(self) -> SourceConfig:
        where = f"source {self.chain.name!r} (domain {self.chain.domain})"
        if self.is_light_client:
            if self.committee is not None or self.attestors:
                raise ValueError(
                    f"{where}: verification lightclient has no committee and no attestors; remove them"
                )
            if getattr(self.chain, "light_client", None) is None:
                raise ValueError(
                    f"{where}: verification lightclient needs chain kind 'ethereum' with a light_client"
                    " section (beacon_url, trusted_block_root, network or network_config)"
                )
            return self
        if self.committee is None:
            raise ValueError(f"{where}: committee is required (verification committee)")
        if not self.attestors:
            raise ValueError("attestors needs at least one gRPC address")
        return self

    def trusted_committee(self) -> CommitteeConfig:
        """The committee of a `verification: committee` source (its config is validated to have one)."""
        if self.committee is None:
            raise ValueError(f"source {self.chain.name!r} has no committee (verification lightclient)")
        return self.committee


class DestinationConfig(StrictModel):
    """A destination chain, reached through its submitter's `DestinationService`.

    `chain` (optional, recommended): the destination chain itself (rpc_urls, gateway, validated
    like every chain config). With it the relayer reads the gateway's delivered flags: a message
    becomes DELIVERED only once the chain shows it, and a PARKED or RETRYING message found
    delivered there becomes DELIVERED. Without it, the submitter's report is believed.
    """

    domain: int
    submitter: str
    name: str = ""
    chain: ChainConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> DestinationConfig:
        if self.chain is not None and self.chain.domain != self.domain:
            raise ValueError(
                f"chain.domain ({self.chain.domain}) must be the destination's domain ({self.domain})"
            )
        return self


class BatchingConfig(StrictModel):
    """How deliveries are grouped, sent at the latest `max_wait` s after ready. A batch has at most:

    - `max_batch` messages;
    - `max_batch_bytes` of calldata (each message's encoding plus its Merkle branch and ABI
      framing), well under the gRPC message cap (`relay.rpc.limits`);
    - `max_batch_gas` of declared gas: each message's gas limit plus its calldata at
      `CALLDATA_GAS_PER_BYTE` plus `MESSAGE_OVERHEAD_GAS` (see `relay.relayer.deliver`), and never
      more than `block_gas_fraction` of the destination's block gas limit when its `chain:`
      section can read it.

    A single message above a bound goes alone.
    """

    max_batch: int = 50
    max_wait: float = 0.5
    max_batch_bytes: int = 1 << 20
    max_batch_gas: int = 15_000_000
    block_gas_fraction: float = 0.5

    @model_validator(mode="after")
    def _check(self) -> BatchingConfig:
        if not 1 <= self.max_batch <= 1000 or self.max_wait < 0:
            raise ValueError("max_batch must be in 1..1000 and max_wait >= 0")
        if not 4096 <= self.max_batch_bytes <= 8 << 20:
            raise ValueError("max_batch_bytes must be in 4096..8388608 (the gRPC cap is 16 MiB)")
        if self.max_batch_gas < 100_000 or not 0 < self.block_gas_fraction <= 1:
            raise ValueError("max_batch_gas must be >= 100000 and block_gas_fraction in (0, 1]")
        return self


class RetryConfig(StrictModel):
    """The per-message delivery backoff (see `relay.retry.BackoffSchedule`).

    A transient failure (a submitter, RPC or chain away) is retried with waits doubling from
    `base_delay` up to `max_delay`, for as long as `give_up_after` seconds since the message became
    deliverable (default a week); only then, or at once for a permanent failure, is it PARKED.
    """

    give_up_after: float = DEFAULT_GIVE_UP_AFTER
    base_delay: float = 1.0
    max_delay: float = 300.0
    jitter: float = 0.2
    # A delivery the destination gateway refused because delivery from its origin is paused
    # (emergency controls) waits PAUSED, without counting as an attempt, and is tried again this
    # often (a simulation by the submitter; no transaction is sent while the pause lasts).
    paused_recheck: float = 15.0

    def schedule(self) -> BackoffSchedule:
        """The backoff schedule these settings describe."""
        return BackoffSchedule(
            self.base_delay, self.max_delay, give_up_after=self.give_up_after, jitter=self.jitter
        )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_attempts" in data:
            raise ValueError(
                "max_attempts was removed: transient failures are retried for give_up_after seconds"
                " (default 604800, a week) and never parked after a number of attempts"
            )
        return data

    @model_validator(mode="after")
    def _check(self) -> RetryConfig:
        if self.base_delay <= 0 or self.max_delay < self.base_delay:
            raise ValueError("base_delay > 0 and max_delay >= base_delay")
        if self.give_up_after < self.max_delay:
            raise ValueError(
                f"give_up_after ({self.give_up_after} s) must be at least max_delay ({self.max_delay} s)"
            )
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if self.paused_recheck <= 0:
            raise ValueError("paused_recheck must be positive")
        return self


class RelayerConfig(GrpcRoleConfig):
    """The relayer's configuration (YAML/JSON file, `RELAY_*` environment, flags).

    Transport (`relay.config.GrpcRoleConfig`): with `tls`, `listen` serves RelayService to dApps
    and dashboards over server TLS (no client certificate) and refuses operator calls;
    `operator_listen` serves the same RelayService over mutual TLS, and only there are operator
    calls (`RetryMessage`, with the operator token) accepted. The relayer dials attestors and
    submitters with the same certificate.
    """

    # A SQLite file (a path or sqlite:///path) or a PostgreSQL DSN (postgresql://user@host/db,
    # never with its password: that comes from store_password_file, 0600, or libpq's PGPASSWORD).
    store: str = "relayer.db"
    store_password_file: str | None = None
    listen: str = "127.0.0.1:0"
    # Mutual-TLS port for operator calls (needs tls); None: operator calls are refused everywhere.
    operator_listen: str | None = None
    operator_token: SecretRef | None = None
    sources: list[SourceConfig]
    destinations: list[DestinationConfig] = Field(default_factory=list)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    gas_policy: GasPolicyConfig = Field(default_factory=GasPolicyConfig)
    bls_backend: str | None = None
    poll_interval: float = 0.5
    attestor_timeout: float = 2.0
    submitter_timeout: float = 120.0
    # How often each destination gateway's committee of every origin is read (`committeeOf`): to
    # follow hand-overs and to submit the known ones where a gateway lags.
    committee_sync_interval: float = 5.0
    # RelayService: at most this many streams (WatchMessages) and unary calls at once, each kind
    # with its own server threads; a call over its limit gets RESOURCE_EXHAUSTED at once.
    max_watch_streams: int = 32
    max_unary_calls: int = 16
    # host:port for /metrics, /healthz, /readyz; None: no HTTP endpoint.
    metrics_listen: str | None = None
    # /readyz: every source polled within `ready_max_poll_age` s and at most this many blocks behind.
    ready_max_lag_blocks: int = 100
    ready_max_poll_age: float = 60.0
    # Status page links: chain domain -> transaction URL template with `{tx}` for the 0x hash,
    # e.g. {1: "https://explorer.example/tx/{tx}"}. A chain without one shows the plain hash.
    explorers: dict[int, str] = Field(default_factory=dict)
    # Replicas (docs/adr/0007-replicas-leases-fencing.md): this process's name among the relayers
    # sharing the store ("": the host name), unique per live process; and how long a source lease
    # or a delivery claim lasts unless renewed (source leases every pass, claims every third of it
    # while a delivery call waits): a dead replica's work is taken over within about this long.
    replica_id: str = ""
    lease_seconds: float = 15.0  # at most MAX_LEASE_SECONDS
    # Light-client origins: how many blocks a receipt proof may walk back, by parent hash, from the
    # newest header the destination light client stores to the message's block (each costs calldata).
    light_client_max_header_walk: int = 256

    @model_validator(mode="before")
    @classmethod
    def _default_replica_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("replica_id"):
            return {**data, "replica_id": default_replica_id()}
        return data

    @model_validator(mode="after")
    def _check(self) -> RelayerConfig:
        if not self.sources:
            raise ValueError("sources needs at least one source chain")
        if is_postgres_dsn(self.store):
            from relay.store.postgres_connect import parse_dsn  # psycopg only when PostgreSQL is used

            parse_dsn(self.store)  # refuses a password inline
        elif self.store_password_file is not None:
            raise ValueError("store_password_file is for a PostgreSQL store (store: postgresql://...)")
        if not REPLICA_ID.fullmatch(self.replica_id):
            raise ValueError(
                f"replica_id must be 1..128 of A-Z a-z 0-9 . _ - (starting with a letter or digit), "
                f"got {self.replica_id!r}"
            )
        if (
            not math.isfinite(self.lease_seconds)  # NaN compares False with everything
            or self.lease_seconds <= 0
            or self.lease_seconds < 2 * self.poll_interval
            or self.lease_seconds > MAX_LEASE_SECONDS
        ):
            raise ValueError(
                f"lease_seconds must be at least twice poll_interval ({2 * self.poll_interval} s) and at"
                f" most {MAX_LEASE_SECONDS:g} s (a dead replica's work waits that long), got {self.lease_seconds}"
            )
        if not 0 <= self.light_client_max_header_walk <= 8192:
            raise ValueError("light_client_max_header_walk must be in 0..8192 blocks")
        if self.operator_listen is not None and self.tls is None:
            raise ValueError("operator_listen needs tls: operator calls are served over mutual TLS only")
        domains = [s.chain.domain for s in self.sources]
        if len(set(domains)) != len(domains):
            raise ValueError(f"source domains must be unique (got {domains})")
        targets = [d.domain for d in self.destinations]
        if len(set(targets)) != len(targets):
            raise ValueError(f"destination domains must be unique (got {targets})")
        if self.poll_interval <= 0 or self.attestor_timeout <= 0 or self.submitter_timeout <= 0:
            raise ValueError("poll_interval, attestor_timeout and submitter_timeout must be positive")
        if not 1 <= self.max_watch_streams <= 10_000 or not 1 <= self.max_unary_calls <= 10_000:
            raise ValueError("max_watch_streams and max_unary_calls must be in 1..10000")
        if self.bls_backend is not None and self.bls_backend not in ("blst", "py_ecc"):
            raise ValueError("bls_backend must be 'blst' or 'py_ecc'")
        for source in self.sources:
            if not source.is_light_client:
                continue
            for destination in self.destinations:
                if destination.domain == source.chain.domain:
                    continue
                origins = getattr(destination.chain, "light_client_origins", None) or {}
                if source.chain.domain not in origins:
                    raise ValueError(
                        f"destination {destination.domain}: source {source.chain.domain} is verified by"
                        f" light client, so the destination needs chain.light_client_origins."
                        f"{source.chain.domain} (light_client and inbox addresses)"
                    )
        unknown = sorted(set(self.gas_policy.destinations) - set(targets))
        if unknown:
            raise ValueError(f"gas_policy.destinations: not destination domains: {unknown}")
        known = set(domains) | set(targets)
        for domain, template in self.explorers.items():
            if domain not in known:
                raise ValueError(
                    f"explorers.{domain}: not a source or destination domain (known: {sorted(known)})"
                )
            if "{tx}" not in template or not template.startswith(("http://", "https://")):
                raise ValueError(
                    f"explorers.{domain}: needs an http(s) URL with a {{tx}} placeholder (got {template!r})"
                )
        return self

    def store_password(self) -> str | None:
        """The PostgreSQL store's password from `store_password_file` (refused unless 0600), or None."""
        if self.store_password_file is None:
            return None
        return SecretRef(file=self.store_password_file).reveal()
