"""`relay devnet`: two local chains and every relay role, sending messages both ways.

With `--source-mode lightclient`, the second chain verifies the first with an on-chain Ethereum
light client fed by a simulated beacon chain (`relay.tools.devnet_lightclient`): no attestors,
messages one way.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add `relay devnet`."""
    parser = subparsers.add_parser(
        "devnet", help="run the whole relay on two local anvil chains and send messages both ways"
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=20,
        help="messages to send each way (one way with --source-mode lightclient; default 20)",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="stay up after the run and print the addresses (Ctrl-C stops everything)",
    )
    parser.add_argument(
        "--block-time", type=float, default=1.0, help="seconds per block on both chains (default 1)"
    )
    parser.add_argument(
        "--confirmations", type=int, default=2, help="blocks below the head that count as final"
    )
    parser.add_argument("--max-batch", type=int, default=50, help="messages per delivery transaction at most")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for delivery")
    parser.add_argument("--run-root", type=Path, default=None, help="where run folders go (default .devnet/)")
    parser.add_argument(
        "--prometheus",
        action="store_true",
        help="also run a real Prometheus scraping every role, with the alert rules loaded",
    )
    parser.add_argument(
        "--rotate-after",
        type=int,
        default=None,
        metavar="N",
        help="after N deliveries, hand both committees over to 5 members (one removed, two added) "
        "while traffic continues",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext gRPC between the roles (development only; default: mutual TLS from a throw-away CA)",
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the relayers' store: sqlite (one relayer, a file in the run folder; default) or postgres "
        "(the devnet starts and stops its own PostgreSQL server, migrated before the relayers start)",
    )
    parser.add_argument(
        "--relayers",
        type=int,
        default=1,
        metavar="N",
        help="relayer replicas sharing the store (default 1; more than one needs --store postgres)",
    )
    parser.add_argument(
        "--lease-seconds",
        type=float,
        default=None,
        help="the replicas' source lease and delivery claim time (default: the relayer's own)",
    )
    parser.add_argument(
        "--committee-scheme",
        choices=("bls", "ecdsa"),
        default="bls",
        help="how the Gateways verify each origin's committee: bls (aggregate signature, flat in "
        "committee size) or ecdsa (one signature per member: cheaper for small committees and lone "
        "messages); default bls",
    )
    parser.add_argument(
        "--source-mode",
        choices=("committee", "lightclient"),
        default="committee",
        help="committee: attestors sign, messages go both ways (default); lightclient: a simulated "
        "beacon chain follows the first chain and the second chain's Gateway verifies it with an "
        "on-chain Ethereum light client and receipt proofs, no attestors, messages go one way",
    )
    parser.add_argument(
        "--participation",
        type=float,
        default=1.0,
        help="with --source-mode lightclient: the share of the simulated sync committee that signs (default 1.0)",
    )
    parser.set_defaults(handler=run)


def _terminate_as_interrupt(_signal: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """Start the devnet, send, report, then stop (or stay up with --keep-running)."""
    from relay.tools.devnet import Devnet, DevnetOptions
    from relay.tools.devnet_run import ProgressPrinter, format_summary, run_messages

    if args.rotate_after is not None and not 0 <= args.rotate_after < 2 * args.messages:
        print(
            "relay devnet: --rotate-after N needs 0 <= N < 2 x --messages (messages go both ways)",
            file=sys.stderr,
        )
        return 2
    if args.rotate_after is not None and args.insecure:
        print(
            "relay devnet: --rotate-after needs mutual TLS (operator tokens are refused over plaintext); "
            "drop --insecure",
            file=sys.stderr,
        )
        return 2
    from relay.errors import ConfigurationError
    from relay.tools.devnet_committee import validate_scheme_choice
    from relay.tools.devnet_lightclient import validate_lightclient_options
    from relay.tools.devnet_relayers import validate_relayer_choice

    try:
        validate_relayer_choice(args.store, args.relayers)
        validate_scheme_choice(args.committee_scheme, 2 if args.rotate_after is not None else 0)
        validate_lightclient_options(
            DevnetOptions(
                block_time=args.block_time,
                source_mode=args.source_mode,
                committee_scheme=args.committee_scheme,
                spare_members=2 if args.rotate_after is not None else 0,
                lightclient_participation=args.participation,
            )
        )
    except ConfigurationError as error:
        print(f"relay devnet: {error.description}", file=sys.stderr)
        return 2
    if args.messages < 0 or args.confirmations < 0 or args.max_batch < 1:
        print("relay devnet: --messages and --confirmations must be >= 0, --max-batch >= 1", file=sys.stderr)
        return 2
    options = DevnetOptions(
        block_time=args.block_time,
        confirmations=args.confirmations,
        max_batch=args.max_batch,
        prometheus=args.prometheus,
        spare_members=2 if args.rotate_after is not None else 0,
        tls=not args.insecure,
        store=args.store,
        relayers=args.relayers,
        lease_seconds=args.lease_seconds,
        committee_scheme=args.committee_scheme,
        source_mode=args.source_mode,
        lightclient_participation=args.participation,
    )
    if args.run_root is not None:
        options.run_root = args.run_root
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    devnet = Devnet(options)
    started = time.monotonic()
    try:
        devnet.start(progress=lambda text: print(f"devnet: {text}", flush=True))
        print(f"devnet: up in {time.monotonic() - started:.1f} s", flush=True)
        if len(devnet.relayer_names) > 1:
            from relay.tools.devnet_describe import describe_relayers

            for line in describe_relayers(devnet):
                print(f"devnet: {line}", flush=True)
        print(f"devnet: send a message yourself: {devnet.send_command()}", flush=True)
        if devnet.status_url:
            print(f"devnet: status page {devnet.status_url}", flush=True)
        if devnet.prometheus is not None:
            print(f"devnet: prometheus {devnet.prometheus.url}", flush=True)
        code = 0
        if args.messages:
            way = "one way (source -> destination)" if devnet.lightclient is not None else "each way"
            print(f"devnet: sending {args.messages} messages {way} with the example app", flush=True)
            printer = ProgressPrinter()
            result = run_messages(
                devnet,
                args.messages,
                timeout=args.timeout,
                report=printer,
                rotate_after=args.rotate_after,
                say=lambda text: print(f"\ndevnet: {text}", flush=True),
            )
            printer.finish()
            print(format_summary(result), flush=True)
            code = (
                0
                if result.delivered == result.sent and result.received_ok and not result.rotation_error
                else 1
            )
        if args.keep_running:
            print(devnet.describe(), flush=True)
            print("devnet: running; Ctrl-C stops everything it started", flush=True)
            while True:
                dead = devnet.check_alive()
                if dead:
                    print(f"devnet: processes exited: {', '.join(dead)} (see the logs)", file=sys.stderr)
                time.sleep(5 if not dead else 30)
        return code
    except KeyboardInterrupt:
        print("\ndevnet: stopping", flush=True)
        return 0
    finally:
        # A second Ctrl-C / SIGTERM must not cut the clean-up short: that would orphan processes.
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)
        devnet.stop()
        print("devnet: stopped every process it started", flush=True)
