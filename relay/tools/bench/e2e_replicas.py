"""`relay bench e2e --store postgres --relayers N`: relay capacity with 1 and with N replicas.

Each configuration runs on a fresh devnet (its own chains, attestors, submitters and its own
PostgreSQL server, migrated), one after the other in the same command, so the two rows are
measured the same way on the same machine:

1. the devnet starts with R relayer replicas sharing the store; a few messages each way warm it
   up (every replica serving, the source leases taken);
2. the backlog drain of `relay bench e2e` (`run_backlog`): every replica is stopped, `--messages`
   messages are sent each way and become final, every replica starts again, and the time from
   all serving to the last delivery is the relay's own capacity (watch, attest, verify, submit);
3. the recipients' counters must grow by exactly what was sent (nothing lost, nothing twice).

The table gives per R: messages delivered, seconds, messages per second and the relayer CPU
seconds per message summed over the replicas (from /proc, user + system). On a machine with few
cores the replicas compete with the chains, attestors, submitters and PostgreSQL for the same
CPUs: the figures are what this machine measured, not a scaling law.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from relay.tools.bench.backlog import BacklogDrain, run_backlog

WARM_UP_MESSAGES = 5  # each way, before the measured backlog


def run_replica_comparison(args: argparse.Namespace) -> int:
    """Measure the backlog drain with 1 and with `args.relayers` replicas; print the table.

    Exit code 0 only if every message of both runs was delivered and the counters agree.
    """
    from relay.tools.devnet import Devnet, DevnetOptions
    from relay.tools.devnet_run import run_messages

    rows: list[tuple[BacklogDrain, bool]] = []
    version = ""
    for count in (1, args.relayers):
        options = DevnetOptions(
            block_time=args.block_time,
            confirmations=args.confirmations,
            max_batch=args.max_batch,
            log_level="WARNING",
            store="postgres",
            relayers=count,
            lease_seconds=args.lease_seconds,
        )
        if args.run_root is not None:
            options.run_root = args.run_root
        started = time.monotonic()
        with Devnet(options) as devnet:
            version = devnet.database.version
            print(
                f"{count} replica(s): devnet up in {time.monotonic() - started:.1f} s "
                f"({len(devnet.processes)} processes, PostgreSQL {version}); warming up",
                file=sys.stderr,
                flush=True,
            )
            warm = run_messages(devnet, WARM_UP_MESSAGES, timeout=args.timeout)
            before = {chain.domain: devnet.received(chain.domain) for chain in devnet.chains}
            drain = run_backlog(devnet, args.messages, args.timeout)
            counted = all(
                devnet.received(chain.domain) - before[chain.domain] == args.messages
                for chain in devnet.chains
            )
            rows.append((drain, counted and warm.delivered == warm.sent and warm.received_ok))
    print(format_comparison(rows, version))
    complete = all(ok and drain.delivered == drain.sent for drain, ok in rows)
    return 0 if complete else 1


def format_comparison(rows: list[tuple[BacklogDrain, bool]], version: str, cores: Any = None) -> str:
    """The side-by-side table of backlog drains by number of replicas."""
    cores = cores if cores is not None else os.cpu_count()
    lines = [
        f"relay capacity (backlog drain) by relayer replicas; PostgreSQL {version}; {cores} CPU cores",
        f"{'replicas':>8} {'messages':>9} {'seconds':>9} {'msg/s':>8} {'relayer CPU s/msg':>18}  counters",
    ]
    for drain, ok in rows:
        lines.append(
            f"{drain.relayers:>8} {f'{drain.delivered}/{drain.sent}':>9} {drain.seconds:>9.1f} "
            f"{drain.rate:>8.1f} {drain.cpu_per_message:>18.4f}  {'agree' if ok else 'DISAGREE'}"
        )
    return "\n".join(lines)
