"""The EVM adapter against real anvil chains, beyond what every chain kind must do: the finality
source, the Gateway's contract errors, recipients that revert or burn gas, and the attestor and
submitter roles served over real gRPC on 127.0.0.1.

What every adapter must do (watcher reorgs, ranges, lies; idempotent, typed deliveries) is in
tests/conformance/test_adapters.py, on the same session-wide `chains` fixture (tests/chains.py).
"""

from __future__ import annotations

import grpc
import pytest

from adapters.evm import deploy
from adapters.evm.config import EvmChainConfig as ChainConfig
from adapters.evm.errors import GatewayNotReady, decode_contract_error
from adapters.evm.finality import EndpointsDisagree, EvmFinalitySource
from adapters.evm.submitter import EvmDestination
from relay import errors
from relay.chains import DEFAULT_HANDLE_GAS_LIMIT, DeliveryItem
from relay.config import SecretRef
from relay.rpc.convert import deliver_request_to_proto
from relay.v1 import attestation_pb2, attestation_pb2_grpc, destination_pb2, destination_pb2_grpc
from relay.verify.bls import get_backend, keygen
from relay.verify.committee import Checkpoint, QuorumCertificate
from relay.verify.merkle import MerkleTree
from tests.chains import DEPLOYER, DESTINATION, SOURCE, SUBMITTER, USER, Chains, all_source_messages, certify

pytestmark = pytest.mark.anvil


# --- finality source ---------------------------------------------------------------------------


def test_finality_source_reads_the_tree_at_the_finalized_block(chains: Chains) -> None:
    chains.send(2, "final")
    chains.mine(2)
    source = EvmFinalitySource(chains.source_chain(confirmations=2))
    root, count = source.finalized_checkpoint_state() or (b"", 0)
    messages = all_source_messages(chains)
    assert count == len(messages)
    assert root == MerkleTree([m.id for m in messages]).root()
    # Two messages more, not yet final: the state does not move.
    chains.send(1, "not-final")
    assert source.finalized_checkpoint_state() == (root, count)


def test_finality_source_needs_every_endpoint_to_agree(chains: Chains) -> None:
    chains.send(1, "agreed")  # a non-empty tree even when this test runs alone
    chains.mine(1)
    same = ChainConfig(
        name="source",
        domain=SOURCE,
        rpc_urls=[chains.source.rpc_url, chains.source.rpc_url],
        gateway=chains.source_gateway,
        confirmations=1,
    )
    assert EvmFinalitySource(same).finalized_checkpoint_state() is not None
    # An endpoint of another chain (same gateway address there, other history) must disagree.
    split = ChainConfig(
        name="source",
        domain=SOURCE,
        rpc_urls=[chains.source.rpc_url, chains.destination.rpc_url],
        gateway=chains.source_gateway,
        confirmations=1,
    )
    with pytest.raises(EndpointsDisagree):
        EvmFinalitySource(split).finalized_checkpoint_state()


def test_finality_source_turns_a_dead_endpoint_into_rpc_unavailable(chains: Chains) -> None:
    dead = ChainConfig(
        name="dead",
        domain=SOURCE,
        rpc_urls=["http://127.0.0.1:9"],
        gateway=chains.source_gateway,
        confirmations=1,
    )
    with pytest.raises(errors.RpcUnavailable):
        EvmFinalitySource(dead).finalized_checkpoint_state()


# --- destination ---------------------------------------------------------------------------------


def test_destination_names_the_gateways_contract_error(chains: Chains) -> None:
    """The typed errors (checked for every kind in the conformance suite) carry the Gateway's error name."""
    (message_id,) = chains.send(1, "rejected")
    messages = all_source_messages(chains)
    checkpoint, certificate, tree = certify(chains, messages)
    item = DeliveryItem(messages[-1], tree.branch(messages[-1].nonce))
    assert item.message.id == message_id
    destination = EvmDestination(chains.destination_chain(), SUBMITTER)
    forged = QuorumCertificate(
        certificate.signers, get_backend().sign(keygen(b"\x07" * 32), checkpoint.digest())
    )
    with pytest.raises(errors.InvalidSignature) as forged_error:
        destination.submit(checkpoint, forged, [item])
    assert forged_error.value.fields["contract_error"] == "InvalidSignature"
    other_epoch = Checkpoint(
        origin=SOURCE, gateway=checkpoint.gateway, epoch=2, root=checkpoint.root, index=checkpoint.index
    )
    # Another committee epoch than the relayer's (a hand-over in between): parked, not rejected.
    with pytest.raises(GatewayNotReady) as not_ready:
        destination.submit(other_epoch, certificate, [item])
    assert not_ready.value.fields["contract_error"] == "WrongEpoch"


