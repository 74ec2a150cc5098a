"""`DevnetOptions`: how `relay devnet` (`relay.tools.devnet.Devnet`) is shaped, every default in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from relay.tools.devnet_app import COUNTER_HANDLE_GAS_LIMIT
from relay.tools.processes import PROJECT_ROOT

SOURCE_MODES = ("committee", "lightclient")
DEFAULT_CHAIN_IDS = (31337, 31338)
# The gas price each devnet Gateway quotes for the other chain: 10 gwei, five times anvil's
# starting eth_gasPrice, so a message paid at the quote stays paid for enough under the relayer's
# `paid` policy while the base fee rises with load.
DEVNET_ORACLE_GAS_PRICE = 10_000_000_000


@dataclass
class DevnetOptions:
    """How the devnet is shaped; every default in one place."""

    block_time: float = 1.0
    confirmations: int = 2
    committee_size: int = 4
    threshold: int | None = None  # None: more than two thirds of the weight (3 of 4)
    # How the Gateways verify each origin: "bls" (aggregate signatures) or "ecdsa" (one signature
    # per member, `relay.tools.devnet_ecdsa`).
    committee_scheme: str = "bls"
    # BLS keys beyond the committee, each with its attestors started up front (not members yet):
    # the members a rotation adds (`relay devnet --rotate-after`, relay.tools.devnet_rotation).
    spare_members: int = 0
    committee_poll_interval: float = 0.5  # how often attestors read their committee on the other chain
    max_batch: int = 50
    max_wait: float = 0.5
    # Handle gas each devnet message declares and pays for (quoted on its source chain): the
    # Counter's measured worst case with a margin (relay.tools.devnet_app).
    message_gas_limit: int = COUNTER_HANDLE_GAS_LIMIT
    attestor_poll_interval: float = 0.25
    relayer_poll_interval: float = 0.25
    retry_base_delay: float = 1.0
    retry_max_delay: float = 30.0
    retry_give_up_after: float = 7 * 24 * 3600.0
    retry_paused_recheck: float = 2.0  # a delivery paused by the Gateway's guardian is tried again this often
    run_root: Path = PROJECT_ROOT / ".devnet"
    log_level: str = "INFO"
    chain_ids: tuple[int, int] = DEFAULT_CHAIN_IDS
    metrics: bool = True
    prometheus: bool = False  # also run a real Prometheus scraping every role
    tls: bool = True  # mutual TLS between every role; False: plaintext (`relay devnet --insecure`)
    store: str = "sqlite"  # "sqlite": one relayer on a file; "postgres": the devnet's own PostgreSQL
    relayers: int = 1  # relayer replicas (more than one needs store="postgres")
    lease_seconds: float | None = None  # the replicas' lease and claim time (None: the relayer's default)
    durable_store: bool = True  # False: PostgreSQL without fsync (tests: faster, nothing kept)
    # How the destination verifies the source: "committee" (attestors sign, both ways) or
    # "lightclient" (relay.tools.devnet_lightclient: a simulated beacon chain over the first chain,
    # the second chain's Gateway verifying it on-chain, no attestors; messages go one way).
    source_mode: str = "committee"
    lightclient_period_epochs: int = 4  # epochs per sync-committee period of the simulated chain
    lightclient_participation: float = 1.0  # share of the simulated committee signing each update
