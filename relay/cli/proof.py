"""`relay proof receipts|receipt|account`: check execution-layer proofs in JSON-RPC files offline.

Each command first checks the block header hashes to the block's own `hash` (the hash a light
client would have proven), then checks the proof against the header's roots:

- `receipts`: all receipts of the block rebuild its `receiptsRoot`;
- `receipt`: one receipt and its Merkle-Patricia proof (`{"receipt", "receiptProof"}`);
- `account`: an `eth_getProof` answer (account and storage slots) against its `stateRoot`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from relay.cli.lightclient import load_json
from relay.verify.ethereum.accounts import parse_account_proof, verify_get_proof
from relay.verify.ethereum.errors import EthereumProofError, MalformedObject
from relay.verify.ethereum.execution import ExecutionBlockHeader, parse_block_header, verify_block_hash
from relay.verify.ethereum.execution_encoding import parse_data
from relay.verify.ethereum.receipts import (
    parse_receipt,
    receipt_transaction_index,
    verify_receipt_inclusion,
    verify_receipts_root,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `relay proof receipts`, `relay proof receipt` and `relay proof account`."""
    proof = subparsers.add_parser("proof", help="check Ethereum execution proofs (JSON-RPC files)")
    commands = proof.add_subparsers(dest="proof_command", metavar="COMMAND", required=True)

    receipts = commands.add_parser("receipts", help="rebuild a block's receipts root from all its receipts")
    receipts.add_argument("--block", required=True, type=Path, help="eth_getBlockBy* JSON")
    receipts.add_argument("--receipts", required=True, type=Path, help="eth_getBlockReceipts JSON (a list)")
    receipts.set_defaults(handler=run_receipts)

    receipt = commands.add_parser("receipt", help="check one receipt and its inclusion proof")
    receipt.add_argument("--block", required=True, type=Path, help="eth_getBlockBy* JSON")
    receipt.add_argument(
        "--receipt", required=True, type=Path, help='{"receipt": ..., "receiptProof": [...]} JSON'
    )
    receipt.add_argument(
        "--index", type=int, default=None, help="transaction index (default: the receipt's own)"
    )
    receipt.set_defaults(handler=run_receipt)

    account = commands.add_parser("account", help="check an eth_getProof answer (account and storage)")
    account.add_argument("--block", required=True, type=Path, help="eth_getBlockBy* JSON")
    account.add_argument("--proof", required=True, type=Path, help="eth_getProof JSON")
    account.set_defaults(handler=run_account)


def _load_block(path: Path) -> ExecutionBlockHeader:
    header = parse_block_header(_result(load_json(path)))
    block_hash = verify_block_hash(header)
    print(f"block {header.number} hash 0x{block_hash.hex()}: header hash ok")
    return header


def _result(document: Any) -> Any:
    """Accept either a bare JSON-RPC result or a whole `{"jsonrpc", "result"}` answer."""
    if isinstance(document, dict) and "jsonrpc" in document and "result" in document:
        return document["result"]
    return document


def _fail(command: str, error: EthereumProofError) -> int:
    print(f"relay: proof {command}: check '{error.check}' failed: {error}", file=sys.stderr)
    return 1


def run_receipts(args: argparse.Namespace) -> int:
    """Rebuild the receipts trie and compare its root."""
    try:
        header = _load_block(args.block)
        answer = _result(load_json(args.receipts))
        if not isinstance(answer, list):
            raise MalformedObject("receipts file is not a list")
        receipts = [parse_receipt(item) for item in answer]
        verify_receipts_root(receipts, header.receipts_root)
    except EthereumProofError as error:
        return _fail("receipts", error)
    logs = sum(len(receipt.logs) for receipt in receipts)
    print(
        f"receipts root 0x{header.receipts_root.hex()}: rebuilt from {len(receipts)} receipts ({logs} logs): ok"
    )
    return 0


def run_receipt(args: argparse.Namespace) -> int:
    """Check one receipt's inclusion proof against the block's receipts root."""
    try:
        header = _load_block(args.block)
        document = load_json(args.receipt)
        if not isinstance(document, dict) or "receipt" not in document:
            raise MalformedObject('receipt file must be {"receipt": ..., "receiptProof": [...]}')
        nodes_json = document.get("receiptProof", document.get("proof"))
        if not isinstance(nodes_json, list):
            raise MalformedObject("receipt file has no receiptProof list")
        receipt = parse_receipt(document["receipt"])
        index = args.index if args.index is not None else receipt_transaction_index(document["receipt"])
        nodes = [parse_data(node, what="receiptProof") for node in nodes_json]
        verify_receipt_inclusion(header.receipts_root, index, nodes, receipt)
    except EthereumProofError as error:
        return _fail("receipt", error)
    status = receipt.outcome if isinstance(receipt.outcome, int) else "0x" + receipt.outcome.hex()
    print(
        f"receipt {index} (type {receipt.transaction_type}, status {status}, {len(receipt.logs)} logs): "
        f"proven by {len(nodes)} nodes against receipts root 0x{header.receipts_root.hex()}: ok"
    )
    for position, log in enumerate(receipt.logs):
        topic = "0x" + log.topics[0].hex() if log.topics else "(no topics)"
        print(f"  log {position}: address 0x{log.address.hex()} topic0 {topic} data {len(log.data)} bytes")
    return 0


def run_account(args: argparse.Namespace) -> int:
    """Check an `eth_getProof` answer against the block's state root."""
    try:
        header = _load_block(args.block)
        proof = parse_account_proof(_result(load_json(args.proof)))
        verify_get_proof(header.state_root, proof)
    except EthereumProofError as error:
        return _fail("account", error)
    account = proof.account
    print(
        f"account 0x{proof.address.hex()}: proven by {len(proof.account_proof)} nodes against state root "
        f"0x{header.state_root.hex()}: ok"
    )
    print(f"  nonce {account.nonce}, balance {account.balance} wei")
    print(f"  storage root 0x{account.storage_root.hex()}, code hash 0x{account.code_hash.hex()}")
    for slot in proof.storage:
        print(f"  storage 0x{slot.key.hex()} = 0x{slot.value:064x}: proven by {len(slot.proof)} nodes: ok")
    return 0
