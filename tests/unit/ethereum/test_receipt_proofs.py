"""The receipt-proof builder for the EthereumInbox: what it refuses to build, and what it builds.

The on-chain side is tests/integration/test_receipt_proofs_onchain.py; here, the checks the
builder makes on an RPC's answers before anyone pays gas for a proof.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from adapters.ethereum.receipt_proofs import (
    DISPATCH_TOPIC,
    ReceiptProofError,
    ReceiptsTrie,
    block_number_of,
    build_receipt_proof,
    dispatch_logs,
    encode_block_header,
    encode_delivery,
    encode_receipt_proof,
    header_walk,
    parse_block_receipts,
    share_nodes,
)
from relay.verify.ethereum.errors import InvalidHeaderChain, InvalidReceiptsRoot, MalformedObject
from relay.verify.ethereum.receipts import verify_receipt_proof
from relay.verify.hashing import keccak256
from tests.unit.ethereum.conftest import EXECUTION, read_json


@pytest.fixture(scope="module")
def receipts() -> list[Any]:
    return list(read_json(EXECUTION / "receipts.json"))


@pytest.fixture(scope="module")
def block() -> Any:
    return read_json(EXECUTION / "block.json")


def test_a_proof_from_the_vector_block_verifies_off_chain(receipts: list[Any], block: Any) -> None:
    root = bytes.fromhex(block["receiptsRoot"][2:])
    proof = build_receipt_proof(receipts, 20, 21_925_176, receipts_root=root)
    assert verify_receipt_proof(root, 20, proof.nodes).logs
    number, headers, index, nodes = encode_receipt_proof(proof)
    assert (number, headers, index, nodes) == (21_925_176, [], 20, list(proof.nodes))
    assert encode_delivery(3, 1, 50_000) == (3, 1, 50_000)
    assert block_number_of(receipts) == 21_925_176


def test_receipts_that_miss_the_root_or_an_index_are_refused(receipts: list[Any], block: Any) -> None:
    with pytest.raises(InvalidReceiptsRoot):
        build_receipt_proof(receipts[:-1], 0, 1, receipts_root=bytes.fromhex(block["receiptsRoot"][2:]))
    with pytest.raises(MalformedObject):
        parse_block_receipts(receipts[1:])  # index 0 missing
    with pytest.raises(MalformedObject):
        parse_block_receipts([receipts[0], receipts[0]])
    with pytest.raises(ReceiptProofError):
        ReceiptsTrie(parse_block_receipts(receipts[:3])).proof_nodes(3)
    mixed = copy.deepcopy(receipts[:2])
    mixed[1]["blockNumber"] = "0x1"
    with pytest.raises(MalformedObject):
        block_number_of(mixed)


def test_dispatch_logs_are_found_by_emitter_and_topic(receipts: list[Any]) -> None:
    receipt = copy.deepcopy(receipts[20])
    gateway = "0x" + "5a" * 20
    dispatch = {
        "address": gateway,
        "topics": ["0x" + DISPATCH_TOPIC.hex(), "0x" + "01" * 32, "0x" + "00" * 31 + "02"],
        "data": "0x",
    }
    receipt["logs"] = [receipt["logs"][0], dispatch, {**dispatch, "address": "0x" + "77" * 20}]
    (found,) = dispatch_logs(receipt, gateway)
    assert (found.transaction_index, found.log_index, found.message_id) == (20, 1, b"\x01" * 32)


def test_the_header_walk_must_chain(block: Any) -> None:
    header = encode_block_header(block)
    assert keccak256(header) == bytes.fromhex(block["hash"][2:])
    assert header_walk([block]) == (header,)
    with pytest.raises(InvalidHeaderChain):
        header_walk([block, block])


def test_shared_nodes_are_sent_once_in_a_batch(receipts: list[Any], block: Any) -> None:
    trie = ReceiptsTrie(parse_block_receipts(receipts), bytes.fromhex(block["receiptsRoot"][2:]))
    proofs = [trie.proof(index, 1) for index in (20, 21, 40, 40)]
    shared = share_nodes(proofs)
    assert shared[0] == proofs[0]
    assert [len(node) for node in shared[1].nodes[:2]] == [0, 0]  # 20 and 21: one root, one branch
    assert shared[2].nodes[0] == b"" and shared[2].nodes[1] == proofs[2].nodes[1]
    assert all(node == b"" for node in shared[3].nodes)
    assert [p.transaction_index for p in shared] == [20, 21, 40, 40]


def test_shared_headers_are_sent_once_in_a_batch(receipts: list[Any], block: Any) -> None:
    trie = ReceiptsTrie(parse_block_receipts(receipts), bytes.fromhex(block["receiptsRoot"][2:]))
    walk = tuple(bytes([n]) * 600 for n in range(5))  # stand-ins: sharing compares bytes only
    deep, shallow, again = trie.proof(20, 100, walk), trie.proof(21, 100, walk[:2]), trie.proof(40, 100, walk)
    shared = share_nodes([deep, shallow, again])
    assert shared[0] == deep
    assert shared[1].headers == (b"", b"")  # a later block of the same walk: all shared
    assert shared[2].headers == (b"", b"", *walk[2:])  # only what the previous proof lacked
    assert [p.headers for p in share_nodes([deep, shallow, again], headers=False)] == [walk, walk[:2], walk]
    assert share_nodes([shallow])[0] == shallow  # a lone proof keeps its walk
