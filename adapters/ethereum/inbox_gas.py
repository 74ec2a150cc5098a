"""Gas of delivering messages by receipt proof through the EthereumInbox, measured on anvil.

`measure_delivery_gas(rpc_url, private_key)` deploys on one (throw-away) anvil a source Gateway
and a destination Gateway with different domains, the example Counter on each, the test-only
StoredExecutionHeaders in place of the light client, and an EthereumInbox enrolled for the
origin. It dispatches every message it needs in one block (automine off, then one `evm_mine`),
stores that block's hash and receipts root, builds the proofs from the node's own receipts
(`eth_getBlockReceipts`) and delivers: a warm-up message, one lone message, then batches.

Then the case of mainnet, where the light client stores only epoch-boundary blocks: 32 blocks are
mined, only the newest (S) is stored, and messages in blocks below it are proven through the walk
of anvil's real RLP headers from S back to their block (`ReceiptProof.headers`, k + 1 headers for
a block k below S). Measured: a lone message k = 8 and k = 31 blocks below S, and a batch of 10
messages spread over those 31 blocks (in block order, as the relayer sends them), with the
headers the proofs share sent once (`share_nodes`) and, for comparison, each proof's walk sent
whole.

The light client is left out on purpose (its update gas is measured on its own): a delivery
reads one stored header either way. What is measured is the transaction's `gasUsed`, recipient
(`Counter.handle`) included, as `relay bench lightclient --onchain` reports it.
"""

from __future__ import annotations

import dataclasses
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
    header_walk,
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
WALK_DEPTHS = (8, 31)  # lone messages this many blocks below the stored one
# Where the batch's 10 messages lie, in blocks below the stored one (k = 31 is the epoch's first).
WALK_BATCH_DEPTHS = (31, 28, 25, 22, 19, 15, 12, 8, 5, 2)
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
    walk_lone: dict[int, int] = field(default_factory=dict)  # k blocks below the stored one -> gas
    walk_batch_shared: int = 0  # per message, batch of WALK_BATCH_DEPTHS, shared headers sent once
    walk_batch_unshared: int = 0  # the same batch with each proof's whole walk
    walk_header_bytes: int = 0  # the mean RLP size of the walk's headers
    walk_batch_size: int = len(WALK_BATCH_DEPTHS)


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
    return _measure_walks(
        sender, source.gateway, source.counter, destination.counter, headers, inbox, body, gas_limit, result
    )


def _measure_walks(
    sender: TransactionSender,
    source_gateway: str,
    source_counter: str,
    recipient: str,
    headers: str,
    inbox: str,
    body: bytes,
    gas_limit: int,
    result: InboxGas,
) -> InboxGas:
    """Messages below the one stored block, proven through header walks (see the module doc)."""
    depth = max(*WALK_DEPTHS, *WALK_BATCH_DEPTHS)
    wanted = {k: WALK_DEPTHS.count(k) + 2 * WALK_BATCH_DEPTHS.count(k) for k in range(depth + 1)}
    mined: dict[int, tuple[int, list[dict[str, object]]]] = {}
    for k in range(depth, -1, -1):
        if wanted[k]:
            mined[k] = _dispatch_in_one_block(sender, source_counter, recipient, [body] * wanted[k])
        else:
            rpc_request(sender.endpoint.url, "evm_mine", [])
            number = int(str(rpc_request(sender.endpoint.url, "eth_blockNumber", [])), 16)
            mined[k] = (number, [])
    stored = mined[0][0]
    if any(number != stored - k for k, (number, _) in mined.items()):
        raise TransactionFailed(
            "the walk's blocks are not consecutive", blocks=sorted(n for n, _ in mined.values())
        )
    blocks = [
        rpc_request(sender.endpoint.url, "eth_getBlockByNumber", [hex(stored - k), False])
        for k in range(depth + 1)
    ]
    walk = header_walk(blocks)
    store_header(
        sender,
        headers,
        stored,
        bytes.fromhex(str(blocks[0]["hash"])[2:]),
        bytes.fromhex(str(blocks[0]["receiptsRoot"])[2:]),
    )
    # Each block's messages, in order, as (proof, log index), consumed by the measurements below.
    queues: dict[int, list[tuple[ReceiptProof, int]]] = {}
    for k, (_, receipts) in mined.items():
        if not receipts:
            continue
        block = blocks[k]
        trie = ReceiptsTrie(parse_block_receipts(receipts), bytes.fromhex(str(block["receiptsRoot"])[2:]))
        logs = [log for receipt in receipts for log in dispatch_logs(receipt, source_gateway)]
        if len(logs) != wanted[k]:
            raise TransactionFailed(
                "dispatched messages are missing from a block", expected=wanted[k], found=len(logs)
            )
        queues[k] = [
            (trie.proof(log.transaction_index, stored, walk[: k + 1]), log.log_index) for log in logs
        ]
    lone = {}
    for k in WALK_DEPTHS:
        proof, log_index = queues[k].pop(0)
        lone[k] = _gas_used(sender, send_delivery(sender, inbox, proof, log_index, gas_limit))
    per_message = {}
    for shared in (True, False):
        batch = [queues[k].pop(0) for k in WALK_BATCH_DEPTHS]
        deliveries = [encode_delivery(i, log_index, gas_limit) for i, (_, log_index) in enumerate(batch)]
        sent = send_batch_delivery(sender, inbox, [p for p, _ in batch], deliveries, share_headers=shared)
        per_message[shared] = _gas_used(sender, sent) // len(batch)
    return dataclasses.replace(
        result,
        walk_lone=lone,
        walk_batch_shared=per_message[True],
        walk_batch_unshared=per_message[False],
        walk_header_bytes=sum(len(h) for h in walk) // len(walk),
    )


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
