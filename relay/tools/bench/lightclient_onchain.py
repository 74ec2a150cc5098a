"""`relay bench lightclient --onchain`: the gas of the on-chain Ethereum light client, on anvil.

Three measurements, each on its own throw-away anvil (its default hardfork, with EIP-2537):

1. **Updates at mainnet size** (`adapters.ethereum.lightclient_gas`): a chain with 512 known
   sync-committee keys, the Electra layout, updates signed by all members and by 80% of them,
   with and without a sync-committee period change, each traced to say where the gas goes.
   Target: an update inside a period at 80% participation at most 600k gas.
2. **Messages by receipt proof** (`adapters.ethereum.inbox_gas`): real `Dispatch` receipts of a
   real anvil block proven through `EthereumInbox` into the Gateway and the Counter recipient,
   alone and in batches; then, as on mainnet where only epoch boundaries are finalized, messages
   8 and 31 blocks below the one stored block (proven through a walk of anvil's real headers),
   alone and in a batch of 10 spread over 31 blocks whose shared headers are sent once.
   Target: a lone message at most 150k gas.
3. **The real mainnet vectors** (`../shared/vectors/ethereum-mainnet-lc/`, optional): the
   contract deployed, initialised from the real bootstrap and walked through the six real
   updates and the finality update, with the gas of each transaction.

Figures are receipts' `gasUsed`; targets are reported, not enforced.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

BENCH_CHAIN_ID = 31_377
MESSAGE_GAS_TARGET = 150_000
DEFAULT_BATCHES = (10, 50)


def add_onchain_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `relay bench lightclient --onchain` (the others belong to the off-chain bench)."""
    parser.add_argument(
        "--onchain",
        action="store_true",
        help="measure the gas of the on-chain light client and of receipt-proof deliveries on anvil",
    )
    parser.add_argument(
        "--batches",
        default=",".join(str(b) for b in DEFAULT_BATCHES),
        help="with --onchain: receipt-proof batch sizes (comma-separated)",
    )
    parser.add_argument(
        "--no-mainnet",
        action="store_true",
        help="with --onchain: skip the walk through the real mainnet vectors",
    )
    parser.add_argument("--json", type=Path, default=None, help="with --onchain: also write the rows to FILE")


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def parse_batches(text: str) -> tuple[int, ...]:
    """Batch sizes from `10,50`: each between 2 and 200."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"--batches {text!r}: not a comma-separated list of integers"
        ) from error
    if not sizes or any(not 2 <= size <= 200 for size in sizes):
        raise argparse.ArgumentTypeError(f"--batches {text!r}: each batch size must be between 2 and 200")
    return sizes


def measure_updates(progress: Callable[[str], None]) -> tuple[str, list[Any]]:
    """Update gas at mainnet size, traced; the chain's description and the rows."""
    from web3 import Web3

    from adapters.ethereum.lightclient_gas import measure_update_gas
    from adapters.evm.anvil import AnvilProcess
    from relay.tools.bench.gas import anvil_description

    progress("updates: building a 512-member chain with known keys and signing its updates")
    with AnvilProcess(chain_id=BENCH_CHAIN_ID, steps_tracing=True) as anvil:
        chain = anvil_description(anvil.anvil_path, anvil.rpc_url)
        progress(f"updates: {chain}")
        rows = measure_update_gas(Web3(Web3.HTTPProvider(anvil.rpc_url)), trace=True)
    return chain, rows


def measure_messages(batches: Sequence[int], progress: Callable[[str], None]) -> Any:
    """Receipt-proof delivery gas on a fresh anvil."""
    from adapters.ethereum.inbox_gas import measure_delivery_gas
    from adapters.evm.anvil import DEV_PRIVATE_KEYS, AnvilProcess

    progress("messages: dispatching on anvil and delivering by receipt proof")
    with AnvilProcess(chain_id=BENCH_CHAIN_ID) as anvil:
        return measure_delivery_gas(anvil.rpc_url, DEV_PRIVATE_KEYS[0], tuple(batches))


