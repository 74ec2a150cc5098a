"""The relayer's pipeline against fake chains and real gRPC servers.

Fakes only for what the relayer talks to: a `FakeChain` (a source gateway's Dispatch log and
finality) read through a fake `SourceWatcher`, attestors serving `AttestationService` on
127.0.0.1 and signing with real BLS keys, and a submitter serving `DestinationService` that checks
every proof exactly as the destination gateway does and records each execution. The relayer, its
SQLite store, its verifier and its gRPC server are the real ones. The real-chain runs are in
tests/e2e.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from relay.chains import Cursor, CursorStore, ObservedMessage, WatchUpdate
from relay.chains.registry import ChainConfig
from relay.config import TlsConfig
from relay.errors import InvalidProof
from relay.lifecycle import MessageState
from relay.relayer import Relayer, RelayerConfig
from relay.rpc import convert
from relay.rpc.server import bind
from relay.rpc.tls import open_channel
from relay.store import SqliteStore, Transition
from relay.v1 import (
    attestation_pb2,
    attestation_pb2_grpc,
    destination_pb2,
    destination_pb2_grpc,
    relay_service_pb2,
    relay_service_pb2_grpc,
    types_pb2,
)
from relay.verify.bls import get_backend, keygen
from relay.verify.committee import Checkpoint, Committee, Member, verify_checkpoint
from relay.verify.merkle import MerkleTree, verify_branch
from relay.verify.message import Message
from tests.pki import Pki
from tests.waiting import eventually

S = MessageState
ORIGIN, DESTINATION, EPOCH = 1, 2, 1
GATEWAY_ADDRESS = "0x" + "42" * 20
GATEWAY = b"\x00" * 12 + b"\x42" * 20
TOKEN = "operator-secret"
BLS = get_backend("blst")
SECRETS = [keygen(bytes([i + 1]) * 32) for i in range(4)]
OUTSIDER = keygen(b"\x99" * 32)
MEMBERS = [Member(BLS.secret_to_public_key(s), BLS.prove_possession(s), 1) for s in SECRETS]
COMMITTEE = Committee.create(EPOCH, MEMBERS, backend=BLS)  # threshold 3 of 4


# --- fakes ------------------------------------------------------------------------------------


class FakeChain:
    """A source gateway: one Dispatch per block, a movable finalized block."""

    def __init__(self) -> None:
        self.events: list[ObservedMessage] = []
        self.finalized = 0
        self.lock = threading.Lock()

    @property
    def head(self) -> int:
        return len(self.events)

    def dispatch(self, body: bytes, *, finalize: bool = True) -> Message:
        with self.lock:
            message = Message.create(
                nonce=len(self.events),
                origin=ORIGIN,
                sender=b"\x01" * 32,
                destination=DESTINATION,
                recipient=b"\x02" * 32,
                body=body,
            )
            block = len(self.events) + 1
            self.events.append(
                ObservedMessage(message, block, block.to_bytes(32, "big"), block.to_bytes(32, "big")[::-1], 0)
            )
            if finalize:
                self.finalized = block
        return message

    def dispatch_malformed(self, reason: str = "message body too long") -> bytes:
        """A Dispatch whose message does not decode: a leaf under an id of its own; returns the id."""
        with self.lock:
            nonce, block = len(self.events), len(self.events) + 1
            stand_in = Message.create(
                nonce=nonce,
                origin=ORIGIN,
                sender=b"\x01" * 32,
                destination=DESTINATION,
                recipient=b"\x02" * 32,
                body=b"",
            )
            leaf_id = os.urandom(32)
            self.events.append(
                ObservedMessage(
                    stand_in,
                    block,
                    block.to_bytes(32, "big"),
                    block.to_bytes(32, "big")[::-1],
                    0,
                    reason,
                    leaf_id,
                )
            )
            self.finalized = block
        return leaf_id

    def final_ids(self) -> list[bytes]:
        with self.lock:
            return [e.id for e in self.events if e.block_number <= self.finalized]


class FakeWatcher:
    """A `SourceWatcher` over a `FakeChain`, keeping its cursor in the given `CursorStore`."""

    def __init__(self, chain: FakeChain, cursors: CursorStore, domain: int = ORIGIN) -> None:
        self.chain = chain
        self.cursors = cursors
        self.domain = domain
        self.polls = 0
        self.started_at = cursors.load_cursor(domain)
        self.lies: dict[int, ObservedMessage] = {}  # block -> what a lying RPC reports there instead

    def poll(self) -> WatchUpdate:
        self.polls += 1
        cursor = self.cursors.load_cursor(self.domain)
        start = cursor.block_number if cursor is not None else 0
        with self.chain.lock:
            head = self.chain.head
            observed = [
                self.lies.get(e.block_number, e) for e in self.chain.events if start < e.block_number <= head
            ]
            finalized = self.chain.finalized
        new_cursor = Cursor(head, head.to_bytes(32, "big"))
        self.cursors.save_cursor(self.domain, new_cursor)
        return WatchUpdate(observed=observed, head_block=head, finalized_block=finalized, cursor=new_cursor)

    def block_hash(self, number: int) -> bytes | None:
        """The fake chain never reorganises: every block is canonical, its hash derived from its number."""
        with self.chain.lock:
            return number.to_bytes(32, "big") if number <= self.chain.head else None


class FakeAttestor(attestation_pb2_grpc.AttestationServiceServicer):
    """One committee member: signs the source tree at the finalized block (the newest checkpoint)."""

    def __init__(self, chain: FakeChain, index: int, *, mode: str = "honest") -> None:
        self.chain = chain
        self.index = index
        self.mode = mode  # honest | outsider_key | wrong_signature | tampered_root
        self.calls = 0

    def GetCheckpoint(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.calls += 1
        if request.origin != ORIGIN:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "another origin")
        leaves = self.chain.final_ids()
        if not leaves or len(leaves) - 1 < request.min_index:
            context.abort(grpc.StatusCode.NOT_FOUND, "not final yet")
        root = MerkleTree(leaves).root() if self.mode != "tampered_root" else b"\xee" * 32
        checkpoint = Checkpoint(ORIGIN, GATEWAY, EPOCH, root, len(leaves) - 1)
        secret, public_key = SECRETS[self.index], MEMBERS[self.index].public_key
        if self.mode == "outsider_key":
            secret, public_key = OUTSIDER, BLS.secret_to_public_key(OUTSIDER)
        elif self.mode == "wrong_signature":
            secret = OUTSIDER
        partial = convert.PartialSignature(
            checkpoint, self.index, public_key, BLS.sign(secret, checkpoint.digest())
        )
        return convert.partial_signature_to_proto(partial)

    def GetIdentity(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        public_key = (
            BLS.secret_to_public_key(OUTSIDER)
            if self.mode == "outsider_key"
            else MEMBERS[self.index].public_key
        )
        return attestation_pb2.AttestorIdentity(
            origin=ORIGIN,
            gateway=GATEWAY,
            epoch=EPOCH,
            signer_index=self.index,
            public_key=public_key,
            proof_of_possession=MEMBERS[self.index].proof_of_possession,
            last_signed_index=-1,
        )


class GrpcServer:
    """A servicer on 127.0.0.1, stoppable and restartable on the same port (mutual TLS with `tls`)."""

    def __init__(self, servicer: Any, add: Callable[[Any, Any], None], tls: TlsConfig | None = None) -> None:
        self.servicer, self.add, self.tls = servicer, add, tls
        self.port = 0
        self.server: grpc.Server | None = None
        self.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.add(self.servicer, server)
        self.port = bind(server, f"127.0.0.1:{self.port}", self.tls)
        assert self.port
        server.start()
        self.server = server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(0).wait()
            self.server = None


@dataclass
class FakeDestination(destination_pb2_grpc.DestinationServiceServicer):
    """A submitter whose "gateway" checks each proof like the contract and executes each id once."""

    executions: Counter[bytes] = field(default_factory=Counter)
    calls: list[int] = field(default_factory=list)  # batch sizes
    reverting: set[bytes] = field(default_factory=set)
    unavailable: bool = False
    lose_response: bool = False  # deliver, then fail as if the answer was lost
    gate: threading.Event | None = None  # when set: hold every call until the event is set
    entered: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)  # set when a call returns or aborts

    def Deliver(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.entered.set()
        try:
            return self._deliver(request, context)
        finally:
            self.finished.set()

    def _deliver(self, request: Any, context: grpc.ServicerContext) -> Any:
        if self.gate is not None:
            self.gate.wait(30)
        if self.unavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, "chain RPC down")
        checkpoint, certificate, items = convert.deliver_request_from_proto(request)
        self.calls.append(len(items))
        outcome = destination_pb2.DeliveryOutcome
        try:
            verify_checkpoint(COMMITTEE, checkpoint, certificate, origin=ORIGIN, gateway=GATEWAY, backend=BLS)
        except InvalidProof as error:
            return destination_pb2.DeliverResponse(
                results=[
                    destination_pb2.DeliveryResult(
                        id=i.message.id, outcome=outcome.DELIVERY_OUTCOME_REJECTED, reason=error.reason
                    )
                    for i in items
                ]
            )
        results = []
        for item in items:
            message_id = item.message.id
            try:
                if item.message.nonce > checkpoint.index:
                    raise InvalidProof("nonce after checkpoint")
                verify_branch(message_id, item.branch, item.message.nonce, checkpoint.root)
            except InvalidProof as error:
                results.append(
                    destination_pb2.DeliveryResult(
                        id=message_id, outcome=outcome.DELIVERY_OUTCOME_REJECTED, reason=error.reason
                    )
                )
                continue
            if self.executions[message_id]:
                code, reason = outcome.DELIVERY_OUTCOME_ALREADY_DELIVERED, ""
            elif message_id in self.reverting:
                code, reason = outcome.DELIVERY_OUTCOME_RECIPIENT_REVERTED, "Counter: not today"
            else:
                self.executions[message_id] += 1
                code, reason = outcome.DELIVERY_OUTCOME_DELIVERED, ""
            results.append(destination_pb2.DeliveryResult(id=message_id, outcome=code, reason=reason))
        if self.lose_response:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "receipt lost")
        return destination_pb2.DeliverResponse(
            transaction_hash=os.urandom(32), block_number=7, gas_used=90_000, results=results
        )


@dataclass
class World:
    chain: FakeChain
    attestors: list[FakeAttestor]
    attestor_servers: list[GrpcServer]
    destination: FakeDestination
    destination_server: GrpcServer
    store_path: Path
    watchers: list[FakeWatcher] = field(default_factory=list)
    # The relayer's TLS files (mutual TLS with the fakes, an operator port); None: plaintext.
    tls: TlsConfig | None = None

    def config(self, **overrides: Any) -> RelayerConfig:
        transport: dict[str, Any] = (
            {"tls": self.tls.model_dump(), "operator_listen": "127.0.0.1:0"}
            if self.tls is not None
            else {"insecure_plaintext": True}
        )
        data: dict[str, Any] = {
            **transport,
            "store": str(self.store_path),
            "listen": "127.0.0.1:0",
            "operator_token": {"value": TOKEN},
            "sources": [
                {
                    "chain": {
                        "name": "alpha",
                        "domain": ORIGIN,
                        "rpc_urls": ["http://unused"],
                        "gateway": GATEWAY_ADDRESS,
                    },
                    "committee": {
                        "epoch": EPOCH,
                        "members": [
                            {
                                "public_key": m.public_key.hex(),
                                "proof_of_possession": m.proof_of_possession.hex(),
                            }
                            for m in MEMBERS
                        ],
                    },
                    "attestors": [s.address for s in self.attestor_servers],
                }
            ],
            "destinations": [{"domain": DESTINATION, "submitter": self.destination_server.address}],
            "batching": {"max_batch": 50, "max_wait": 0},
            "gas_policy": {"mode": "allow_all"},  # a fake source chain: no payments to read
            "retry": {"give_up_after": 0.3, "base_delay": 0.01, "max_delay": 0.05},
            "bls_backend": "blst",
            "poll_interval": 0.05,
            "attestor_timeout": 1.0,
            "submitter_timeout": 5.0,
        }
        data.update(overrides)
        return RelayerConfig.model_validate(data)

    def relayer(self, clock: Callable[[], float] = time.time, **overrides: Any) -> Relayer:
        def factory(chain: ChainConfig, cursors: CursorStore) -> FakeWatcher:
            watcher = FakeWatcher(self.chain, cursors, chain.domain)
            self.watchers.append(watcher)
            return watcher

        return Relayer(self.config(**overrides), watcher_factory=factory, clock=clock)


def build_world(tmp_path: Path, pki: Pki | None) -> World:
    """Fakes served on loopback: plaintext without `pki`, else mutual TLS with the relayer too."""
    chain = FakeChain()
    attestors = [FakeAttestor(chain, i) for i in range(4)]
    servers = [
        GrpcServer(
            a,
            attestation_pb2_grpc.add_AttestationServiceServicer_to_server,
            pki.issue(f"attestor-{i}") if pki else None,
        )
        for i, a in enumerate(attestors)
    ]
    destination = FakeDestination()
    destination_server = GrpcServer(
        destination,
        destination_pb2_grpc.add_DestinationServiceServicer_to_server,
        pki.issue("submitter") if pki else None,
    )
    return World(
        chain,
        attestors,
        servers,
        destination,
        destination_server,
        tmp_path / "relayer.db",
        tls=pki.issue("relayer") if pki else None,
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path, None)
    yield built
    for server in [*built.attestor_servers, built.destination_server]:
        server.stop()


@pytest.fixture
def tls_world(tmp_path: Path, pki: Pki) -> Iterator[World]:
    """The world with mutual TLS everywhere, and the relayer's operator port."""
    built = build_world(tmp_path, pki)
    yield built
    for server in [*built.attestor_servers, built.destination_server]:
        server.stop()


