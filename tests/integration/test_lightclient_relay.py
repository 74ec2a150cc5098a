"""The relayer's receipt proofs and the submitter's DeliverByReceipt, on one real anvil, over real gRPC.

A source Gateway (domain 1) and a destination Gateway (domain 2) share one anvil; the destination
enrols an EthereumInbox as origin 1's verifier. The test-only StoredExecutionHeaders stands in
for the on-chain light client (the headers the test stores are anvil's real ones). The relayer's
`EthereumLightClientOrigin` proves each message from anvil's execution RPC against a stored
header (walking back by parent hash when the message's block is older), and a real submitter
(`relay.roles.submitter.Submitter`, its `EvmDestination` and its transaction machinery) delivers
them by `DeliverByReceipt` over gRPC: exactly once, and a tampered proof is refused before any gas
is paid. A lying execution RPC and a message the proven receipts do not hold are typed errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from web3 import Web3
from web3.contract import Contract

from adapters.ethereum.inbox import deploy_inbox, deploy_stored_headers
from adapters.ethereum.lightclient_origin import EthereumLightClientOrigin
from adapters.ethereum.transport import HttpExecutionTransport
from adapters.evm.anvil import DEV_PRIVATE_KEYS
from adapters.evm.config import EvmChainConfig
from adapters.evm.deploy import TransactionSender, contract, rpc_request, start_deployment
from relay.chains import DEFAULT_HANDLE_GAS_LIMIT
from relay.chains.lightclient import ReceiptDelivery, ReceiptProof, share_trie_nodes
from relay.config import SecretRef
from relay.errors import MessageNotInBlock, TransientError, UntrustedAnswer
from relay.peers import DeliveryOutcome
from relay.roles.submitter import Submitter, SubmitterConfig
from relay.rpc.clients import GrpcSubmitterClient
from relay.v1 import destination_pb2, destination_pb2_grpc
from relay.verify.ethereum.config import get_network
from relay.verify.message import Message, address_to_bytes32
from tests.integration.gateway_bridge import transact

pytestmark = [pytest.mark.anvil]

ORIGIN, DESTINATION = 1, 2
OWNER_KEY = DEV_PRIVATE_KEYS[1]
SUBMITTER_KEY = DEV_PRIVATE_KEYS[3]


@dataclass
class Setup:
    w3: Web3
    rpc_url: str
    owner: str
    source_counter: Contract
    counter: Contract
    headers: Contract
    origin: EthereumLightClientOrigin
    client: GrpcSubmitterClient
    stub: Any
    submitter_account: str


@pytest.fixture(scope="module")
def setup(w3: Web3) -> Iterator[Setup]:
    rpc_url = str(w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    sender = TransactionSender(rpc_url, OWNER_KEY)
    source, source_hashes = start_deployment(sender, ORIGIN)
    destination, destination_hashes = start_deployment(sender, DESTINATION)
    sender.wait(source_hashes + destination_hashes)
    headers = deploy_stored_headers(sender)
    inbox = deploy_inbox(sender, destination.gateway, headers, ORIGIN, source.gateway)
    chain = EvmChainConfig.model_validate(
        {
            "name": "destination",
            "domain": DESTINATION,
            "rpc_urls": [rpc_url],
            "gateway": destination.gateway,
            "light_client_origins": {ORIGIN: {"light_client": headers, "inbox": inbox}},
        }
    )
    submitter = Submitter(
        SubmitterConfig(
            chain=chain, key=SecretRef(value=SUBMITTER_KEY), listen="127.0.0.1:0", insecure_plaintext=True
        )
    ).start()
    address = f"127.0.0.1:{submitter.grpc_port}"
    channel = grpc.insecure_channel(address)
    origin = EthereumLightClientOrigin(
        beacon=None,  # type: ignore[arg-type]  # receipt proofs read only the execution RPC
        execution=HttpExecutionTransport(rpc_url),
        network=get_network("mainnet"),
        trusted_block_root=bytes(32),
        gateway=bytes.fromhex(source.gateway[2:]),
        origin_domain=ORIGIN,
    )
    client = GrpcSubmitterClient(address, None)
    try:
        yield Setup(
            w3,
            rpc_url,
            sender.address,
            contract(w3, "Counter", source.counter),
            contract(w3, "Counter", destination.counter),
            contract(w3, "StoredExecutionHeaders", headers),
            origin,
            client,
            destination_pb2_grpc.DestinationServiceStub(channel),
            submitter.destination.account,
        )
    finally:
        client.close()
        channel.close()
        submitter.stop()


def dispatch(setup: Setup, body: bytes) -> tuple[Message, int]:
    """Send one message from the source Counter; (the message, its block number)."""
    receipt = transact(
        setup.w3,
        setup.source_counter.functions.send(DESTINATION, address_to_bytes32(setup.counter.address), body),
    )
    gateway = contract(setup.w3, "Gateway", setup.source_counter.functions.gateway().call())
    (event,) = gateway.events.Dispatch().process_receipt(receipt)
    return Message.decode(bytes(event["args"]["message"])), int(receipt["blockNumber"])


def store(setup: Setup, number: int) -> tuple[bytes, bytes]:
    """Store anvil's block `number` as the light client would; (block hash, receipts root)."""
    block = rpc_request(setup.rpc_url, "eth_getBlockByNumber", [hex(number), False])
    block_hash, root = bytes.fromhex(block["hash"][2:]), bytes.fromhex(block["receiptsRoot"][2:])
    receipt = setup.w3.eth.wait_for_transaction_receipt(
        setup.headers.functions.storeHeader(number, block_hash, root).transact({"from": setup.owner})
    )
    assert receipt["status"] == 1
    return block_hash, root


