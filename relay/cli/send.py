"""`relay send`: dispatch one message through a source Gateway, optionally paying for its gas and
waiting for delivery."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from relay.cli.tls_options import add_tls_arguments, client_tls
from relay.config import verify_private_file
from relay.errors import ConfigurationError


def register(subparsers: Any) -> None:
    """Add `relay send`."""
    parser = subparsers.add_parser("send", help="send a message through a source gateway (dApp tooling)")
    parser.add_argument("--rpc", required=True, help="source chain JSON-RPC URL")
    parser.add_argument("--gateway", required=True, help="source Gateway address")
    key = parser.add_mutually_exclusive_group(required=True)
    key.add_argument("--key-file", type=Path, help="file holding the sender's hex private key")
    key.add_argument("--key-env", help="environment variable holding the sender's hex private key")
    parser.add_argument("--destination", type=int, required=True, help="destination domain")
    parser.add_argument("--recipient", required=True, help="recipient contract address on the destination")
    body = parser.add_mutually_exclusive_group(required=True)
    body.add_argument("--body", help="message body (text, sent as UTF-8)")
    body.add_argument("--body-file", type=Path, help="file whose bytes are the message body (at most 64 KiB)")
    parser.add_argument(
        "--gas-limit",
        type=int,
        help="gas for the recipient's handle(): quoted by the source Gateway and paid with the dispatch",
    )
    parser.add_argument("--wait", action="store_true", help="wait until the relayer reports it delivered")
    parser.add_argument(
        "--relay", default="127.0.0.1:50070", help="relayer RelayService address (with --wait)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (with --wait)")
    add_tls_arguments(parser)
    parser.set_defaults(handler=run)


def _read_key(args: argparse.Namespace) -> str:
    if args.key_file is not None:
        verify_private_file(args.key_file)  # a transaction key: readable by its owner only
        try:
            return str(args.key_file.read_text().strip())
        except OSError as error:
            raise ConfigurationError(
                "key file unreadable", file=str(args.key_file), cause=error.strerror
            ) from error
    if args.key_env not in os.environ:
        raise ConfigurationError("key environment variable not set", variable=args.key_env)
    return os.environ[args.key_env].strip()


def run(args: argparse.Namespace) -> int:
    """Send; print the id; with --wait, print each state change until delivered.

    With --wait, a relayer that does not answer at --relay is reported (exit 1, naming the address,
    and the likely cause when the TLS handshake failed) within seconds and before anything is sent;
    --wait needs --ca (or --insecure for a development relayer).
    """
    from relay.client import MessageView, RelayClient, send

    key = _read_key(args)

    def dispatch() -> bytes:
        message_id = send(
            args.rpc,
            args.gateway,
            key,
            args.destination,
            args.recipient,
            args.body,
            body_file=args.body_file,
            gas_limit=args.gas_limit,
        )
        print(f"sent 0x{message_id.hex()}", flush=True)
        return message_id

    if not args.wait:
        dispatch()
        return 0

    def show(view: MessageView) -> None:
        detail = f" ({view.last_error})" if view.last_error else ""
        print(f"  {view.state}{detail}", flush=True)

    tls, insecure = client_tls(args)
    with RelayClient(args.relay, tls=tls, insecure=insecure) as client:
        client.verify_reachable()
        message_id = dispatch()
        view = client.wait_delivered(message_id, args.timeout, on_change=show)
    transaction = (
        f" in transaction 0x{view.destination_transaction.hex()}" if view.destination_transaction else ""
    )
    print(f"delivered{transaction}", file=sys.stdout, flush=True)
    return 0
