"""Execution proofs against real mainnet block 21,925,176: block hash, receipts root, receipt, account and storage proofs."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from relay.verify.ethereum.accounts import (
    parse_account_proof,
    verify_account_proof,
    verify_code,
    verify_get_proof,
    verify_storage_proof,
)
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
from relay.verify.ethereum.execution import (
    ExecutionBlockHeader,
    compute_block_hash,
    parse_block_header,
    verify_block_hash,
    verify_header_chain,
)
from relay.verify.ethereum.execution_encoding import parse_bytes_max32, parse_data, parse_quantity
from relay.verify.ethereum.receipts import (
    Log,
    Receipt,
    bloom_may_contain,
    build_receipts_trie,
    compute_receipt_proof,
    compute_receipts_root,
    decode_receipt,
    encode_receipt,
    parse_receipt,
    receipt_transaction_index,
    verify_receipt_inclusion,
    verify_receipt_proof,
    verify_receipts_root,
)

from .conftest import EXECUTION, read_json


@pytest.fixture(scope="module")
def block_json() -> dict[str, Any]:
    return read_json(EXECUTION / "block.json")


@pytest.fixture(scope="module")
def block(block_json: dict[str, Any]) -> ExecutionBlockHeader:
    return parse_block_header(block_json)


@pytest.fixture(scope="module")
def receipts() -> list[Receipt]:
    return [parse_receipt(item) for item in read_json(EXECUTION / "receipts.json")]


@pytest.fixture(scope="module")
def receipt_with_proof() -> dict[str, Any]:
    return read_json(EXECUTION / "receipt_with_proof.json")


def flip(data: bytes, position: int = 0) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


# --- block header ---------------------------------------------------------------------------------------------


def test_block_header_hashes_to_its_hash(block: ExecutionBlockHeader, block_json: dict[str, Any]) -> None:
    assert "0x" + verify_block_hash(block).hex() == block_json["hash"]
    assert block.number == 21_925_176


@pytest.mark.parametrize("field", ["gasUsed", "receiptsRoot", "parentBeaconBlockRoot", "extraData"])
def test_changed_header_field_breaks_the_hash(block_json: dict[str, Any], field: str) -> None:
    tampered = dict(block_json)
    value = tampered[field]
    tampered[field] = (
        hex(int(value, 16) + 1) if len(value) < 20 else "0x" + flip(bytes.fromhex(value[2:]), 3).hex()
    )
    with pytest.raises(InvalidBlockHash) as error:
        verify_block_hash(parse_block_header(tampered))
    assert error.value.check == "block_hash"


def test_header_fields_must_follow_fork_order(block_json: dict[str, Any]) -> None:
    gapped = {k: v for k, v in block_json.items() if k != "withdrawalsRoot"}
    with pytest.raises(MalformedObject):
        parse_block_header(gapped)


def test_header_chain(block: ExecutionBlockHeader) -> None:
    verify_header_chain(compute_block_hash(block), [block])
    with pytest.raises(InvalidHeaderChain):
        verify_header_chain(block.parent_hash, [block])  # the block is not its own parent
    with pytest.raises(InvalidHeaderChain):
        verify_header_chain(compute_block_hash(block), [block, block])  # nor its own ancestor


def test_proven_hash_must_match(block: ExecutionBlockHeader) -> None:
    with pytest.raises(InvalidBlockHash):
        verify_block_hash(block, block.parent_hash)


# --- receipts -------------------------------------------------------------------------------------------------


def test_receipts_rebuild_the_receipts_root(block: ExecutionBlockHeader, receipts: list[Receipt]) -> None:
    assert len(receipts) == 202
    assert compute_receipts_root(receipts) == block.receipts_root
    verify_receipts_root(receipts, block.receipts_root)


def test_receipt_encoding_round_trips(receipts: list[Receipt]) -> None:
    assert {r.transaction_type for r in receipts} == {0, 2}
    for receipt in receipts:
        assert decode_receipt(encode_receipt(receipt)) == receipt


def test_changed_missing_or_reordered_receipts_are_rejected(
    block: ExecutionBlockHeader, receipts: list[Receipt]
) -> None:
    log = receipts[5].logs[0]
    changed = list(receipts)
    changed[5] = dataclasses.replace(
        receipts[5], logs=(dataclasses.replace(log, data=log.data + b"\x00"), *receipts[5].logs[1:])
    )
    for bad in (changed, receipts[:-1], [receipts[1], receipts[0], *receipts[2:]]):
        with pytest.raises(InvalidReceiptsRoot) as error:
            verify_receipts_root(bad, block.receipts_root)
        assert error.value.check == "receipts_root"


def test_receipt_proof_from_the_vector(
    block: ExecutionBlockHeader, receipt_with_proof: dict[str, Any]
) -> None:
    receipt = parse_receipt(receipt_with_proof["receipt"])
    assert receipt == parse_receipt(read_json(EXECUTION / "receipt.json"))
    index = receipt_transaction_index(receipt_with_proof["receipt"])
    nodes = [parse_data(node) for node in receipt_with_proof["receiptProof"]]
    verify_receipt_inclusion(block.receipts_root, index, nodes, receipt)
    assert verify_receipt_proof(block.receipts_root, index, nodes) == receipt


def test_our_proofs_match_the_vector_and_verify_for_every_receipt(
    block: ExecutionBlockHeader, receipts: list[Receipt], receipt_with_proof: dict[str, Any]
) -> None:
    trie = build_receipts_trie(receipts)
    index = receipt_transaction_index(receipt_with_proof["receipt"])
    assert list(compute_receipt_proof(trie, index)) == [
        parse_data(n) for n in receipt_with_proof["receiptProof"]
    ]
    for i, receipt in enumerate(receipts):
        verify_receipt_inclusion(block.receipts_root, i, compute_receipt_proof(trie, i), receipt)


@pytest.mark.parametrize("other_index", [0, 38, 40, 201, 202, 100_000])
def test_receipt_proof_for_another_index_is_rejected(
    block: ExecutionBlockHeader, receipt_with_proof: dict[str, Any], other_index: int
) -> None:
    nodes = [parse_data(node) for node in receipt_with_proof["receiptProof"]]
    with pytest.raises(InvalidReceiptProof) as error:
        verify_receipt_proof(block.receipts_root, other_index, nodes)
    assert error.value.check == "receipt_proof"
    assert error.value.fields["transaction_index"] == other_index


def test_changed_log_is_rejected(block: ExecutionBlockHeader, receipt_with_proof: dict[str, Any]) -> None:
    receipt = parse_receipt(receipt_with_proof["receipt"])
    index = receipt_transaction_index(receipt_with_proof["receipt"])
    nodes = [parse_data(node) for node in receipt_with_proof["receiptProof"]]
    log = receipt.logs[0]
    for changed_log in (
        dataclasses.replace(log, data=flip(log.data, 100)),
        dataclasses.replace(log, address=flip(log.address)),
        dataclasses.replace(log, topics=(flip(log.topics[0]),)),
    ):
        with pytest.raises(InvalidReceiptProof):
            verify_receipt_inclusion(
                block.receipts_root, index, nodes, dataclasses.replace(receipt, logs=(changed_log,))
            )


def test_corrupted_proof_nodes_are_rejected(
    block: ExecutionBlockHeader, receipt_with_proof: dict[str, Any]
) -> None:
    index = receipt_transaction_index(receipt_with_proof["receipt"])
    nodes = [parse_data(node) for node in receipt_with_proof["receiptProof"]]
    for position in range(len(nodes)):
        bad = list(nodes)
        bad[position] = flip(bad[position], len(bad[position]) // 2)
        with pytest.raises(InvalidReceiptProof):
            verify_receipt_proof(block.receipts_root, index, bad)
    with pytest.raises(InvalidReceiptProof):
        verify_receipt_proof(block.receipts_root, index, nodes[:-1])
    with pytest.raises(InvalidReceiptProof):
        verify_receipt_proof(block.receipts_root, index, [b"\xff\x00garbage"])


def test_logs_bloom_holds_every_log(block: ExecutionBlockHeader, receipts: list[Receipt]) -> None:
    bloom = block.get("logsBloom")
    assert isinstance(bloom, bytes)
    for log in (log for receipt in receipts for log in receipt.logs):
        assert bloom_may_contain(bloom, log.address)
        assert all(bloom_may_contain(bloom, topic) for topic in log.topics)
    assert not bloom_may_contain(bytes(256), b"\x11" * 20)


# --- accounts and storage -----------------------------------------------------------------------------------------


def test_account_and_storage_proofs(block: ExecutionBlockHeader) -> None:
    proof = parse_account_proof(read_json(EXECUTION / "proof.json"))
    verify_get_proof(block.state_root, proof)
    assert proof.account.nonce == 1 and len(proof.storage) == 1


def test_account_vector_code_matches_the_proven_code_hash(block: ExecutionBlockHeader) -> None:
    proof = parse_account_proof(read_json(EXECUTION / "proof.json"))
    document = read_json(EXECUTION / "account.json")
    verify_account_proof(
        block.state_root, proof.address, [parse_data(n) for n in document["accountProof"]], proof.account
    )
    assert "0x" + proof.account.storage_root.hex() == document["account"]["storageRoot"]
    verify_code(parse_data(document["code"]), proof.account)
    with pytest.raises(InvalidCode):
        verify_code(parse_data(document["code"]) + b"\x00", proof.account)


def test_tampered_account_and_storage_are_rejected(block: ExecutionBlockHeader) -> None:
    proof = parse_account_proof(read_json(EXECUTION / "proof.json"))
    richer = dataclasses.replace(
        proof, account=dataclasses.replace(proof.account, balance=proof.account.balance + 1)
    )
    with pytest.raises(InvalidAccountProof) as error:
        verify_get_proof(block.state_root, richer)
    assert error.value.check == "account_proof"
    with pytest.raises(InvalidAccountProof):
        verify_get_proof(block.receipts_root, proof)  # against another root
    with pytest.raises(InvalidAccountProof):  # another address: the proof shows a different path
        verify_account_proof(block.state_root, flip(proof.address), proof.account_proof, proof.account)
    slot = proof.storage[0]
    with pytest.raises(InvalidStorageProof) as storage_error:
        verify_storage_proof(proof.account.storage_root, dataclasses.replace(slot, value=slot.value + 1))
    assert storage_error.value.check == "storage_proof"
    with pytest.raises(InvalidStorageProof):
        verify_storage_proof(proof.account.storage_root, dataclasses.replace(slot, key=flip(slot.key, 31)))
    bad_nodes = list(slot.proof)
    bad_nodes[-1] = flip(bad_nodes[-1], 40)
    with pytest.raises(InvalidStorageProof):
        verify_storage_proof(proof.account.storage_root, dataclasses.replace(slot, proof=tuple(bad_nodes)))


def test_malformed_rpc_json_is_rejected(receipt_with_proof: dict[str, Any]) -> None:
    receipt = copy.deepcopy(receipt_with_proof["receipt"])
    receipt["status"] = "0x2"
    with pytest.raises(MalformedObject):
        parse_receipt(receipt)
    receipt = copy.deepcopy(receipt_with_proof["receipt"])
    receipt["logs"][0]["topics"] = ["0x12"]
    with pytest.raises(MalformedObject):
        parse_receipt(receipt)
    with pytest.raises(MalformedObject):
        decode_receipt(b"")
    with pytest.raises(MalformedObject):
        decode_receipt(b"\x02\xc3\x80\x80\x80")
    assert Log(b"\x00" * 20, (), b"") == Log(b"\x00" * 20, (), b"")


@pytest.mark.parametrize("key", ["0x1", "0x01", "0x0001", "0x" + "0" * 63 + "1"])
def test_a_storage_key_in_any_form_the_schema_allows_is_accepted(
    block: ExecutionBlockHeader, key: str
) -> None:
    # execution-apis types a storage key `bytesMax32`: `0x` and 0 to 64 hex digits, odd counts too.
    answer = read_json(EXECUTION / "proof.json")
    answer = copy.deepcopy(answer.get("result", answer))
    answer["storageProof"][0]["key"] = key
    proof = parse_account_proof(answer)
    assert proof.storage[0].key == (1).to_bytes(32, "big")
    verify_get_proof(block.state_root, proof)


def test_json_rpc_hex_values_follow_the_schema() -> None:
    assert parse_bytes_max32("0x0") == bytes(32) and parse_bytes_max32("0x") == bytes(32)
    assert parse_quantity("0x0") == 0 and parse_quantity("0x00ff") == 255  # leading zeros tolerated
    for bad in ["0x" + "1" * 65, "0x-1", "0x 1", "0x1_0", "1", 1, None, "0xg"]:
        with pytest.raises(MalformedObject):
            parse_bytes_max32(bad)
    for bad in ["0x", "0x-1", "0x+1", "0x1_0", " 0x1", "0x1 ", "12", 12, None, [], "0xz"]:
        with pytest.raises(MalformedObject):
            parse_quantity(bad)
    for bad in ["0x1", "0x 00", "0x0_0", "00", b"0x00", None]:
        with pytest.raises(MalformedObject):
            parse_data(bad)
    assert parse_data("0x") == b"" and parse_data("0xABcd") == b"\xab\xcd"
