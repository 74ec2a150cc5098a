"""Receipt proofs verified on-chain by the EthereumInbox, on real mainnet data and on crafted input.

- ../shared/vectors/ethereum-execution/receipts.json (block 21,925,176: legacy and EIP-1559
  receipts) proves on-chain against the block's receipts root from block.json, directly and by
  walking back from a stored child header through block.json's RLP header.
- The receipt types the block lacks (access list, blob, EIP-7702) come from the Python encoder in
  a small trie; an unknown type is refused.
- Every tamper is refused with the inbox's typed error, never a panic: proof nodes, the receipt,
  the index key, truncated and non-canonical RLP, path and node-kind confusion, short and long
  proofs, log indices, emitters, topics, and Dispatch data whose ABI encoding is inconsistent.

A test-only StoredExecutionHeaders stands in for the light client (the inbox only reads
`executionHeader`). One anvil and one deployment serve the module; crafted tries are committed
by storing their root under a fresh block number.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_abi import encode as abi_encode
from trie import HexaryTrie
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from adapters.ethereum.receipt_proofs import (
    DISPATCH_TOPIC,
    ReceiptProof,
    ReceiptsTrie,
    encode_block_header,
    encode_delivery,
    encode_receipt_proof,
    parse_block_receipts,
    share_nodes,
)
from adapters.evm.build import load_artifact
from adapters.evm.errors import decode_contract_error
from adapters.evm.gas import deploy_contract
from relay.verify.ethereum.receipts import Log, Receipt, encode_receipt
from relay.verify.hashing import keccak256
from relay.verify.message import Message, address_to_bytes32
from tests.integration.gateway_bridge import decode_error, transact

pytestmark = [pytest.mark.anvil]

PROJECT = Path(__file__).resolve().parents[2]
VECTORS = Path(os.environ.get("RELAY_VECTORS", PROJECT.parent / "shared" / "vectors"))
EXECUTION = VECTORS / "ethereum-execution"
VECTOR_BLOCK = 21_925_176
ORIGIN = 1
DESTINATION = 2
SOURCE = "0x" + "5a" * 20  # the origin's source Gateway in the synthetic receipts
_block_numbers = itertools.count(50_000_000)


def read_json(name: str) -> Any:
    path = EXECUTION / name
    if not path.exists():
        pytest.fail(f"test vector missing: {path} (set RELAY_VECTORS to the shared/vectors folder)")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def block() -> Any:
    return read_json("block.json")


@pytest.fixture(scope="module")
def vector_trie(block: Any) -> ReceiptsTrie:
    receipts = parse_block_receipts(read_json("receipts.json"))
    return ReceiptsTrie(receipts, bytes.fromhex(block["receiptsRoot"][2:]))


@pytest.fixture(scope="module")
def headers(w3: Web3) -> Contract:
    return deploy_contract(w3, "StoredExecutionHeaders")


@pytest.fixture(scope="module")
def inbox(w3: Web3, headers: Contract) -> Contract:
    gateway = deploy_contract(w3, "Gateway", DESTINATION)
    return deploy_contract(
        w3, "EthereumInbox", gateway.address, headers.address, ORIGIN, Web3.to_checksum_address(SOURCE)
    )


@pytest.fixture(scope="module")
def stored_vector(w3: Web3, headers: Contract, block: Any) -> int:
    transact(
        w3,
        headers.functions.storeHeader(
            VECTOR_BLOCK, bytes.fromhex(block["hash"][2:]), bytes.fromhex(block["receiptsRoot"][2:])
        ),
    )
    return VECTOR_BLOCK


def commit(w3: Web3, headers: Contract, receipts_root: bytes, block_hash: bytes = b"\x01" * 32) -> int:
    """Store a made-up header with `receipts_root` under a fresh block number; return it."""
    number = next(_block_numbers)
    transact(w3, headers.functions.storeHeader(number, block_hash, receipts_root))
    return number


def refusal(inbox: Contract, call: Any) -> str:
    """The name of the inbox's custom error `call` reverts with (a panic fails the test)."""
    with pytest.raises(ContractCustomError) as raised:
        call.call()
    name, _ = decode_error(inbox, bytes.fromhex(str(raised.value.data)[2:]))
    return name


