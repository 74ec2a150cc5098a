"""`relay bench`: benchmarks that print the figures the issues set targets for."""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType
from typing import Any


def _optional(name: str) -> Any:
    """Import a benchmark module that a later part of the project provides, if present."""
    try:
        module: ModuleType = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        return None
    return module


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `relay bench verify|lightclient|e2e|gas`."""
    bench = subparsers.add_parser("bench", help="measure verification and relay performance")
    kinds = bench.add_subparsers(dest="bench", metavar="KIND", required=True)

    verify = kinds.add_parser("verify", help="Merkle, committee BLS and ECDSA verification speed")
    verify.add_argument("--sizes", default="16,128,512", help="committee sizes (comma-separated)")
    verify.add_argument(
        "--reference-sizes",
        default="16,128,512",
        help="committee sizes also measured with the slow py_ecc reference (empty: none)",
    )
    verify.add_argument("--backends", default="", help="BLS backends (default: all installed)")
    verify.add_argument("--repeat", type=int, default=200, help="runs per fast measurement")
    verify.set_defaults(handler=_run_verify)

    bench_lightclient = _optional("relay.cli.bench_lightclient")
    if bench_lightclient is not None:
        light = kinds.add_parser(
            "lightclient", help="Ethereum light-client update speed (off-chain) or gas (--onchain)"
        )
        bench_lightclient.add_bench_lightclient_arguments(light)
        light.set_defaults(handler=bench_lightclient.run_bench_lightclient)

    e2e = _optional("relay.tools.bench.e2e")
    if e2e is not None:
        end_to_end = kinds.add_parser("e2e", help="devnet throughput, latency and gas per message")
        e2e.add_arguments(end_to_end)
        end_to_end.set_defaults(handler=e2e.run)

    gas = _optional("relay.tools.bench.gas")
    if gas is not None:
        side_by_side = kinds.add_parser("gas", help="gas per delivered message next to Hyperlane's")
        gas.add_arguments(side_by_side)
        side_by_side.set_defaults(handler=gas.run)


def _run_verify(args: argparse.Namespace) -> int:
    from relay.tools.bench.verify import run_verify_bench

    sizes = [int(s) for s in args.sizes.split(",") if s]
    reference = [int(s) for s in args.reference_sizes.split(",") if s]
    backends = [b for b in args.backends.split(",") if b] or None
    return run_verify_bench(sizes, reference, backends, args.repeat)
