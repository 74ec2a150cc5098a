"""`relay attestor --config FILE`: run one committee member for one source chain."""

from __future__ import annotations

import argparse
import signal
from typing import Any


def register(subparsers: Any) -> None:
    """Add `relay attestor`."""
    parser = subparsers.add_parser("attestor", help="sign final checkpoints of one source chain (a committee member)")
    parser.add_argument("--config", required=True, help="attestor config file (YAML or JSON)")
    parser.add_argument("--log-level", default=None, help="log level (default: $RELAY_LOG_LEVEL or INFO)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load the config, serve until SIGTERM/SIGINT, stop cleanly."""
    from relay.config import load_config
    from relay.logs import configure_logging
    from relay.roles.attestor import Attestor, AttestorConfig

    configure_logging("attestor", args.log_level)
    attestor = Attestor(load_config(AttestorConfig, args.config))
    stop_on_signals(attestor.stopping.set)
    return attestor.run()


def stop_on_signals(stop: Any) -> None:
    """Call `stop()` on SIGTERM and SIGINT (the role's loop then shuts down cleanly)."""
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda _signal, _frame: stop())