def proven_log(inbox: Contract, proof: ReceiptProof, log_index: int) -> tuple[int, str, list[bytes], bytes]:
    receipt_type, emitter, topics, data = inbox.functions.provenLog(
        encode_receipt_proof(proof), log_index
    ).call()
    return int(receipt_type), str(emitter), [bytes(t) for t in topics], bytes(data)


def single_leaf_proof(w3: Web3, headers: Contract, value: bytes, index: int = 0) -> ReceiptProof:
    """A trie holding only `value` under rlp(index), committed on-chain."""
    trie = HexaryTrie({})
    trie.set(rlp.encode(index), value)
    nodes = tuple(rlp.encode(node) for node in trie.get_proof(rlp.encode(index)))
    return ReceiptProof(commit(w3, headers, bytes(trie.root_hash)), (), index, nodes)


def crafted_proof(w3: Web3, headers: Contract, nodes: list[bytes], index: int = 0) -> ReceiptProof:
    """A proof whose first node the receipts root commits to, whatever the nodes hold."""
    return ReceiptProof(commit(w3, headers, keccak256(nodes[0])), (), index, tuple(nodes))


def hex_prefix(nibbles: list[int], leaf: bool) -> bytes:
    flag = (2 if leaf else 0) + len(nibbles) % 2
    padded = [flag] + ([] if len(nibbles) % 2 else [0]) + nibbles
    return bytes(padded[i] * 16 + padded[i + 1] for i in range(0, len(padded), 2))


# ---------------------------------------------------------------- the mainnet block


@pytest.mark.parametrize("index", [20, 47, 0, 112, 201])
def test_vector_receipt_logs_verify_on_chain(
    inbox: Contract, vector_trie: ReceiptsTrie, stored_vector: int, index: int
) -> None:
    receipt = vector_trie.receipts[index]
    proof = vector_trie.proof(index, stored_vector)
    for log_index, log in enumerate(receipt.logs):
        assert proven_log(inbox, proof, log_index) == (
            receipt.transaction_type,
            Web3.to_checksum_address(log.address),
            list(log.topics),
            log.data,
        )
    assert refusal(inbox, inbox.functions.provenLog(encode_receipt_proof(proof), len(receipt.logs))) == (
        "LogIndexOutOfRange"
    )


def test_vector_block_has_legacy_and_1559_receipts(vector_trie: ReceiptsTrie) -> None:
    assert {r.transaction_type for r in vector_trie.receipts} == {0, 2}
    assert vector_trie.receipts[20].transaction_type == 0 and vector_trie.receipts[20].logs
    assert vector_trie.receipts[47].transaction_type == 0 and vector_trie.receipts[0].transaction_type == 2


