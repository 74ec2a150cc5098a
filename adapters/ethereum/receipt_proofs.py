"""Receipt proofs for the on-chain EthereumInbox: built from JSON-RPC receipts, encoded for it.

A message from an Ethereum origin is delivered without a committee when the destination's
EthereumInbox (adapters/evm/contracts/EthereumInbox.sol) verifies a Merkle-Patricia proof of the
receipt holding its `Dispatch` log against a receipts root the on-chain light client stored
(docs/ethereum-mode.md). This module builds that proof from a block's receipts as
`eth_getBlockReceipts` returns them, with the receipts trie of relay.verify.ethereum.receipts,
optionally with the RLP headers that walk back from a stored block to the receipt's block, and
turns it into the inbox's `ReceiptProof` / `Delivery` call arguments. `adapters.ethereum.inbox`
deploys the inbox and sends deliveries.

Everything here is pure: it checks what it builds (the receipts rebuild the expected root, each
header chains to the next), so a lying RPC endpoint yields a typed error, not a proof the
contract refuses after the relayer paid for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import rlp

from relay.chains.lightclient import ReceiptProof, share_trie_nodes
from relay.errors import InvalidProof
from relay.verify.ethereum.errors import InvalidReceiptsRoot, MalformedObject
from relay.verify.ethereum.execution import (
    ExecutionBlockHeader,
    compute_block_hash,
    parse_block_header,
    verify_header_chain,
)
from relay.verify.ethereum.execution_encoding import parse_data, parse_quantity
from relay.verify.ethereum.receipts import (
    Receipt,
    build_receipts_trie,
    compute_receipt_proof,
    parse_receipt,
    receipt_transaction_index,
    verify_receipt_proof,
)
from relay.verify.hashing import keccak256

DISPATCH_TOPIC = keccak256(b"Dispatch(bytes32,uint32,uint32,bytes)")

# web3 argument shapes of the inbox's structs.
ReceiptProofArgs = tuple[int, list[bytes], int, list[bytes]]
DeliveryArgs = tuple[int, int, int]


class ReceiptProofError(InvalidProof):
    """The receipts or headers an RPC returned cannot prove the requested receipt or log."""


@dataclass(frozen=True)
class DispatchLog:
    """A Dispatch log of the source Gateway: its position in its receipt and the message id."""

    transaction_index: int
    log_index: int
    message_id: bytes


def parse_block_receipts(receipts: Sequence[object]) -> tuple[Receipt, ...]:
    """A block's receipts, in transaction order, from `eth_getBlockReceipts`' answer; every index
    from 0 must appear exactly once (the trie commits to all of them)."""
    by_index: dict[int, Receipt] = {}
    for obj in receipts:
        index = receipt_transaction_index(obj)
        if index in by_index:
            raise MalformedObject("two receipts with one transaction index", transaction_index=index)
        by_index[index] = parse_receipt(obj)
    if sorted(by_index) != list(range(len(by_index))):
        raise MalformedObject(
            "receipts do not cover transaction indices 0..n-1", indices=sorted(by_index)[:8]
        )
    return tuple(by_index[index] for index in range(len(by_index)))


class ReceiptsTrie:
    """A block's receipts trie, checked against the receipts root it must have; proves any of
    its receipts (build it once per block, then one `proof` per receipt)."""

    def __init__(self, receipts: Sequence[Receipt], receipts_root: bytes | None = None) -> None:
        self.receipts = tuple(receipts)
        self._trie = build_receipts_trie(self.receipts)
        self.root = bytes(self._trie.root_hash)
        if receipts_root is not None and self.root != receipts_root:
            raise InvalidReceiptsRoot(
                "receipts do not rebuild the block's receipts root",
                computed=self.root,
                expected=receipts_root,
                receipts=len(self.receipts),
            )

    def proof_nodes(self, transaction_index: int) -> tuple[bytes, ...]:
        """The RLP trie nodes from the root to receipt `transaction_index`, root first."""
        if not 0 <= transaction_index < len(self.receipts):
            raise ReceiptProofError(
                "no receipt at this transaction index",
                transaction_index=transaction_index,
                receipts=len(self.receipts),
            )
        nodes = compute_receipt_proof(self._trie, transaction_index)
        # The contract refuses what the Python verifier refuses: check before anyone pays gas.
        verify_receipt_proof(self.root, transaction_index, nodes)
        return nodes

    def proof(self, transaction_index: int, block_number: int, headers: Sequence[bytes] = ()) -> ReceiptProof:
        """The inbox proof of receipt `transaction_index` (see `ReceiptProof` for `headers`)."""
        return ReceiptProof(
            block_number, tuple(headers), transaction_index, self.proof_nodes(transaction_index)
        )


def build_receipt_proof(
    receipts: Sequence[object],
    transaction_index: int,
    block_number: int,
    *,
    receipts_root: bytes | None = None,
    headers: Sequence[bytes] = (),
) -> ReceiptProof:
    """The inbox proof of receipt `transaction_index` among a block's JSON-RPC `receipts`.

    `block_number` is the block the light client stored; `headers` (RLP, see `ReceiptProof`)
    walk back from it when the receipt is in an earlier block. With `receipts_root`, the
    receipts must rebuild it (else `InvalidReceiptsRoot`).
    """
    trie = ReceiptsTrie(parse_block_receipts(receipts), receipts_root)
    return trie.proof(transaction_index, block_number, headers)


def encode_block_header(block: object) -> bytes:
    """The RLP encoding of a JSON-RPC block's header (what its hash is the keccak256 of)."""
    return rlp.encode([value for _, value in parse_block_header(block).fields])