def measure_mainnet_walk(vectors: Path, progress: Callable[[str], None]) -> list[tuple[str, int, int]]:
    """(step, participants, gas) for initialise, each real update and the finality update."""
    from hexbytes import HexBytes
    from web3 import Web3

    from adapters.ethereum import onchain_client
    from adapters.evm.anvil import DEV_PRIVATE_KEYS, AnvilProcess
    from adapters.evm.deploy import TransactionSender
    from relay.verify.ethereum.codec import parse_bootstrap, parse_finality_update, parse_updates
    from relay.verify.ethereum.config import MAINNET

    def load(name: str) -> Any:
        return json.loads((vectors / name).read_text())

    bootstrap = parse_bootstrap(load("bootstrap.json"), MAINNET.preset)
    updates = parse_updates(load("updates.json"), MAINNET.preset)
    finality = parse_finality_update(load("finality.json"), MAINNET.preset)
    progress(f"mainnet: walking {len(updates)} real updates and the finality update")
    steps: list[tuple[str, int, int]] = []
    with AnvilProcess(chain_id=BENCH_CHAIN_ID) as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        sender = TransactionSender(anvil.rpc_url, DEV_PRIVATE_KEYS[0])
        address = onchain_client.deploy_light_client(w3, sender, bootstrap, MAINNET)
        # anvil mines one transaction a block: the latest one is `initialize`.
        (initialize_hash,) = w3.eth.get_block("latest")["transactions"]
        initialize = w3.eth.get_transaction_receipt(HexBytes(initialize_hash))  # type: ignore[arg-type]
        steps.append(("initialize (bootstrap, committee stored)", 512, int(initialize["gasUsed"])))
        for number, update in enumerate(updates, start=1):
            receipt = onchain_client.submit_update(w3, sender, address, update, MAINNET)
            period = MAINNET.compute_sync_committee_period_at_slot(update.attested_header.beacon.slot)
            participants = update.sync_aggregate.participant_count()
            steps.append(
                (
                    f"update {number} (period {period}, next committee stored)",
                    participants,
                    int(receipt["gasUsed"]),
                )
            )
        receipt = onchain_client.submit_update(w3, sender, address, finality, MAINNET)
        participants = finality.sync_aggregate.participant_count()
        steps.append(("finality update (inside the period)", participants, int(receipt["gasUsed"])))
    return steps


def format_update_table(rows: Sequence[Any]) -> str:
    """Update rows with the target column and the traced breakdown of each."""
    from adapters.ethereum.lightclient_gas import UPDATE_GAS_TARGET

    lines = [
        "| update | participation | gas | calldata bytes | where the gas goes (largest first) |",
        "|---|---|---:|---:|---|",
    ]
    for row in rows:
        parts = sorted(row.breakdown.items(), key=lambda item: -item[1])
        where = ", ".join(f"{name} {gas // 1000:,}k" for name, gas in parts[:6])
        lines.append(
            f"| {row.kind} | {row.participants}/{row.committee_size} | {row.gas:,} | {row.calldata_bytes:,} | {where} |"
        )
    # The target's row: inside a period, below full participation (80% of 512 rounds to 410).
    inside = [r for r in rows if r.kind == "no period change" and r.participants < r.committee_size]
    if inside:
        verdict = "met" if all(r.gas <= UPDATE_GAS_TARGET for r in inside) else "MISSED"
        lines.append("")
        lines.append(
            f"target: an update inside a period at 80% participation <= {UPDATE_GAS_TARGET:,} gas: {verdict}"
            f" ({', '.join(f'{r.gas:,}' for r in inside)})"
        )
    return "\n".join(lines)


