"""Messages delivered by receipt proof, end to end on a real anvil, with no committee.

A source Gateway (domain 1) and a destination Gateway (domain 2) share one anvil, each with the
example Counter. The destination enrols an EthereumInbox as origin 1's verifier
(`enrollOriginVerifier`). A test-only StoredExecutionHeaders stands in for the light client:
the test stores the real block hash and receipts root of the block holding a real Dispatch, and
the proof is built from anvil's own receipts (`eth_getBlockReceipts`).

Checked: exactly-once delivery (AlreadyDelivered alone, DeliverySkipped in a batch), a
look-alike Gateway's log refused, the recipient rules of committee deliveries (a failing
recipient leaves the message deliverable, exact gas), the pause, `deliverVerified` refused to
anyone but the enrolled verifier, checkpoint deliveries refused for a verifier origin, the
owner-only enrolment and its switch, the header walk over anvil's real headers, and the gas
measurement helper the bench calls.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from adapters.ethereum.inbox import deploy_inbox, deploy_stored_headers
from adapters.ethereum.inbox_gas import measure_delivery_gas
from adapters.ethereum.receipt_proofs import (
    ReceiptProof,
    build_receipt_proof,
    dispatch_logs,
    encode_delivery,
    encode_receipt_proof,
    header_walk,
    share_nodes,
)
from adapters.evm.admin import AdminCallRefused, GatewayAdmin
from adapters.evm.anvil import DEV_PRIVATE_KEYS
from adapters.evm.deploy import SCHEME_VERIFIER, TransactionSender, contract, rpc_request, start_deployment
from adapters.evm.gas import deploy_contract
from relay.chains import DEFAULT_HANDLE_GAS_LIMIT
from relay.verify.hashing import keccak256
from relay.verify.message import address_to_bytes32
from tests.integration.gateway_bridge import account, decode_error, events, transact

pytestmark = [pytest.mark.anvil]

ORIGIN = 1
DESTINATION = 2
GAS = DEFAULT_HANDLE_GAS_LIMIT
OWNER_KEY = DEV_PRIVATE_KEYS[1]


@dataclass
class Route:
    w3: Web3
    rpc_url: str
    owner: str
    source: Contract
    source_counter: Contract
    destination: Contract
    counter: Contract
    headers: Contract
    inbox: Contract


@dataclass(frozen=True)
class Sent:
    """One dispatched message with its proof."""

    proof: ReceiptProof
    log_index: int
    message_id: bytes
    message: bytes


@pytest.fixture(scope="module")
def route(w3: Web3) -> Route:
    rpc_url = str(w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    sender = TransactionSender(rpc_url, OWNER_KEY)
    source, source_hashes = start_deployment(sender, ORIGIN)
    destination, destination_hashes = start_deployment(sender, DESTINATION)
    sender.wait(source_hashes + destination_hashes)
    headers = deploy_stored_headers(sender)
    inbox = deploy_inbox(sender, destination.gateway, headers, ORIGIN, source.gateway)
    return Route(
        w3,
        rpc_url,
        sender.address,
        contract(w3, "Gateway", source.gateway),
        contract(w3, "Counter", source.counter),
        contract(w3, "Gateway", destination.gateway),
        contract(w3, "Counter", destination.counter),
        contract(w3, "StoredExecutionHeaders", headers),
        contract(w3, "EthereumInbox", inbox),
    )


def owner_transact(route: Route, call: Any) -> Any:
    receipt = route.w3.eth.wait_for_transaction_receipt(call.transact({"from": route.owner}))
    assert receipt["status"] == 1
    return receipt


def store_block(route: Route, number: int, receipts_root: bytes | None = None) -> dict[str, Any]:
    """Store anvil's block `number` (hash, and its receipts root unless given) as if finalized."""
    block = rpc_request(route.rpc_url, "eth_getBlockByNumber", [hex(number), False])
    root = bytes.fromhex(block["receiptsRoot"][2:]) if receipts_root is None else receipts_root
    owner_transact(route, route.headers.functions.storeHeader(number, bytes.fromhex(block["hash"][2:]), root))
    return dict(block)


