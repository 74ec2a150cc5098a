"""`relay relayer --config FILE`: run the relayer until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from relay.config import load_config
from relay.logs import configure_logging


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `relay relayer`."""
    parser = subparsers.add_parser(
        "relayer",
        help="watch sources, collect attestations, verify proofs, forward to submitters",
        description="Run the relayer role (config: YAML/JSON; RELAY_* environment overrides it).",
    )
    parser.add_argument("--config", required=True, help="relayer config file (YAML or JSON)")
    parser.add_argument("--listen", help="override the RelayService listen address (host:port)")
    parser.add_argument("--store", help="override the store path")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ... (default: $RELAY_LOG_LEVEL or INFO)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load the config (exit 2 if invalid), start the relayer, wait for a signal, stop cleanly."""
    from relay.relayer import Relayer, RelayerConfig

    overrides = {key: value for key, value in (("listen", args.listen), ("store", args.store)) if value}
    config = load_config(RelayerConfig, args.config, overrides=overrides)  # ConfigurationError -> exit 2
    configure_logging("relayer", args.log_level)
    relayer = Relayer(config)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        relayer.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        relayer.start()
        print(f"relayer: RelayService listening on {relayer.address}", flush=True)
        while not relayer.wait(1.0):
            pass
    finally:
        relayer.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("relayer: stopped", file=sys.stderr, flush=True)
    return 0
