"""`relay attestor --config FILE`: run one committee member for one source chain."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add `relay attestor`."""
    parser = subparsers.add_parser(
        "attestor", help="sign final checkpoints of one source chain (a committee member)"
    )
    parser.add_argument("--config", required=True, help="attestor config file (YAML or JSON)")
    parser.add_argument("--log-level", default=None, help="log level (default: $RELAY_LOG_LEVEL or INFO)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load the config, serve until SIGTERM/SIGINT, stop cleanly."""
    from relay.config import load_config
    from relay.logs import configure_logging
    from relay.roles.attestor import Attestor, AttestorConfig

    configure_logging("attestor", args.log_level)
    return Attestor(load_config(AttestorConfig, args.config)).run_until_signalled()