def send(route: Route, body: bytes = b"hello", counter: Contract | None = None, store: bool = True) -> Sent:
    """Dispatch one message through `counter` (the source Counter) and prove it."""
    app = route.source_counter if counter is None else counter
    receipt = transact(
        route.w3, app.functions.send(DESTINATION, address_to_bytes32(route.counter.address), body)
    )
    number = int(receipt["blockNumber"])
    receipts = rpc_request(route.rpc_url, "eth_getBlockReceipts", [hex(number)])
    if store:
        store_block(route, number)
    index = int(receipt["transactionIndex"])
    (log,) = dispatch_logs(receipts[index], str(app.functions.gateway().call()))
    (event,) = events(contract(route.w3, "Gateway", app.functions.gateway().call()), "Dispatch", receipt)
    return Sent(
        build_receipt_proof(receipts, index, number), log.log_index, log.message_id, bytes(event["message"])
    )


def deliver(route: Route, sent: Sent, gas_limit: int = GAS) -> Any:
    call = route.inbox.functions.deliverFromEthereum(
        encode_receipt_proof(sent.proof), sent.log_index, gas_limit
    )
    return transact(route.w3, call)


def refusal(
    decoder: Contract, call: Any, fields: dict[str, Any] | None = None
) -> tuple[str, tuple[Any, ...]]:
    with pytest.raises(ContractCustomError) as raised:
        call.call(fields)
    return decode_error(decoder, bytes.fromhex(str(raised.value.data)[2:]))


def test_enrolment_is_visible_through_the_gateway_views(route: Route) -> None:
    assert route.destination.functions.committeeScheme(ORIGIN).call() == SCHEME_VERIFIER
    assert route.destination.functions.sourceGatewayOf(ORIGIN).call() == address_to_bytes32(
        route.source.address
    )
    assert route.inbox.functions.sourceGateway().call() == route.source.address


def test_a_message_is_delivered_exactly_once(route: Route) -> None:
    sent = send(route, b"exactly once")
    received = route.counter.functions.received().call()
    assert route.inbox.functions.provenMessage(encode_receipt_proof(sent.proof), sent.log_index).call() == [
        sent.message_id,
        sent.message,
    ]
    receipt = deliver(route, sent)
    (delivered,) = events(route.destination, "Delivered", receipt)
    assert delivered["id"] == sent.message_id and delivered["origin"] == ORIGIN
    assert route.counter.functions.received().call() == received + 1
    assert route.counter.functions.lastBodyHash().call() == keccak256(b"exactly once")
    again = route.inbox.functions.deliverFromEthereum(encode_receipt_proof(sent.proof), sent.log_index, GAS)
    assert refusal(route.inbox, again) == ("AlreadyDelivered", (sent.message_id,))
    batch = route.inbox.functions.deliverFromEthereumBatch(
        [encode_receipt_proof(sent.proof)], [encode_delivery(0, sent.log_index, GAS)]
    )
    (skipped,) = events(route.inbox, "DeliverySkipped", transact(route.w3, batch))
    assert skipped["id"] == sent.message_id
    assert route.counter.functions.received().call() == received + 1


def test_a_batch_delivers_each_message_once(route: Route) -> None:
    sent = [send(route, bytes([i]) * 10) for i in range(3)]
    received = route.counter.functions.received().call()
    proofs = [encode_receipt_proof(s.proof) for s in sent]
    deliveries = [encode_delivery(i, s.log_index, GAS) for i, s in enumerate(sent)]
    deliveries.append(encode_delivery(1, sent[1].log_index, GAS))  # the same message twice
    receipt = transact(route.w3, route.inbox.functions.deliverFromEthereumBatch(proofs, deliveries))
    assert [e["id"] for e in events(route.destination, "Delivered", receipt)] == [s.message_id for s in sent]
    assert [e["id"] for e in events(route.inbox, "DeliverySkipped", receipt)] == [sent[1].message_id]
    assert route.counter.functions.received().call() == received + 3
    empty = route.inbox.functions.deliverFromEthereumBatch(proofs, [])
    assert refusal(route.inbox, empty) == ("EmptyBatch", ())
    out_of_range = route.inbox.functions.deliverFromEthereumBatch(proofs, [encode_delivery(3, 0, GAS)])
    assert refusal(route.inbox, out_of_range) == ("ProofIndexOutOfRange", (3, 3))


def test_a_look_alike_gateway_on_the_origin_is_refused(route: Route) -> None:
    impostor = deploy_contract(route.w3, "Gateway", ORIGIN)
    app = deploy_contract(route.w3, "Counter", impostor.address)
    sent = send(route, b"forged", counter=app)
    call = route.inbox.functions.deliverFromEthereum(encode_receipt_proof(sent.proof), sent.log_index, GAS)
    assert refusal(route.inbox, call) == ("WrongEmitter", (impostor.address,))


