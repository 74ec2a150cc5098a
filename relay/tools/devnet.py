"""`relay devnet`: the whole relay on two local chains, in one command.

What it starts, each as its own OS process that it tracks by PID and stops itself (terminate,
then kill), and nothing else:

- two anvil chains (`AnvilProcess`; chain ids 31337 and 31338 are the domains), mining a block
  every `block_time` seconds; finality is `confirmations` blocks below the head;
- on both: a Gateway and the example app (`Counter`), and on each the other chain's committee
  enrolled as the trusted start (4 throw-away BLS keys, threshold 3 by default);
- per source chain, one attestor process per committee member (4 + 4 = 8). One process per
  (member, chain) is how production runs too (one pod per chain a member attests), keeps each
  `AttestorConfig` to the single chain it was designed for, and lets the tests take down the
  attestors of one direction only. Each is a small polling loop, so 8 fit on two cores;
- one relayer (`relay relayer`) on a SQLite file, or with `store="postgres"` its own PostgreSQL
  server and `relayers` replicas sharing it (`relay.tools.devnet_relayers`), and one submitter per
  destination chain, each holding only its chain's transaction key.

Every gRPC connection is mutual TLS by default: a throw-away CA (`relay.tools.certs`) issues one
certificate per process (and one for the command line, `keys/tls/client/`), all in the run
folder's `keys/` with private keys 0600. The relayer serves dApps on its public port (server TLS) and operator calls on
its operator port (mutual TLS). `DevnetOptions(tls=False)` (`relay devnet --insecure`) runs
everything in plaintext instead (`insecure_plaintext`; operator calls are then refused).

Configs, keys and logs go to a run folder `.devnet/<timestamp>/`. `Devnet` is also what the
end-to-end tests and `relay bench e2e` drive: `start()`, `send(...)`, `wait_delivered(...)`,
`kill(...)`/`restart(...)` a process, `stop()`. `send_paid_counter_messages` (re-exported from
`relay.tools.devnet_app`) sends with the example app outside `send()`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.errors import ConfigurationError, RelayError
from relay.tools.devnet_app import send_paid_counter_messages
from relay.tools.devnet_options import DEVNET_ORACLE_GAS_PRICE, DevnetOptions
from relay.tools.devnet_relayers import (
    DevnetDatabase,
    operator_name,
    relayer_config_fields,
    relayer_names,
    relayer_store_settings,
    replica_settings,
    validate_relayer_choice,
)
from relay.tools.processes import PROJECT_ROOT, ManagedProcess, grpc_serving

log = logging.getLogger(__name__)


CHAIN_NAMES = ("alpha", "beta")
LOOPBACK = "127.0.0.1"
READY_TIMEOUT_SECONDS = 60.0
# Seconds a devnet delivery may wait for its receipt before the submitter looks at it: anvil drops a
# pending delivery whose lower-nonce sibling did not fit the block's remaining gas (it fails its
# nonce check there), and the submitter finds it lost only at this point.
DEVNET_STUCK_AFTER = 5.0


class DevnetError(RelayError):
    """A devnet process did not start, or died, or the devnet was used before `start()`."""


# --- the devnet ---------------------------------------------------------------------------------


@dataclass
class DevnetChain:
    """One local chain and what is deployed on it."""

    name: str
    domain: int
    rpc_url: str
    gateway: str
    counter: str
    anvil: Any = None


@dataclass
class Devnet:
    """Two chains, their contracts, 8 attestors, a relayer and two submitters (see the module docstring)."""

    options: DevnetOptions = field(default_factory=DevnetOptions)
    run_dir: Path | None = None
    chains: list[DevnetChain] = field(default_factory=list)
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    metrics_addresses: dict[str, str] = field(default_factory=dict)
    bls_secrets: list[int] = field(default_factory=list)
    ecdsa_secrets: list[bytes] = field(default_factory=list)  # with committee_scheme "ecdsa"
    # Each origin's trusted committee: a relay.verify.committee.Committee, or with the ECDSA scheme
    # a relay.verify.ecdsa_quorum.EcdsaCheckpointCommittee (set by start()).
    committee: Any = None
    operator_token: str = ""
    attestor_token: str = ""  # the attestors' operator token (SignHandover)
    deployer_key: str = ""
    submitter_key: str = ""
    user_key: str = ""
    started_at: float = 0.0
    prometheus: Any = None  # relay.tools.prometheus.PrometheusServer when options.prometheus
    certificate_authority: Any = None  # relay.tools.certs.CertificateAuthority when options.tls
    certificates: dict[str, Any] = field(default_factory=dict)  # name -> relay.tools.certs.IssuedCertificate
    database: Any = None  # relay.tools.devnet_relayers.DevnetDatabase when options.store == "postgres"
    # relay.tools.devnet_lightclient.LightClientRoute when options.source_mode == "lightclient"
    lightclient: Any = None

    @property
    def relayer_names(self) -> list[str]:
        """The relayer replicas' process names: `relayer` alone, else `relayer-1` .. `relayer-N`."""
        return relayer_names(self.options.relayers)

    @property
    def relayer(self) -> str:
        """The first relayer's process name (the one `client()` and `send_command()` use)."""
        return self.relayer_names[0]

    # --- start / stop ---------------------------------------------------------------------------

    def start(self, progress: Callable[[str], None] | None = None) -> Devnet:
        """Start chains, deploy, write configs, start every process and wait until all serve."""
        say = progress or (lambda _text: None)
        validate_relayer_choice(self.options.store, self.options.relayers)
        from relay.tools.devnet_committee import validate_scheme_choice

        validate_scheme_choice(self.options.committee_scheme, self.options.spare_members)
        if self.options.source_mode != "committee":
            from relay.tools.devnet_lightclient import validate_lightclient_options

            validate_lightclient_options(self.options)
        try:
            self._prepare_run_dir()
            say(f"run folder {self.run_dir}")
            if self.options.store == "postgres":
                self._start_database()
                say(f"PostgreSQL {self.database.version} up and migrated: {self.database.dsn}")
            self._start_chains()
            say("chains up: " + ", ".join(f"{c.name} ({c.domain}) {c.rpc_url}" for c in self.chains))
            if self.options.source_mode == "lightclient":
                from relay.tools.devnet_lightclient import start_lightclient_route

                self.lightclient = start_lightclient_route(self)
                say(f"simulated beacon chain over {self.chains[0].name}: {self.lightclient.url}")
            self._deploy()
            say(
                "contracts deployed and "
                + ("committees" if self.lightclient is None else "the light client")
                + " enrolled"
            )
            self._write_configs()
            for process in self.processes.values():
                process.start()
            say(f"started {len(self.processes)} processes; waiting until they serve")
            self.wait_ready()
            self.started_at = time.time()
            say("all processes serving")
            if self.options.prometheus:
                self.start_prometheus()
                say(f"prometheus scraping every role: {self.prometheus.url}")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_database(self) -> None:
        assert self.run_dir is not None  # noqa: S101 - set by _prepare_run_dir
        self.database = DevnetDatabase(
            self.run_dir / "postgres", self.run_dir / "keys", durable=self.options.durable_store
        )
        self.database.start()

    def start_prometheus(self) -> Any:
        """Start a Prometheus that scrapes every role's /metrics and evaluates the alert rules."""
        from relay.tools.prometheus import PrometheusServer

        if not self.metrics_addresses:
            raise DevnetError("prometheus needs the roles' metrics endpoints (metrics are off)")
        assert self.run_dir is not None  # noqa: S101 - set by _prepare_run_dir
        self.prometheus = PrometheusServer(self.metrics_addresses, self.run_dir / "prometheus").start()
        return self.prometheus

    @property
    def status_url(self) -> str | None:
        """The relayer's status page, when metrics (its HTTP server) are on."""
        http = self.metrics_addresses.get(self.relayer)
        return f"http://{http}/" if http else None

    def stop(self) -> None:
        """Stop every process this devnet started (prometheus and relayers first, then the other
        roles, the chains, and the PostgreSQL server last)."""
        if self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus = None
        relayers = set(self.relayer_names)
        order = sorted(
            self.processes.values(), key=lambda p: (p.name not in relayers, p.name.startswith("attestor"))
        )
        for process in order:
            process.stop()
        if self.lightclient is not None:
            self.lightclient.stop()
        for chain in self.chains:
            if chain.anvil is not None:
                chain.anvil.stop()
                chain.anvil = None
        if self.database is not None:
            self.database.close()
            self.database = None

    def __enter__(self) -> Devnet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _prepare_run_dir(self) -> None:
        if self.run_dir is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            self.run_dir = self.options.run_root / f"{stamp}-{os.getpid()}"
        for sub in ("configs", "keys", "logs"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir / "keys", 0o700)
        if self.options.tls:
            from relay.tools.certs import CertificateAuthority

            tls_dir = self.tls_dir  # under keys/ (0700), with every other secret of the run
            tls_dir.mkdir(exist_ok=True)
            os.chmod(tls_dir, 0o700)
            self.certificate_authority = CertificateAuthority.create(tls_dir / "ca")
            self.certificates["client"] = self.certificate_authority.issue("client", tls_dir / "client")

    @property
    def tls_dir(self) -> Path:
        """Where the CA and every certificate and key go: `<run folder>/keys/tls/<process>/`."""
        assert self.run_dir is not None  # noqa: S101 - set by _prepare_run_dir
        return self.run_dir / "keys" / "tls"

    def _transport(self, name: str) -> dict[str, Any]:
        """The `tls` section for process `name` (its own certificate), or `insecure_plaintext`."""
        if not self.options.tls:
            return {"insecure_plaintext": True}
        assert self.run_dir is not None  # noqa: S101 - set by _prepare_run_dir
        issued = self.certificate_authority.issue(name, self.tls_dir / name)
        self.certificates[name] = issued
        return {"tls": issued.as_config()}

    def tls_config(self, name: str) -> Any:
        """Process `name`'s `relay.config.TlsConfig` (None when the devnet is plaintext)."""
        from relay.config import TlsConfig

        issued = self.certificates.get(name)
        return TlsConfig(**issued.as_config()) if issued is not None else None

    def client_tls(self) -> Any:
        """The command line's TLS files (`relay.rpc.tls.ClientTls`; None when the devnet is plaintext)."""
        from relay.rpc.tls import ClientTls

        issued = self.certificates.get("client")
        return ClientTls(str(issued.ca), str(issued.cert), str(issued.key)) if issued is not None else None

    def _start_chains(self) -> None:
        from adapters.evm.anvil import DEV_PRIVATE_KEYS, AnvilProcess

        self.deployer_key, self.submitter_key, self.user_key = (
            DEV_PRIVATE_KEYS[0],
            DEV_PRIVATE_KEYS[1],
            DEV_PRIVATE_KEYS[2],
        )
        block_time = self.options.block_time
        for name, chain_id in zip(CHAIN_NAMES, self.options.chain_ids, strict=True):
            anvil = AnvilProcess(chain_id, block_time=block_time if block_time > 0 else None).start()
            self.chains.append(DevnetChain(name, chain_id, anvil.rpc_url, "", "", anvil))

    def _deploy(self) -> None:
        from adapters.evm import deploy

        if self.lightclient is not None:
            from relay.tools.devnet_lightclient import deploy_lightclient_route

            deploy_lightclient_route(self)
            return
        from relay.tools.devnet_committee import build_devnet_committee, send_committee_enrollment

        options = self.options
        made = build_devnet_committee(
            options.committee_scheme, options.committee_size, options.spare_members, options.threshold
        )
        self.committee, self.bls_secrets, self.ecdsa_secrets = (
            made.committee,
            made.bls_secrets,
            made.ecdsa_secrets,
        )
        senders = [deploy.TransactionSender(chain.rpc_url, self.deployer_key) for chain in self.chains]
        pending: list[list[bytes]] = []
        for chain, sender in zip(self.chains, senders, strict=True):
            deployment, hashes = deploy.start_deployment(sender, chain.domain)
            chain.gateway, chain.counter = deployment.gateway, deployment.counter
            pending.append(hashes)
        for index, (chain, sender) in enumerate(zip(self.chains, senders, strict=True)):
            other = self.chains[1 - index]
            pending[index].append(
                send_committee_enrollment(sender, chain.gateway, other.domain, other.gateway, self.committee)
            )
            pending[index].append(
                deploy.send_gas_oracle(sender, chain.gateway, other.domain, gas_price=DEVNET_ORACLE_GAS_PRICE)
            )
        for sender, hashes in zip(senders, pending, strict=True):
            sender.wait(hashes)

    # --- configs ----------------------------------------------------------------------------

    def _secret_file(self, name: str, value: str) -> str:
        from relay.tools.certs import write_private_file

        assert self.run_dir is not None  # noqa: S101 - set by _prepare_run_dir
        path = self.run_dir / "keys" / name
        write_private_file(path, (value + "\n").encode())
        return str(path)

    def _chain_config(self, chain: DevnetChain) -> dict[str, Any]:
        return {
            "name": chain.name,
            "domain": chain.domain,
            "kind": "evm",
            "rpc_urls": [chain.rpc_url],
            "gateway": chain.gateway,
            "confirmations": self.options.confirmations,
            "start_block": 0,
            "poll_interval": self.options.relayer_poll_interval,
        }

    def add_process(self, name: str, role: str, config: dict[str, Any]) -> None:
        """Write `configs/<name>.json` and register `relay <role>` on it (started by `start()`)."""
        run_dir = self.run_dir
        assert run_dir is not None  # noqa: S101 - set by _prepare_run_dir
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])])
        env["RELAY_LOG_LEVEL"] = self.options.log_level
        path = run_dir / "configs" / f"{name}.json"
        path.write_text(json.dumps(config, indent=2) + "\n")
        self.processes[name] = ManagedProcess(
            name,
            [sys.executable, "-m", "relay", role, "--config", str(path)],
            run_dir / "logs" / f"{name}.log",
            env,
        )

    def listen_address(self, name: str) -> str:
        """A fresh loopback gRPC address for process `name` (recorded in `addresses`)."""
        from adapters.evm.anvil import find_free_port

        address = self.addresses[name] = f"{LOOPBACK}:{find_free_port()}"
        return address

    def metrics_address(self, name: str) -> str | None:
        """A fresh loopback metrics address for process `name`, or None with metrics off."""
        from adapters.evm.anvil import find_free_port

        if not self.options.metrics:
            return None
        address = f"{LOOPBACK}:{find_free_port()}"
        self.metrics_addresses[name] = address
        return address

    def _write_configs(self) -> None:
        run_dir = self.run_dir
        assert run_dir is not None  # noqa: S101 - set by _prepare_run_dir
        self._secret_file("user.hex", self.user_key)  # for the `relay send` line of describe()
        if self.lightclient is not None:
            from relay.tools.devnet_lightclient import write_lightclient_configs

            write_lightclient_configs(self)
            return
        ecdsa = self.options.committee_scheme == "ecdsa"
        key_files = (
            [self._secret_file(f"ecdsa-{i}.hex", "0x" + s.hex()) for i, s in enumerate(self.ecdsa_secrets)]
            if ecdsa
            else [self._secret_file(f"bls-{i}.hex", hex(s)) for i, s in enumerate(self.bls_secrets)]
        )
        self.attestor_token = secrets.token_hex(16)
        attestor_token_file = self._secret_file("attestor-token", self.attestor_token)
        sources, destinations = [], []
        for index, chain in enumerate(self.chains):
            # The committee of this origin is enrolled on the other chain: attestors follow it there.
            committee_chain = self._chain_config(self.chains[1 - index])
            attestors = []
            for member, key_file in enumerate(key_files):
                name = f"attestor-{chain.name}-{member}"
                address = self.listen_address(name)
                attestors.append(address)
                self.add_process(
                    name,
                    "attestor",
                    {
                        "chain": self._chain_config(chain),
                        ("ecdsa_key" if ecdsa else "bls_key"): {"file": key_file},
                        "signer_index": member,
                        "epoch": self.committee.epoch,
                        "listen": address,
                        "metrics_listen": self.metrics_address(name),
                        "poll_interval": self.options.attestor_poll_interval,
                        "signed_log": str(run_dir / "keys" / f"{name}.signed.jsonl"),
                        "committee_chain": committee_chain,
                        "committee_poll_interval": self.options.committee_poll_interval,
                        "operator_token": {"file": attestor_token_file},
                        **self._transport(name),
                    },
                )
            sources.append(
                {
                    "chain": self._chain_config(chain),
                    "committee": self.committee_config(),
                    "attestors": attestors,
                }
            )
            destinations.append(self.add_submitter(chain, self._chain_config(chain)))
        self.add_relayers(sources, destinations)

    def add_submitter(self, chain: DevnetChain, chain_config: dict[str, Any]) -> dict[str, Any]:
        """Register the submitter of `chain`; return the relayer's `destinations` entry for it."""
        name = f"submitter-{chain.name}"
        address = self.listen_address(name)
        submitter_key_file = self._secret_file("submitter.hex", self.submitter_key)
        self.add_process(
            name,
            "submitter",
            {
                # 1-second blocks: a delivery without a receipt after a few blocks is looked at
                # (replaced, or sent again if the node dropped it) without mainnet's patience.
                "chain": {**chain_config, "submission": {"stuck_after": DEVNET_STUCK_AFTER}},
                "key": {"file": submitter_key_file},
                "listen": address,
                "metrics_listen": self.metrics_address(name),
                **self._transport(name),
            },
        )
        # The relayer confirms each delivery on the chain, not on the submitter's word.
        return {"domain": chain.domain, "submitter": address, "name": chain.name, "chain": chain_config}

    def add_relayers(self, sources: list[dict[str, Any]], destinations: list[dict[str, Any]]) -> None:
        """Register every relayer replica over `sources` and `destinations`."""
        run_dir = self.run_dir
        assert run_dir is not None  # noqa: S101 - set by _prepare_run_dir
        self.operator_token = secrets.token_hex(16)
        token_file = self._secret_file("operator-token", self.operator_token)
        accepted = relayer_config_fields()
        store = relayer_store_settings(self.options.store, run_dir, self.database)
        for index, name in enumerate(self.relayer_names, start=1):
            address = self.listen_address(name)
            relayer: dict[str, Any] = {
                **store,
                **replica_settings(index, self.options.lease_seconds, accepted),
                "listen": address,
                "operator_token": {"file": token_file},
                "sources": sources,
                "destinations": destinations,
                "batching": {"max_batch": self.options.max_batch, "max_wait": self.options.max_wait},
                "retry": {
                    "base_delay": self.options.retry_base_delay,
                    "max_delay": self.options.retry_max_delay,
                    "give_up_after": self.options.retry_give_up_after,
                    "paused_recheck": self.options.retry_paused_recheck,
                },
                "poll_interval": self.options.relayer_poll_interval,
                "submitter_timeout": 60.0,
                "committee_sync_interval": 1.0,
                **self._transport(name),
            }
            if self.options.tls:
                relayer["operator_listen"] = self.listen_address(operator_name(name))
            if self.options.metrics and "metrics_listen" in accepted:
                relayer["metrics_listen"] = self.metrics_address(name)
            self.add_process(name, "relayer", relayer)

    def committee_config(self) -> dict[str, Any]:
        """The committee as a `CommitteeConfig` mapping (`relay.tools.devnet_committee.committee_config`)."""
        from relay.tools.devnet_committee import committee_config

        return committee_config(self.committee)

    # --- readiness and process control ----------------------------------------------------------

    def wait_ready(self, names: Iterable[str] | None = None, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Block until each named process (default: all) answers its gRPC health check."""
        pending = set(names if names is not None else self.processes)
        deadline = time.monotonic() + timeout
        while pending:
            for name in sorted(pending):
                process = self.processes[name]
                if not process.alive:
                    raise DevnetError(
                        f"{name} exited during start-up", log=str(process.log_path), tail=process.tail()
                    )
                if grpc_serving(self.addresses[name], self.client_tls()):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise DevnetError("processes did not start serving in time", waiting=sorted(pending))
            if pending:
                time.sleep(0.2)

    def kill(self, name: str) -> None:
        """`kill -9` one process."""
        self.processes[name].kill()

    def terminate(self, name: str) -> int | None:
        """Stop one process cleanly (SIGTERM, then SIGKILL after a grace period); its exit code."""
        return self.processes[name].stop()

    def restart(self, name: str, wait: bool = True) -> None:
        """Start a stopped process again with the same config (and wait until it serves)."""
        self.processes[name].start()
        if wait:
            self.wait_ready([name])

    def check_alive(self) -> list[str]:
        """Names of processes that should run but have exited."""
        return [
            name
            for name, process in self.processes.items()
            if process.popen is not None and not process.alive
        ]

    # --- using it -------------------------------------------------------------------------------

    @property
    def routes(self) -> list[tuple[DevnetChain, DevnetChain]]:
        """The (source, destination) pairs messages flow on: both ways, or one way in light-client mode."""
        alpha, beta = self.chains
        return [(alpha, beta)] if self.lightclient is not None else [(alpha, beta), (beta, alpha)]

    def chain(self, name_or_domain: str | int) -> DevnetChain:
        """A chain by name or domain."""
        for chain in self.chains:
            if name_or_domain in (chain.name, chain.domain):
                return chain
        raise ConfigurationError("no such devnet chain", chain=name_or_domain)

    def send(
        self, source: str | int, destination: str | int, count: int, body_prefix: str = "hello"
    ) -> list[bytes]:
        """Send `count` messages with the example app from `source` to `destination`'s app; return ids."""
        from adapters.evm import deploy

        origin, target = self.chain(source), self.chain(destination)
        sender = deploy.TransactionSender(origin.rpc_url, self.user_key)
        ids: list[bytes] = []
        bodies = [f"{body_prefix} {i} from {origin.name}".encode() for i in range(count)]
        # All at once (consecutive nonces); transactions past a block's gas limit wait for the next block.
        # Each message pays for its gas (the relayer's default `paid` policy delivers only those).
        hashes = send_paid_counter_messages(
            sender, origin, target, bodies, gas_limit=self.options.message_gas_limit
        )
        for receipt in sender.wait(hashes):
            ids.extend(deploy.dispatched_ids(receipt, origin.gateway))
        return ids

    def received(self, name_or_domain: str | int) -> int:
        """Messages the example app on a chain has received."""
        from adapters.evm.deploy import counter_received

        chain = self.chain(name_or_domain)
        return counter_received(chain.rpc_url, chain.counter)

    def client(self, relayer: str | None = None) -> Any:
        """A `relay.client.RelayClient` for a relayer's public RelayService port (default the first;
        replicas share the store, so any of them answers for every message)."""
        from relay.client import RelayClient

        tls = self.client_tls()
        return RelayClient(self.addresses[relayer or self.relayer], tls=tls, insecure=tls is None)

    def operator_client(self, relayer: str | None = None) -> Any:
        """A `relay.client.RelayClient` for a relayer's operator port (mutual TLS; operator calls)."""
        from relay.client import RelayClient

        tls = self.client_tls()
        if tls is None:
            raise DevnetError("a plaintext devnet has no operator port (operator calls need mutual TLS)")
        return RelayClient(self.addresses[operator_name(relayer or self.relayer)], tls=tls)

    def send_command(self, source: str | int | None = None, destination: str | int | None = None) -> str:
        """A ready-to-paste `relay send --wait` line (see `relay.tools.devnet_describe.send_command`)."""
        from relay.tools.devnet_describe import send_command

        return send_command(self, source, destination)

    def describe(self) -> str:
        """The addresses an operator needs, one per line (every relayer replica's among them)."""
        from relay.tools.devnet_describe import describe

        return describe(self)
