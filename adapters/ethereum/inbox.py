"""Deploying the EthereumInbox and sending receipt-proof deliveries to it.

The inbox is the destination Gateway's verifier for an Ethereum origin (no committee): deploy it
with the destination Gateway, the light client (anything with the `executionHeader` view of
`IExecutionHeaders`: the on-chain EthereumLightClient, or the test-only
StoredExecutionHeaders), the origin's domain and its source Gateway; then the Gateway's owner
enrols it with `enrollOriginVerifier` (`enroll_inbox`). Proofs come from
`adapters.ethereum.receipt_proofs`.

Uses the devnet's `TransactionSender` (throw-away keys, local nonces); the submitter has its own
careful sender for production.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import to_checksum_address

from adapters.ethereum.receipt_proofs import (
    DeliveryArgs,
    ReceiptProof,
    encode_receipt_proof,
    share_nodes,
)
from adapters.evm.build import load_artifact
from adapters.evm.deploy import (
    TransactionSender,
    compute_create_address,
    contract,
    send_verifier_enrollment,
)

DEPLOY_INBOX_GAS = 3_000_000
DEPLOY_HEADERS_GAS = 1_000_000
STORE_HEADER_GAS = 100_000
# Gas of a receipt-proof delivery beyond the recipient's limit: proof checks and the Gateway's
# bookkeeping (about 60-90k measured, `measure_delivery_gas`), with a margin.
DELIVERY_OVERHEAD_GAS = 200_000
BATCH_OVERHEAD_GAS_PER_MESSAGE = 120_000
# Per header of a walk sent (calldata of a mainnet header, about 600 bytes, and its keccak).
HEADER_GAS = 15_000


def start_inbox_deployment(
    sender: TransactionSender, gateway: str, light_client: str, origin: int, source_gateway: str
) -> tuple[str, bytes]:
    """Send the EthereumInbox deployment (not awaited); return its future address and the hash."""
    artifact = load_artifact("EthereumInbox")
    address = compute_create_address(sender.address, sender.nonce)
    arguments = abi_encode(
        ["address", "address", "uint32", "address"],
        [
            to_checksum_address(gateway),
            to_checksum_address(light_client),
            origin,
            to_checksum_address(source_gateway),
        ],
    )
    transaction_hash = sender.send({"data": artifact["bytecode"] + arguments.hex(), "gas": DEPLOY_INBOX_GAS})
    return address, transaction_hash


def deploy_inbox(
    sender: TransactionSender,
    gateway: str,
    light_client: str,
    origin: int,
    source_gateway: str,
    *,
    enroll: bool = True,
) -> str:
    """Deploy an EthereumInbox for `origin` on `gateway` and (with `enroll`, `sender` being the
    Gateway's owner) enrol it as the origin's verifier; wait until mined; return its address."""
    address, deployed = start_inbox_deployment(sender, gateway, light_client, origin, source_gateway)
    hashes = [deployed]
    if enroll:
        hashes.append(send_verifier_enrollment(sender, gateway, origin, source_gateway, address))
    sender.wait(hashes)
    return address


def deploy_stored_headers(sender: TransactionSender) -> str:
    """Deploy the test-only StoredExecutionHeaders (a light client `sender` fills by hand)."""
    artifact = load_artifact("StoredExecutionHeaders")
    address = compute_create_address(sender.address, sender.nonce)
    sender.wait([sender.send({"data": artifact["bytecode"], "gas": DEPLOY_HEADERS_GAS})])
    return address


def store_header(
    sender: TransactionSender, headers: str, block_number: int, block_hash: bytes, receipts_root: bytes
) -> None:
    """Store an execution header in a StoredExecutionHeaders (its deployer only); wait."""
    call = contract(sender.web3, "StoredExecutionHeaders", headers).functions.storeHeader(
        block_number, block_hash, receipts_root
    )
    sender.wait([sender.send_call(call, STORE_HEADER_GAS)])


def send_delivery(
    sender: TransactionSender, inbox: str, proof: ReceiptProof, log_index: int, gas_limit: int
) -> bytes:
    """Send `deliverFromEthereum(proof, logIndex, gasLimit)` (not awaited)."""
    call = contract(sender.web3, "EthereumInbox", inbox).functions.deliverFromEthereum(
        encode_receipt_proof(proof), log_index, gas_limit
    )
    walk = HEADER_GAS * len(proof.headers)
    return sender.send_call(call, DELIVERY_OVERHEAD_GAS + walk + gas_limit + gas_limit // 63)


def send_batch_delivery(
    sender: TransactionSender,
    inbox: str,
    proofs: Sequence[ReceiptProof],
    deliveries: Sequence[DeliveryArgs],
    *,
    share_headers: bool = True,
) -> bytes:
    """Send `deliverFromEthereumBatch(proofs, deliveries)` (not awaited); the proofs go with
    their shared nodes and (unless `share_headers` is false: a measurement's comparison) shared
    headers sent once (`share_nodes`)."""
    shared = share_nodes(proofs, headers=share_headers)
    call = contract(sender.web3, "EthereumInbox", inbox).functions.deliverFromEthereumBatch(
        [encode_receipt_proof(proof) for proof in shared], list(deliveries)
    )
    # Every recipient may use its whole limit; a block's gas limit caps what one transaction gets.
    recipients = sum(gas + gas // 63 for _, _, gas in deliveries)
    recipients += HEADER_GAS * sum(1 for proof in shared for header in proof.headers if header)
    latest = sender.endpoint.block("latest")
    cap = int(latest["gasLimit"]) if latest is not None else 30_000_000
    return sender.send_call(call, min(BATCH_OVERHEAD_GAS_PER_MESSAGE * len(deliveries) + recipients, cap))


def inbox_contract(sender: TransactionSender, inbox: str) -> Any:
    """The web3 contract object of the inbox at `inbox` (for calls and simulations)."""
    return contract(sender.web3, "EthereumInbox", inbox)