def test_destination_reports_a_reverting_recipient_and_replays_revert(chains: Chains) -> None:
    deploy.set_counter_failing(chains.destination.rpc_url, DEPLOYER, chains.counter, True)
    try:
        chains.send(1, "recipient-fails")
        messages = all_source_messages(chains)
        checkpoint, certificate, tree = certify(chains, messages)
        message = messages[-1]
        item = DeliveryItem(message, tree.branch(message.nonce))
        destination = EvmDestination(chains.destination_chain(), SUBMITTER)
        outcome = destination.submit(checkpoint, certificate, [item])
        assert outcome.delivered == [] and message.id in outcome.failed
        assert outcome.failed[message.id].startswith("FailingOnPurpose(")
    finally:
        deploy.set_counter_failing(chains.destination.rpc_url, DEPLOYER, chains.counter, False)
    assert destination.submit(checkpoint, certificate, [item]).delivered == [message.id]
    # Replaying the delivered message straight at the Gateway reverts with AlreadyDelivered.
    call = destination._delivery_call(checkpoint, certificate, [item])
    with pytest.raises(Exception) as replay:
        call.estimate_gas({"from": destination.account})
    data = getattr(replay.value, "data", None)
    assert decode_contract_error(data).name == "AlreadyDelivered"


def test_a_gas_burning_recipient_gets_its_limit_and_the_rest_of_the_batch_is_delivered(
    chains: Chains,
) -> None:
    """A recipient that spins until out of gas must not hold its batch hostage, nor cost more than
    its gas limit; a message naming more gas than a block holds is left out; the issue-8 repro (a
    handle whose external call needs ~460k gas) is delivered on the first attempt with 600k."""
    from web3 import Web3

    from adapters.evm.gas import deploy_contract

    web3 = Web3(Web3.HTTPProvider(chains.destination.rpc_url))
    web3.eth.default_account = web3.eth.accounts[0]
    burner = deploy_contract(web3, "HostileRecipient", chains.gateway)
    web3.eth.wait_for_transaction_receipt(burner.functions.setBurnGas(True).transact())
    needy = deploy_contract(web3, "HostileRecipient", chains.gateway)
    web3.eth.wait_for_transaction_receipt(needy.functions.setInnerCallGas(460_000).transact())
    sender = deploy.TransactionSender(chains.source.rpc_url, USER)
    targets = [chains.counter, burner.address, chains.counter, needy.address]
    hashes = [
        h
        for body, target in zip([b"ok-1", b"spin", b"ok-2", b"needs 460k"], targets, strict=True)
        for h in deploy.send_counter_messages(sender, chains.source_counter, DESTINATION, target, [body])
    ]
    ids = [
        i for receipt in sender.wait(hashes) for i in deploy.dispatched_ids(receipt, chains.source_gateway)
    ]
    messages = all_source_messages(chains)
    checkpoint, certificate, tree = certify(chains, messages)
    limits = dict(zip(ids, [DEFAULT_HANDLE_GAS_LIMIT, 150_000, 10**9, 600_000], strict=True))
    items = [DeliveryItem(m, tree.branch(m.nonce), limits[m.id]) for m in messages if m.id in ids]
    destination = EvmDestination(chains.destination_chain(), SUBMITTER)
    outcome = destination.submit(checkpoint, certificate, items)
    assert outcome.delivered == [ids[0], ids[3]]
    assert outcome.failed[ids[1]] == "RecipientOutOfGas(150000)"
    assert outcome.failed[ids[2]].startswith("InsufficientGasForRecipient(")
    assert destination.delivered([(SOURCE, i.message.nonce) for i in items]) == [True, False, False, True]
    assert needy.functions.handled().call() == 1


# --- the roles over gRPC -------------------------------------------------------------------------


def test_attestor_serves_signed_final_checkpoints(chains: Chains) -> None:
    from relay.roles.attestor import Attestor, AttestorConfig

    config = AttestorConfig(
        chain=chains.source_chain(confirmations=1),
        bls_key=SecretRef(value=hex(chains.secrets[1])),
        signer_index=1,
        epoch=1,
        listen="127.0.0.1:0",
        poll_interval=0.1,
        insecure_plaintext=True,
    )
    attestor = Attestor(config).start()
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{attestor.grpc_port}")
        stub = attestation_pb2_grpc.AttestationServiceStub(channel)
        identity = stub.GetIdentity(attestation_pb2.GetIdentityRequest(), timeout=5)
        assert (
            identity.public_key == chains.committee.members[1].public_key and identity.last_signed_index == -1
        )
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetCheckpoint(attestation_pb2.GetCheckpointRequest(origin=SOURCE, min_index=0), timeout=5)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as wrong_origin:
            stub.GetCheckpoint(attestation_pb2.GetCheckpointRequest(origin=7, min_index=0), timeout=5)
        assert wrong_origin.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        chains.send(1, "attest")
        chains.mine(1)  # one confirmation: the message's block is final
        count = len(all_source_messages(chains))
        attestor.poll_once()  # the background loop may have signed it already
        answer = stub.GetCheckpoint(
            attestation_pb2.GetCheckpointRequest(origin=SOURCE, min_index=count - 1), timeout=5
        )
        checkpoint = Checkpoint(
            origin=answer.checkpoint.origin,
            gateway=answer.checkpoint.gateway,
            epoch=answer.checkpoint.epoch,
            root=answer.checkpoint.root,
            index=answer.checkpoint.index,
        )
        get_backend().verify(chains.committee.members[1].public_key, checkpoint.digest(), answer.signature)
        assert checkpoint.index == count - 1
        stream = stub.StreamCheckpoints(
            attestation_pb2.StreamCheckpointsRequest(origin=SOURCE, from_index=0), timeout=3
        )
        assert next(iter(stream)).checkpoint.index == checkpoint.index
        stream.cancel()
        channel.close()
    finally:
        attestor.stop()


