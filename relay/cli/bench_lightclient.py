"""`relay bench lightclient`: time to process one real mainnet light-client update off-chain;
with `--onchain`, the gas of the on-chain light client (relay.tools.bench.lightclient_onchain).

Processes the first update of the mainnet vectors (period 862, signed by 511 of 512 members,
bringing the next committee) against a fresh copy of the bootstrapped store, with the
committee's keys already decoded (as a running light client has them for the whole period), once
per run. Decoding the 512 keys is timed separately: it happens once per period. The target for
the fast backend is at most 10 ms per update. The lead wires this module as `relay bench lightclient`.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from pathlib import Path

from relay.cli.lightclient import load_json
from relay.errors import ConfigurationError
from relay.verify.bls import available_backends, get_backend
from relay.verify.ethereum.codec import parse_bootstrap, parse_updates
from relay.verify.ethereum.committee_keys import SyncCommitteeKeyCache
from relay.verify.ethereum.config import MAINNET
from relay.verify.ethereum.containers import compute_beacon_block_root
from relay.verify.ethereum.sync_protocol import process_light_client_update
from relay.verify.ethereum.validation import initialize_light_client_store

TARGET_MS = 10.0
REFERENCE_RUNS = 1


def default_vectors() -> Path:
    """`$RELAY_VECTORS/ethereum-mainnet-lc`, else `../shared/vectors/ethereum-mainnet-lc` beside the project."""
    root = Path(os.environ.get("RELAY_VECTORS", Path(__file__).resolve().parents[3] / "shared" / "vectors"))
    return root / "ethereum-mainnet-lc"


def add_bench_lightclient_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `relay bench lightclient`."""
    parser.add_argument(
        "--vectors",
        type=Path,
        default=None,
        help="folder with bootstrap.json and updates.json (default: the shared mainnet vectors)",
    )
    parser.add_argument(
        "--backends", default="", help="BLS backends, comma-separated (default: all installed)"
    )
    parser.add_argument(
        "--runs", type=int, default=200, help="runs for fast backends (py_ecc always runs once)"
    )
    from relay.tools.bench.lightclient_onchain import add_onchain_arguments

    add_onchain_arguments(parser)


def run_bench_lightclient(args: argparse.Namespace) -> int:
    """Print the per-update time for each backend and whether the fast one meets the target (reported, not enforced)."""
    folder = args.vectors or default_vectors()
    if args.onchain:
        from relay.tools.bench.lightclient_onchain import run_onchain

        return run_onchain(args, folder)
    if not (folder / "bootstrap.json").exists():
        raise ConfigurationError("light-client vectors not found (use --vectors)", folder=str(folder))
    bootstrap = parse_bootstrap(load_json(folder / "bootstrap.json"), MAINNET.preset)
    update = parse_updates(load_json(folder / "updates.json"), MAINNET.preset)[0]
    store = initialize_light_client_store(
        compute_beacon_block_root(bootstrap.header.beacon), bootstrap, MAINNET
    )
    current_slot = update.signature_slot + 1
    names = [b for b in args.backends.split(",") if b] or available_backends()

    print("light-client update: mainnet, 512-member committee, one update with cached committee keys")
    print(
        f"{'backend':<8} {'runs':>5} {'median ms':>10} {'min ms':>9} {'max ms':>9}   {'decode 512 keys (once per period)':>34}"
    )
    missed = False
    for name in names:
        backend = get_backend(name)
        keys = SyncCommitteeKeyCache(backend)
        started = time.perf_counter()
        keys.get(store.current_sync_committee)
        decode_ms = (time.perf_counter() - started) * 1000
        runs = REFERENCE_RUNS if name == "py_ecc" else max(1, args.runs)
        times = []
        for _ in range(runs):
            fresh = copy.copy(store)
            started = time.perf_counter()
            process_light_client_update(fresh, update, current_slot, MAINNET, keys)
            times.append((time.perf_counter() - started) * 1000)
        median = statistics.median(times)
        print(
            f"{name:<8} {runs:>5} {median:>10.2f} {min(times):>9.2f} {max(times):>9.2f}   {decode_ms:>31.1f} ms"
        )
        if name != "py_ecc" and median > TARGET_MS:
            missed = True
    verdict = "MISSED" if missed else "met"
    print(f"target: at most {TARGET_MS:.0f} ms per update with the fast backend: {verdict}")
    return 0
