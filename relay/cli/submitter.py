"""`relay submitter --config FILE`: serve DestinationService for one destination chain."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add `relay submitter`."""
    parser = subparsers.add_parser(
        "submitter", help="submit deliveries to one destination chain (holds its key)"
    )
    parser.add_argument("--config", required=True, help="submitter config file (YAML or JSON)")
    parser.add_argument("--log-level", default=None, help="log level (default: $RELAY_LOG_LEVEL or INFO)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load the config, serve until SIGTERM/SIGINT, stop cleanly."""
    from relay.config import load_config
    from relay.logs import configure_logging
    from relay.roles.submitter import Submitter, SubmitterConfig

    configure_logging("submitter", args.log_level)
    return Submitter(load_config(SubmitterConfig, args.config)).run_until_signalled()