def test_header_walk_from_a_stored_child_to_the_vector_block(
    w3: Web3, headers: Contract, inbox: Contract, vector_trie: ReceiptsTrie, block: Any
) -> None:
    header = encode_block_header(block)
    assert keccak256(header) == bytes.fromhex(block["hash"][2:])
    # A child of the vector block, made up: only its hash is stored, with a useless receipts root.
    fields = rlp.decode(header)
    child_fields = [
        keccak256(header),
        *fields[1:5],
        b"\x07" * 32,
        *fields[6:8],
        (VECTOR_BLOCK + 1).to_bytes(4, "big"),
        *fields[9:],
    ]
    child = rlp.encode(child_fields)
    transact(w3, headers.functions.storeHeader(VECTOR_BLOCK + 1, keccak256(child), b"\x00" * 31 + b"\x01"))
    receipt = vector_trie.receipts[20]
    proof = ReceiptProof(VECTOR_BLOCK + 1, (child, header), 20, vector_trie.proof_nodes(20))
    assert proven_log(inbox, proof, 0)[2] == list(receipt.logs[0].topics)

    def refused(**changes: Any) -> str:
        changed = dataclasses.replace(proof, **changes)
        return refusal(inbox, inbox.functions.provenLog(encode_receipt_proof(changed), 0))

    assert refused(headers=(header,)) == "HeaderHashMismatch"  # the stored block is the child
    assert refused(headers=(child, child)) == "HeaderHashMismatch"
    assert refused(headers=(child,)) == "ProofNodeHashMismatch"  # the child's root is not the block's
    tampered = bytearray(header)
    tampered[200] ^= 1
    assert refused(headers=(child, bytes(tampered))) == "HeaderHashMismatch"
    # A header that hashes right but carries the wrong number: a child numbered as its parent.
    renumbered = rlp.encode([*child_fields[:8], VECTOR_BLOCK.to_bytes(4, "big"), *fields[9:]])
    transact(w3, headers.functions.storeHeader(VECTOR_BLOCK + 1, keccak256(renumbered), b"\x01" * 32))
    assert refused(headers=(renumbered, header)) == "HeaderNumberMismatch"


def test_a_batch_shares_the_real_mainnet_header_walk(
    w3: Web3, headers: Contract, inbox: Contract, vector_trie: ReceiptsTrie, block: Any
) -> None:
    header = encode_block_header(block)  # block 21,925,176's real header (mainnet size)
    fields = rlp.decode(header)
    stored = VECTOR_BLOCK + 1  # a made-up child, stored: the walk is (child, vector block)
    child = rlp.encode([keccak256(header), *fields[1:8], stored.to_bytes(4, "big"), *fields[9:]])
    transact(w3, headers.functions.storeHeader(stored, keccak256(child), b"\x01" * 32))
    proofs = [
        ReceiptProof(stored, (child, header), index, vector_trie.proof_nodes(index)) for index in (20, 47)
    ]
    shared = share_nodes(proofs)
    assert shared[1].headers == (b"", b"")

    def batch(batch_proofs: Any) -> str:
        encoded = [encode_receipt_proof(p) for p in batch_proofs]
        return refusal(
            inbox, inbox.functions.deliverFromEthereumBatch(encoded, [encode_delivery(1, 0, 50_000)])
        )

    # The proofs verify (shared walk included); the delivery then finds a mainnet log, not a Dispatch.
    assert batch(shared) == "WrongEmitter"
    assert batch([shared[1], shared[1]]) == "MissingSharedHeader"
    tampered = bytearray(header)
    tampered[300] ^= 1
    assert (
        batch([shared[0], dataclasses.replace(shared[1], headers=(b"", bytes(tampered)))])
        == "HeaderHashMismatch"
    )


def test_tampered_vector_proofs_are_refused(
    inbox: Contract, vector_trie: ReceiptsTrie, stored_vector: int
) -> None:
    proof = vector_trie.proof(20, stored_vector)
    assert len(proof.nodes) == 3

    def refused(**changes: Any) -> str:
        changed = dataclasses.replace(proof, **changes)
        return refusal(inbox, inbox.functions.provenLog(encode_receipt_proof(changed), 0))

    def flip(node: int, position: int) -> tuple[bytes, ...]:
        nodes = [bytearray(n) for n in proof.nodes]
        nodes[node][position] ^= 0x01
        return tuple(bytes(n) for n in nodes)

    assert refused(nodes=flip(0, 40)) == "ProofNodeHashMismatch"
    assert refused(nodes=flip(1, 40)) == "ProofNodeHashMismatch"
    assert refused(nodes=flip(2, len(proof.nodes[2]) - 5)) == "ProofNodeHashMismatch"  # the receipt
    assert refused(nodes=proof.nodes[:2]) == "ProofTooShort"
    assert refused(nodes=proof.nodes[:1]) == "ProofTooShort"
    assert refused(nodes=()) == "ProofTooShort"
    assert refused(nodes=(*proof.nodes, proof.nodes[2])) == "ProofTooLong"
    # Another index's key leads elsewhere: to another hash (21: same branch) or another path.
    assert refused(transaction_index=21) == "ProofNodeHashMismatch"
    assert refused(transaction_index=300) == "ProofNodeHashMismatch"
    assert refused(transaction_index=2**32) == "TransactionIndexTooLarge"
    assert refused(block_number=VECTOR_BLOCK - 1) == "UnknownBlock"


