"""Shared fixtures: where the external test vectors live, and the real anvil chains.

The vectors are read from `../shared/vectors/` beside the project (or `$RELAY_VECTORS`), never
copied into test code; see that folder's README for their origins and licences.

`postgres_server` is one throw-away PostgreSQL server for the whole session (relay.tools.postgres,
fsync off); each test that needs a database creates its own in it.

`chains` (tests/chains.py) is one pair of anvil chains for the whole session, shared by
tests/integration and tests/conformance: tests that change chain state (a reorg, a failing
recipient) put it back before they end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from relay.tools.postgres import PostgresServer
    from tests.chains import Chains

ROOT = Path(__file__).resolve().parents[1]
VECTORS = Path(os.environ.get("RELAY_VECTORS", ROOT.parent / "shared" / "vectors"))


def load_vector(relative: str) -> Any:
    """Parse a JSON vector file, or skip loudly with the path when the vectors are missing."""
    path = VECTORS / relative
    if not path.exists():
        pytest.fail(f"test vector missing: {path} (set RELAY_VECTORS to the shared/vectors folder)")
    return json.loads(path.read_text())


def hex_bytes(value: str) -> bytes:
    """Decode a 0x-prefixed hex string."""
    return bytes.fromhex(value.removeprefix("0x"))


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The shared vectors folder."""
    if not VECTORS.is_dir():
        pytest.fail(f"shared vectors not found at {VECTORS}")
    return VECTORS


@pytest.fixture(scope="session")
def chains() -> Iterator[Chains]:
    """Two anvil chains (source and destination) with Gateways, apps and an enrolled committee."""
    from tests.chains import running_chains

    with running_chains() as started:
        yield started


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (not durable: fsync off); tests create databases in it."""
    from relay.tools.postgres import PostgresServer

    with PostgresServer(tmp_path_factory.mktemp("postgres"), durable=False) as server:
        yield server


@pytest.fixture
def pki(tmp_path: Path) -> Any:
    """A throw-away CA for this test (tests/pki.py)."""
    from tests.pki import Pki

    return Pki(tmp_path / "pki")
