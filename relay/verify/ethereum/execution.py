"""Execution-layer proofs: block hashes, receipts tries, receipt, account and storage proofs.

Everything here checks RPC answers against a root the light client already proved (a block
hash, a receipts root, a state root), so a lying RPC endpoint is caught rather than trusted:

- a block header is trusted when its RLP encoding hashes to a proven block hash, and its
  ancestors when their hashes chain back to it through `parentHash`;
- receipts are trusted when the Merkle-Patricia trie rebuilt from them (key `rlp(index)`,
  value the EIP-2718 receipt encoding) has the header's `receiptsRoot`, or one at a time by an
  inclusion proof against that root;
- accounts and storage slots (`eth_getProof`) are trusted by their proofs against `stateRoot`
  and the account's `storageRoot`.

The trie itself comes from the `trie` package; JSON follows the Ethereum JSON-RPC API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import rlp
from rlp.exceptions import DecodingError
from trie import HexaryTrie
from trie.exceptions import BadTrieProof, InvalidNode, ValidationError

from relay.verify.ethereum.errors import (
    InvalidAccountProof,
    InvalidBlockHash,
    InvalidCode,
    InvalidHeaderChain,
    InvalidReceiptProof,
    InvalidReceiptsRoot,
    InvalidStorageProof,
    MalformedObject,
)
from relay.verify.hashing import keccak256

EMPTY_TRIE_ROOT = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")
EMPTY_CODE_HASH = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
_TRIE_ERRORS = (
    BadTrieProof,
    InvalidNode,
    ValidationError,
    DecodingError,
    ValueError,
    IndexError,
    KeyError,
    TypeError,
)


# --- JSON-RPC primitives ------------------------------------------------------------------------------


def parse_data(value: object, length: int | None = None, *, what: str = "data") -> bytes:
    """JSON-RPC DATA: `0x` hex bytes, optionally of exactly `length` bytes."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise MalformedObject(f"{what} is not 0x-prefixed hex", field=what, value=value)
    try:
        data = bytes.fromhex(value[2:])
    except ValueError:
        raise MalformedObject(f"{what} is not valid hex", field=what, value=value) from None
    if length is not None and len(data) != length:
        raise MalformedObject(f"{what} has the wrong length", field=what, length=len(data), expected=length)
    return data


def parse_quantity(value: object, *, what: str = "quantity") -> int:
    """JSON-RPC QUANTITY: `0x` hex without leading zeros (leniently, also with them)."""
    if not isinstance(value, str) or not value.startswith("0x") or len(value) < 3:
        raise MalformedObject(f"{what} is not a hex quantity", field=what, value=value)
    try:
        return int(value[2:], 16)
    except ValueError:
        raise MalformedObject(f"{what} is not a hex quantity", field=what, value=value) from None


def _require(obj: object, what: str, *names: str) -> Mapping[str, object]:
    if not isinstance(obj, Mapping):
        raise MalformedObject(f"{what} is not an object", field=what)
    missing = [name for name in names if name not in obj]
    if missing:
        raise MalformedObject(f"{what} lacks fields", field=what, missing=missing)
    return obj


