"""The attestor role: one committee member signing the final checkpoints of one source chain.

Its loop reads what is final on the source chain from a `FinalitySource` (for EVM: the
Gateway's root and count at the finalized block, which every configured RPC endpoint must agree
on), and whenever the count grew it builds `Checkpoint(origin, gateway, epoch, root,
index=count-1)` and signs its digest with the member's BLS key. It keeps the most recent signed
checkpoints in memory (`CheckpointLedger`) and serves them over gRPC `AttestationService`, with
grpc.health.v1 and reflection; `/metrics`, `/healthz` and `/readyz` over HTTP when configured.

An attestor never signs two different roots for the same index, nor a root that does not extend
the tree it signed before (`relay.roles.ledger`): if the "final" history it signed changes,
finality was violated (or an RPC lied); it logs an alert, sets `relay_attestor_halted`, stops
signing and reports NOT_SERVING, instead of helping to certify a conflicting history.

Nothing here imports web3: the chain is reached through `relay.chains.registry`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
from pydantic import field_validator, model_validator

from relay.chains import CommitteeReader, FinalitySource, TreeHistory
from relay.chains import registry as chain_registry
from relay.chains.registry import ChainConfig
from relay.config import GrpcRoleConfig, SecretRef
from relay.errors import ConfigurationError, InvalidProof, RelayError
from relay.roles.ecdsa_handover import EcdsaHandoverSigner
from relay.roles.ledger import (
    AttestorIdentity,
    CheckpointLedger,
    FinalityConflict,
    InconsistentTreeSource,
    NonExtendingRoot,
    read_signed_log,
)
from relay.roles.membership import (
    CommitteeMembership,
    HandoverLog,
    HandoverSigner,
    ProposalSigner,
    sign_handover_call,
)
from relay.roles.service import ServedRole
from relay.rpc.convert import PartialSignature, partial_signature_to_proto
from relay.rpc.limits import CallLimits
from relay.rpc.server import GrpcServer, split_address, start_grpc_server
from relay.v1 import attestation_pb2, attestation_pb2_grpc, types_pb2
from relay.verify.bls import BlsBackend, get_backend

log = logging.getLogger(__name__)

__all__ = [
    "AttestationServicer",
    "Attestor",
    "AttestorConfig",
    "AttestorIdentity",
    "CheckpointLedger",
    "FinalityConflict",
    "InconsistentTreeSource",
    "NonExtendingRoot",
    "compute_ecdsa_address",
    "parse_ecdsa_secret_key",
    "parse_secret_key",
    "read_signed_log",
]

SERVICE_NAME = "relay.v1.AttestationService"
STREAM_WAKE_SECONDS = 1.0


class AttestorConfig(GrpcRoleConfig):
    """`relay attestor --config FILE`: which chain, which key, where to serve (and `tls`, see
    `relay.config.GrpcRoleConfig`: its AttestationService requires a client certificate)."""

    chain: ChainConfig
    # The member's secret key, exactly one of: `bls_key` for a BLS committee (a hex integer, with
    # or without 0x), or `ecdsa_key` for an ECDSA committee (32 bytes as 64 hex digits, with or
    # without 0x: a secp256k1 key whose address is the member's). From a file (0600, refused
    # otherwise) or the environment.
    bls_key: SecretRef | None = None
    ecdsa_key: SecretRef | None = None
    signer_index: int
    epoch: int
    listen: str = "127.0.0.1:50051"
    # host:port for /metrics, /healthz, /readyz; None: no HTTP endpoint.
    metrics_listen: str | None = None
    poll_interval: float = 0.5
    # Signed checkpoints kept in memory for GetCheckpoint / StreamCheckpoints.
    history: int = 4096
    # /readyz fails when the last successful read of the chain is older than this.
    max_staleness: float = 30.0
    # Append-only record of every (index, root, frontier) signed, so that a restarted attestor never
    # signs a different root for an index it signed before, nor a root that does not extend the
    # tree it signed. None: kept in memory only (lost on restart).
    signed_log: str | None = None
    # A destination chain whose gateway has this origin enrolled: the attestor follows the
    # committee there (`committeeOf` / `currentCommittee`) instead of the configured epoch and
    # signer index, which are then only the start, and checks hand-over proposals against it.
    committee_chain: ChainConfig | None = None
    committee_poll_interval: float = 2.0
    # Needed by SignHandover (an operator's call); None: SignHandover is refused.
    operator_token: SecretRef | None = None
    # Sign hand-overs to a committee whose threshold is below two thirds of its weight (the
    # proposal must ask for it, and the destination Gateway's owner must allow it per origin).
    allow_low_threshold_handovers: bool = False

    @field_validator("signer_index", "epoch")
    @classmethod
    def _non_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be >= 0")
        return value

    @model_validator(mode="after")
    def _one_key(self) -> AttestorConfig:
        if (self.bls_key is None) == (self.ecdsa_key is None):
            raise ValueError(
                "set exactly one of bls_key (a BLS committee) and ecdsa_key (an ECDSA committee)"
            )
        return self

    @field_validator("poll_interval", "max_staleness", "committee_poll_interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be > 0")
        return value


def parse_secret_key(text: str) -> int:
    """A BLS secret key from its hex text; `ConfigurationError` (without the value) otherwise."""
    try:
        key = int(text.strip().removeprefix("0x"), 16)
    except ValueError:
        raise ConfigurationError("BLS key is not a hex integer") from None
    if key <= 0:
        raise ConfigurationError("BLS key must be positive")
    return key


def parse_ecdsa_secret_key(text: str) -> bytes:
    """A secp256k1 secret key (32 bytes, in 1..n-1) from 64 hex digits; `ConfigurationError`
    (without the value) otherwise."""
    from relay.verify.ecdsa import SECP256K1_ORDER

    digits = text.strip().removeprefix("0x")
    if len(digits) != 64:
        raise ConfigurationError("ECDSA key must be 32 bytes written as 64 hex digits", digits=len(digits))
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        raise ConfigurationError("ECDSA key is not hex") from None
    if not 0 < int.from_bytes(key, "big") < SECP256K1_ORDER:
        raise ConfigurationError("ECDSA key must be in 1..n-1 of secp256k1")
    return key


def compute_ecdsa_address(secret_key: bytes) -> bytes:
    """The 20-byte Ethereum address of a secp256k1 secret key."""
    from coincurve import PrivateKey

    from relay.verify.hashing import keccak256

    return keccak256(PrivateKey(secret_key).public_key.format(compressed=False)[1:])[12:]


class AttestationServicer(attestation_pb2_grpc.AttestationServiceServicer):
    """gRPC AttestationService over a `CheckpointLedger` (and a `HandoverSigner` for SignHandover)."""

    def __init__(
        self, ledger: CheckpointLedger, stopping: threading.Event, signer: ProposalSigner | None = None
    ) -> None:
        self.ledger = ledger
        self.stopping = stopping
        self.signer = signer

    def _check_origin(self, origin: int, context: grpc.ServicerContext) -> None:
        expected = self.ledger.identity.origin
        if origin != expected:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"this attestor signs checkpoints of origin {expected}, not {origin}",
            )

    def GetCheckpoint(self, request: Any, context: grpc.ServicerContext) -> types_pb2.CheckpointSignature:  # noqa: N802
        """The newest signed checkpoint with index >= min_index; NOT_FOUND before there is one."""
        self._check_origin(request.origin, context)
        if not self.ledger.signing:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"this attestor is not a member of the committee of epoch {self.ledger.identity.epoch}",
            )
        signed = self.ledger.newest_at_least(request.min_index)
        if signed is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no final checkpoint at index >= {request.min_index} signed yet "
                f"(last signed index {self.ledger.last_signed_index})",
            )
            raise AssertionError("unreachable: abort raises")  # pragma: no cover
        return partial_signature_to_proto(signed)

    def StreamCheckpoints(  # noqa: N802
        self, request: Any, context: grpc.ServicerContext
    ) -> Iterator[types_pb2.CheckpointSignature]:
        """Every kept signed checkpoint from `from_index` on, then each new one as it is signed."""
        self._check_origin(request.origin, context)
        next_index = request.from_index
        while context.is_active() and not self.stopping.is_set():
            for signed in self.ledger.signed_from(next_index):
                yield partial_signature_to_proto(signed)
                next_index = signed.checkpoint.index + 1
            self.ledger.wait_for_change(next_index - 1, STREAM_WAKE_SECONDS)

    def GetIdentity(self, request: Any, context: grpc.ServicerContext) -> attestation_pb2.AttestorIdentity:  # noqa: N802
        """Public key, proof of possession, origin, epoch and the last signed index."""
        identity = self.ledger.identity
        return attestation_pb2.AttestorIdentity(
            origin=identity.origin,
            gateway=identity.gateway,
            epoch=identity.epoch,
            signer_index=identity.signer_index,
            # An ECDSA member is named by its 20-byte address (`signer_address`), a BLS one by its key.
            public_key=identity.public_key if len(identity.public_key) != 20 else b"",
            signer_address=identity.public_key if len(identity.public_key) == 20 else b"",
            proof_of_possession=identity.proof_of_possession,
            last_signed_index=self.ledger.last_signed_index,
            not_member=not self.ledger.signing,
        )

    def SignHandover(self, request: Any, context: grpc.ServicerContext) -> attestation_pb2.HandoverSignature:  # noqa: N802
        """Check a hand-over proposal against the chain and sign it (`relay.roles.membership`)."""
        return sign_handover_call(self.signer, request, context)


class Attestor(ServedRole):
    """The role: the signing loop, the gRPC server and the HTTP health endpoints."""

    def __init__(
        self,
        config: AttestorConfig,
        *,
        finality: FinalitySource | None = None,
        backend: BlsBackend | None = None,
        committee_reader: CommitteeReader | None = None,
    ) -> None:
        from prometheus_client import CollectorRegistry

        from relay.metrics import RelayMetrics

        self.config = config
        self.backend = backend or get_backend()
        self.registry = CollectorRegistry()
        self.metrics = RelayMetrics(self.registry)
        self.finality = finality or chain_registry.create_finality_source(config.chain, self.metrics)
        self.scheme = "ecdsa" if config.ecdsa_key is not None else "bls"
        ecdsa_key: bytes | None = None
        if config.ecdsa_key is not None:
            # A member of an ECDSA committee: named by its address, no proof of possession.
            ecdsa_key = parse_ecdsa_secret_key(config.ecdsa_key.reveal())
            secret_key = 0
            public_key, proof_of_possession = compute_ecdsa_address(ecdsa_key), b""
        else:
            assert config.bls_key is not None  # noqa: S101 - guaranteed by the validator
            secret_key = parse_secret_key(config.bls_key.reveal())
            public_key = self.backend.secret_to_public_key(secret_key)
            proof_of_possession = self.backend.prove_possession(secret_key)
        identity = AttestorIdentity(
            origin=config.chain.domain,
            gateway=self.finality.gateway,
            epoch=config.epoch,
            signer_index=config.signer_index,
            public_key=public_key,
            proof_of_possession=proof_of_possession,
        )
        self.ledger = CheckpointLedger(
            identity, secret_key, self.backend, config.history, config.signed_log, ecdsa_key=ecdsa_key
        )
        # An ECDSA attestor follows its committee on the chain too (`currentEcdsaCommittee`, by its
        # address), across an owner's re-enrollment and hand-overs, and signs ECDSA hand-overs.
        if committee_reader is None and config.committee_chain is not None:
            committee_reader = chain_registry.create_committee_reader(config.committee_chain, self.metrics)
        self.membership = CommitteeMembership(self.ledger, committee_reader, config.committee_poll_interval)
        token = config.operator_token.reveal() if config.operator_token is not None else None
        handovers = HandoverLog(f"{config.signed_log}.handovers" if config.signed_log else None)
        self.handover_signer: ProposalSigner
        if ecdsa_key is not None:
            self.handover_signer = EcdsaHandoverSigner(
                self.ledger,
                committee_reader,
                ecdsa_key,
                token,
                allow_low_threshold=config.allow_low_threshold_handovers,
                handover_log=handovers,
            )
        else:
            self.handover_signer = HandoverSigner(
                self.ledger,
                committee_reader,
                secret_key,
                self.backend,
                token,
                allow_low_threshold=config.allow_low_threshold_handovers,
                # Beside the signed log: hand-overs signed, at most one per (origin, epoch).
                handover_log=handovers,
            )
        # Extension is checked when the source can show its leaves (EVM and ethereum sources can).
        self.tree_history: TreeHistory | None = (
            self.finality if isinstance(self.finality, TreeHistory) else None
        )
        if self.tree_history is None:
            log.warning(
                "finality source shows no tree history: new roots are checked per index only",
                extra={"origin": config.chain.domain},
            )
        self.stopping = threading.Event()
        self.halted: FinalityConflict | None = None
        self.last_success = 0.0
        self.grpc_port = 0
        self._grpc: GrpcServer | None = None
        self._health: Any = None
        self._grpc_health: Any = None

    # --- the loop -----------------------------------------------------------------------------

    def poll_once(self) -> PartialSignature | None:
        """Follow the committee (when due), read the final state once and sign it if it is new."""
        try:
            self.membership.refresh(time.monotonic())
        except RelayError as error:
            log.warning("committee read failed", extra={"reason": error.reason, "error": str(error)})
        except Exception:  # following the committee must never stop the signing loop
            log.exception("committee read crashed; signing goes on under the last known committee")
        state = self.finality.finalized_checkpoint_state()
        self.last_success = time.monotonic()
        if state is None:
            return None
        root, count = state
        signed = self.ledger.apply_final_state(root, count, self.tree_history)
        if signed is not None:
            self.metrics.attestor_last_signed_index.labels(str(self.config.chain.domain)).set(
                signed.checkpoint.index
            )
            log.info(
                "checkpoint signed",
                extra={"origin": self.config.chain.domain, "index": signed.checkpoint.index, "root": root},
            )
        return signed

    def run_loop(self) -> None:
        """Poll until `stop()`; transient chain failures are logged and retried next interval."""
        while not self.stopping.is_set():
            if self._health is not None:
                self._health.heartbeat()
            if self.halted is None:
                try:
                    self.poll_once()
                except FinalityConflict as error:
                    self.halt(error)
                except InvalidProof as error:
                    # A node served data that does not verify (ethereum mode): sign nothing, count it.
                    self.metrics.record_rejection(self.config.chain.domain, error)
                    log.error(
                        "finality proof rejected; nothing signed",
                        extra={"reason": error.reason, "error": str(error)},
                    )
                except RelayError as error:
                    log.warning("finality read failed", extra={"reason": error.reason, "error": str(error)})
            self.stopping.wait(self.config.poll_interval)

    def halt(self, error: FinalityConflict) -> None:
        """Stop signing for good (until an operator intervenes): alert log, metric, readiness false."""
        self.halted = error
        self.metrics.attestor_halted.labels(str(self.config.chain.domain), error.reason).set(1)
        log.critical(
            "finality conflict: attestor stops signing",
            extra={"origin": self.config.chain.domain, "reason": error.reason, "error": str(error)},
        )
        self._set_serving(False)

    # --- serving ------------------------------------------------------------------------------

    def start(self) -> Attestor:
        """Start the gRPC server (and the HTTP endpoints) in background threads."""
        from relay.health import HealthServer

        def register(server: grpc.Server) -> None:
            attestation_pb2_grpc.add_AttestationServiceServicer_to_server(
                AttestationServicer(self.ledger, self.stopping, self.handover_signer), server
            )

        served = start_grpc_server(
            self.config.listen,
            self.metrics,
            register,
            [SERVICE_NAME],
            limits=CallLimits(streams=8, unary=16),
            thread_prefix="attestor-grpc",
            tls=self.config.tls,  # mutual TLS: only the relayer (a certificate of our CA) may call
        )
        self._grpc, self._grpc_health, self.grpc_port = served, served.health, served.port
        if self.config.metrics_listen:
            host, port = split_address(self.config.metrics_listen)
            self._health = HealthServer(self.registry, host, port, readiness=self.readiness).start()
        log.info(
            "attestor serving",
            extra={
                "origin": self.config.chain.domain,
                "signer_index": self.config.signer_index,
                "grpc": f"{split_address(self.config.listen)[0]}:{self.grpc_port}",
                "metrics": self.config.metrics_listen,
            },
        )
        return self

    def readiness(self) -> tuple[bool, str]:
        """Ready while the chain was read recently and no finality conflict halted signing."""
        if self.halted is not None:
            return False, f"halted: {self.halted}"
        age = time.monotonic() - self.last_success
        if not self.last_success or age > self.config.max_staleness:
            return False, "source chain not read recently"
        return True, f"last signed index {self.ledger.last_signed_index}"

    def _set_serving(self, serving: bool) -> None:
        if self._grpc_health is None:
            return
        from grpc_health.v1 import health_pb2

        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            self._grpc_health.set(name, status)
