"""`relay lightclient sync`: verify beacon-API light-client files offline and print the result.

Runs the same verifier as the attestor's `ethereum` mode over files (a bootstrap, the updates of
the following periods, optionally a finality and an optimistic update), prints the time each
step took and the finalized header it reached. Bad data exits 1 and names the failed check.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from relay.errors import ConfigurationError
from relay.verify.bls import get_backend
from relay.verify.ethereum.codec import (
    parse_bootstrap,
    parse_finality_update,
    parse_optimistic_update,
    parse_updates,
)
from relay.verify.ethereum.config import NetworkConfig, get_network, network_config_from_spec
from relay.verify.ethereum.containers import LightClientHeader, compute_beacon_block_root
from relay.verify.ethereum.errors import EthereumProofError
from relay.verify.ethereum.light_client_store import UpdateOutcome
from relay.verify.ethereum.sync_protocol import LightClient


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `relay lightclient sync`."""
    lightclient = subparsers.add_parser("lightclient", help="Ethereum sync-committee light client (offline)")
    commands = lightclient.add_subparsers(dest="lightclient_command", metavar="COMMAND", required=True)
    sync = commands.add_parser("sync", help="verify a bootstrap and updates (beacon-API JSON files)")
    sync.add_argument("--bootstrap", required=True, type=Path, help="LightClientBootstrap JSON")
    sync.add_argument(
        "--updates", required=True, type=Path, help="list of LightClientUpdate JSON (light_client/updates)"
    )
    sync.add_argument("--finality", type=Path, help="LightClientFinalityUpdate JSON")
    sync.add_argument("--optimistic", type=Path, help="LightClientOptimisticUpdate JSON")
    add_network_arguments(sync)
    sync.add_argument(
        "--bls-backend", default=None, help="BLS backend (blst, py_ecc; default: the fastest installed)"
    )
    sync.add_argument(
        "--trusted-root",
        default=None,
        help="trusted beacon block root (0x hex); default: the bootstrap header's own root, which trusts the file",
    )
    sync.add_argument(
        "--current-slot", type=int, default=None, help="the current slot (default: from the clock)"
    )
    sync.add_argument(
        "--allow-force-update",
        action="store_true",
        help="UNSAFE: apply the best update without a 2/3 quorum after a period without finality",
    )
    sync.set_defaults(handler=run_sync)


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """`--network` or `--network-config` with `--genesis-validators-root`."""
    parser.add_argument("--network", default="mainnet", help="built-in network (default: mainnet)")
    parser.add_argument("--network-config", type=Path, help="a consensus config.yaml instead of --network")
    parser.add_argument("--genesis-validators-root", help="0x hex; required with --network-config")


def network_from_arguments(args: argparse.Namespace) -> NetworkConfig:
    """The network the arguments name."""
    if args.network_config is None:
        return get_network(args.network)
    import yaml

    if not args.genesis_validators_root:
        raise ConfigurationError("--network-config needs --genesis-validators-root")
    with args.network_config.open() as handle:
        config = yaml.safe_load(handle)
    return network_config_from_spec(
        config,
        genesis_validators_root=parse_root(args.genesis_validators_root, "--genesis-validators-root"),
        name=args.network_config.stem,
    )


def parse_root(text: str, what: str) -> bytes:
    """32 bytes from 0x hex, or a `ConfigurationError` naming the option."""
    try:
        value = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise ConfigurationError(f"{what} is not hex", value=text) from None
    if len(value) != 32:
        raise ConfigurationError(f"{what} must be 32 bytes", value=text)
    return value


def load_json(path: Path) -> Any:
    """Parse a JSON file, or raise a `ConfigurationError` naming it."""
    try:
        with path.open() as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"cannot read {path}: {error}", path=str(path)) from error


def _describe(outcome: UpdateOutcome) -> str:
    changes = [
        name
        for flag, name in (
            (outcome.next_sync_committee_learned, "next committee learned"),
            (outcome.period_advanced, "period advanced"),
            (outcome.finalized_advanced, "finalized advanced"),
            (outcome.optimistic_advanced, "optimistic advanced"),
        )
        if flag
    ]
    return ", ".join(changes) or "no change"


def print_header(title: str, header: LightClientHeader) -> None:
    """Print a verified light-client header."""
    execution = header.execution
    print(title)
    print(f"  slot              {header.beacon.slot}")
    print(f"  beacon root       0x{compute_beacon_block_root(header.beacon).hex()}")
    print(f"  execution block   {execution.block_number}")
    print(f"  block hash        0x{execution.block_hash.hex()}")
    print(f"  state root        0x{execution.state_root.hex()}")
    print(f"  receipts root     0x{execution.receipts_root.hex()}")


def run_sync(args: argparse.Namespace) -> int:
    """Verify the files in order; print each step's time and the finalized header."""
    network = network_from_arguments(args)
    backend = get_backend(args.bls_backend)
    preset = network.preset
    current_slot = (
        args.current_slot if args.current_slot is not None else network.compute_slot_at_time(time.time())
    )
    step = "bootstrap"
    try:
        bootstrap = parse_bootstrap(load_json(args.bootstrap), preset)
        updates = parse_updates(load_json(args.updates), preset)
        finality = parse_finality_update(load_json(args.finality), preset) if args.finality else None
        optimistic = parse_optimistic_update(load_json(args.optimistic), preset) if args.optimistic else None

        if args.trusted_root:
            trusted_root = parse_root(args.trusted_root, "--trusted-root")
        else:
            trusted_root = compute_beacon_block_root(bootstrap.header.beacon)
            print("note: no --trusted-root given; trusting the bootstrap file's own header root")
        print(f"network {network.name}, BLS backend {backend.name}, current slot {current_slot}")
        started = time.perf_counter()
        client = LightClient.from_bootstrap(
            trusted_root, bootstrap, network, backend, allow_force_update=args.allow_force_update
        )
        print(
            f"bootstrap       slot {bootstrap.header.beacon.slot}, period {client.current_period()}"
            f"  {(time.perf_counter() - started) * 1000:8.2f} ms"
        )
        steps: list[tuple[str, Any]] = [(f"update {i + 1}/{len(updates)}", u) for i, u in enumerate(updates)]
        if finality is not None:
            steps.append(("finality", finality))
        if optimistic is not None:
            steps.append(("optimistic", optimistic))
        for step, item in steps:
            decoded_before = client.keys.decoded_committees
            started = time.perf_counter()
            if step == "finality":
                outcome = client.process_finality_update(item, current_slot)
            elif step == "optimistic":
                outcome = client.process_optimistic_update(item, current_slot)
            else:
                outcome = client.process_update(item, current_slot)
            elapsed = (time.perf_counter() - started) * 1000
            decoded = (
                " (incl. decoding the period's keys)"
                if client.keys.decoded_committees > decoded_before
                else ""
            )
            print(
                f"{step:<15} attested slot {item.attested_header.beacon.slot}, "
                f"{outcome.participants}/{preset.sync_committee_size} signed, {_describe(outcome)}"
                f"  {elapsed:8.2f} ms{decoded}"
            )
        if args.allow_force_update and client.process_force_update(current_slot):
            print("force update    applied (UNSAFE: without a 2/3 quorum)")
    except EthereumProofError as error:
        print(f"relay: {step}: check '{error.check}' failed: {error}", file=sys.stderr)
        return 1
    print_header("finalized header", client.finalized_header)
    print(f"optimistic header slot {client.optimistic_header.beacon.slot}")
    print(f"committee keys decoded for {client.keys.decoded_committees} period(s)")
    return 0