def states(relayer: Relayer) -> dict[MessageState, int]:
    return relayer.store.count_by_state()


def run_until(relayer: Relayer, done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out; states: {states(relayer)}")
        relayer.run_once()
        time.sleep(0.02)


# --- the scenarios ------------------------------------------------------------------------------


def test_messages_flow_to_delivered_exactly_once_in_one_batch(world: World) -> None:
    messages = [world.chain.dispatch(f"hello {n}".encode()) for n in range(5)]
    relayer = world.relayer().open()
    try:
        relayer.run_once()
        assert states(relayer) == {S.DELIVERED: 5}
        assert world.destination.calls == [5]  # one certificate served the whole batch
        for _ in range(3):
            relayer.run_once()
        assert world.destination.executions == Counter({m.id: 1 for m in messages})
        record = relayer.store.get(messages[0].id)
        assert record is not None and record.destination_transaction and record.delivered_at > 0
        assert len(relayer.store.transactions_for(messages[0].id)) == 1
        later = world.chain.dispatch(b"later")
        relayer.run_once()
        assert world.destination.executions[later.id] == 1 and world.destination.calls == [5, 1]
    finally:
        relayer.stop()


def test_not_final_messages_wait_and_batches_are_capped(world: World) -> None:
    for n in range(5):
        world.chain.dispatch(f"m{n}".encode(), finalize=False)
    relayer = world.relayer(batching={"max_batch": 2, "max_wait": 0}).open()
    try:
        relayer.run_once()
        assert states(relayer) == {S.OBSERVED: 5}
        world.chain.finalized = 3
        relayer.run_once()
        assert states(relayer) == {S.DELIVERED: 3, S.OBSERVED: 2}
        # The batches of one pass go out concurrently, so only their sizes per pass are fixed.
        assert sorted(world.destination.calls) == [1, 2]
        world.chain.finalized = 5
        relayer.run_once()
        assert states(relayer) == {S.DELIVERED: 5}
        assert sorted(world.destination.calls[2:]) == [2] and len(world.destination.calls) == 3
    finally:
        relayer.stop()


def test_forged_partial_signatures_are_rejected_with_their_reason(world: World) -> None:
    world.attestors[0].mode = "outsider_key"
    world.attestors[1].mode = "wrong_signature"
    message = world.chain.dispatch(b"hello")
    relayer = world.relayer().open()
    try:
        relayer.run_once()
        # Two honest members are below the threshold of 3: nothing moves, nothing is lost.
        assert states(relayer) == {S.FINAL: 1}
        rejected = {
            r.signer_index: r.rejected_reason
            for r in relayer.store.signatures_for(ORIGIN, 0, valid_only=False)
            if r.rejected_reason
        }
        assert rejected[0].startswith("UnknownSigner")
        assert rejected[1].startswith("InvalidSignature")
        world.attestors[1].mode = "honest"
        relayer.run_once()
        assert states(relayer) == {S.DELIVERED: 1}
        assert world.destination.executions == Counter({message.id: 1})
    finally:
        relayer.stop()


def test_a_quorum_over_another_root_rejects_nothing_and_delivers_once_it_matches(world: World) -> None:
    # A genuine certificate whose root is not the relayer's tree: the relayer re-reads its source
    # and attests again; it never rejects the message for it.
    for attestor in world.attestors:
        attestor.mode = "tampered_root"
    message = world.chain.dispatch(b"hello")
    relayer = world.relayer().open()
    try:
        for _ in range(3):
            relayer.run_once()
            record = relayer.store.get(message.id)
            assert record is not None and record.state in (S.FINAL, S.OBSERVED)
        assert relayer.store.count_rejections() == {}
        repairs = relayer.registry.get_sample_value("relay_tree_repairs_total", {"origin": "1"})
        assert repairs is not None and repairs >= 1
        assert world.destination.calls == []
        for attestor in world.attestors:
            attestor.mode = "honest"
        run_until(relayer, lambda: states(relayer) == {S.DELIVERED: 1})
        assert world.destination.executions == Counter({message.id: 1})
    finally:
        relayer.stop()


def test_a_wrong_observation_is_repaired_and_nothing_genuine_is_rejected_or_forged_delivered(
    world: World,
) -> None:
    genuine = [world.chain.dispatch(f"genuine {n}".encode()) for n in range(4)]
    relayer = world.relayer().open()
    try:
        # The first watcher's RPC lies about nonce 2: another message in its (final) slot.
        forged = Message.create(
            nonce=2,
            origin=ORIGIN,
            sender=b"\x0f" * 32,
            destination=DESTINATION,
            recipient=b"\x02" * 32,
            body=b"forged",
        )
        world.watchers[0].lies[3] = ObservedMessage(forged, 3, (3).to_bytes(32, "big"), b"\x0f" * 32, 0)
        run_until(
            relayer,
            lambda: all(
                relayer.store.get(m.id) is not None and relayer.store.get(m.id).state is S.DELIVERED
                for m in genuine
            ),
        )  # type: ignore[union-attr]
        assert relayer.store.get(forged.id) is None  # dropped by the repair, never delivered
        assert world.destination.executions == Counter({m.id: 1 for m in genuine})
        assert relayer.store.count_rejections() == {}
        assert len(world.watchers) >= 2  # the source was re-read by a fresh watcher
    finally:
        relayer.stop()


def test_a_malformed_leaf_is_rejected_and_the_messages_after_it_are_delivered(world: World) -> None:
    before = world.chain.dispatch(b"before")
    leaf_id = world.chain.dispatch_malformed()
    after = [world.chain.dispatch(f"after {n}".encode()) for n in range(2)]
    relayer = world.relayer().open()
    relayer.serve()
    try:
        run_until(relayer, lambda: states(relayer) == {S.DELIVERED: 3, S.REJECTED: 1})
        record = relayer.store.get(leaf_id)
        assert record is not None and record.state is S.REJECTED and record.is_malformed
        assert record.error_reason == "MalformedMessage" and "too long" in record.last_error
        assert world.destination.executions == Counter({m.id: 1 for m in [before, *after]})
        assert relayer.store.count_rejections() == {"MalformedMessage": 1}
        # The RelayService listing reports the leaf under its own id, with its reason.
        with grpc.insecure_channel(relayer.address) as channel:
            stub = relay_service_pb2_grpc.RelayServiceStub(channel)
            status = stub.GetMessage(relay_service_pb2.GetMessageRequest(id=leaf_id), timeout=5)
        listed = convert.message_status_from_proto(status)
        assert listed.id == leaf_id and listed.state is S.REJECTED and listed.message.nonce == 1
        assert "MalformedMessage" in listed.malformed_reason
    finally:
        relayer.stop()


def test_two_of_four_attestors_down_then_back(world: World) -> None:
    world.attestor_servers[3].stop()
    first = world.chain.dispatch(b"one down")
    relayer = world.relayer().open()
    try:
        relayer.run_once()
        assert world.destination.executions == Counter({first.id: 1})  # 3 of 4 is a quorum
        world.attestor_servers[2].stop()
        pending = [world.chain.dispatch(f"two down {n}".encode()) for n in range(3)]
        for _ in range(3):
            relayer.run_once()
        assert states(relayer) == {S.DELIVERED: 1, S.FINAL: 3}
        assert all(world.destination.executions[m.id] == 0 for m in pending)
        world.attestor_servers[2].start()
        world.attestor_servers[3].start()
        run_until(relayer, lambda: states(relayer) == {S.DELIVERED: 4})
        assert world.destination.executions == Counter({m.id: 1 for m in [first, *pending]})
    finally:
        relayer.stop()


def test_transient_destination_failures_back_off_then_park_after_the_retry_window(world: World) -> None:
    world.destination.unavailable = True
    message = world.chain.dispatch(b"hello")
    relayer = world.relayer().open()
    try:
        relayer.run_once()
        record = relayer.store.get(message.id)
        assert record is not None and record.state is S.RETRYING and record.attempts == 1
        assert record.error_reason == "RpcUnavailable" and record.next_attempt_at > record.updated_at
        run_until(relayer, lambda: relayer.store.get(message.id).state is S.PARKED)  # type: ignore[union-attr]
        record = relayer.store.get(message.id)
        assert record is not None and record.attempts >= 2 and record.error_reason == "AttemptsExhausted"
        world.destination.unavailable = False
        relayer.retry_message(message.id)
        relayer.run_once()
        assert world.destination.executions == Counter({message.id: 1})
    finally:
        relayer.stop()


def test_recipient_revert_parks_then_operator_retry_over_grpc_delivers(tls_world: World, pki: Pki) -> None:
    world = tls_world
    good = world.chain.dispatch(b"fine")
    bad = world.chain.dispatch(b"reverts")
    world.destination.reverting.add(bad.id)
    relayer = world.relayer().open()
    relayer.serve()
    # Operator calls: the operator port, with a client certificate of the relayer's CA.
    channel = open_channel(relayer.operator_address, pki.client("operator"))
    client = relay_service_pb2_grpc.RelayServiceStub(channel)
    try:
        relayer.run_once()
        parked = client.GetMessage(relay_service_pb2.GetMessageRequest(id=bad.id))
        assert parked.state == types_pb2.MESSAGE_STATE_PARKED
        assert "RecipientReverted: Counter: not today" == parked.last_error

        def code_of(request: Any) -> grpc.StatusCode:
            with pytest.raises(grpc.RpcError) as raised:
                client.RetryMessage(request)
            return raised.value.code()

        retry = relay_service_pb2.RetryMessageRequest
        assert code_of(retry(id=bad.id)) == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(retry(id=bad.id, operator_token="wrong")) == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(retry(id=good.id, operator_token=TOKEN)) == grpc.StatusCode.FAILED_PRECONDITION
        assert code_of(retry(id=b"short", operator_token=TOKEN)) == grpc.StatusCode.INVALID_ARGUMENT
        assert code_of(retry(id=b"\x05" * 32, operator_token=TOKEN)) == grpc.StatusCode.NOT_FOUND

        world.destination.reverting.clear()
        status = client.RetryMessage(retry(id=bad.id, operator_token=TOKEN))
        assert status.state == types_pb2.MESSAGE_STATE_VERIFIED and status.attempts == 0
        relayer.run_once()
        delivered = client.GetMessage(relay_service_pb2.GetMessageRequest(id=bad.id))
        assert delivered.state == types_pb2.MESSAGE_STATE_DELIVERED
        assert world.destination.executions == Counter({good.id: 1, bad.id: 1})
    finally:
        channel.close()
        relayer.stop()


def test_restart_on_the_same_store_continues_without_double_delivery(world: World) -> None:
    first = [world.chain.dispatch(f"first {n}".encode()) for n in range(4)]
    relayer = world.relayer().open()
    # The submitter executes the batch but its answer is lost: the relayer must assume nothing.
    world.destination.lose_response = True
    relayer.run_once()
    assert states(relayer) == {S.RETRYING: 4}
    world.destination.lose_response = False
    # Two more messages get verified, then the process dies between SUBMITTED and the answer.
    second = [world.chain.dispatch(f"second {n}".encode()) for n in range(2)]
    relayer.process_sources()
    assert states(relayer) == {S.RETRYING: 4, S.VERIFIED: 2}
    relayer.store.apply_transitions([Transition(m.id, S.VERIFIED, S.SUBMITTED) for m in second], time.time())
    relayer.stop()

    third = world.chain.dispatch(b"third")
    later = time.time() + 3600  # the first batch's backoff has long passed
    restarted = world.relayer(clock=lambda: later).open()
    try:
        assert world.watchers[-1].started_at is not None and world.watchers[-1].started_at.block_number == 6
        assert states(restarted) == {S.RETRYING: 6}  # SUBMITTED recovered for another attempt
        run_until(restarted, lambda: states(restarted) == {S.DELIVERED: 7})
        assert world.destination.executions == Counter({m.id: 1 for m in [*first, *second, third]})
        assert {restarted.store.get(m.id).attempts for m in first} == {1}  # type: ignore[union-attr]
    finally:
        restarted.stop()


def test_relay_service_end_to_end_with_background_loops(world: World) -> None:
    relayer = world.relayer(
        batching={"max_batch": 50, "max_wait": 0.05}, metrics_listen="127.0.0.1:0"
    ).start()
    channel = grpc.insecure_channel(relayer.address)
    client = relay_service_pb2_grpc.RelayServiceStub(channel)
    try:
        assert relayer.port > 0
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="relay.v1.RelayService")
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING

        first = world.chain.dispatch(b"watched")
        stream = client.WatchMessages(relay_service_pb2.WatchMessagesRequest(ids=[first.id]), timeout=10)
        seen = []
        for status in stream:
            seen.append(status.state)
            if status.state == types_pb2.MESSAGE_STATE_DELIVERED:
                break
        stream.cancel()
        assert seen[-1] == types_pb2.MESSAGE_STATE_DELIVERED
        assert seen == sorted(seen)  # the lifecycle only moves forward on the happy path

        more = [world.chain.dispatch(f"m{n}".encode()) for n in range(4)]
        eventually(lambda: states(relayer).get(S.DELIVERED, 0) >= 5, 10, "5 deliveries", interval=0.02)
        assert world.destination.executions == Counter({m.id: 1 for m in [first, *more]})

        page = client.ListMessages(relay_service_pb2.ListMessagesRequest(page_size=3))
        rest = client.ListMessages(
            relay_service_pb2.ListMessagesRequest(page_size=3, page_token=page.next_page_token)
        )
        listed = [m.message.id for m in [*page.messages, *rest.messages]]
        assert listed == [m.id for m in [first, *more]][::-1] and rest.next_page_token == ""
        only = client.ListMessages(
            relay_service_pb2.ListMessagesRequest(states=[types_pb2.MESSAGE_STATE_PARKED])
        )
        assert list(only.messages) == []
        with pytest.raises(grpc.RpcError) as raised:
            client.ListMessages(relay_service_pb2.ListMessagesRequest(page_token="bogus"))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as raised:
            client.ListMessages(
                relay_service_pb2.ListMessagesRequest(states=[types_pb2.MESSAGE_STATE_UNSPECIFIED])
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as raised:
            client.GetMessage(relay_service_pb2.GetMessageRequest(id=b"\x01" * 32))
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND

        chains = client.ListChains(relay_service_pb2.ListChainsRequest()).chains
        assert [(c.domain, c.name, c.head, c.finalized, c.cursor, c.lag_blocks) for c in chains] == [
            (ORIGIN, "alpha", 5, 5, 5, 0)
        ]

        everything = client.WatchMessages(relay_service_pb2.WatchMessagesRequest(), timeout=10)
        eventually(lambda: relayer.subscriptions.count == 1, 10, "the stream to subscribe", interval=0.01)
        last = world.chain.dispatch(b"last")
        for status in everything:
            assert status.message.id == last.id  # nothing else is pending
            if status.state == types_pb2.MESSAGE_STATE_DELIVERED:
                break
        everything.cancel()
        with pytest.raises(grpc.RpcError) as raised:
            next(iter(client.WatchMessages(relay_service_pb2.WatchMessagesRequest(ids=[b"short"]))))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        import json
        import urllib.request

        port = relayer.metrics_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            assert json.loads(response.read())["ready"] is True
        relayer.stages.gauges.refresh(every=0)  # message gauges refresh at most once a second by themselves
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert 'relay_messages_delivered_total{destination="2",origin="1"} 6.0' in text
        assert 'relay_messages{destination="2",origin="1",state="delivered"} 6.0' in text
        assert 'relay_watcher_lag_blocks{chain="alpha"} 0.0' in text
        assert 'relay_attestor_quorum_threshold_weight{origin="1"} 3.0' in text
        assert (
            'relay_grpc_server_requests_total{code="OK",method="/relay.v1.RelayService/ListChains"}' in text
        )
    finally:
        channel.close()
        relayer.stop()
    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("relayer-"))
    SqliteStore(world.store_path).close()  # released cleanly


