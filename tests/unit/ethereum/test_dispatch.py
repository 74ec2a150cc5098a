"""Proving a Gateway message: a `Dispatch` log in a finalized block, decoded into a `Message`."""

from __future__ import annotations

import dataclasses

import pytest

from relay.verify.bls import BlsBackend
from relay.verify.ethereum.config import Fork
from relay.verify.ethereum.dispatch import (
    DISPATCH_TOPIC,
    ReceiptProof,
    decode_dispatch_data,
    decode_dispatch_log,
    decode_malformed_dispatch_log,
    prove_dispatch_message,
    prove_dispatches_in_receipts,
)
from relay.verify.ethereum.errors import (
    InvalidDispatchLog,
    InvalidReceiptProof,
    InvalidReceiptsRoot,
    LogNotFound,
)
from relay.verify.ethereum.execution_encoding import parse_data
from relay.verify.ethereum.receipts import (
    Log,
    Receipt,
    build_receipts_trie,
    compute_receipt_proof,
    compute_receipts_root,
    parse_receipt,
)
from relay.verify.hashing import keccak256
from relay.verify.message import MAX_BODY_LENGTH

from .conftest import EXECUTION, read_json
from .synthetic import GATEWAY, ORIGIN_DOMAIN, Scenario, dispatch_log, make_message, make_scenario


@pytest.fixture(scope="module")
def scenario(blst: BlsBackend) -> Scenario:
    return make_scenario(blst, Fork.DENEB)


def test_dispatch_topic_is_the_event_signature_hash() -> None:
    assert DISPATCH_TOPIC == keccak256(b"Dispatch(bytes32,uint32,uint32,bytes)")


def test_dispatch_log_decodes_into_its_message() -> None:
    message = make_message(7, b"x" * 45)
    assert decode_dispatch_log(dispatch_log(message), GATEWAY, origin=ORIGIN_DOMAIN) == message
    assert decode_dispatch_data(dispatch_log(message).data) == (7, message.encode())


def test_inconsistent_dispatch_logs_are_rejected() -> None:
    message = make_message(7)
    log = dispatch_log(message)
    other = make_message(8)
    bad_logs = {
        "other emitter": dataclasses.replace(log, address=b"\x01" * 20),
        "other event": dataclasses.replace(log, topics=(keccak256(b"Other()"), *log.topics[1:])),
        "missing topic": dataclasses.replace(log, topics=log.topics[:2]),
        "wrong id": dataclasses.replace(log, topics=(log.topics[0], other.id, log.topics[2])),
        "wrong destination": dataclasses.replace(log, topics=(*log.topics[:2], (5).to_bytes(32, "big"))),
        "wrong nonce": dataclasses.replace(log, data=(8).to_bytes(32, "big") + log.data[32:]),
        "non-canonical offset": dataclasses.replace(
            log, data=log.data[:32] + (96).to_bytes(32, "big") + log.data[64:]
        ),
        "dirty padding": dataclasses.replace(log, data=log.data[:-1] + b"\x01"),
        "truncated": dataclasses.replace(log, data=log.data[:-32]),
        "not a message": dataclasses.replace(
            log,
            data=(7).to_bytes(32, "big")
            + (64).to_bytes(32, "big")
            + (3).to_bytes(32, "big")
            + b"abc".ljust(32, b"\x00"),
        ),
    }
    for reason, bad in bad_logs.items():
        with pytest.raises(InvalidDispatchLog) as error:
            decode_dispatch_log(bad, GATEWAY)
        assert error.value.check == "dispatch_log", reason
    with pytest.raises(InvalidDispatchLog):
        decode_dispatch_log(log, GATEWAY, origin=ORIGIN_DOMAIN + 1)


def test_message_proven_from_a_finalized_header_and_a_receipt_proof(scenario: Scenario) -> None:
    block = scenario.blocks[100]
    header = scenario.update.finalized_header
    assert header.execution.receipts_root == block.payload.receipts_root
    trie = build_receipts_trie(block.receipts)
    log = block.receipts[1].logs[1]
    proven = prove_dispatch_message(
        header, ReceiptProof(1, compute_receipt_proof(trie, 1)), log, gateway=GATEWAY, origin=ORIGIN_DOMAIN
    )
    assert proven.message == block.messages[0]
    assert (proven.block_number, proven.block_hash, proven.transaction_index, proven.log_index) == (
        100,
        block.payload.block_hash,
        1,
        1,
    )