# ---------------------------------------------------------------- receipt types


def make_receipt(transaction_type: int, logs: tuple[Log, ...], outcome: int | bytes = 1) -> Receipt:
    return Receipt(transaction_type, outcome, 21_000 * (transaction_type + 1), bytes(range(256)), logs)


def test_every_receipt_type_decodes_on_chain(w3: Web3, headers: Contract, inbox: Contract) -> None:
    logs = (Log(b"\x11" * 20, (b"\x22" * 32,), b"data"), Log(b"\x33" * 20, (), b""))
    receipts = [make_receipt(t, logs) for t in (0, 1, 2, 3, 4)]
    receipts.append(make_receipt(0, logs, outcome=b"\x44" * 32))  # pre-Byzantium state root
    trie = ReceiptsTrie(receipts)
    number = commit(w3, headers, trie.root)
    for index, receipt in enumerate(receipts):
        proof = trie.proof(index, number)
        assert proven_log(inbox, proof, 1) == (
            receipt.transaction_type,
            Web3.to_checksum_address(b"\x33" * 20),
            [],
            b"",
        )
        assert proven_log(inbox, proof, 0)[0::2] == (receipt.transaction_type, [b"\x22" * 32])


@pytest.mark.parametrize("first_byte", [0x00, 0x05, 0x7F, 0x80, 0xB8])
def test_unknown_receipt_types_are_refused(
    w3: Web3, headers: Contract, inbox: Contract, first_byte: int
) -> None:
    encoded = encode_receipt(make_receipt(2, ()))
    proof = single_leaf_proof(w3, headers, bytes([first_byte]) + encoded[1:])
    name = refusal(inbox, inbox.functions.provenLog(encode_receipt_proof(proof), 0))
    assert name == "UnsupportedReceiptType"


def test_every_truncation_of_a_receipt_is_refused_with_a_typed_error(
    w3: Web3, headers: Contract, inbox: Contract
) -> None:
    encoded = encode_receipt(make_receipt(2, (Log(b"\x11" * 20, (b"\x22" * 32,), b"x" * 40),)))
    names = set()
    for cut in [1, 2, 3, 5, 40, 260, 270, len(encoded) - 40, len(encoded) - 1]:
        proof = single_leaf_proof(w3, headers, encoded[:cut])
        names.add(refusal(inbox, inbox.functions.provenLog(encode_receipt_proof(proof), 0)))
    assert names <= {"RLPTruncated", "RLPTrailingBytes", "MalformedReceipt", "LogIndexOutOfRange"}, names
    assert "RLPTruncated" in names


# ---------------------------------------------------------------- crafted trie nodes


