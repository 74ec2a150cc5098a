"""Accounts and storage: `eth_getProof` answers proven against a state root, code against its hash.

An account is trusted when its proof resolves, at `keccak256(address)`, to the same account under
the `stateRoot` of a proven header; a storage slot when its proof resolves, at `keccak256(key)`,
to the same value under that account's `storageRoot`. A proof of absence proves the empty
account or a zero slot. Code is trusted when it hashes to the proven account's `codeHash`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import rlp
from rlp.exceptions import DecodingError

from relay.verify.ethereum.errors import (
    InvalidAccountProof,
    InvalidCode,
    InvalidStorageProof,
    MalformedObject,
)
from relay.verify.ethereum.execution_encoding import (
    EMPTY_TRIE_ROOT,
    TRIE_ERRORS,
    get_from_proof,
    parse_bytes_max32,
    parse_data,
    parse_proof_nodes,
    parse_quantity,
    require_fields,
)
from relay.verify.hashing import keccak256

EMPTY_CODE_HASH = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")


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
    answer = require_fields(
        obj, "eth_getProof answer", "address", "accountProof", "balance", "codeHash", "nonce", "storageHash"
    )
    storage = answer.get("storageProof", [])
    if not isinstance(storage, list):
        raise MalformedObject("storageProof is not a list")
    slots = []
    for item in storage:
        slot = require_fields(item, "storage proof", "key", "value", "proof")
        slots.append(
            StorageSlot(
                key=parse_bytes_max32(slot["key"], what="storage key"),
                value=parse_quantity(slot["value"], what="storage value"),
                proof=parse_proof_nodes(slot["proof"], "storage proof"),
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
        account_proof=parse_proof_nodes(answer["accountProof"], "accountProof"),
        storage=tuple(slots),
    )


def verify_account_proof(state_root: bytes, address: bytes, proof: Sequence[bytes], account: Account) -> None:
    """Check `account` is the state of `address` under `state_root` (absence proves the empty account)."""
    try:
        encoded = get_from_proof(state_root, keccak256(address), proof)
    except TRIE_ERRORS as error:
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
        encoded = get_from_proof(storage_root, keccak256(slot.key), slot.proof)
    except TRIE_ERRORS as error:
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
