"""The `relay` command.

Every module in this package that defines `register(subparsers)` adds its subcommands; each
subcommand sets `handler` (a function taking the parsed arguments and returning the exit code).
Expected failures (`RelayError`) print one clear line and exit non-zero; exit 2 for configuration
errors, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from relay import __version__
from relay.errors import ConfigurationError, RelayError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="relay", description="A trust-minimised cross-chain messaging relay."
    )
    parser.add_argument("--version", action="version", version=f"relay {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen subcommand."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ConfigurationError as error:
        print(f"relay: configuration error: {error}", file=sys.stderr)
        return 2
    except RelayError as error:
        print(f"relay: {error.reason}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("relay: interrupted", file=sys.stderr)
        return 130
