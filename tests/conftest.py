"""Shared fixtures: where the external test vectors live.

The vectors are read from `../shared/vectors/` beside the project (or `$RELAY_VECTORS`), never
copied into test code; see that folder's README for their origins and licences.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

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
