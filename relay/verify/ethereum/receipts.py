"""Receipts and logs: the receipts trie of a block, receipt inclusion proofs, the logs bloom.

Receipts are trusted against the `receiptsRoot` of a proven header, either all at once, when
the Merkle-Patricia trie rebuilt from them (key `rlp(index)`, value the EIP-2718 receipt
encoding) has that root, or one at a time by an inclusion proof against it. A header's logs
bloom can rule a block out before any receipt is fetched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import rlp
from rlp.exceptions import DecodingError
from trie import HexaryTrie

from relay.verify.ethereum.errors import InvalidReceiptProof, InvalidReceiptsRoot, MalformedObject
from relay.verify.ethereum.execution_encoding import (
    TRIE_ERRORS,
    get_from_proof,
    parse_data,
    parse_quantity,
    require_fields,
)
from relay.verify.hashing import keccak256


@dataclass(frozen=True)
class Log:
    """An EVM log: emitting address, topics, data."""

    address: bytes
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True)
class Receipt:
    """A transaction receipt as the receipts trie commits to it.

    `outcome` is the status (0 or 1) after Byzantium, or the 32-byte intermediate state root
    before it.
    """

    transaction_type: int
    outcome: int | bytes
    cumulative_gas_used: int
    logs_bloom: bytes
    logs: tuple[Log, ...]

    @property
    def succeeded(self) -> bool:
        """True for a post-Byzantium receipt with status 1 (pre-Byzantium receipts have no status)."""
        return self.outcome == 1


def parse_log(obj: object) -> Log:
    """A `Log` from a JSON-RPC log object."""
    log = require_fields(obj, "log", "address", "topics", "data")
    topics = log["topics"]
    if not isinstance(topics, list) or len(topics) > 4:
        raise MalformedObject("log topics is not a list of at most four hashes", topics=topics)
    return Log(
        address=parse_data(log["address"], 20, what="address"),
        topics=tuple(parse_data(topic, 32, what="topic") for topic in topics),
        data=parse_data(log["data"], what="data"),
    )


def parse_receipt(obj: object) -> Receipt:
    """A `Receipt` from a JSON-RPC receipt (`eth_getTransactionReceipt`, `eth_getBlockReceipts`)."""
    receipt = require_fields(obj, "receipt", "cumulativeGasUsed", "logs", "logsBloom")
    transaction_type = parse_quantity(receipt["type"], what="type") if receipt.get("type") is not None else 0
    if transaction_type > 0x7F:
        raise MalformedObject("receipt type out of the EIP-2718 range", type=transaction_type)
    outcome: int | bytes
    if receipt.get("status") is not None:
        outcome = parse_quantity(receipt["status"], what="status")
        if outcome not in (0, 1):
            raise MalformedObject("receipt status is neither 0 nor 1", status=outcome)
    elif receipt.get("root") is not None:
        outcome = parse_data(receipt["root"], 32, what="root")
    else:
        raise MalformedObject("receipt has neither status nor root")
    logs = receipt["logs"]
    if not isinstance(logs, list):
        raise MalformedObject("receipt logs is not a list")
    return Receipt(
        transaction_type=transaction_type,
        outcome=outcome,
        cumulative_gas_used=parse_quantity(receipt["cumulativeGasUsed"], what="cumulativeGasUsed"),
        logs_bloom=parse_data(receipt["logsBloom"], 256, what="logsBloom"),
        logs=tuple(parse_log(log) for log in logs),
    )


def receipt_transaction_index(obj: object) -> int:
    """The `transactionIndex` of a JSON-RPC receipt: its key in the receipts trie."""
    return parse_quantity(
        require_fields(obj, "receipt", "transactionIndex")["transactionIndex"], what="transactionIndex"
    )


def encode_receipt(receipt: Receipt) -> bytes:
    """The receipt's consensus encoding: RLP, behind its type byte for typed (EIP-2718) receipts."""
    payload = rlp.encode(
        [
            receipt.outcome,
            receipt.cumulative_gas_used,
            receipt.logs_bloom,
            [[log.address, list(log.topics), log.data] for log in receipt.logs],
        ]
    )
    if receipt.transaction_type == 0:
        return payload
    return bytes([receipt.transaction_type]) + payload


