"""Execution block headers: a header is trusted by its hash, its ancestors by their parent hashes.

The light client proves an execution block hash (the payload header of a finalized beacon
block). An RPC's `eth_getBlockBy*` answer is trusted only when its RLP encoding hashes to that
proven hash, and older blocks only when their hashes chain back to it through `parentHash`. A
trusted header then vouches for its `receiptsRoot` (see `receipts`) and `stateRoot` (see
`accounts`), so a lying RPC endpoint is caught rather than trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import rlp

from relay.verify.ethereum.errors import InvalidBlockHash, InvalidHeaderChain, MalformedObject
from relay.verify.ethereum.execution_encoding import parse_data, parse_quantity, require_fields
from relay.verify.hashing import keccak256

_HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("parentHash", "hash"),
    ("sha3Uncles", "hash"),
    ("miner", "address"),
    ("stateRoot", "hash"),
    ("transactionsRoot", "hash"),
    ("receiptsRoot", "hash"),
    ("logsBloom", "bloom"),
    ("difficulty", "int"),
    ("number", "int"),
    ("gasLimit", "int"),
    ("gasUsed", "int"),
    ("timestamp", "int"),
    ("extraData", "bytes"),
    ("mixHash", "hash"),
    ("nonce", "nonce"),
)
_OPTIONAL_HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("baseFeePerGas", "int"),  # London
    ("withdrawalsRoot", "hash"),  # Shanghai
    ("blobGasUsed", "int"),  # Cancun
    ("excessBlobGas", "int"),
    ("parentBeaconBlockRoot", "hash"),
    ("requestsHash", "hash"),  # Prague
)
_FIELD_LENGTHS = {"hash": 32, "address": 20, "bloom": 256, "nonce": 8, "bytes": None}


@dataclass(frozen=True)
class ExecutionBlockHeader:
    """An execution block header as its RLP field list, with the hash it claims and its number."""

    fields: tuple[tuple[str, int | bytes], ...]
    claimed_hash: bytes | None

    def get(self, name: str) -> int | bytes:
        """The value of header field `name` (JSON-RPC spelling)."""
        for key, value in self.fields:
            if key == name:
                return value
        raise KeyError(name)

    @property
    def number(self) -> int:
        """The block number."""
        return int(self._int("number"))

    @property
    def parent_hash(self) -> bytes:
        """The parent block's hash."""
        return self._bytes("parentHash")

    @property
    def state_root(self) -> bytes:
        """The state trie root after the block."""
        return self._bytes("stateRoot")

    @property
    def receipts_root(self) -> bytes:
        """The receipts trie root of the block."""
        return self._bytes("receiptsRoot")

    @property
    def transactions_root(self) -> bytes:
        """The transactions trie root of the block."""
        return self._bytes("transactionsRoot")

    def _int(self, name: str) -> int:
        value = self.get(name)
        if not isinstance(value, int):
            raise TypeError(name)
        return value

    def _bytes(self, name: str) -> bytes:
        value = self.get(name)
        if not isinstance(value, bytes):
            raise TypeError(name)
        return value


def parse_block_header(obj: object) -> ExecutionBlockHeader:
    """An `ExecutionBlockHeader` from an `eth_getBlockBy*` answer (transactions are ignored).

    Post-London fields must appear as a prefix of (baseFee, withdrawalsRoot, blobGasUsed,
    excessBlobGas, parentBeaconBlockRoot, requestsHash): a gap would hash to another block.
    """
    block = require_fields(obj, "block", *(name for name, _ in _HEADER_FIELDS))
    fields: list[tuple[str, int | bytes]] = [
        (name, _parse_header_field(block[name], kind, name)) for name, kind in _HEADER_FIELDS
    ]
    gap = None
    for name, kind in _OPTIONAL_HEADER_FIELDS:
        if name not in block or block[name] is None:
            gap = gap or name
            continue
        if gap is not None:
            raise MalformedObject("block header fields out of fork order", present=name, missing=gap)
        fields.append((name, _parse_header_field(block[name], kind, name)))
    claimed = parse_data(block["hash"], 32, what="hash") if block.get("hash") is not None else None
    return ExecutionBlockHeader(fields=tuple(fields), claimed_hash=claimed)


def _parse_header_field(value: object, kind: str, name: str) -> int | bytes:
    if kind == "int":
        return parse_quantity(value, what=name)
    return parse_data(value, _FIELD_LENGTHS[kind], what=name)


def compute_block_hash(header: ExecutionBlockHeader) -> bytes:
    """keccak256 of the header's RLP encoding: the block hash."""
    return keccak256(rlp.encode([value for _, value in header.fields]))


def verify_block_hash(header: ExecutionBlockHeader, expected_hash: bytes | None = None) -> bytes:
    """Check the header hashes to `expected_hash` (a proven hash) or at least to the hash it claims.

    Returns the computed hash.
    """
    computed = compute_block_hash(header)
    if header.claimed_hash is not None and computed != header.claimed_hash:
        raise InvalidBlockHash(
            "block header does not hash to its own hash",
            number=header.number,
            computed=computed,
            claimed=header.claimed_hash,
        )
    if expected_hash is not None and computed != expected_hash:
        raise InvalidBlockHash(
            "block header is not the proven block",
            number=header.number,
            computed=computed,
            expected=expected_hash,
        )
    return computed


def verify_header_chain(trusted_hash: bytes, headers: Sequence[ExecutionBlockHeader]) -> None:
    """Check `headers` (newest first) are the trusted block and its ancestors, by parent hash.

    `headers[0]` must hash to `trusted_hash`; each next header must hash to the `parentHash` of
    the one before and carry the number one below it. A proven header proves its whole ancestry.
    """
    expected_hash = trusted_hash
    expected_number: int | None = None
    for header in headers:
        computed = compute_block_hash(header)
        if computed != expected_hash:
            raise InvalidHeaderChain(
                "header is not the parent of the next proven header",
                number=header.number,
                computed=computed,
                expected=expected_hash,
            )
        if expected_number is not None and header.number != expected_number:
            raise InvalidHeaderChain(
                "header has the wrong number", number=header.number, expected=expected_number
            )
        expected_hash = header.parent_hash
        expected_number = header.number - 1