def test_shutdown_during_a_delivery_is_prompt_and_loses_nothing(world: World) -> None:
    world.destination.gate = threading.Event()
    message = world.chain.dispatch(b"in flight")
    relayer = world.relayer().start()
    try:
        assert world.destination.entered.wait(10)
        assert relayer.store.get(message.id).state is S.SUBMITTED  # type: ignore[union-attr]
    finally:
        started = time.monotonic()
        relayer.stop()
        assert time.monotonic() - started < 5
    world.destination.finished.clear()
    world.destination.gate.set()
    world.destination.gate = None
    assert world.destination.finished.wait(10)  # the abandoned call completes on the submitter's side
    restarted = world.relayer().open()
    try:
        run_until(restarted, lambda: states(restarted) == {S.DELIVERED: 1})
        assert world.destination.executions == Counter({message.id: 1})
    finally:
        restarted.stop()


# --- the command --------------------------------------------------------------------------------

EXAMPLE_CONFIG = """\
store: {store}
listen: 127.0.0.1:0
insecure_plaintext: true
operator_token: {{env: TEST_RELAYER_OPERATOR_TOKEN}}
sources:
  - chain: {{name: alpha, domain: 1, kind: evm, rpc_urls: ["http://127.0.0.1:1"], gateway: "{gateway}"}}
    committee:
      epoch: 1
      members:
{members}
    attestors: ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"]
destinations:
  - {{domain: 2, submitter: "127.0.0.1:5"}}
batching: {{max_batch: 50, max_wait: 0.5}}
retry: {{give_up_after: 86400, base_delay: 1.0, max_delay: 300.0}}
poll_interval: 0.1
"""