def decode_receipt(encoded: bytes) -> Receipt:
    """A `Receipt` from its consensus encoding; raises `MalformedObject` on anything else."""
    if not encoded:
        raise MalformedObject("empty receipt encoding")
    transaction_type = 0
    payload = encoded
    if encoded[0] < 0x80:
        transaction_type, payload = encoded[0], encoded[1:]
    try:
        items = rlp.decode(payload)
        outcome_raw, gas_raw, bloom, raw_logs = items
        logs = tuple(
            Log(
                address=_exact(address, 20),
                topics=tuple(_exact(topic, 32) for topic in topics),
                data=bytes(data),
            )
            for address, topics, data in raw_logs
        )
    except (DecodingError, ValueError, TypeError) as error:
        raise MalformedObject("receipt encoding does not decode", reason=str(error)) from error
    if (
        not isinstance(outcome_raw, bytes)
        or not isinstance(gas_raw, bytes)
        or not isinstance(bloom, bytes)
        or len(bloom) != 256
    ):
        raise MalformedObject("receipt fields have the wrong shape")
    outcome: int | bytes = outcome_raw if len(outcome_raw) == 32 else int.from_bytes(outcome_raw, "big")
    return Receipt(
        transaction_type=transaction_type,
        outcome=outcome,
        cumulative_gas_used=int.from_bytes(gas_raw, "big"),
        logs_bloom=bloom,
        logs=logs,
    )


def _exact(value: object, length: int) -> bytes:
    if not isinstance(value, bytes) or len(value) != length:
        raise ValueError(f"expected {length} bytes")
    return value


def build_receipts_trie(receipts: Sequence[Receipt]) -> HexaryTrie:
    """The receipts trie of a block whose receipts are `receipts`, in transaction order."""
    trie = HexaryTrie({})
    for index, receipt in enumerate(receipts):
        trie.set(rlp.encode(index), encode_receipt(receipt))
    return trie


def compute_receipts_root(receipts: Sequence[Receipt]) -> bytes:
    """The receipts root of a block whose receipts are `receipts`, in transaction order."""
    return bytes(build_receipts_trie(receipts).root_hash)


def verify_receipts_root(receipts: Sequence[Receipt], receipts_root: bytes) -> None:
    """Check that `receipts` are exactly the block's receipts (same count, order and content)."""
    computed = compute_receipts_root(receipts)
    if computed != receipts_root:
        raise InvalidReceiptsRoot(
            "receipts do not rebuild the block's receipts root",
            computed=computed,
            expected=receipts_root,
            receipts=len(receipts),
        )


def compute_receipt_proof(trie: HexaryTrie, transaction_index: int) -> tuple[bytes, ...]:
    """The inclusion proof (RLP-encoded trie nodes, root first) of one receipt of a built trie."""
    return tuple(rlp.encode(node) for node in trie.get_proof(rlp.encode(transaction_index)))


def verify_receipt_proof(receipts_root: bytes, transaction_index: int, proof: Sequence[bytes]) -> Receipt:
    """Return the receipt at `transaction_index` proven by `proof` against `receipts_root`."""
    try:
        encoded = get_from_proof(receipts_root, rlp.encode(transaction_index), proof)
    except TRIE_ERRORS as error:
        raise InvalidReceiptProof(
            "receipt proof does not resolve against the receipts root",
            transaction_index=transaction_index,
            receipts_root=receipts_root,
            reason=str(error),
        ) from error
    if not encoded:
        raise InvalidReceiptProof(
            "receipt proof shows no receipt at this index",
            transaction_index=transaction_index,
            receipts_root=receipts_root,
        )
    try:
        return decode_receipt(encoded)
    except MalformedObject as error:
        raise InvalidReceiptProof(
            "proven receipt does not decode", transaction_index=transaction_index, receipts_root=receipts_root
        ) from error


def verify_receipt_inclusion(
    receipts_root: bytes, transaction_index: int, proof: Sequence[bytes], receipt: Receipt
) -> None:
    """Check `receipt` (as an RPC reported it) is the block's receipt at `transaction_index`."""
    proven = verify_receipt_proof(receipts_root, transaction_index, proof)
    if proven != receipt:
        raise InvalidReceiptProof(
            "receipt differs from the proven receipt",
            transaction_index=transaction_index,
            receipts_root=receipts_root,
        )


def bloom_may_contain(bloom: bytes, value: bytes) -> bool:
    """False only if `value` (an address or topic) is certainly absent from a block's logs.

    The 2048-bit logs bloom sets three bits per address and topic, taken from the low 11 bits
    of the first three byte pairs of its keccak256; blooms have false positives, never false
    negatives, so a proven header's bloom can rule a block out without fetching its receipts.
    """
    if len(bloom) != 256:
        raise MalformedObject("logs bloom must be 256 bytes", length=len(bloom))
    digest = keccak256(value)
    for i in (0, 2, 4):
        bit = int.from_bytes(digest[i : i + 2], "big") & 2047
        if not bloom[255 - bit // 8] >> (bit % 8) & 1:
            return False
    return True