def test_malformed_nodes_are_refused(w3: Web3, headers: Contract, inbox: Contract) -> None:
    receipt = encode_receipt(make_receipt(2, (Log(b"\x11" * 20, (), b""),)))
    key = [8, 0]  # rlp(0) = 0x80

    def refused(nodes: list[bytes], index: int = 0) -> str:
        proof = crafted_proof(w3, headers, nodes, index)
        return refusal(inbox, inbox.functions.provenLog(encode_receipt_proof(proof), 0))

    leaf = rlp.encode([hex_prefix(key, leaf=True), receipt])
    assert refused([leaf[:-1]]) == "RLPTruncated"  # the list's length points past the end
    assert refused([leaf + b"\x00"]) == "RLPTrailingBytes"
    assert refused([b"\xc7\xb8\x05abcde"]) == "RLPNonCanonical"  # long form for a 5-byte string
    assert refused([b"\xf8\x03" + b"\x80\x80\x80"]) == "RLPNonCanonical"  # long list for 3 bytes
    assert refused([b"\x81\x05"]) == "RLPNonCanonical"  # a single byte below 0x80, wrapped
    assert refused([rlp.encode([hex_prefix([8, 1], leaf=True), receipt])]) == "ProofPathMismatch"
    assert refused([rlp.encode([hex_prefix([8], leaf=True), receipt])]) == "ProofPathMismatch"  # too short
    assert refused([rlp.encode([hex_prefix([8, 0, 1], leaf=True), receipt])]) == "ProofPathMismatch"
    # Extension/leaf confusion: an extension flag on the value, a leaf flag on a child reference.
    assert refused([rlp.encode([hex_prefix(key, leaf=False), receipt])]) == "InvalidProofNode"
    child = keccak256(leaf)
    assert refused([rlp.encode([hex_prefix([8], leaf=True), child]), leaf]) == "ProofPathMismatch"
    assert refused([rlp.encode([hex_prefix([8], leaf=False), child]), leaf]) == "ProofPathMismatch"
    leaf_below = rlp.encode([hex_prefix([0], True), receipt])
    extension = rlp.encode([hex_prefix([8], leaf=False), keccak256(leaf_below)])
    assert refused([extension]) == "ProofTooShort"
    proof = crafted_proof(w3, headers, [extension, leaf_below])
    assert proven_log(inbox, proof, 0)[0] == 2  # an extension, then a leaf: valid
    assert refused([rlp.encode([b"\x40" + b"\x80", receipt])]) == "InvalidProofNode"  # flag 4
    assert refused([rlp.encode([b"\x35", receipt])]) == "ProofPathMismatch"  # odd leaf, nibble 5
    assert refused([rlp.encode([b"\x08", receipt])]) == "InvalidProofNode"  # even path, non-zero pad
    assert refused([rlp.encode([hex_prefix(key, True), b""])]) == "ValueNotInTrie"
    assert refused([rlp.encode([hex_prefix(key, True), [b"\x01"]])]) == "RLPUnexpectedKind"
    # Branches: 16 or 18 items, an empty slot, a slot that is not a hash, an inline child.
    branch = [b""] * 17
    assert refused([rlp.encode(branch[:16])]) == "InvalidProofNode"
    assert refused([rlp.encode([*branch, b""])]) == "InvalidProofNode"
    assert refused([rlp.encode(branch)]) == "ValueNotInTrie"
    branch[8] = b"\x01" * 31
    assert refused([rlp.encode(branch)]) == "InvalidProofNode"
    branch[8] = [hex_prefix([0], True), b"v"]
    assert refused([rlp.encode(branch)]) == "RLPUnexpectedKind"
    branch[8] = child
    assert refused([rlp.encode(branch), leaf]) == "ProofPathMismatch"  # 2 path nibbles after the branch's 1
    assert (
        refused([rlp.encode(branch), rlp.encode([hex_prefix([0], True), receipt])]) == "ProofNodeHashMismatch"
    )
    assert refused([rlp.encode([b"\x01"])]) == "RLPTruncated"  # one item: neither kind
    assert refused([rlp.encode(b"not a list" * 4)]) == "RLPUnexpectedKind"


def test_branch_then_leaf_crafted_trie_verifies(w3: Web3, headers: Contract, inbox: Contract) -> None:
    receipt = encode_receipt(make_receipt(2, (Log(b"\x11" * 20, (), b""),)))
    leaf = rlp.encode([hex_prefix([0], leaf=True), receipt])
    branch: list[Any] = [b""] * 17
    branch[8] = keccak256(leaf)
    proof = crafted_proof(w3, headers, [rlp.encode(branch), leaf])
    assert proven_log(inbox, proof, 0)[0] == 2
    # The same nodes, asked for index 1 (key 0x01): slot 0 of the branch is empty.
    assert (
        refusal(
            inbox,
            inbox.functions.provenLog(
                encode_receipt_proof(ReceiptProof(proof.block_number, (), 1, proof.nodes)), 0
            ),
        )
        == "ValueNotInTrie"
    )


