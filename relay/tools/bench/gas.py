"""`relay bench gas --against hyperlane`: our delivery gas next to Hyperlane's, on one anvil.

Starts one anvil chain (its default hardfork), runs `adapters.evm.gas_comparison` (our Gateway
under a BLS and under an ECDSA committee, Hyperlane's Mailbox with a MessageIdMultisigIsm from its
npm package `@hyperlane-xyz/core`, installed by `make tools`) for committees of 1, 5, 19 and 64
(thresholds 1, 3, 13, 43) at batch sizes 1, 2, 5, 10 and 50, and prints gas per delivered message:
ours under each scheme, `ours` = the cheaper with its scheme, Hyperlane's, and ours / Hyperlane's.
`--json FILE` writes the rows as a JSON array of
{committee, threshold, batch, ours, hyperlane, scheme, ours_bls, ours_ecdsa}.
`--committees 1,5 --batches 1,2` restricts the run. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

COMMITTEE_THRESHOLDS = {1: 1, 5: 3, 19: 13, 64: 43}  # Hyperlane's MessageIdMultisigIsm settings
DEFAULT_BATCHES = (1, 2, 5, 10, 50)
BENCH_CHAIN_ID = 31337
MAX_BATCH = 200


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `relay bench gas`."""
    parser.add_argument(
        "--against",
        choices=("hyperlane",),
        required=True,
        help="the protocol to compare with (Hyperlane v3's Mailbox + MessageIdMultisigIsm)",
    )
    parser.add_argument(
        "--committees",
        default=",".join(str(size) for size in COMMITTEE_THRESHOLDS),
        help="committee sizes among 1,5,19,64 (thresholds 1,3,13,43; default all)",
    )
    parser.add_argument(
        "--batches",
        default=",".join(str(batch) for batch in DEFAULT_BATCHES),
        help="batch sizes (default 1,2,5,10,50)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the rows as JSON")


def parse_committees(text: str) -> list[tuple[int, int]]:
    """`1,5` -> [(1, 1), (5, 3)]; sizes outside Hyperlane's published settings are refused."""
    committees = []
    for item in _split(text):
        size = _positive(item, "committee size")
        if size not in COMMITTEE_THRESHOLDS:
            raise argparse.ArgumentTypeError(
                f"committee size {size} has no Hyperlane threshold; choose among "
                + ",".join(str(s) for s in COMMITTEE_THRESHOLDS)
            )
        committees.append((size, COMMITTEE_THRESHOLDS[size]))
    if not committees:
        raise argparse.ArgumentTypeError("no committee size given")
    return committees


def parse_batches(text: str) -> list[int]:
    """`1,2,50` -> [1, 2, 50]; each in 1..MAX_BATCH."""
    batches = [_positive(item, "batch size") for item in _split(text)]
    if not batches:
        raise argparse.ArgumentTypeError("no batch size given")
    for batch in batches:
        if batch > MAX_BATCH:
            raise argparse.ArgumentTypeError(f"batch size {batch} above {MAX_BATCH}")
    return batches


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _positive(item: str, what: str) -> int:
    try:
        value = int(item)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{what} {item!r} is not a number") from error
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{what} must be positive, got {value}")
    return value


def format_comparison_table(rows: Iterable[Any]) -> str:
    """The rows (`ComparisonRow`s) as an aligned text table."""
    lines = [
        f"{'committee':>9} {'threshold':>9} {'batch':>5} {'ours BLS':>10} {'ours ECDSA':>10}"
        f" {'ours':>10} {'scheme':>6} {'Hyperlane':>10} {'ours/HL':>7}"
    ]
    lines += [
        f"{r.committee:>9} {r.threshold:>9} {r.batch:>5} {r.ours_bls:>10,} {r.ours_ecdsa:>10,}"
        f" {r.ours:>10,} {r.scheme:>6} {r.hyperlane:>10,} {r.ratio:>7.2f}"
        for r in rows
    ]
    return "\n".join(lines)


def anvil_description(anvil_path: Path, rpc_url: str) -> str:
    """`anvil <version>, hardfork <name>` of the running chain (for the figures' provenance)."""
    from adapters.evm.deploy import rpc_request

    version = subprocess.run(
        [str(anvil_path), "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    hardfork = rpc_request(rpc_url, "anvil_nodeInfo").get("hardFork", "?")
    first = version[0].strip().replace("Version: ", "") if version else "anvil (version unknown)"
    return f"{first}, hardfork {hardfork}"


def run_comparison(
    committees: Sequence[tuple[int, int]], batches: Sequence[int], json_path: Path | None
) -> int:
    """Start an anvil, measure, print the table (and write the JSON); return the exit code."""
    from adapters.evm.anvil import AnvilProcess
    from adapters.evm.gas_comparison import measure_against_hyperlane
    from adapters.evm.hyperlane import HYPERLANE_PACKAGE, load_hyperlane_artifact

    load_hyperlane_artifact("Mailbox")  # fail before starting a chain if `make tools` was not run

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with AnvilProcess(chain_id=BENCH_CHAIN_ID) as anvil:
        chain = anvil_description(anvil.anvil_path, anvil.rpc_url)
        progress(f"{chain}; Hyperlane {HYPERLANE_PACKAGE}")
        rows = measure_against_hyperlane(anvil.rpc_url, committees, batches, progress)
    print(f"gas per delivered message (receipts' gasUsed / messages), {chain}, Hyperlane {HYPERLANE_PACKAGE}")
    print("ours: Gateway process/processBatch under one certificate (batch 1: a lone message, its own")
    print("checkpoint); Hyperlane: one Mailbox.process per message, MessageIdMultisigIsm, default ISM.")
    print("Thresholds below 2/3 are enrolled on our Gateway with setLowThresholdAllowed.")
    print(format_comparison_table(rows))
    if json_path is not None:
        json_path.write_text(json.dumps([row.as_json() for row in rows], indent=2) + "\n")
        print(f"rows written to {json_path}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point of `relay bench gas`."""
    try:
        committees = parse_committees(args.committees)
        batches = parse_batches(args.batches)
    except argparse.ArgumentTypeError as error:
        print(f"relay bench gas: {error}", file=sys.stderr)
        return 2
    # Refused before the run (minutes of deliveries), not when writing its rows at the end.
    if args.json is not None and (args.json.is_dir() or not args.json.parent.is_dir()):
        print(f"relay bench gas: --json {args.json}: not a file in an existing directory", file=sys.stderr)
        return 2
    return run_comparison(committees, batches, args.json)
