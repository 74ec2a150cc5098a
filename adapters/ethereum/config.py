"""The config model of Ethereum with light-client attestors (`kind: ethereum`).

Registered in `relay.chains.registry`; free of chain libraries so it loads with every role's config.
"""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from adapters.evm.config import EvmCompatibleChainConfig
from relay.config import StrictModel


def _hash32(value: str) -> str:
    text = value.removeprefix("0x")
    if len(text) != 64:
        raise ValueError("must be 0x + 64 hex digits")
    bytes.fromhex(text)
    return value


class CheckpointConfig(StrictModel):
    """The Gateway's tree after finalized execution block `block`, to start from instead of nonce 0.

    Read all three at the same block from nodes you trust (e.g. `cast call GATEWAY "count()"
    --block N`, `cast call GATEWAY "root()" --block N`, `cast storage GATEWAY <slot> --block N` for
    the 32 `_branch` slots): the frontier must rebuild the root, or the attestor refuses to start.
    """

    block: int
    count: int
    root: str
    frontier: list[str]

    @field_validator("root")
    @classmethod
    def _root(cls, value: str) -> str:
        return _hash32(value)

    @field_validator("frontier")
    @classmethod
    def _frontier(cls, value: list[str]) -> list[str]:
        if len(value) != 32:
            raise ValueError("the frontier is the Gateway's 32 branch nodes")
        return [_hash32(node) for node in value]

    @field_validator("block", "count")
    @classmethod
    def _non_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be >= 0")
        return value


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
    # Where the proven state (light-client store, proven tree, cursor) is kept across restarts.
    state_file: str | None = None
    # Start from this enrolled state of the Gateway's tree instead of proving from `start_block`.
    checkpoint: CheckpointConfig | None = None


class EthereumChainConfig(EvmCompatibleChainConfig):
    """Ethereum (or a testnet) whose attestors follow the sync-committee light client.

    The relayer's watcher and the submitter are the EVM ones; only the attestor's finality source
    needs `light_client`.
    """

    kind: Literal["ethereum"]
    light_client: LightClientConfig


CHAIN_CONFIG = EthereumChainConfig