# ---------------------------------------------------------------- Dispatch logs


def dispatch_message(nonce: int = 7, origin: int = ORIGIN, destination: int = DESTINATION) -> bytes:
    return Message(
        version=3,
        nonce=nonce,
        origin=origin,
        sender=address_to_bytes32("0x" + "ab" * 20),
        destination=destination,
        recipient=address_to_bytes32("0x" + "cd" * 20),
        body=b"a body of some length",
    ).encode()


def dispatch_log(
    message: bytes,
    *,
    data: bytes | None = None,
    topics: tuple[bytes, ...] | None = None,
    emitter: str = SOURCE,
    nonce: int | None = None,
) -> Log:
    nonce = int.from_bytes(message[1:5], "big") if nonce is None else nonce
    destination = int.from_bytes(message[41:45], "big")
    default_topics = (DISPATCH_TOPIC, keccak256(message), destination.to_bytes(32, "big"))
    return Log(
        bytes.fromhex(emitter[2:]),
        default_topics if topics is None else topics,
        abi_encode(["uint32", "bytes"], [nonce, message]) if data is None else data,
    )


def test_dispatch_logs_are_checked_strictly(w3: Web3, headers: Contract, inbox: Contract) -> None:
    message = dispatch_message()
    canonical = abi_encode(["uint32", "bytes"], [7, message])
    cases: dict[str, Log] = {
        "valid": dispatch_log(message),
        "WrongEmitter": dispatch_log(message, emitter="0x" + "77" * 20),
        "NotDispatchEvent": dispatch_log(
            message, topics=(b"\x01" * 32, keccak256(message), (2).to_bytes(32, "big"))
        ),
        "MalformedLog": dispatch_log(
            message, topics=(DISPATCH_TOPIC, keccak256(message), (2).to_bytes(32, "big"), b"\0" * 32)
        ),
        "RLPTruncated": dispatch_log(message, topics=(DISPATCH_TOPIC, keccak256(message))),
        "MessageIdMismatch": dispatch_log(
            message, topics=(DISPATCH_TOPIC, b"\x09" * 32, (2).to_bytes(32, "big"))
        ),
        "DestinationTopicMismatch": dispatch_log(
            message, topics=(DISPATCH_TOPIC, keccak256(message), (3).to_bytes(32, "big"))
        ),
        "NonceMismatch": dispatch_log(message, nonce=8),
        "MessageOriginMismatch": dispatch_log(dispatch_message(origin=5)),
        "bad offset": dispatch_log(message, data=canonical[:63] + b"\x60" + canonical[64:]),
        "length past the end": dispatch_log(
            message, data=canonical[:95] + bytes([len(message) + 40]) + canonical[96:]
        ),
        "short length": dispatch_log(
            message, data=canonical[:95] + bytes([len(message) - 1]) + canonical[96:]
        ),
        "dirty padding": dispatch_log(message, data=canonical[:-1] + b"\x01"),
        "extra word": dispatch_log(message, data=canonical + bytes(32)),
        "nonce above uint32": dispatch_log(message, data=b"\x01" + canonical[1:]),
        "no data": dispatch_log(message, data=b""),
        "short header": dispatch_log(
            message[:76], nonce=7, data=abi_encode(["uint32", "bytes"], [7, message[:76]])
        ),
    }
    receipts = [make_receipt(2, (Log(b"\x11" * 20, (), b""), log)) for log in cases.values()]
    trie = ReceiptsTrie(receipts)
    number = commit(w3, headers, trie.root)
    for index, name in enumerate(cases):
        call = inbox.functions.provenMessage(encode_receipt_proof(trie.proof(index, number)), 1)
        if name == "valid":
            assert call.call() == [keccak256(message), message]
            continue
        expected = name if name[0].isupper() else "MalformedDispatchData"
        assert (name, refusal(inbox, call)) == (name, expected)


