"""The config model of Ethereum with light-client attestors (`kind: ethereum`).

Registered in `relay.chains.registry`; free of chain libraries so it loads with every role's config.
"""

from __future__ import annotations

from typing import Literal

from adapters.evm.config import EvmCompatibleChainConfig
from relay.config import StrictModel


class LightClientConfig(StrictModel):
    """`kind: ethereum` attestors: where the light client starts and which nodes it asks (untrusted).

    `trusted_block_root` is the only thing trusted: a finalized beacon block root the operator
    checked out of band. `replay_file` answers from a recording instead of live nodes (offline checks).
    """

    trusted_block_root: str
    beacon_url: str = "http://127.0.0.1:5052"
    execution_url: str | None = None
    network: str = "mainnet"
    network_config: str | None = None
    genesis_validators_root: str | None = None
    allow_force_update: bool = False
    bls_backend: str | None = None
    replay_file: str | None = None
    fixed_time: float | None = None


class EthereumChainConfig(EvmCompatibleChainConfig):
    """Ethereum (or a testnet) whose attestors follow the sync-committee light client.

    The relayer's watcher and the submitter are the EVM ones; only the attestor's finality source
    needs `light_client`.
    """

    kind: Literal["ethereum"]
    light_client: LightClientConfig


CHAIN_CONFIG = EthereumChainConfig