def test_submitter_service_delivers_and_maps_failures_to_status_codes(chains: Chains) -> None:
    from relay.roles.submitter import Submitter, SubmitterConfig

    config = SubmitterConfig(
        chain=chains.destination_chain(),
        key=SecretRef(value=SUBMITTER),
        listen="127.0.0.1:0",
        insecure_plaintext=True,
    )
    submitter = Submitter(config).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{submitter.grpc_port}")
    stub = destination_pb2_grpc.DestinationServiceStub(channel)
    try:
        chains.send(2, "service")
        messages = all_source_messages(chains)
        checkpoint, certificate, tree = certify(chains, messages)
        items = [DeliveryItem(m, tree.branch(m.nonce)) for m in messages[-2:]]
        response = stub.Deliver(deliver_request_to_proto(checkpoint, certificate, items), timeout=60)
        outcomes = destination_pb2.DeliveryOutcome
        assert [r.outcome for r in response.results] == [outcomes.DELIVERY_OUTCOME_DELIVERED] * 2
        again = stub.Deliver(deliver_request_to_proto(checkpoint, certificate, items), timeout=60)
        assert [r.outcome for r in again.results] == [outcomes.DELIVERY_OUTCOME_ALREADY_DELIVERED] * 2
        keys = [destination_pb2.MessageKey(origin=SOURCE, nonce=m.nonce) for m in messages[-2:]]
        assert list(
            stub.GetDelivered(destination_pb2.GetDeliveredRequest(keys=keys), timeout=5).delivered
        ) == [True, True]
        status = stub.GetStatus(destination_pb2.GetStatusRequest(), timeout=5)
        assert status.domain == DESTINATION and int(status.balance) > 0 and len(status.account) == 20
        forged = QuorumCertificate(
            certificate.signers, get_backend().sign(keygen(b"\x09" * 32), checkpoint.digest())
        )
        chains.send(1, "forged")
        messages = all_source_messages(chains)
        checkpoint, certificate, tree = certify(chains, messages)
        item = DeliveryItem(messages[-1], tree.branch(messages[-1].nonce))
        rejected = stub.Deliver(deliver_request_to_proto(checkpoint, forged, [item]), timeout=60)
        assert rejected.results[0].outcome == outcomes.DELIVERY_OUTCOME_REJECTED
        assert rejected.results[0].reason.startswith("InvalidSignature")
        malformed = destination_pb2.DeliverRequest()
        with pytest.raises(grpc.RpcError) as invalid:
            stub.Deliver(malformed, timeout=5)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        channel.close()
        submitter.stop()


def test_submitter_service_reports_a_dead_chain_as_unavailable(chains: Chains) -> None:
    from relay.roles.submitter import Submitter, SubmitterConfig

    dead = ChainConfig(
        name="dead", domain=DESTINATION, rpc_urls=["http://127.0.0.1:9"], gateway=chains.gateway
    )
    submitter = Submitter(
        SubmitterConfig(
            chain=dead, key=SecretRef(value=SUBMITTER), listen="127.0.0.1:0", insecure_plaintext=True
        )
    ).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{submitter.grpc_port}")
    stub = destination_pb2_grpc.DestinationServiceStub(channel)
    try:
        messages = all_source_messages(chains)
        checkpoint, certificate, tree = certify(chains, messages)
        item = DeliveryItem(messages[0], tree.branch(0))
        with pytest.raises(grpc.RpcError) as down:
            stub.Deliver(deliver_request_to_proto(checkpoint, certificate, [item]), timeout=30)
        assert down.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as status_down:
            stub.GetStatus(destination_pb2.GetStatusRequest(), timeout=30)
        assert status_down.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        channel.close()
        submitter.stop()


def test_the_chain_read_retry_schedule_is_pinned() -> None:
    from adapters.evm.rpc import CHAIN_READ

    assert (CHAIN_READ.name, CHAIN_READ.attempts) == ("chain_read", 3)
    assert CHAIN_READ.waits() == [0.1, 0.2]


def test_a_dead_endpoint_is_retried_by_the_chain_read_policy_then_reported() -> None:
    from adapters.evm.rpc import EvmEndpoint

    calls = []

    def refuse() -> int:
        calls.append(1)
        raise ConnectionError("refused")

    with pytest.raises(errors.RpcUnavailable) as failure:
        EvmEndpoint("http://127.0.0.1:9", "dead").read("eth_blockNumber", refuse)
    assert len(calls) == 3 and failure.value.fields["method"] == "eth_blockNumber"
