"""The beacon-node REST paths of the light-client API (ethereum/beacon-APIs, `/eth/v1/beacon/light_client/`)."""

from __future__ import annotations

FINALITY_UPDATE_PATH = "/eth/v1/beacon/light_client/finality_update"
OPTIMISTIC_UPDATE_PATH = "/eth/v1/beacon/light_client/optimistic_update"


def bootstrap_path(block_root: bytes) -> str:
    """The path of the `LightClientBootstrap` for the block with root `block_root`."""
    return f"/eth/v1/beacon/light_client/bootstrap/0x{block_root.hex()}"


def updates_path(start_period: int, count: int) -> str:
    """The path of the best `LightClientUpdate`s of `count` periods from `start_period`."""
    return f"/eth/v1/beacon/light_client/updates?start_period={start_period}&count={count}"
