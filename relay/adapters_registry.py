"""The one place a chain `kind` becomes an adapter.

Each kind maps to a module in `adapters/` exposing three factories:

- `create_watcher(chain: ChainConfig, cursors: CursorStore) -> SourceWatcher`
- `create_finality_source(chain: ChainConfig) -> FinalitySource`
- `create_destination(chain: ChainConfig, private_key: str) -> DestinationChain`

The core imports adapters only through here, by name, so `relay/` never imports web3.
"""

from __future__ import annotations

import importlib
from typing import Any

from relay.chains import CursorStore, DestinationChain, FinalitySource, SourceWatcher
from relay.config import ChainConfig
from relay.errors import BackendUnavailable

ADAPTERS: dict[str, str] = {"evm": "adapters.evm.factory", "ethereum": "adapters.ethereum.factory"}


def _module(kind: str) -> Any:
    try:
        path = ADAPTERS[kind]
    except KeyError:
        raise BackendUnavailable("unknown chain kind", kind=kind, known=sorted(ADAPTERS)) from None
    return importlib.import_module(path)


def create_watcher(chain: ChainConfig, cursors: CursorStore) -> SourceWatcher:
    """A watcher for `chain`'s source gateway."""
    return _module(chain.kind).create_watcher(chain, cursors)  # type: ignore[no-any-return]


def create_finality_source(chain: ChainConfig) -> FinalitySource:
    """What an attestor of `chain` believes final."""
    return _module(chain.kind).create_finality_source(chain)  # type: ignore[no-any-return]


def create_destination(chain: ChainConfig, private_key: str) -> DestinationChain:
    """A submitter's hold on `chain`'s gateway, signing with `private_key`."""
    return _module(chain.kind).create_destination(chain, private_key)  # type: ignore[no-any-return]
