"""The relayer's configuration: sources (chain, committee, attestors), destinations, batching, retries.

Strict like every role's config (unknown keys are errors, see `relay.config`); read from a YAML or
JSON file, then `RELAY_*` environment variables, then flags.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from relay.chains.registry import ChainConfig
from relay.config import CommitteeConfig, SecretRef, StrictModel
from relay.retry import BackoffSchedule


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
                raise ValueError(
                    f"explorers.{domain}: not a source or destination domain (known: {sorted(known)})"
                )
            if "{tx}" not in template or not template.startswith(("http://", "https://")):
                raise ValueError(
                    f"explorers.{domain}: needs an http(s) URL with a {{tx}} placeholder (got {template!r})"
                )
        return self