def deliver(setup: Setup, proofs: Sequence[ReceiptProof], deliveries: Sequence[ReceiptDelivery]) -> Any:
    report = setup.client.deliver_by_receipt(ORIGIN, proofs, deliveries, 60).wait(60)
    assert report is not None
    return report


def test_messages_are_proven_from_the_rpc_and_delivered_by_receipt_exactly_once(setup: Setup) -> None:
    older, older_block = dispatch(setup, b"older block")
    newer, newer_block = dispatch(setup, b"stored block")
    assert newer_block > older_block
    anchor = store(setup, newer_block)
    direct = setup.origin.prove_message(newer.id, newer_block, newer_block, *anchor)
    walked = setup.origin.prove_message(older.id, older_block, newer_block, *anchor)
    assert direct.proof.headers == () and direct.proof.block_number == newer_block
    assert len(walked.proof.headers) == newer_block - older_block + 1  # stored block first, older last
    received = setup.counter.functions.received().call()
    deliveries = [
        ReceiptDelivery(older, 0, walked.log_index, DEFAULT_HANDLE_GAS_LIMIT),
        ReceiptDelivery(newer, 1, direct.log_index, DEFAULT_HANDLE_GAS_LIMIT),
    ]
    report = deliver(setup, [walked.proof, direct.proof], deliveries)
    assert report.transaction_hash and report.gas_used > 0
    assert {i: r.outcome for i, r in report.results.items()} == {
        older.id: DeliveryOutcome.DELIVERED,
        newer.id: DeliveryOutcome.DELIVERED,
    }
    assert setup.counter.functions.received().call() == received + 2
    again = deliver(setup, [walked.proof, direct.proof], deliveries)
    assert again.transaction_hash == b""
    assert {r.outcome for r in again.results.values()} == {DeliveryOutcome.ALREADY_DELIVERED}