def test_a_failing_recipient_leaves_the_message_deliverable(route: Route) -> None:
    sent = send(route, b"fails first")
    owner_transact(route, route.counter.functions.setFailing(True))
    try:
        (failed,) = events(route.destination, "DeliveryFailed", deliver(route, sent))
    finally:
        owner_transact(route, route.counter.functions.setFailing(False))
    assert failed["id"] == sent.message_id
    assert decode_error(route.counter, bytes(failed["reason"]))[0] == "FailingOnPurpose"
    nonce = int.from_bytes(sent.message[1:5], "big")
    assert not route.destination.functions.delivered(ORIGIN, nonce).call()
    (delivered,) = events(route.destination, "Delivered", deliver(route, sent))
    assert delivered["id"] == sent.message_id
    assert route.destination.functions.delivered(ORIGIN, nonce).call()


def test_the_recipient_gets_exactly_its_gas_limit(route: Route) -> None:
    sent = send(route, b"needs gas")
    call = route.inbox.functions.deliverFromEthereum(
        encode_receipt_proof(sent.proof), sent.log_index, 2_000_000
    )
    name, arguments = refusal(route.destination, call, {"gas": 1_000_000})
    assert (name, arguments[:2]) == ("InsufficientGasForRecipient", (sent.message_id, 2_000_000))
    # A limit too small for Counter.handle: its own failure, the message stays deliverable.
    (failed,) = events(route.destination, "DeliveryFailed", deliver(route, sent, gas_limit=5_000))
    assert decode_error(route.destination, bytes(failed["reason"])) == ("RecipientOutOfGas", (5_000,))
    events(route.destination, "Delivered", deliver(route, sent))


def test_the_pause_applies_to_receipt_deliveries(route: Route) -> None:
    sent = send(route, b"paused")
    owner_transact(route, route.destination.functions.pauseDelivery(ORIGIN))
    try:
        call = route.inbox.functions.deliverFromEthereum(
            encode_receipt_proof(sent.proof), sent.log_index, GAS
        )
        assert refusal(route.destination, call) == ("DeliveryIsPaused", (ORIGIN,))
    finally:
        owner_transact(route, route.destination.functions.unpauseDelivery(ORIGIN))
    deliver(route, sent)


def test_only_the_enrolled_verifier_may_call_deliver_verified(route: Route) -> None:
    sent = send(route, b"direct", store=False)
    direct = route.destination.functions.deliverVerified(sent.message, GAS)
    caller = account(route.w3, 0)
    assert refusal(route.destination, direct, {"from": caller}) == ("NotVerifier", (ORIGIN, caller))
    assert refusal(route.destination, direct, {"from": route.owner}) == ("NotVerifier", (ORIGIN, route.owner))
    short = route.destination.functions.deliverVerified(sent.message[:76], GAS)
    assert refusal(route.destination, short) == ("MalformedMessage", (76,))
    checkpoint = (ORIGIN, address_to_bytes32(route.source.address), 1, b"\x00" * 32, 0)
    process = route.destination.functions.process(
        checkpoint, b"", bytes(256), sent.message, [bytes(32)] * 32, GAS
    )
    assert refusal(route.destination, process) == ("WrongCommitteeScheme", (ORIGIN, 3))


def test_enrolment_is_owner_only_and_switchable(route: Route) -> None:
    sent = send(route, b"switch")
    # After send: the admin keeps the owner's nonce locally from here on.
    admin = GatewayAdmin(route.rpc_url, OWNER_KEY, route.destination.address)
    stranger = GatewayAdmin(route.rpc_url, DEV_PRIVATE_KEYS[2], route.destination.address)
    with pytest.raises(AdminCallRefused, match="NotOwner"):
        stranger.enroll_origin_verifier(ORIGIN, route.source.address, route.inbox.address)
    with pytest.raises(AdminCallRefused, match="VerifierWithoutCode"):
        admin.enroll_origin_verifier(ORIGIN, route.source.address, account(route.w3, 3))
    with pytest.raises(AdminCallRefused, match="OriginAlreadyEnrolled"):
        admin.enroll_origin_verifier(ORIGIN, route.counter.address, route.inbox.address)
    other = deploy_inbox(
        admin.sender,
        route.destination.address,
        route.headers.address,
        ORIGIN,
        route.source.address,
        enroll=False,
    )
    admin.enroll_origin_verifier(ORIGIN, route.source.address, other)
    try:
        call = route.inbox.functions.deliverFromEthereum(
            encode_receipt_proof(sent.proof), sent.log_index, GAS
        )
        assert refusal(route.destination, call) == ("NotVerifier", (ORIGIN, route.inbox.address))
    finally:
        admin.enroll_origin_verifier(ORIGIN, route.source.address, route.inbox.address)
    deliver(route, sent)


