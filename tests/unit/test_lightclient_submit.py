"""The submitter's light-client decisions that need no chain: which updates to skip, which
deliveries to leave out, and how contract refusals are named."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode as abi_encode
from web3 import exceptions as web3_errors

from adapters.evm.errors import InsufficientFunds, NonceConflict
from adapters.evm.lightclient_submit import (
    _estimate,
    compute_pending_batch,
    describe_revert,
    is_update_needed,
)
from relay import errors
from relay.chains.lightclient import ReceiptDelivery, ReceiptProof, StoredHeaders, share_trie_nodes
from relay.verify.hashing import keccak256
from relay.verify.message import Message


def message(nonce: int) -> Message:
    return Message.create(
        nonce=nonce, origin=1, sender=b"\x01" * 32, destination=2, recipient=b"\x02" * 32, body=b"x"
    )


def test_an_update_is_sent_only_if_it_moves_the_header_or_brings_the_missing_committee() -> None:
    at = StoredHeaders(latest_block=100, finalized_slot=500, period=3, has_next_committee=False)
    assert is_update_needed(at, finalized_slot=501, carries_next_committee=False, attested_period=3)
    assert not is_update_needed(at, finalized_slot=500, carries_next_committee=False, attested_period=3)
    assert is_update_needed(at, finalized_slot=400, carries_next_committee=True, attested_period=3)
    assert not is_update_needed(at, finalized_slot=400, carries_next_committee=True, attested_period=2)
    known = StoredHeaders(100, 500, 3, True)
    assert not is_update_needed(known, finalized_slot=400, carries_next_committee=True, attested_period=3)


def test_delivered_messages_are_left_out_with_the_proofs_only_they_used() -> None:
    proofs = [ReceiptProof(9, (), i, (bytes([i]),)) for i in range(3)]
    deliveries = [ReceiptDelivery(message(n), n % 3, 0, 100_000) for n in range(4)]  # n=3 reuses proof 0
    kept, pending = compute_pending_batch(proofs, deliveries, [True, False, True, False])
    assert kept == [proofs[1], proofs[0]]
    assert [(d.message.nonce, d.proof_index) for d in pending] == [(1, 0), (3, 1)]
    assert compute_pending_batch(proofs, deliveries, [True] * 4) == ([], [])


def test_refusals_are_named_by_the_contracts_errors_whatever_the_data() -> None:
    abi = [{"type": "error", "name": "UnknownBlock", "inputs": [{"name": "n", "type": "uint64"}]}]
    selector = keccak256(b"UnknownBlock(uint64)")[:4]
    assert describe_revert(abi, selector + abi_encode(["uint64"], [7])) == "UnknownBlock(7)"
    assert describe_revert(abi, selector + b"\x01") == "UnknownBlock()"  # malformed arguments
    assert describe_revert(abi, None) == "EmptyRevert()"
    assert describe_revert(abi, b"\xde\xad\xbe\xef" + b"\x00" * 4000).startswith("UnknownError(0xdeadbeef")
    assert len(describe_revert(abi, b"\xde\xad\xbe\xef" + b"\x00" * 4000)) < 250


def test_shared_trie_nodes_follow_the_inboxs_rule() -> None:
    root, branch_a, branch_b = b"root", b"branch-a", b"branch-b"
    proofs = [
        ReceiptProof(9, (), 0, (root, branch_a, b"leaf-0")),
        ReceiptProof(9, (), 1, (root, branch_a, b"leaf-1")),
        ReceiptProof(9, (), 2, (root, branch_b, b"leaf-2")),
        ReceiptProof(8, (), 0, (b"other-root", b"leaf")),
    ]
    shared = share_trie_nodes(proofs)
    assert shared[1].nodes == (b"", b"", b"leaf-1") and shared[2].nodes == (b"", branch_b, b"leaf-2")
    assert shared[0] == proofs[0] and shared[3] == proofs[3]


def test_shared_headers_follow_the_inboxs_rule() -> None:
    stored, parent, grandparent = b"header-100", b"header-99", b"header-98"
    proofs = [
        ReceiptProof(100, (stored, parent, grandparent), 0, (b"root-98", b"leaf")),
        ReceiptProof(100, (stored, parent), 3, (b"root-99", b"leaf")),  # a later block: a prefix
        ReceiptProof(100, (stored, parent, grandparent), 1, (b"root-98", b"leaf-1")),  # longer again
        ReceiptProof(100, (), 2, (b"root-100", b"leaf")),  # the stored block itself
        ReceiptProof(132, (b"header-132", b"header-131"), 0, (b"root-131", b"leaf")),  # another anchor
    ]
    shared = share_trie_nodes(proofs)
    assert shared[0] == proofs[0]
    assert shared[1].headers == (b"", b"") and shared[2].headers == (b"", b"", grandparent)
    assert shared[3].headers == () and shared[4].headers == proofs[4].headers
    assert [p.block_number for p in shared] == [100, 100, 100, 100, 132]


class _NodeRefuses:
    """A destination whose node answers eth_estimateGas with a JSON-RPC error (no revert)."""

    account = "0x" + "ab" * 20

    class transactions:  # stands for the destination's `transactions` attribute
        @staticmethod
        def read(method: str, call: Any) -> Any:
            return call()


class _Call:
    def __init__(self, message: str) -> None:
        self.message = message

    def estimate_gas(self, transaction: dict[str, Any]) -> int:
        raise web3_errors.Web3RPCError(self.message)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("nonce too low", NonceConflict), ("insufficient funds for gas * price + value", InsufficientFunds)],
)
def test_a_node_refusing_the_account_is_typed_not_a_refusal_of_the_proof(answer: str, expected: type) -> None:
    """As the committee path: the account's nonce or funds say nothing about the proof."""
    with pytest.raises(expected):
        _estimate(_NodeRefuses(), _Call(answer), [], errors.InvalidProof, through_gateway=True)  # type: ignore[arg-type]