def test_contracts_fit_the_code_size_limit() -> None:
    """EIP-170: the Gateway carries the verifier hook within 24,576 bytes, and so does the inbox."""
    for name in ("Gateway", "EthereumInbox"):
        code = load_artifact(name)["deployedBytecode"]
        assert (len(code) - 2) // 2 <= 24_576, name


def test_inbox_errors_decode_for_the_submitter() -> None:
    selector = keccak256(b"WrongEmitter(address)")[:4]
    decoded = decode_contract_error(selector + bytes(12) + b"\x11" * 20)
    assert (decoded.name, decoded.arguments) == ("WrongEmitter", ("0x" + "11" * 20,))


def inbox_error_names(inbox: Contract) -> set[str]:
    return {entry["name"] for entry in inbox.abi if entry["type"] == "error"}


def test_mutated_receipts_and_nodes_revert_with_typed_errors_only(
    w3: Web3, headers: Contract, inbox: Contract
) -> None:
    """Deterministic mutations (flips, cuts, insertions) of a valid Dispatch receipt and of a
    valid trie node, each committed on-chain so the hash check passes and the decoders see them:
    every outcome is the valid result or one of the inbox's custom errors (no panic, no empty
    revert, no out-of-gas: web3 raises another exception type for those, failing the test)."""
    generator = random.Random(13)
    message = dispatch_message()
    receipt = encode_receipt(make_receipt(2, (Log(b"\x11" * 20, (), b"x"), dispatch_log(message))))
    node = rlp.encode([hex_prefix([8, 0], leaf=True), receipt])
    known = inbox_error_names(inbox)
    seen: set[str] = set()
    for round_ in range(48):
        target = bytearray(receipt if round_ % 2 == 0 else node)
        for _ in range(generator.randint(1, 3)):
            position = generator.randrange(len(target))
            action = generator.randrange(3)
            if action == 0:
                target[position] = generator.randrange(256)
            elif action == 1:
                del target[position:]
                if not target:
                    target = bytearray(b"\xc0")
            else:
                target[position:position] = bytes([generator.randrange(256)])
        if round_ % 2 == 0:
            proof = single_leaf_proof(w3, headers, bytes(target))
        else:
            proof = crafted_proof(w3, headers, [bytes(target)])
        call = inbox.functions.provenMessage(encode_receipt_proof(proof), 1)
        try:
            call.call()
            seen.add("valid")
        except ContractCustomError as error:
            name, _ = decode_error(inbox, bytes.fromhex(str(error.data)[2:]))
            assert name in known
            seen.add(name)
    assert len(seen - {"valid"}) >= 4, seen


def test_receipt_keys_of_every_length(w3: Web3, headers: Contract, inbox: Contract) -> None:
    """rlp(index) is one byte up to 127, then two, three, ... bytes: each key length proves."""
    receipts = [make_receipt(2, (Log(index.to_bytes(20, "big"), (), b""),)) for index in range(300)]
    trie = ReceiptsTrie(receipts)
    number = commit(w3, headers, trie.root)
    for index in (0, 1, 127, 128, 255, 256, 299):
        assert proven_log(inbox, trie.proof(index, number), 0)[1] == Web3.to_checksum_address(
            index.to_bytes(20, "big")
        )
    encoded = encode_receipt(receipts[0])
    for index in (70_000, 2**24, 2**32 - 1):
        proof = single_leaf_proof(w3, headers, encoded, index=index)
        assert proven_log(inbox, proof, 0)[0] == 2
        wrong = dataclasses.replace(proof, transaction_index=index - 1)
        assert (
            refusal(inbox, inbox.functions.provenLog(encode_receipt_proof(wrong), 0)) == "ProofPathMismatch"
        )