def test_a_tampered_proof_is_refused_before_any_gas_is_paid(setup: Setup) -> None:
    message, block = dispatch(setup, b"tampered")
    anchor = store(setup, block)
    proven = setup.origin.prove_message(message.id, block, block, *anchor)
    last = proven.proof.nodes[-1]
    tampered = ReceiptProof(
        block,
        (),
        proven.proof.transaction_index,
        (*proven.proof.nodes[:-1], last[:-1] + bytes([last[-1] ^ 1])),
    )
    nonce = setup.w3.eth.get_transaction_count(setup.submitter_account)
    report = deliver(
        setup, [tampered], [ReceiptDelivery(message, 0, proven.log_index, DEFAULT_HANDLE_GAS_LIMIT)]
    )
    (result,) = report.results.values()
    assert result.outcome is DeliveryOutcome.REJECTED and result.reason.startswith("InboxRejected")
    assert setup.w3.eth.get_transaction_count(setup.submitter_account) == nonce  # nothing sent
    honest = deliver(
        setup, [proven.proof], [ReceiptDelivery(message, 0, proven.log_index, DEFAULT_HANDLE_GAS_LIMIT)]
    )
    assert [r.outcome for r in honest.results.values()] == [DeliveryOutcome.DELIVERED]


class CountingExecution:
    """The honest execution RPC, recording the methods called."""

    def __init__(self, url: str) -> None:
        self.honest = HttpExecutionTransport(url)
        self.calls: list[str] = []

    def call(self, method: str, params: Sequence[Any]) -> Any:
        self.calls.append(method)
        return self.honest.call(method, params)


class LyingExecution:
    """An execution RPC that changes one receipt's log data (and so the receipts it serves)."""

    def __init__(self, url: str) -> None:
        self.honest = HttpExecutionTransport(url)

    def call(self, method: str, params: Sequence[Any]) -> Any:
        answer = self.honest.call(method, params)
        if method == "eth_getBlockReceipts":
            for receipt in answer:
                for log in receipt["logs"]:
                    log["data"] = log["data"][:-2] + ("00" if log["data"][-2:] != "00" else "01")
        return answer


def test_a_lying_rpc_or_an_absent_message_is_a_typed_error(setup: Setup) -> None:
    message, block = dispatch(setup, b"lied about")
    anchor = store(setup, block)
    liar = EthereumLightClientOrigin(
        beacon=None,  # type: ignore[arg-type]
        execution=LyingExecution(setup.rpc_url),
        network=get_network("mainnet"),
        trusted_block_root=bytes(32),
        gateway=setup.origin.gateway,
        origin_domain=ORIGIN,
    )
    with pytest.raises(UntrustedAnswer, match="InvalidReceiptsRoot"):
        liar.prove_message(message.id, block, block, *anchor)
    with pytest.raises(UntrustedAnswer):  # a stored hash the walk does not reach
        setup.origin.prove_message(message.id, block - 1, block, b"\x01" * 32, anchor[1])
    with pytest.raises(MessageNotInBlock):
        setup.origin.prove_message(b"\x07" * 32, block, block, *anchor)