FAKE_ADAPTER_MAIN = """
import sys, types
from relay.chains import Cursor, WatchUpdate, registry

def create_watcher(chain, cursors, metrics):
    class Watcher:
        domain = chain.domain
        def poll(self):
            cursors.save_cursor(chain.domain, Cursor(3, b"\\x03" * 32))
            return WatchUpdate(head_block=5, finalized_block=3)
        def block_hash(self, number):
            return number.to_bytes(32, "big") if number <= 5 else None
    return Watcher()

def create_payment_reader(chain, metrics):
    class Payments:
        domain = chain.domain
        def gas_paid(self, ids):
            return [(0, 0) for _ in ids]
    return Payments()

module = types.ModuleType("fake_adapter.adapter")
module.create_watcher = create_watcher
module.create_payment_reader = create_payment_reader
sys.modules["fake_adapter"] = types.ModuleType("fake_adapter")
sys.modules["fake_adapter.adapter"] = module
registry.CHAIN_FAMILIES["evm"] = "fake_adapter"  # EVM config, fake factories
from relay.cli import main
sys.exit(main(sys.argv[1:]))
"""


def write_example_config(path: Path) -> Path:
    members = "\n".join(
        f'        - {{public_key: "{m.public_key.hex()}", proof_of_possession: "{m.proof_of_possession.hex()}"}}'
        for m in MEMBERS
    )
    path.write_text(
        EXAMPLE_CONFIG.format(store=path.with_suffix(".db"), gateway=GATEWAY_ADDRESS, members=members)
    )
    return path


