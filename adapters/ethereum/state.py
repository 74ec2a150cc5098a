"""The `ethereum`-mode attestor's proven state on disk (`light_client.state_file`).

What it holds is everything the attestor proved and needs to go on without replaying history:

- the light-client store (finalized and optimistic headers, current and next sync committee,
  participation), so it resumes from its own verified period, not from the bootstrap;
- the Gateway's tree as proven so far (count and frontier) and the last ids (for the ledger's
  extension check), the last execution block whose messages are all in it, the next block to
  prove, and a backward header walk in progress (so a restart does not walk again).

The file is written whole to a temporary file, fsynced, renamed over the old one and the folder
fsynced (a crash leaves the old or the new file, never half of one). It is versioned, bound to
one network, Gateway and domain, and carries a SHA-256 checksum of its body. A file that is not
valid JSON, of another format or version, for another chain, or whose checksum or contents do
not check out raises `ConfigurationError` naming the file and the fix; it is never reset
silently, because a reset would make the attestor start over from an older state.

The checksum detects corruption and accidental edits, not an attacker: whoever can write this
file can also read the attestor's BLS key beside it. The ledger's extension check still refuses to
sign a root that does not extend what this attestor signed, whatever the file says.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.errors import ConfigurationError, RelayError
from relay.verify.ethereum.codec import parse_light_client_header, parse_sync_committee, to_beacon_json
from relay.verify.ethereum.config import NetworkConfig
from relay.verify.ethereum.light_client_store import LightClientStore
from relay.verify.ethereum.validation import verify_light_client_header
from relay.verify.merkle import IncrementalTree

FORMAT = "relay.ethereum-attestor-state"
VERSION = 1
RECENT_LEAVES = 4096
"""Ids kept (and saved) for the ledger's extension check: the ledger may lag the tree by this many."""


@dataclass(frozen=True)
class WalkBlock:
    """A proven execution block whose bloom may hold a Dispatch: what proving its receipts needs."""

    number: int
    block_hash: bytes
    receipts_root: bytes
    logs_bloom: bytes


@dataclass
class HeaderWalk:
    """A walk down parent hashes from a proven finalized block `top` to `bottom` (inclusive).

    `next_number` is the next header to fetch; it must hash to `expected_hash`. Blocks whose bloom
    may hold a Dispatch are kept in `candidates`; the rest are forgotten as soon as they are proven.
    """

    top: int
    top_hash: bytes
    bottom: int
    next_number: int
    expected_hash: bytes
    candidates: list[WalkBlock] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """All of `[bottom, top]` is proven."""
        return self.next_number < self.bottom


@dataclass
class ProvenState:
    """Everything the attestor proved (see the module docstring)."""

    store: LightClientStore | None
    tree: IncrementalTree
    recent_first: int
    recent: list[bytes]
    next_block: int
    last_block: tuple[int, bytes] | None = None
    walk: HeaderWalk | None = None


@dataclass(frozen=True)
class StateIdentity:
    """What a state file must belong to."""

    network: str
    genesis_validators_root: bytes
    gateway: bytes
    domain: int

    def to_json(self) -> dict[str, Any]:
        """JSON fields."""
        return {
            "network": self.network,
            "genesis_validators_root": self.genesis_validators_root.hex(),
            "gateway": self.gateway.hex(),
            "domain": self.domain,
        }


def _store_json(store: LightClientStore, network: NetworkConfig) -> dict[str, Any]:
    def header(h: Any) -> Any:
        return to_beacon_json(h, network.compute_fork_at_slot(h.beacon.slot))

    fork = network.compute_fork_at_slot(store.finalized_header.beacon.slot)
    return {
        "finalized_header": header(store.finalized_header),
        "optimistic_header": header(store.optimistic_header),
        "current_sync_committee": to_beacon_json(store.current_sync_committee, fork),
        "next_sync_committee": (
            None if store.next_sync_committee is None else to_beacon_json(store.next_sync_committee, fork)
        ),
        "previous_max_active_participants": store.previous_max_active_participants,
        "current_max_active_participants": store.current_max_active_participants,
    }


def _parse_store(obj: Any, network: NetworkConfig) -> LightClientStore:
    preset = network.preset

    def header(h: Any) -> Any:
        parsed = parse_light_client_header(h, network.compute_fork_at_slot(int(h["beacon"]["slot"])), preset)
        # The execution branch must still prove the payload into the beacon body.
        verify_light_client_header(parsed, network, role="saved")
        return parsed

    nxt = obj["next_sync_committee"]
    return LightClientStore(
        finalized_header=header(obj["finalized_header"]),
        current_sync_committee=parse_sync_committee(obj["current_sync_committee"], preset),
        next_sync_committee=None if nxt is None else parse_sync_committee(nxt, preset),
        best_valid_update=None,
        optimistic_header=header(obj["optimistic_header"]),
        previous_max_active_participants=int(obj["previous_max_active_participants"]),
        current_max_active_participants=int(obj["current_max_active_participants"]),
    )