def test_receipt_proof_for_another_index_or_a_changed_log_is_rejected(scenario: Scenario) -> None:
    block = scenario.blocks[100]
    header = scenario.update.finalized_header
    trie = build_receipts_trie(block.receipts)
    log = block.receipts[1].logs[1]
    with pytest.raises(LogNotFound) as error:  # a genuine proof, of a receipt without the log
        prove_dispatch_message(header, ReceiptProof(0, compute_receipt_proof(trie, 0)), log, gateway=GATEWAY)
    assert error.value.check == "log_inclusion"
    with pytest.raises(InvalidReceiptProof):  # the proof of receipt 1 claimed for index 0
        prove_dispatch_message(header, ReceiptProof(0, compute_receipt_proof(trie, 1)), log, gateway=GATEWAY)
    forged = make_message(0, b"forged")
    with pytest.raises(LogNotFound):  # a changed log is not in the proven receipt
        prove_dispatch_message(
            header, ReceiptProof(1, compute_receipt_proof(trie, 1)), dispatch_log(forged), gateway=GATEWAY
        )
    other_header = scenario.update.attested_header  # another block's receipts root
    with pytest.raises(InvalidReceiptProof):
        prove_dispatch_message(
            other_header, ReceiptProof(1, compute_receipt_proof(trie, 1)), log, gateway=GATEWAY
        )


def test_all_dispatches_of_a_block(scenario: Scenario) -> None:
    block = scenario.blocks[99]
    proven = prove_dispatches_in_receipts(
        block.receipts,
        receipts_root=block.payload.receipts_root,
        block_number=99,
        block_hash=block.payload.block_hash,
        gateway=GATEWAY,
        origin=ORIGIN_DOMAIN,
    )
    assert [p.message for p in proven] == block.messages
    with pytest.raises(InvalidReceiptsRoot):  # hiding a receipt changes the root
        prove_dispatches_in_receipts(
            block.receipts[1:],
            receipts_root=block.payload.receipts_root,
            block_number=99,
            block_hash=block.payload.block_hash,
            gateway=GATEWAY,
        )


def test_real_log_is_proven_but_is_no_dispatch() -> None:
    """A real mainnet deposit log: inclusion holds, but it is not a Gateway message."""
    document = read_json(EXECUTION / "receipt_with_proof.json")
    receipt = parse_receipt(document["receipt"])
    header_json = read_json(EXECUTION / "block.json")
    from relay.verify.ethereum.dispatch import verify_log_in_receipts_root

    nodes = tuple(parse_data(n) for n in document["receiptProof"])
    log: Log = receipt.logs[0]
    _, position = verify_log_in_receipts_root(
        parse_data(header_json["receiptsRoot"], 32), ReceiptProof(39, nodes), log
    )
    assert position == 0
    with pytest.raises(InvalidDispatchLog):
        decode_dispatch_log(log, log.address)


def raw_dispatch_log(nonce: int, encoded: bytes, destination: int = 31337) -> Log:
    """A genuine-looking Gateway Dispatch log around any message bytes (id = their keccak256)."""
    padded = encoded + b"\x00" * (-len(encoded) % 32)
    data = nonce.to_bytes(32, "big") + (64).to_bytes(32, "big") + len(encoded).to_bytes(32, "big") + padded
    return Log(
        address=GATEWAY,
        topics=(DISPATCH_TOPIC, keccak256(encoded), destination.to_bytes(32, "big")),
        data=data,
    )


def test_a_proven_dispatch_whose_message_does_not_decode_is_a_malformed_leaf() -> None:
    # An old Gateway accepts any body: the leaf is in its tree, so the proven tree needs it too.
    first, last = make_message(0), make_message(2)
    too_long = make_message(1).encode() + b"x" * (MAX_BODY_LENGTH + 1)
    logs = (dispatch_log(first), raw_dispatch_log(1, too_long), dispatch_log(last))
    receipts = [Receipt(2, 1, 21000 * (i + 1), b"\x00" * 256, (log,)) for i, log in enumerate(logs)]
    proven = prove_dispatches_in_receipts(
        receipts,
        receipts_root=compute_receipts_root(receipts),
        block_number=9,
        block_hash=b"\x09" * 32,
        gateway=GATEWAY,
        origin=ORIGIN_DOMAIN,
    )
    assert [p.id for p in proven] == [first.id, keccak256(too_long), last.id]
    assert [p.message.nonce for p in proven] == [0, 1, 2]
    assert [bool(p.malformed_reason) for p in proven] == [False, True, False]
    assert "too long" in proven[1].malformed_reason
    assert proven[1].message.destination == 31337 and proven[1].message.body == b""
    assert (proven[1].block_number, proven[1].transaction_index, proven[1].log_index) == (9, 1, 0)
    # Not what a Gateway emits (its id is not the hash of its bytes): still refused.
    forged = dataclasses.replace(logs[1], topics=(DISPATCH_TOPIC, b"\x44" * 32, logs[1].topics[2]))
    with pytest.raises(InvalidDispatchLog):
        decode_malformed_dispatch_log(forged, GATEWAY, ORIGIN_DOMAIN)
    assert decode_malformed_dispatch_log(logs[0], GATEWAY, ORIGIN_DOMAIN) is None