def test_the_example_config_loads(tmp_path: Path) -> None:
    from relay.config import load_config

    config = load_config(
        RelayerConfig,
        write_example_config(tmp_path / "relayer.yaml"),
        environ={"RELAY_BATCHING__MAX_BATCH": "10"},
    )
    assert config.batching.max_batch == 10 and config.retry.give_up_after == 86400
    assert config.sources[0].committee.build(BLS).threshold == 3


def test_bad_config_exits_2_with_the_key_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from relay.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: []\nbatching: {max_batchez: 3}\n")
    assert main(["relayer", "--config", str(bad)]) == 2
    assert "batching.max_batchez" in capsys.readouterr().err
    assert main(["relayer", "--config", str(tmp_path / "missing.yaml")]) == 2


def test_the_command_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    config = write_example_config(tmp_path / "relayer.yaml")
    env = {**os.environ, "TEST_RELAYER_OPERATOR_TOKEN": TOKEN, "RELAY_LOG_LEVEL": "INFO"}
    child = subprocess.Popen(
        [sys.executable, "-c", FAKE_ADAPTER_MAIN, "relayer", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert "RelayService listening on 127.0.0.1:" in line, line + (
            child.stderr.read() if child.stderr else ""
        )
        address = line.rsplit(" ", 1)[1].strip()
        with grpc.insecure_channel(address) as channel:
            client = relay_service_pb2_grpc.RelayServiceStub(channel)
            deadline = time.monotonic() + 10
            while True:
                chains = client.ListChains(relay_service_pb2.ListChainsRequest(), timeout=5).chains
                # The watcher holds its cursor back while the pass stores what it saw (the head
                # comes with that pass): wait for a pass that has finished.
                if chains and chains[0].cursor == 3 and chains[0].head:
                    break
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert (chains[0].head, chains[0].finalized, chains[0].lag_blocks) == (5, 3, 0)
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, stderr
    import json

    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert {"relayer opened", "relay service listening", "relayer stopped"} <= {e["event"] for e in events}
    assert all(e["role"] == "relayer" for e in events)
    assert TOKEN not in stderr


def test_a_stranded_submitted_message_is_sent_again_without_a_restart(world: World) -> None:
    """SUBMITTED with no call waiting (a failure between the write and the outcome) must not wait
    for a restart: once its delivery claim expired (nobody renews it) it is queued again, once."""
    messages = [world.chain.dispatch(f"stranded {n}".encode()) for n in range(2)]
    now = [time.time()]
    relayer = Relayer(
        world.config(),
        watcher_factory=lambda chain, cursors: FakeWatcher(world.chain, cursors),
        clock=lambda: now[0],
    ).open()
    try:
        relayer.process_sources()
        assert states(relayer) == {S.VERIFIED: 2}
        lease = relayer.config.lease_seconds
        claims = relayer.store.claim_messages([m.id for m in messages], "crashed", now[0], lease)
        relayer.store.apply_transitions(
            [Transition(r.id, S.VERIFIED, S.SUBMITTED, fence=r.fence) for r in claims], now[0]
        )
        now[0] += lease / 2
        # messages[0]'s call still waits (its replica renews the claim): only messages[1] is stranded.
        relayer.store.renew_claims({claims[0].id: claims[0].fence}, "crashed", now[0], lease)
        assert relayer.requeue_stranded(DESTINATION) == []  # too recent: a call may still be waiting
        now[0] += lease / 2
        assert relayer.requeue_stranded(DESTINATION) == [messages[1].id]
        now[0] += lease / 2
        assert relayer.requeue_stranded(DESTINATION) == [messages[0].id]
        assert states(relayer) == {S.RETRYING: 2}
        relayer.process_deliveries(flush=True)
        assert states(relayer) == {S.DELIVERED: 2}
        assert world.destination.executions == Counter({m.id: 1 for m in messages})
    finally:
        relayer.stop()


def test_readiness_needs_the_attestor_quorum_and_the_submitter_to_answer(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relay.relayer import attest, deliver

    monkeypatch.setattr(attest, "QUORUM_PROBE_SECONDS", 0.1)
    monkeypatch.setattr(deliver, "PROBE_SECONDS", 0.1)
    world.chain.dispatch(b"ready?")
    relayer = world.relayer(ready_max_poll_age=1.0).start()

    def ready_within(expected: bool, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            ready, detail = relayer.readiness()
            if ready is expected:
                return detail
            if time.monotonic() > deadline:
                pytest.fail(f"readiness stayed {ready} ({detail})")
            time.sleep(0.05)

    try:
        ready_within(True)
        for server in world.attestor_servers[:2]:
            server.stop()
        assert "attestor quorum unreachable (2 of 3 weight answered)" in ready_within(False)
        for server in world.attestor_servers[:2]:
            server.start()
        ready_within(True)
        world.destination_server.stop()
        assert "submitter of domain" in ready_within(False)
        world.destination_server.start()
        ready_within(True)
    finally:
        relayer.stop()
