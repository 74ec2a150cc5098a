"""Gas of delivering messages by receipt proof through the EthereumInbox, measured on anvil.

`measure_delivery_gas(rpc_url, private_key)` deploys on one (throw-away) anvil a source Gateway
and a destination Gateway with different domains, the example Counter on each, the test-only
StoredExecutionHeaders in place of the light client, and an EthereumInbox enrolled for the
origin. It dispatches every message it needs in one block (automine off, then one `evm_mine`),
stores that block's hash and receipts root, builds the proofs from the node's own receipts
(`eth_getBlockReceipts`) and delivers: a warm-up message, one lone message, then batches.

The light client is left out on purpose (its update gas is measured on its own): a delivery
reads one stored header either way. What is measured is the transaction's `gasUsed`, recipient
(`Counter.handle`) included, as `relay bench lightclient --onchain` reports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from adapters.ethereum.inbox import (
    deploy_inbox,
    deploy_stored_headers,
    send_batch_delivery,
    send_delivery,
    store_header,
)
from adapters.ethereum.receipt_proofs import (
    DispatchLog,
    ReceiptProof,
    ReceiptsTrie,
    dispatch_logs,
    encode_delivery,
    parse_block_receipts,
)
from adapters.evm.deploy import (
    TransactionFailed,
    TransactionSender,
    rpc_request,
    send_counter_messages,
    start_deployment,
)
from relay.chains import DEFAULT_HANDLE_GAS_LIMIT

DEFAULT_BATCH_SIZES = (10, 50)
ORIGIN_DOMAIN = 1
DESTINATION_DOMAIN = 2


@dataclass(frozen=True)
class InboxGas:
    """Measured gas: `lone` for one `deliverFromEthereum` (a steady-state message: neither the
    first delivery to the Gateway nor to the recipient), `per_message` for
    `deliverFromEthereumBatch` by batch size, with the shape of the proofs behind them."""

    lone: int
    first_delivery: int
    per_message: dict[int, int] = field(default_factory=dict)
    receipts_in_block: int = 0
    lone_proof_nodes: int = 0
    lone_proof_bytes: int = 0


def measure_delivery_gas(
    rpc_url: str,
    private_key: str,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    *,
    body: bytes = b"hello from ethereum",
    gas_limit: int = DEFAULT_HANDLE_GAS_LIMIT,
) -> InboxGas:
    """Deploy, dispatch and deliver on the anvil at `rpc_url` (funded `private_key`); return the
    gas figures. Turns automine off for one block and back on."""
    sender = TransactionSender(rpc_url, private_key)
    source, source_hashes = start_deployment(sender, ORIGIN_DOMAIN)
    destination, destination_hashes = start_deployment(sender, DESTINATION_DOMAIN)
    sender.wait(source_hashes + destination_hashes)
    headers = deploy_stored_headers(sender)
    inbox = deploy_inbox(sender, destination.gateway, headers, ORIGIN_DOMAIN, source.gateway)

    count = 2 + sum(batch_sizes)
    block_number, receipts = _dispatch_in_one_block(
        sender, source.counter, destination.counter, [body] * count
    )
    block = rpc_request(rpc_url, "eth_getBlockByNumber", [hex(block_number), False])
    receipts_root = bytes.fromhex(str(block["receiptsRoot"])[2:])
    store_header(sender, headers, block_number, bytes.fromhex(str(block["hash"])[2:]), receipts_root)
    trie = ReceiptsTrie(parse_block_receipts(receipts), receipts_root)
    logs = [log for receipt in receipts for log in dispatch_logs(receipt, source.gateway)]
    if len(logs) != count:
        raise TransactionFailed(
            "dispatched messages are missing from the block", expected=count, found=len(logs)
        )

    def proof(log: DispatchLog) -> ReceiptProof:
        return trie.proof(log.transaction_index, block_number)

    first = _gas_used(sender, send_delivery(sender, inbox, proof(logs[0]), logs[0].log_index, gas_limit))
    lone_proof = proof(logs[1])
    lone = _gas_used(sender, send_delivery(sender, inbox, lone_proof, logs[1].log_index, gas_limit))
    result = InboxGas(
        lone=lone,
        first_delivery=first,
        receipts_in_block=len(receipts),
        lone_proof_nodes=len(lone_proof.nodes),
        lone_proof_bytes=sum(len(node) for node in lone_proof.nodes),
    )
    start = 2
    for size in batch_sizes:
        batch = logs[start : start + size]
        start += size
        proofs = [proof(log) for log in batch]
        deliveries = [encode_delivery(i, log.log_index, gas_limit) for i, log in enumerate(batch)]
        used = _gas_used(sender, send_batch_delivery(sender, inbox, proofs, deliveries))
        result.per_message[size] = used // size
    return result


def _dispatch_in_one_block(
    sender: TransactionSender, source_counter: str, recipient: str, bodies: Sequence[bytes]
) -> tuple[int, list[dict[str, object]]]:
    """Send one Counter.send per body, mine them in one block; return it and its receipts."""
    url = sender.endpoint.url
    rpc_request(url, "evm_setAutomine", [False])
    try:
        hashes = send_counter_messages(sender, source_counter, DESTINATION_DOMAIN, recipient, bodies)
        rpc_request(url, "evm_mine", [])
    finally:
        rpc_request(url, "evm_setAutomine", [True])
    mined = sender.wait(hashes)
    numbers = {int(receipt["blockNumber"]) for receipt in mined}
    if len(numbers) != 1:
        raise TransactionFailed("the dispatches did not fit in one block", blocks=sorted(numbers))
    block_number = numbers.pop()
    receipts = rpc_request(url, "eth_getBlockReceipts", [hex(block_number)])
    return block_number, list(receipts)


def _gas_used(sender: TransactionSender, transaction_hash: bytes) -> int:
    (receipt,) = sender.wait([transaction_hash])
    return int(receipt["gasUsed"])