def test_hostile_light_client_requests_are_invalid_arguments(setup: Setup) -> None:
    message, _ = dispatch(setup, b"hostile")
    proof = destination_pb2.ReceiptProof(block_number=1, transaction_index=0, nodes=[b"\x01"])
    item = destination_pb2.ReceiptDelivery(message=message.encode(), proof_index=0, log_index=0, gas_limit=1)
    bad = [
        destination_pb2.DeliverByReceiptRequest(origin=ORIGIN, proofs=[proof], deliveries=[]),
        destination_pb2.DeliverByReceiptRequest(
            origin=ORIGIN,
            proofs=[proof],
            deliveries=[destination_pb2.ReceiptDelivery(message=message.encode(), proof_index=1)],
        ),
        destination_pb2.DeliverByReceiptRequest(origin=ORIGIN + 7, proofs=[proof], deliveries=[item]),
        destination_pb2.DeliverByReceiptRequest(
            origin=ORIGIN, proofs=[destination_pb2.ReceiptProof(block_number=1, nodes=[])], deliveries=[item]
        ),
        destination_pb2.DeliverByReceiptRequest(
            origin=ORIGIN,
            proofs=[destination_pb2.ReceiptProof(block_number=1, nodes=[b"\x01"] * 65)],
            deliveries=[item],
        ),
        destination_pb2.DeliverByReceiptRequest(
            origin=ORIGIN, proofs=[proof], deliveries=[destination_pb2.ReceiptDelivery(message=b"\x00" * 3)]
        ),
    ]
    for request in bad:
        with pytest.raises(grpc.RpcError) as raised:
            setup.stub.DeliverByReceipt(request, timeout=10)
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT, request
    for update in (
        destination_pb2.SubmitLightClientUpdateRequest(origin=ORIGIN, update_arguments=b""),
        destination_pb2.SubmitLightClientUpdateRequest(origin=ORIGIN, update_arguments=b"\x00" * 33),
        destination_pb2.SubmitLightClientUpdateRequest(
            origin=ORIGIN, update_arguments=b"\x00" * ((1 << 20) + 32)
        ),
        destination_pb2.SubmitLightClientUpdateRequest(origin=ORIGIN + 7, update_arguments=b"\x00" * 32),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            setup.stub.SubmitLightClientUpdate(update, timeout=10)
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_messages_of_one_block_go_in_one_batch_with_their_shared_trie_nodes_sent_once(setup: Setup) -> None:
    provider: Any = setup.w3.provider
    provider.make_request("evm_setAutomine", [False])
    try:
        recipient = address_to_bytes32(setup.counter.address)
        hashes = [
            setup.source_counter.functions.send(DESTINATION, recipient, bytes([i]) * 8).transact()
            for i in range(3)
        ]
        provider.make_request("evm_mine", [])
    finally:
        provider.make_request("evm_setAutomine", [True])
    receipts = [setup.w3.eth.wait_for_transaction_receipt(h) for h in hashes]
    (block,) = {int(r["blockNumber"]) for r in receipts}
    gateway = contract(setup.w3, "Gateway", setup.source_counter.functions.gateway().call())
    messages = [
        Message.decode(bytes(gateway.events.Dispatch().process_receipt(r)[0]["args"]["message"]))
        for r in receipts
    ]
    anchor = store(setup, block)
    counting = CountingExecution(setup.rpc_url)
    origin = EthereumLightClientOrigin(
        beacon=None,  # type: ignore[arg-type]
        execution=counting,
        network=get_network("mainnet"),
        trusted_block_root=bytes(32),
        gateway=setup.origin.gateway,
        origin_domain=ORIGIN,
    )
    proven = [origin.prove_message(m.id, block, block, *anchor) for m in messages]
    assert counting.calls == ["eth_getBlockReceipts"]  # the block's verified receipts are reused
    assert proven[0].proof.nodes[0] == proven[1].proof.nodes[0]  # one trie: the same root node
    received = setup.counter.functions.received().call()
    report = deliver(
        setup,
        [p.proof for p in proven],
        [
            ReceiptDelivery(m, i, p.log_index, DEFAULT_HANDLE_GAS_LIMIT)
            for i, (m, p) in enumerate(zip(messages, proven, strict=True))
        ],
    )
    assert [report.results[m.id].outcome for m in messages] == [DeliveryOutcome.DELIVERED] * 3
    assert setup.counter.functions.received().call() == received + 3


def test_walks_from_one_stored_block_go_with_their_shared_headers_sent_once(setup: Setup) -> None:
    sent = [dispatch(setup, bytes([i]) * 8) for i in range(3)]  # blocks n, n+1, n+2
    newest = sent[-1][1] + 1
    rpc_request(setup.rpc_url, "evm_mine", [])
    anchor = store(setup, newest)  # as on mainnet: a later block is the stored one
    proven = [setup.origin.prove_message(m.id, block, newest, *anchor) for m, block in sent]
    assert [len(p.proof.headers) for p in proven] == [newest - block + 1 for _, block in sent]
    shared = share_trie_nodes([p.proof for p in proven])
    deepest = len(proven[0].proof.headers)
    assert [sum(1 for h in p.headers if h) for p in shared] == [deepest, 0, 0]  # the deepest walk, once
    received = setup.counter.functions.received().call()
    report = deliver(
        setup,
        [p.proof for p in proven],
        [
            ReceiptDelivery(m, i, p.log_index, DEFAULT_HANDLE_GAS_LIMIT)
            for i, ((m, _), p) in enumerate(zip(sent, proven, strict=True))
        ],
    )
    assert [report.results[m.id].outcome for m, _ in sent] == [DeliveryOutcome.DELIVERED] * 3
    assert setup.counter.functions.received().call() == received + 3


def test_a_paused_origin_is_reported_paused_not_rejected(setup: Setup) -> None:
    """Review of issue 13: the Gateway's pause, met by the inbox's simulation, is PAUSED (the
    messages wait and resume by themselves), as for committee deliveries; a REJECTED outcome
    would park every message of the batch until an operator retries each."""
    message, block = dispatch(setup, b"paused origin")
    anchor = store(setup, block)
    proven = setup.origin.prove_message(message.id, block, block, *anchor)
    deliveries = [ReceiptDelivery(message, 0, proven.log_index, DEFAULT_HANDLE_GAS_LIMIT)]
    gateway = contract(setup.w3, "Gateway", setup.counter.functions.gateway().call())

    def owner_call(call: Any) -> None:
        receipt = setup.w3.eth.wait_for_transaction_receipt(call.transact({"from": setup.owner}))
        assert receipt["status"] == 1

    nonce = setup.w3.eth.get_transaction_count(setup.submitter_account)
    owner_call(gateway.functions.pauseDelivery(ORIGIN))
    try:
        (result,) = deliver(setup, [proven.proof], deliveries).results.values()
    finally:
        owner_call(gateway.functions.unpauseDelivery(ORIGIN))
    assert result.outcome is DeliveryOutcome.PAUSED, result.reason
    assert setup.w3.eth.get_transaction_count(setup.submitter_account) == nonce  # nothing sent
    (after,) = deliver(setup, [proven.proof], deliveries).results.values()
    assert after.outcome is DeliveryOutcome.DELIVERED


def test_a_block_the_submitters_node_does_not_show_stored_yet_is_retried_not_rejected(setup: Setup) -> None:
    """Review of issue 13: the relayer proves against the header its own destination endpoint
    shows stored; the submitter's node may not show it yet (another endpoint, a block behind).
    The inbox's `UnknownBlock` is then "not yet" (a light client never forgets a header): a
    transient error the relayer retries, not a REJECTED outcome that parks the whole batch."""
    message, block = dispatch(setup, b"not stored yet")
    block_data = rpc_request(setup.rpc_url, "eth_getBlockByNumber", [hex(block), False])
    anchor = (bytes.fromhex(block_data["hash"][2:]), bytes.fromhex(block_data["receiptsRoot"][2:]))
    proven = setup.origin.prove_message(message.id, block, block, *anchor)  # not stored on-chain
    deliveries = [ReceiptDelivery(message, 0, proven.log_index, DEFAULT_HANDLE_GAS_LIMIT)]
    nonce = setup.w3.eth.get_transaction_count(setup.submitter_account)
    with pytest.raises(TransientError) as raised:
        deliver(setup, [proven.proof], deliveries)
    assert "UnknownBlock" in str(raised.value)
    assert setup.w3.eth.get_transaction_count(setup.submitter_account) == nonce  # nothing sent
    store(setup, block)
    (after,) = deliver(setup, [proven.proof], deliveries).results.values()
    assert after.outcome is DeliveryOutcome.DELIVERED