def _proof_nodes(value: object, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise MalformedObject(f"{what} is not a list of nodes", field=what)
    return tuple(parse_data(node, what=what) for node in value)


# --- block headers -------------------------------------------------------------------------------------------

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
    block = _require(obj, "block", *(name for name, _ in _HEADER_FIELDS))
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


# --- receipts ----------------------------------------------------------------------------------------------------


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
    log = _require(obj, "log", "address", "topics", "data")
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
    receipt = _require(obj, "receipt", "cumulativeGasUsed", "logs", "logsBloom")
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
        _require(obj, "receipt", "transactionIndex")["transactionIndex"], what="transactionIndex"
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


def _get_from_proof(root: bytes, key: bytes, proof: Sequence[bytes]) -> bytes:
    """The value at `key` in the trie of `root`, read from `proof` only (b"" if absent)."""
    nodes = [rlp.decode(node) for node in proof]
    return bytes(HexaryTrie.get_from_proof(root, key, nodes))


def verify_receipt_proof(receipts_root: bytes, transaction_index: int, proof: Sequence[bytes]) -> Receipt:
    """Return the receipt at `transaction_index` proven by `proof` against `receipts_root`."""
    try:
        encoded = _get_from_proof(receipts_root, rlp.encode(transaction_index), proof)
    except _TRIE_ERRORS as error:
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


# --- accounts and storage (eth_getProof) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """An account as the state trie commits to it."""

    nonce: int
    balance: int
    storage_root: bytes
    code_hash: bytes

    @property
    def is_empty(self) -> bool:
        """True for an account absent from the state (all fields at their empty values)."""
        return self == EMPTY_ACCOUNT


EMPTY_ACCOUNT = Account(nonce=0, balance=0, storage_root=EMPTY_TRIE_ROOT, code_hash=EMPTY_CODE_HASH)


@dataclass(frozen=True)
class StorageSlot:
    """One storage slot of an `eth_getProof` answer with its proof."""

    key: bytes
    value: int
    proof: tuple[bytes, ...]


@dataclass(frozen=True)
class AccountProof:
    """An `eth_getProof` answer: an account, its proof, and storage slots with theirs."""

    address: bytes
    account: Account
    account_proof: tuple[bytes, ...]
    storage: tuple[StorageSlot, ...]


def parse_account_proof(obj: object) -> AccountProof:
    """An `AccountProof` from an `eth_getProof` answer."""
    answer = _require(
        obj, "eth_getProof answer", "address", "accountProof", "balance", "codeHash", "nonce", "storageHash"
    )
    storage = answer.get("storageProof", [])
    if not isinstance(storage, list):
        raise MalformedObject("storageProof is not a list")
    slots = []
    for item in storage:
        slot = _require(item, "storage proof", "key", "value", "proof")
        key = parse_data(slot["key"], what="storage key")
        if len(key) > 32:
            raise MalformedObject("storage key longer than 32 bytes", key=key)
        slots.append(
            StorageSlot(
                key=key.rjust(32, b"\x00"),
                value=parse_quantity(slot["value"], what="storage value"),
                proof=_proof_nodes(slot["proof"], "storage proof"),
            )
        )
    return AccountProof(
        address=parse_data(answer["address"], 20, what="address"),
        account=Account(
            nonce=parse_quantity(answer["nonce"], what="nonce"),
            balance=parse_quantity(answer["balance"], what="balance"),
            storage_root=parse_data(answer["storageHash"], 32, what="storageHash"),
            code_hash=parse_data(answer["codeHash"], 32, what="codeHash"),
        ),
        account_proof=_proof_nodes(answer["accountProof"], "accountProof"),
        storage=tuple(slots),
    )


def verify_account_proof(state_root: bytes, address: bytes, proof: Sequence[bytes], account: Account) -> None:
    """Check `account` is the state of `address` under `state_root` (absence proves the empty account)."""
    try:
        encoded = _get_from_proof(state_root, keccak256(address), proof)
    except _TRIE_ERRORS as error:
        raise InvalidAccountProof(
            "account proof does not resolve against the state root",
            address=address,
            state_root=state_root,
            reason=str(error),
        ) from error
    if not encoded:
        proven = EMPTY_ACCOUNT
    else:
        try:
            nonce, balance, storage_root, code_hash = rlp.decode(encoded)
            proven = Account(
                nonce=int.from_bytes(nonce, "big"),
                balance=int.from_bytes(balance, "big"),
                storage_root=bytes(storage_root),
                code_hash=bytes(code_hash),
            )
        except (DecodingError, ValueError, TypeError) as error:
            raise InvalidAccountProof("proven account does not decode", address=address) from error
    if proven != account:
        raise InvalidAccountProof(
            "account differs from the proven account",
            address=address,
            state_root=state_root,
            claimed_nonce=account.nonce,
            proven_nonce=proven.nonce,
            claimed_balance=account.balance,
            proven_balance=proven.balance,
        )


def verify_storage_proof(storage_root: bytes, slot: StorageSlot) -> None:
    """Check `slot.value` is the value of `slot.key` under `storage_root` (absence proves zero)."""
    try:
        encoded = _get_from_proof(storage_root, keccak256(slot.key), slot.proof)
    except _TRIE_ERRORS as error:
        raise InvalidStorageProof(
            "storage proof does not resolve against the storage root",
            key=slot.key,
            storage_root=storage_root,
            reason=str(error),
        ) from error
    try:
        raw = rlp.decode(encoded) if encoded else b""
    except DecodingError as error:
        raise InvalidStorageProof("proven storage value does not decode", key=slot.key) from error
    if not isinstance(raw, bytes):
        raise InvalidStorageProof("proven storage value is not a byte string", key=slot.key)
    proven = int.from_bytes(raw, "big")
    if proven != slot.value:
        raise InvalidStorageProof(
            "storage value differs from the proven value", key=slot.key, claimed=slot.value, proven=proven
        )


def verify_get_proof(state_root: bytes, proof: AccountProof) -> None:
    """Check a whole `eth_getProof` answer: the account against `state_root`, each slot against its storage root."""
    verify_account_proof(state_root, proof.address, proof.account_proof, proof.account)
    for slot in proof.storage:
        verify_storage_proof(proof.account.storage_root, slot)


def verify_code(code: bytes, account: Account) -> None:
    """Check `code` (from `eth_getCode`) is the code of the proven `account`."""
    computed = keccak256(code)
    if computed != account.code_hash:
        raise InvalidCode(
            "code does not hash to the account's code hash", computed=computed, expected=account.code_hash
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
