"""Fixtures for the Ethereum light-client tests: the shared vectors, parsed once, and warm stores.

Vectors are read at test time from `../shared/vectors/` beside the project (found from this
file's location, or `$RELAY_VECTORS`), never copied into test code.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from relay.verify.bls import BlsBackend, get_backend
from relay.verify.ethereum.codec import (
    parse_bootstrap,
    parse_finality_update,
    parse_optimistic_update,
    parse_updates,
)
from relay.verify.ethereum.committee_keys import SyncCommitteeKeyCache
from relay.verify.ethereum.config import MAINNET
from relay.verify.ethereum.containers import (
    LightClientBootstrap,
    LightClientFinalityUpdate,
    LightClientOptimisticUpdate,
    LightClientUpdate,
    compute_beacon_block_root,
)
from relay.verify.ethereum.light_client_store import LightClientStore
from relay.verify.ethereum.sync_protocol import process_light_client_update
from relay.verify.ethereum.validation import initialize_light_client_store

PROJECT = Path(__file__).resolve().parents[3]
VECTORS = Path(os.environ.get("RELAY_VECTORS", PROJECT.parent / "shared" / "vectors"))
MAINNET_LC = VECTORS / "ethereum-mainnet-lc"
SPEC_LC_SYNC = VECTORS / "ethereum-spec-lc-sync"
EXECUTION = VECTORS / "ethereum-execution"

CURRENT_SLOT = 7_109_433
"""A slot after every mainnet vector's signature slot (the spec's `current_slot`)."""


def read_json(path: Path) -> Any:
    """Parse a vector file, failing loudly with its path when it is missing."""
    if not path.exists():
        pytest.fail(f"test vector missing: {path} (set RELAY_VECTORS to the shared/vectors folder)")
    return json.loads(path.read_text())


@dataclass
class MainnetVectors:
    """The mainnet light-client vectors, parsed, and the stores reached along the way."""

    bootstrap: LightClientBootstrap
    trusted_root: bytes
    updates: list[LightClientUpdate]
    finality: LightClientFinalityUpdate
    optimistic: LightClientOptimisticUpdate
    stores: list[LightClientStore]
    """`stores[k]`: the store just before `updates[k]`; `stores[6]`: after all six updates."""

    def store_before(self, index: int) -> LightClientStore:
        """A private copy of the store before update `index` (fields are immutable, a shallow copy suffices)."""
        return copy.copy(self.stores[index])


@pytest.fixture(scope="session")
def blst() -> BlsBackend:
    """The fast BLS backend."""
    return get_backend("blst")


@pytest.fixture(scope="session")
def mainnet_keys(blst: BlsBackend) -> SyncCommitteeKeyCache:
    """Decoded keys of the mainnet committees, shared so every committee is decoded once per session."""
    return SyncCommitteeKeyCache(blst, capacity=64)


@pytest.fixture(scope="session")
def mainnet(mainnet_keys: SyncCommitteeKeyCache) -> MainnetVectors:
    """The mainnet vectors and the store before each update (built with blst)."""
    preset = MAINNET.preset
    bootstrap = parse_bootstrap(read_json(MAINNET_LC / "bootstrap.json"), preset)
    updates = parse_updates(read_json(MAINNET_LC / "updates.json"), preset)
    trusted_root = compute_beacon_block_root(bootstrap.header.beacon)
    store = initialize_light_client_store(trusted_root, bootstrap, MAINNET)
    stores = [copy.copy(store)]
    for update in updates:
        process_light_client_update(store, update, CURRENT_SLOT, MAINNET, mainnet_keys)
        stores.append(copy.copy(store))
    return MainnetVectors(
        bootstrap=bootstrap,
        trusted_root=trusted_root,
        updates=updates,
        finality=parse_finality_update(read_json(MAINNET_LC / "finality.json"), preset),
        optimistic=parse_optimistic_update(read_json(MAINNET_LC / "optimistic.json"), preset),
        stores=stores,
    )