def test_header_walk_over_anvil_headers(route: Route) -> None:
    sent = send(route, b"older block", store=False)
    first = sent.proof.block_number
    for _ in range(2):
        rpc_request(route.rpc_url, "evm_mine", [])
    # Only the newest block is "finalized", and with a receipts root that proves nothing.
    store_block(route, first + 2, receipts_root=b"\x01" * 32)
    blocks = [
        rpc_request(route.rpc_url, "eth_getBlockByNumber", [hex(n), False])
        for n in (first + 2, first + 1, first)
    ]
    walked = ReceiptProof(first + 2, header_walk(blocks), sent.proof.transaction_index, sent.proof.nodes)
    direct = route.inbox.functions.deliverFromEthereum(encode_receipt_proof(sent.proof), sent.log_index, GAS)
    assert refusal(route.inbox, direct) == ("UnknownBlock", (first,))
    (delivered,) = events(
        route.destination,
        "Delivered",
        deliver(route, Sent(walked, sent.log_index, sent.message_id, sent.message)),
    )
    assert delivered["id"] == sent.message_id


def test_gas_measurement_runs(route: Route) -> None:
    gas = measure_delivery_gas(route.rpc_url, DEV_PRIVATE_KEYS[2], batch_sizes=(2,))
    assert gas.receipts_in_block == 4 and gas.lone_proof_nodes >= 2
    assert 0 < gas.per_message[2] and 0 < gas.lone < gas.first_delivery
    assert gas.lone < gas.walk_lone[8] < gas.walk_lone[31] and gas.walk_header_bytes > 500
    assert 0 < gas.walk_batch_shared < gas.walk_batch_unshared  # the walks' shared headers sent once


def test_committee_views_refuse_a_verifier_origin(route: Route) -> None:
    assert route.destination.functions.verifierOf(ORIGIN).call() == route.inbox.address
    assert refusal(route.destination, route.destination.functions.committeeOf(ORIGIN)) == (
        "WrongCommitteeScheme",
        (ORIGIN, 3),
    )
    assert refusal(route.destination, route.destination.functions.verifierOf(7)) == ("UnknownOrigin", (7,))


def test_a_batch_of_one_block_sends_its_shared_nodes_once(route: Route) -> None:
    rpc_request(route.rpc_url, "evm_setAutomine", [False])
    try:
        target = address_to_bytes32(route.counter.address)
        hashes = [
            route.source_counter.functions.send(DESTINATION, target, bytes([i])).transact() for i in range(3)
        ]
        rpc_request(route.rpc_url, "evm_mine", [])
    finally:
        rpc_request(route.rpc_url, "evm_setAutomine", [True])
    mined = [route.w3.eth.wait_for_transaction_receipt(h) for h in hashes]
    number = int(mined[0]["blockNumber"])
    assert {int(r["blockNumber"]) for r in mined} == {number}
    receipts = rpc_request(route.rpc_url, "eth_getBlockReceipts", [hex(number)])
    store_block(route, number)
    indices = [int(r["transactionIndex"]) for r in mined]
    proofs = [build_receipt_proof(receipts, index, number) for index in indices]
    logs = [dispatch_logs(receipts[index], route.source.address)[0] for index in indices]
    shared = share_nodes(proofs)
    assert shared[0] == proofs[0] and all(p.nodes[0] == b"" for p in shared[1:])
    deliveries = [encode_delivery(i, log.log_index, GAS) for i, log in enumerate(logs)]

    def batch(batch_proofs: Any) -> Any:
        encoded = [encode_receipt_proof(p) for p in batch_proofs]
        return route.inbox.functions.deliverFromEthereumBatch(encoded, deliveries)

    # An empty node with nothing before it, or standing for the wrong node, is refused.
    assert refusal(route.inbox, batch([shared[1], *shared[1:]])) == ("MissingSharedNode", (0,))
    wrong = dataclasses.replace(shared[1], nodes=(shared[1].nodes[0], b"", *shared[1].nodes[2:]))
    assert refusal(route.inbox, batch([shared[0], wrong, shared[2]]))[0] in {
        "ProofNodeHashMismatch",
        "ProofPathMismatch",
    }
    single = route.inbox.functions.deliverFromEthereum(
        encode_receipt_proof(shared[1]), logs[1].log_index, GAS
    )
    assert refusal(route.inbox, single) == ("MissingSharedNode", (0,))
    receipt = transact(route.w3, batch(shared))
    assert [e["id"] for e in events(route.destination, "Delivered", receipt)] == [
        log.message_id for log in logs
    ]