def header_walk(blocks: Sequence[object]) -> tuple[bytes, ...]:
    """RLP headers for `ReceiptProof.headers` from JSON-RPC blocks, newest (the stored block)
    first; each must be the parent of the one before, by hash and number."""
    headers: list[ExecutionBlockHeader] = [parse_block_header(block) for block in blocks]
    if headers:
        verify_header_chain(compute_block_hash(headers[0]), headers)
    return tuple(rlp.encode([value for _, value in header.fields]) for header in headers)


def dispatch_logs(receipt: Mapping[str, object], source_gateway: str) -> tuple[DispatchLog, ...]:
    """The Dispatch logs `source_gateway` emitted in a JSON-RPC receipt, with their index *in the
    receipt* (the inbox's `logIndex`; JSON-RPC's `logIndex` counts across the block)."""
    logs = receipt.get("logs")
    if not isinstance(logs, list):
        raise MalformedObject("receipt logs is not a list")
    emitter = parse_data(source_gateway, 20, what="source gateway")
    index = receipt_transaction_index(receipt)
    found = []
    for position, log in enumerate(logs):
        if not isinstance(log, Mapping):
            raise MalformedObject("receipt log is not an object")
        topics = log.get("topics")
        if not isinstance(topics, list) or len(topics) != 3:
            continue
        if parse_data(log.get("address"), 20, what="address") != emitter:
            continue
        if parse_data(topics[0], 32, what="topic") != DISPATCH_TOPIC:
            continue
        found.append(DispatchLog(index, position, parse_data(topics[1], 32, what="topic")))
    return tuple(found)


def block_number_of(receipts: Sequence[Mapping[str, object]]) -> int:
    """The block number the receipts of one block share."""
    numbers = {parse_quantity(receipt.get("blockNumber"), what="blockNumber") for receipt in receipts}
    if len(numbers) != 1:
        raise MalformedObject("receipts are not from one block", blocks=sorted(numbers)[:4])
    return numbers.pop()


def encode_receipt_proof(proof: ReceiptProof) -> ReceiptProofArgs:
    """The web3 argument for the inbox's `ReceiptProof` struct (for a batch, after `share_nodes`)."""
    return (proof.block_number, list(proof.headers), proof.transaction_index, list(proof.nodes))


def share_nodes(proofs: Sequence[ReceiptProof], *, headers: bool = True) -> tuple[ReceiptProof, ...]:
    """The proofs of a batch with the trie nodes and headers they share with the proof before sent
    empty, as the inbox reads them (`relay.chains.lightclient.share_trie_nodes`): proofs of one
    block send their upper trie nodes once, proofs walking back from one stored block the walk's
    headers. `headers=False` shares the nodes only. Share after choosing the batch's proofs."""
    return tuple(share_trie_nodes(proofs, headers=headers))


def encode_delivery(proof_index: int, log_index: int, gas_limit: int) -> DeliveryArgs:
    """The web3 argument for the inbox's `Delivery` struct: log `log_index` of the receipt of
    `proofs[proof_index]`, delivered with exactly `gas_limit` gas for its recipient."""
    return (proof_index, log_index, gas_limit)
