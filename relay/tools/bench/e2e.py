"""`relay bench e2e`: the whole relay on a devnet, measured end to end.

Starts a devnet (two anvil chains, 8 attestors, the relayer, two submitters, each its own
process), sends `--messages` messages each way with the example app at once, waits until all
are delivered and prints:

- throughput under offered load: delivered messages per second, from the first send to the last
  delivery (bounded by how fast one account per chain can send dispatch transactions);
- relay capacity (backlog drain): `--messages` more each way are sent while the relayer is stopped
  and are final before it starts again; delivered messages per second from the moment the
  relayer serves again to the last delivery: the relay's own rate (watch, attest, verify, submit)
  with the senders out of the picture (2 x `--messages` in the backlog), and the relayer's CPU
  time per delivered message over the drain (process CPU seconds, user + system, / messages);
- latency from source finality (the moment the block `confirmations` above the message's block
  appeared) to the relayer's record of the destination receipt, p50 and p99;
- gas per delivered message, from the receipts of the delivery transactions;
- cost per route (the relayer's accounting, from its status API): gas spent, native amount spent
  (gas used times effective gas price) and native amount paid by the senders (`gasPaid`);
- the contract-level gas table of `adapters.evm.gas` (one delivery per committee size and batch
  size, on its own fresh anvil), unless `--no-gas-table`.

The figures depend on the block time (1 s by default: a chain with faster blocks delivers
faster) and on the machine; the numbers in the README come from a two-core runner.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `relay bench e2e`."""
    parser.add_argument("--messages", type=int, default=200, help="messages each way (default 200)")
    parser.add_argument("--block-time", type=float, default=1.0, help="seconds per block (default 1)")
    parser.add_argument("--confirmations", type=int, default=2, help="finality depth in blocks (default 2)")
    parser.add_argument(
        "--max-batch", type=int, default=100, help="messages per delivery transaction at most"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for delivery")
    parser.add_argument("--run-root", type=Path, default=None, help="where the devnet run folder goes")
    parser.add_argument("--no-gas-table", action="store_true", help="skip the per-batch-size gas table")
    parser.add_argument(
        "--no-backlog", action="store_true", help="skip the backlog-drain (relay capacity) run"
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the relayers' store (default sqlite; postgres: the devnet's own PostgreSQL server)",
    )
    parser.add_argument(
        "--relayers",
        type=int,
        default=1,
        metavar="N",
        help="with N > 1 (needs --store postgres): relay capacity with 1 and with N replicas side by "
        "side, each on a fresh devnet (see relay.tools.bench.e2e_replicas)",
    )
    parser.add_argument(
        "--lease-seconds", type=float, default=None, help="the replicas' lease time (default: the relayer's)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; exit 1 if not every message was delivered exactly once."""
    from relay.errors import ConfigurationError
    from relay.tools.bench.backlog import run_backlog
    from relay.tools.devnet import Devnet, DevnetOptions
    from relay.tools.devnet_relayers import validate_relayer_choice
    from relay.tools.devnet_run import ProgressPrinter, format_summary, percentile, run_messages

    if args.messages < 1:
        print("relay bench e2e: --messages must be >= 1", file=sys.stderr)
        return 2
    try:
        validate_relayer_choice(args.store, args.relayers)
    except ConfigurationError as error:
        print(f"relay bench e2e: {error.description}", file=sys.stderr)
        return 2
    if args.relayers > 1:
        from relay.tools.bench.e2e_replicas import run_replica_comparison

        return run_replica_comparison(args)
    options = DevnetOptions(
        block_time=args.block_time,
        confirmations=args.confirmations,
        max_batch=args.max_batch,
        log_level="WARNING",
        metrics=True,  # the relayer's status API reports the cost per route
        store=args.store,
        lease_seconds=args.lease_seconds,
    )
    if args.run_root is not None:
        options.run_root = args.run_root
    started = time.monotonic()
    with Devnet(options) as devnet:
        print(
            f"devnet up in {time.monotonic() - started:.1f} s ({len(devnet.processes)} processes); "
            f"sending {args.messages} messages each way",
            flush=True,
        )
        printer = ProgressPrinter(sys.stderr)
        result = run_messages(devnet, args.messages, timeout=args.timeout, report=printer)
        printer.finish()
        drained = None if args.no_backlog else run_backlog(devnet, args.messages, args.timeout)
        backlog = (drained.delivered, drained.seconds) if drained is not None else None
        cpu_per_message = drained.cpu_per_message if drained is not None else None
        costs = fetch_route_costs(devnet.status_url)
    print(format_summary(result))
    print()
    print(f"{'metric':<44} {'value':>12}")
    print(f"{'messages delivered / sent':<44} {f'{result.delivered}/{result.sent}':>12}")
    print(f"{'throughput, offered load (messages/s)':<44} {result.throughput:>12.1f}")
    if backlog is not None:
        delivered, seconds = backlog
        print(
            f"{'relay capacity, backlog drain (messages/s)':<44} {delivered / seconds:>12.1f}"
            f"   ({delivered} messages in {seconds:.1f} s)"
        )
    if cpu_per_message is not None:
        print(f"{'relayer CPU per delivered message (ms)':<44} {1000 * cpu_per_message:>12.3f}")
    print(f"{'latency finality -> receipt p50 (s)':<44} {percentile(result.latencies, 0.5):>12.2f}")
    print(f"{'latency finality -> receipt p99 (s)':<44} {percentile(result.latencies, 0.99):>12.2f}")
    print(f"{'gas per delivered message':<44} {result.gas_per_message:>12,.0f}")
    print(f"{'delivery transactions':<44} {result.transactions:>12}")
    print()
    print(format_route_costs(costs))
    if not args.no_gas_table:
        print_gas_table()
    complete = backlog is None or backlog[0] == 2 * args.messages
    return 0 if result.delivered == result.sent and result.received_ok and complete else 1


def print_gas_table() -> None:
    """The contracts' gas per delivery by committee and batch size, if `adapters.evm.gas` exists."""
    try:
        gas = importlib.import_module("adapters.evm.gas")
    except ModuleNotFoundError:
        return
    from adapters.evm.anvil import AnvilProcess

    print()
    print("gas per delivery transaction (adapters.evm.gas, warm recipient, compressed branches):")
    with AnvilProcess(chain_id=gas.BENCH_CHAIN_ID) as anvil:
        rows = gas.measure_delivery_gas(anvil.rpc_url)
    print(gas.format_gas_table(rows))


def fetch_route_costs(status_url: str | None) -> list[dict[str, Any]]:
    """The relayer's cost per route from its `/api/status` (empty if it has no status page)."""
    if not status_url:
        return []
    import json
    import urllib.request

    with urllib.request.urlopen(status_url + "api/status", timeout=10) as response:  # noqa: S310 - loopback
        costs: list[dict[str, Any]] = json.loads(response.read()).get("costs", [])
    return costs


def format_route_costs(costs: list[dict[str, Any]]) -> str:
    """A table of cost per route: messages, gas spent, spent and paid (smallest native units)."""
    lines = [
        "cost per route (relayer accounting; amounts in wei):",
        f"{'route':<16} {'messages':>9} {'gas spent':>14} {'gas/msg':>9} {'spent':>22} {'paid':>22}",
    ]
    if not costs:
        lines.append("(no deliveries accounted)")
    for cost in costs:
        route = f"{cost['origin']['name']} -> {cost['destination']['name']}"
        per = cost["gas_spent"] / cost["messages"] if cost["messages"] else 0.0
        lines.append(
            f"{route:<16} {cost['messages']:>9} {cost['gas_spent']:>14,} {per:>9,.0f}"
            f" {int(cost['spent']):>22,} {int(cost['paid']):>22,}"
        )
    return "\n".join(lines)