def test_a_batch_sends_the_headers_its_walks_share_once(route: Route) -> None:
    sent = [send(route, bytes([i]) * 4, store=False) for i in range(3)]  # blocks n, n+1, n+2
    first = sent[0].proof.block_number
    assert [s.proof.block_number for s in sent] == [first, first + 1, first + 2]
    for _ in range(2):
        rpc_request(route.rpc_url, "evm_mine", [])
    stored = first + 4  # as on mainnet: only a later block is finalized (and one between, below)
    block = store_block(route, stored)
    store_block(route, first + 3)
    blocks = [
        rpc_request(route.rpc_url, "eth_getBlockByNumber", [hex(n), False])
        for n in range(stored, first - 1, -1)
    ]
    walk = header_walk(blocks)

    def walked(s: Sent, anchor: int = stored) -> ReceiptProof:
        start = stored - anchor
        return ReceiptProof(
            anchor, walk[start : stored - s.proof.block_number + 1], s.proof.transaction_index, s.proof.nodes
        )

    # Blocks n+1, n+2, n: the second walk is a prefix of the first (reused whole), the third
    # extends the second (three headers reused, two sent and checked).
    order = [sent[1], sent[2], sent[0]]
    proofs = share_nodes([walked(s) for s in order])
    assert [len(p.headers) for p in proofs] == [4, 3, 5]
    assert proofs[1].headers == (b"",) * 3 and proofs[2].headers == (b"",) * 3 + walk[3:5]
    deliveries = [encode_delivery(i, s.log_index, GAS) for i, s in enumerate(order)]

    def batch(batch_proofs: Any) -> Any:
        encoded = [encode_receipt_proof(p) for p in batch_proofs]
        return route.inbox.functions.deliverFromEthereumBatch(encoded, deliveries)

    def with_headers(proof: ReceiptProof, headers: tuple[bytes, ...]) -> ReceiptProof:
        return dataclasses.replace(proof, headers=headers)

    # An empty header with no previous proof (first of a batch, or alone) or past the previous
    # proof's walk is refused; so is a tampered header, shared or not.
    assert refusal(route.inbox, batch([proofs[1], proofs[1], proofs[2]])) == ("MissingSharedHeader", (0,))
    lone = route.inbox.functions.deliverFromEthereum(encode_receipt_proof(proofs[1]), order[1].log_index, GAS)
    assert refusal(route.inbox, lone) == ("MissingSharedHeader", (0,))
    short = with_headers(proofs[2], (b"",) * 4 + walk[4:5])
    assert refusal(route.inbox, batch([proofs[0], proofs[1], short])) == ("MissingSharedHeader", (3,))
    tampered = walk[1][:-1] + bytes([walk[1][-1] ^ 1])
    resent = with_headers(proofs[1], (b"", tampered, b""))  # a shared header sent again, altered
    assert refusal(route.inbox, batch([proofs[0], resent, proofs[2]])) == ("HeaderHashMismatch", (1,))
    new = with_headers(proofs[2], (b"",) * 3 + (walk[4], walk[4]))  # a header not shared, altered
    assert refusal(route.inbox, batch([proofs[0], proofs[1], new])) == ("HeaderHashMismatch", (3,))
    # Walks from different stored blocks: each sent whole they mix; a header shared across them
    # is the other walk's and fails its hash or number check.
    mixed = [walked(order[0], first + 3), walked(order[1]), walked(order[2], first + 3)]
    assert share_nodes(mixed)[1].headers == walked(order[1]).headers  # nothing in common
    batch(share_nodes(mixed)).call()
    across = with_headers(mixed[2], (b"",) * len(mixed[2].headers))
    assert refusal(route.inbox, batch([mixed[0], mixed[1], across])) == ("HeaderHashMismatch", (0,))
    # The reused walk must start from the same block, by number as well as by hash.
    owner_transact(
        route,
        route.headers.functions.storeHeader(
            stored + 1000, bytes.fromhex(block["hash"][2:]), bytes.fromhex(block["receiptsRoot"][2:])
        ),
    )
    renumbered = dataclasses.replace(proofs[1], block_number=stored + 1000)
    assert refusal(route.inbox, batch([proofs[0], renumbered, proofs[2]])) == (
        "HeaderNumberMismatch",
        (0, stored + 1000, stored),
    )

    receipt = transact(route.w3, batch(proofs))
    assert [e["id"] for e in events(route.destination, "Delivered", receipt)] == [s.message_id for s in order]
