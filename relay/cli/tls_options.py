"""The TLS flags of every `relay` command that dials gRPC: `--ca`, `--cert`, `--key`, `--insecure`.

`add_tls_arguments(parser)` adds them; `client_tls(args)` turns them into the `tls` and `insecure`
arguments of `relay.client.RelayClient` (or of `relay.rpc.tls.open_channel`). Exactly one of
`--ca` (server TLS; with `--cert` and `--key` also a client certificate, which the relayer's
operator port requires) and `--insecure` (plaintext, for development relayers) must be given.
"""

from __future__ import annotations

import argparse
from typing import Any

from relay.errors import ConfigurationError


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --ca, --cert, --key and --insecure to `parser`."""
    group = parser.add_argument_group("TLS (gRPC)")
    group.add_argument("--ca", help="CA certificate (PEM) that signed the server's certificate")
    group.add_argument("--cert", help="client certificate (PEM); the relayer's operator port requires one")
    group.add_argument("--key", help="the client certificate's private key (PEM, mode 0600)")
    group.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext gRPC, for a development server (insecure_plaintext)",
    )


def client_tls(args: argparse.Namespace) -> tuple[Any, bool]:
    """(tls, insecure) from the flags; `ConfigurationError` for a combination that cannot work."""
    from relay.rpc.tls import ClientTls

    if args.insecure:
        if args.ca or args.cert or args.key:
            raise ConfigurationError("--insecure (plaintext) cannot be combined with --ca, --cert or --key")
        return None, True
    if not args.ca:
        raise ConfigurationError(
            "plaintext gRPC is refused: give --ca (and --cert/--key for operator calls), "
            "or --insecure for a development relayer"
        )
    return ClientTls(args.ca, args.cert, args.key), False