def _body_json(state: ProvenState, network: NetworkConfig) -> dict[str, Any]:
    walk = state.walk
    return {
        "light_client": None if state.store is None else _store_json(state.store, network),
        "tree": {"count": state.tree.count, "frontier": [node.hex() for node in state.tree.frontier]},
        "recent": {"first": state.recent_first, "ids": [leaf.hex() for leaf in state.recent]},
        "next_block": state.next_block,
        "last_block": None
        if state.last_block is None
        else {"number": state.last_block[0], "hash": state.last_block[1].hex()},
        "walk": None
        if walk is None
        else {
            "top": walk.top,
            "top_hash": walk.top_hash.hex(),
            "bottom": walk.bottom,
            "next_number": walk.next_number,
            "expected_hash": walk.expected_hash.hex(),
            "candidates": [
                [c.number, c.block_hash.hex(), c.receipts_root.hex(), c.logs_bloom.hex()]
                for c in walk.candidates
            ],
        },
    }


def _parse_body(body: Any, network: NetworkConfig) -> ProvenState:
    tree = IncrementalTree.from_frontier(
        int(body["tree"]["count"]), [bytes.fromhex(node) for node in body["tree"]["frontier"]]
    )
    recent = [bytes.fromhex(leaf) for leaf in body["recent"]["ids"]]
    recent_first = int(body["recent"]["first"])
    if recent_first + len(recent) != tree.count or any(len(leaf) != 32 for leaf in recent):
        raise ValueError("the recent ids do not end at the tree's count")
    last = body["last_block"]
    walk_obj = body["walk"]
    walk = None
    if walk_obj is not None:
        walk = HeaderWalk(
            top=int(walk_obj["top"]),
            top_hash=bytes.fromhex(walk_obj["top_hash"]),
            bottom=int(walk_obj["bottom"]),
            next_number=int(walk_obj["next_number"]),
            expected_hash=bytes.fromhex(walk_obj["expected_hash"]),
            candidates=[
                WalkBlock(int(n), bytes.fromhex(h), bytes.fromhex(r), bytes.fromhex(b))
                for n, h, r, b in walk_obj["candidates"]
            ],
        )
    return ProvenState(
        store=None if body["light_client"] is None else _parse_store(body["light_client"], network),
        tree=tree,
        recent_first=recent_first,
        recent=recent,
        next_block=int(body["next_block"]),
        last_block=None if last is None else (int(last["number"]), bytes.fromhex(last["hash"])),
        walk=walk,
    )


def _checksum(identity: dict[str, Any], body: dict[str, Any]) -> str:
    canonical = json.dumps({"identity": identity, "body": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def save_state(path: Path, state: ProvenState, identity: StateIdentity, network: NetworkConfig) -> None:
    """Write `state` durably: temporary file, fsync, atomic rename, fsync of the folder."""
    body = _body_json(state, network)
    ident = identity.to_json()
    document = {"format": FORMAT, "version": VERSION, "identity": ident, "body": body}
    document["checksum"] = _checksum(ident, body)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w") as handle:
        json.dump(document, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def load_state(path: Path, identity: StateIdentity, network: NetworkConfig) -> ProvenState | None:
    """The state saved at `path` (None if there is no file); `ConfigurationError` if it is not usable."""
    if not path.exists():
        return None

    def refuse(problem: str, **fields: Any) -> ConfigurationError:
        return ConfigurationError(
            f"ethereum state file {path}: {problem}; restore it from a backup, or move it away to start "
            "again from the configured checkpoint (the attestor's signed_log still refuses a root that "
            "does not extend what it signed)",
            path=str(path),
            **fields,
        )

    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise refuse("not readable JSON") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise refuse(
            "not an ethereum attestor state file",
            format=str(document.get("format"))[:64] if isinstance(document, dict) else None,
        )
    if document.get("version") != VERSION:
        raise refuse("unsupported version", version=document.get("version"), supported=VERSION)
    if document.get("identity") != identity.to_json():
        raise refuse("written for another chain", found=document.get("identity"), expected=identity.to_json())
    body = document.get("body")
    if not isinstance(body, dict):
        raise refuse("no body")
    if document.get("checksum") != _checksum(identity.to_json(), body):
        raise refuse("checksum mismatch (corrupt or edited)")
    try:
        return _parse_body(body, network)
    except (RelayError, ValueError, KeyError, TypeError, IndexError) as error:
        raise refuse(f"contents do not check out ({type(error).__name__}: {error})"[:300]) from error