def format_message_table(result: Any) -> str:
    """Receipt-proof delivery gas: lone and per message in each batch."""
    lines = ["| delivery | messages | gas per message |", "|---|---:|---:|"]
    lines.append(f"| `deliverFromEthereum` (lone) | 1 | {result.lone:,} |")
    for size, gas in sorted(result.per_message.items()):
        lines.append(f"| `deliverFromEthereumBatch` | {size} | {gas:,} |")
    lines.append(f"| first delivery to a fresh Gateway and recipient | 1 | {result.first_delivery:,} |")
    for depth, gas in sorted(result.walk_lone.items()):
        lines.append(
            f"| `deliverFromEthereum`, {depth} blocks below the stored one ({depth + 1} headers) | 1 | {gas:,} |"
        )
    if result.walk_batch_shared:
        lines.append(
            f"| `deliverFromEthereumBatch`, 2-31 blocks below the stored one, shared headers sent once "
            f"| {result.walk_batch_size} | {result.walk_batch_shared:,} |"
        )
        lines.append(
            f"| the same, each proof's whole walk sent | {result.walk_batch_size} | {result.walk_batch_unshared:,} |"
        )
    verdict = "met" if result.lone <= MESSAGE_GAS_TARGET else "MISSED"
    lines.append("")
    lines.append(
        f"block of {result.receipts_in_block} receipts; lone proof {result.lone_proof_nodes} nodes, "
        f"{result.lone_proof_bytes:,} bytes; recipient (Counter.handle) included"
    )
    if result.walk_lone:
        lines.append(
            "walks: only one block stored (as on mainnet, where only epoch boundaries are finalized); "
            f"anvil's real RLP headers, {result.walk_header_bytes:,} bytes each (about 600 on mainnet)"
        )
    lines.append(f"target: a lone message <= {MESSAGE_GAS_TARGET:,} gas, its block stored: {verdict}")
    if result.walk_lone:
        # Most mainnet messages are in a block below an epoch boundary: say how the target fares there.
        walks = ", ".join(
            f"{depth} below: {'met' if gas <= MESSAGE_GAS_TARGET else 'MISSED'} ({gas:,})"
            for depth, gas in sorted(result.walk_lone.items())
        )
        lines.append(f"target, a lone message below the stored block (header walk): {walks}")
    if result.walk_batch_shared:
        shared = "met" if result.walk_batch_shared <= MESSAGE_GAS_TARGET else "MISSED"
        lines.append(
            f"target, per message in a batch of {result.walk_batch_size} below the stored block: "
            f"{shared} ({result.walk_batch_shared:,})"
        )
    return "\n".join(lines)


def run_onchain(args: argparse.Namespace, vectors: Path) -> int:
    """Entry point of `relay bench lightclient --onchain`."""
    try:
        batches = parse_batches(args.batches)
    except argparse.ArgumentTypeError as error:
        print(f"relay bench lightclient: {error}", file=sys.stderr)
        return 2
    if args.json is not None and (args.json.is_dir() or not args.json.parent.is_dir()):
        print(
            f"relay bench lightclient: --json {args.json}: not a file in an existing directory",
            file=sys.stderr,
        )
        return 2
    chain, update_rows = measure_updates(_progress)
    messages = measure_messages(batches, _progress)
    walk: list[tuple[str, int, int]] = []
    if not args.no_mainnet:
        if (vectors / "bootstrap.json").exists():
            walk = measure_mainnet_walk(vectors, _progress)
        else:
            _progress(f"mainnet: vectors not found at {vectors}: walk skipped (use --vectors)")
    print(f"on-chain Ethereum light client, gas on {chain}")
    print()
    print("Light-client updates: mainnet preset (512 members), Electra layout, known keys (simulated chain)")
    print(format_update_table(update_rows))
    print()
    print("Messages delivered by receipt proof (EthereumInbox -> Gateway.deliverVerified -> Counter)")
    print(format_message_table(messages))
    if walk:
        print()
        print("Real mainnet vectors (Capella, Aug 2023), walked on-chain")
        print("| step | participants | gas |")
        print("|---|---:|---:|")
        for step, participants, gas in walk:
            print(f"| {step} | {participants}/512 | {gas:,} |")
    if args.json is not None:
        payload = {
            "chain": chain,
            "updates": [asdict(row) for row in update_rows],
            "messages": asdict(messages),
            "mainnet_walk": [{"step": s, "participants": p, "gas": g} for s, p, g in walk],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"rows written to {args.json}")
    return 0
