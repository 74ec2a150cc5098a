"""Several relayer replicas on one store: source leases, delivery claims, fencing (docs/adr/0007).

Real relayers (two or three `Relayer` instances, each with its own store on ONE database: a
PostgreSQL database in the session's server, or one SQLite file, whose WAL and `BEGIN IMMEDIATE`
serialise them, opened `shared=True`), real gRPC to attestors and a submitter; the chain and peers
are the fakes of tests/integration/test_relayer.py. Every test runs on both back ends. Each
replica has its own injectable clock, so a stalled replica (SIGSTOP) is one whose clock stands still
while the others' moves past its lease.

- (a) one replica at a time ingests, attests and proves an origin; another takes it over once the
  lease expired, and the stalled one's late source write is fenced;
- (b) deliveries are shared between replicas, no message is sent twice, every one executes once;
- (c) a replica whose claim was taken over cannot record its late outcome;
- (d) recovery at open on a shared store touches only expired claims;
- (e) a second live process with the same replica id is refused;
- and on real chains (two anvils, four attestor and one submitter role, two replicas): every
  message runs once on the destination, and the origin is taken over within the lease when its
  holder dies without releasing it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from adapters.evm import deploy
from relay.chains import CursorStore, WatchUpdate
from relay.chains.registry import ChainConfig
from relay.config import SecretRef
from relay.errors import ConfigurationError
from relay.lifecycle import MessageState
from relay.relayer import Relayer, RelayerConfig
from relay.relayer.deliver import MAX_BATCHES_IN_FLIGHT
from relay.roles.attestor import Attestor, AttestorConfig
from relay.roles.submitter import Submitter, SubmitterConfig
from relay.rpc import convert
from relay.rpc.server import bind
from relay.store import SqliteStore
from relay.store.base import REQUEUED_REASON, Store
from relay.v1 import attestation_pb2_grpc, destination_pb2_grpc
from relay.verify.hashing import keccak256
from tests.chains import DESTINATION as CHAIN_DESTINATION
from tests.chains import SOURCE as CHAIN_SOURCE
from tests.chains import SUBMITTER, Chains, running_chains
from tests.conformance.test_store import STORE_BACKENDS
from tests.integration.test_relayer import (
    DESTINATION,
    ORIGIN,
    FakeAttestor,
    FakeChain,
    FakeDestination,
    FakeWatcher,
    GrpcServer,
    World,
)
from tests.waiting import eventually

S = MessageState
LEASE = 2.0  # seconds of the injectable clocks
SOURCE_LEASE = f"source/{ORIGIN}"


class ReplicaClock:
    """One replica's clock: `advance` moves it; a stalled replica's clock simply stays behind."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingDestination(FakeDestination):
    """The fake submitter, also recording the ids of every call; `hold_first` holds only the first
    call (a replica stalled in its delivery) while later ones go through."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[list[bytes]] = []
        self.hold_first: threading.Event | None = None
        self.entries = 0
        self.entries_lock = threading.Condition()

    def Deliver(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        _, _, items = convert.deliver_request_from_proto(request)
        with self.entries_lock:
            self.entries += 1
            first = self.entries == 1
            self.sent.append([item.message.id for item in items])
            self.entries_lock.notify_all()
        if first and self.hold_first is not None:
            self.hold_first.wait(30)
        return super().Deliver(request, context)

    def wait_entries(self, count: int, timeout: float = 10.0) -> None:
        with self.entries_lock:
            if not self.entries_lock.wait_for(lambda: self.entries >= count, timeout):
                pytest.fail(f"the submitter saw {self.entries} calls, expected {count}")


class WideGrpcServer(GrpcServer):
    """The fakes' server with room for every replica's calls at once (several held open)."""

    def start(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2 * MAX_BATCHES_IN_FLIGHT))
        self.add(self.servicer, server)
        self.port = bind(server, f"127.0.0.1:{self.port}", self.tls)
        server.start()
        self.server = server


class PausingWatcher(FakeWatcher):
    """A watcher whose next poll can be held (the replica stalls mid-pass, its lease running out)."""

    def __init__(self, chain: FakeChain, cursors: CursorStore, domain: int) -> None:
        super().__init__(chain, cursors, domain)
        self.pause: threading.Event | None = None
        self.paused = threading.Event()

    def poll(self) -> WatchUpdate:
        update = super().poll()
        if self.pause is not None:
            self.paused.set()
            self.pause.wait(30)
        return update


SharedStore = Callable[[], Store]
"""Opens one more connection (a replica's store) to the test's shared database."""


@pytest.fixture(params=sorted(STORE_BACKENDS))
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharedStore]:
    """Each call opens a store on the same database of the back end under test (SQLite: shared)."""
    opened: list[Store] = []

    def open_shared() -> Store:
        if request.param == "sqlite":
            store: Store = SqliteStore(tmp_path / "shared.db", shared=True)
        else:
            store = STORE_BACKENDS[request.param](tmp_path, request)
        opened.append(store)
        return store

    yield open_shared
    for store in opened:
        store.close()


class Replicas:
    """The fakes, and relayer replicas opened on one shared database."""

    def __init__(self, tmp_path: Path, shared_store: SharedStore) -> None:
        self.shared_store = shared_store
        self.chain = FakeChain()
        self.attestors = [FakeAttestor(self.chain, i) for i in range(4)]
        self.servers = [
            GrpcServer(a, attestation_pb2_grpc.add_AttestationServiceServicer_to_server)
            for a in self.attestors
        ]
        self.destination = RecordingDestination()
        self.destination_server = WideGrpcServer(
            self.destination, destination_pb2_grpc.add_DestinationServiceServicer_to_server
        )
        self.world = World(
            self.chain,
            self.attestors,
            self.servers,
            self.destination,
            self.destination_server,
            tmp_path / "r.db",
        )
        self.relayers: list[Relayer] = []
        self.watchers: dict[str, list[PausingWatcher]] = {}

    def replica(self, replica_id: str, clock: Callable[[], float], **overrides: Any) -> Relayer:
        watchers = self.watchers.setdefault(replica_id, [])

        def factory(chain: ChainConfig, cursors: CursorStore) -> PausingWatcher:
            watcher = PausingWatcher(self.chain, cursors, chain.domain)
            watchers.append(watcher)
            return watcher

        store = self.shared_store()
        config = self.world.config(
            **{"replica_id": replica_id, "lease_seconds": LEASE, "poll_interval": 0.05, **overrides}
        )
        relayer = Relayer(
            config, store=store, watcher_factory=factory, clock=clock, registry=CollectorRegistry()
        )
        self.relayers.append(relayer)
        return relayer

    def close(self) -> None:
        if self.destination.hold_first is not None:
            self.destination.hold_first.set()
        for relayer in self.relayers:
            relayer.stop()
        for server in [*self.servers, self.destination_server]:
            server.stop()


@pytest.fixture
def replicas(tmp_path: Path, shared_store: SharedStore) -> Iterator[Replicas]:
    built = Replicas(tmp_path, shared_store)
    yield built
    built.close()


def metric(relayer: Relayer, name: str, labels: dict[str, str]) -> float:
    return relayer.registry.get_sample_value(name, labels) or 0.0


def states(relayer: Relayer) -> dict[MessageState, int]:
    return relayer.store.count_by_state()


def polls(replicas: Replicas, replica_id: str) -> int:
    return sum(w.polls for w in replicas.watchers.get(replica_id, []))


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


# --- (a) source leases ---------------------------------------------------------------------------


def test_one_replica_at_a_time_watches_an_origin_and_another_takes_over_after_the_lease(
    replicas: Replicas,
) -> None:
    start = time.time()
    clock_a, clock_b = ReplicaClock(start), ReplicaClock(start)
    a = replicas.replica("replica-a", clock_a).open()
    b = replicas.replica("replica-b", clock_b).open()
    first = [replicas.chain.dispatch(f"first {n}".encode()) for n in range(3)]

    a.process_sources()
    assert states(a) == {S.VERIFIED: 3}
    asked = sum(attestor.calls for attestor in replicas.attestors)
    b.process_sources()  # not the holder: follows the tree from the store, writes nothing
    assert polls(replicas, "replica-a") == 1 and polls(replicas, "replica-b") == 0
    assert sum(attestor.calls for attestor in replicas.attestors) == asked  # b asked for no signature
    assert b.sources[ORIGIN].tree.count == 3 and b.sources[ORIGIN].lease is None
    assert metric(a, "relay_lease_held", {"lease": SOURCE_LEASE}) == 1
    assert metric(b, "relay_lease_held", {"lease": SOURCE_LEASE}) == 0

    # a stalls in the middle of its next pass (SIGSTOP): its poll returns, its write waits.
    watcher_a = replicas.watchers["replica-a"][-1]
    watcher_a.pause = threading.Event()
    second = [replicas.chain.dispatch(f"second {n}".encode()) for n in range(2)]
    stalled, errors = in_thread(a.process_sources)
    assert watcher_a.paused.wait(10)

    clock_b.advance(LEASE - 0.1)
    b.process_sources()
    assert b.sources[ORIGIN].lease is None  # a's lease has not expired yet
    clock_b.advance(0.1)
    b.process_sources()  # expired: b takes the origin over, from the stored cursor
    lease = b.sources[ORIGIN].lease
    assert lease is not None and lease.owner.split(":")[0] == "replica-b" and lease.fence == 2
    assert metric(b, "relay_lease_takeovers_total", {"lease": SOURCE_LEASE}) == 1
    assert states(b) == {S.VERIFIED: 5}
    assert polls(replicas, "replica-b") == 1

    # a wakes up: its write under the old lease is refused whole and counted; b's work stands.
    watcher_a.pause.set()
    stalled.join(10)
    assert not stalled.is_alive() and errors == []
    assert metric(a, "relay_fenced_writes_total", {"stage": "ingest"}) == 1
    assert a.sources[ORIGIN].lease is None
    assert metric(a, "relay_lease_held", {"lease": SOURCE_LEASE}) == 0
    assert states(a) == {S.VERIFIED: 5}
    assert {r.source_block for m in [*first, *second] if (r := a.store.get(m.id))} == {1, 2, 3, 4, 5}

    # The stalled replica follows now; delivery still works from either of them.
    a.process_sources()
    assert a.sources[ORIGIN].lease is None and a.sources[ORIGIN].tree.count == 5
    # Only the holder exports the watcher's view of the chain: a's last one would be stale.
    chain = {"chain": a.sources[ORIGIN].name}
    assert a.registry.get_sample_value("relay_chain_head_block", chain) is None
    assert a.registry.get_sample_value("relay_watcher_lag_blocks", chain) is None
    assert b.registry.get_sample_value("relay_chain_head_block", chain) is not None
    a.process_deliveries(flush=True)
    assert states(a) == {S.DELIVERED: 5}
    assert replicas.destination.executions == Counter({m.id: 1 for m in [*first, *second]})


def test_a_replica_taking_an_origin_back_restarts_its_watcher_from_the_stored_cursor(
    replicas: Replicas,
) -> None:
    start = time.time()
    clock = ReplicaClock(start)
    a = replicas.replica("replica-a", clock).open()
    b = replicas.replica("replica-b", clock).open()
    replicas.chain.dispatch(b"one")
    a.process_sources()
    b.process_sources()
    clock.advance(LEASE)  # a stops renewing; b takes over and moves the cursor on
    b.process_sources()
    replicas.chain.dispatch(b"two")
    b.process_sources()
    assert b.sources[ORIGIN].lease is not None and states(b) == {S.VERIFIED: 2}
    b.stop()  # a graceful stop releases the lease at once
    a.process_sources()
    assert a.sources[ORIGIN].lease is not None and a.sources[ORIGIN].lease.fence == 3
    watcher = replicas.watchers["replica-a"][-1]
    assert len(replicas.watchers["replica-a"]) == 2  # a new watcher, started where b left the cursor
    assert watcher.started_at is not None and watcher.started_at.block_number == 2
    assert a.sources[ORIGIN].tree.count == 2
    replicas.chain.dispatch(b"three")
    a.process_sources()
    assert states(a) == {S.VERIFIED: 3}


# --- (b) deliveries shared -----------------------------------------------------------------------


def test_replicas_share_deliveries_and_each_message_is_sent_and_executed_once(replicas: Replicas) -> None:
    start = time.time()
    a = replicas.replica("replica-a", ReplicaClock(start), batching={"max_batch": 1, "max_wait": 0}).open()
    b = replicas.replica("replica-b", ReplicaClock(start), batching={"max_batch": 1, "max_wait": 0}).open()
    c = replicas.replica("replica-c", ReplicaClock(start), batching={"max_batch": 1, "max_wait": 0}).open()
    workers = MAX_BATCHES_IN_FLIGHT
    total = workers + 8
    sent = [replicas.chain.dispatch(f"shared {n}".encode()) for n in range(total)]
    a.process_sources()
    assert states(a) == {S.VERIFIED: total}

    # a's delivery workers are all held at the submitter: the rest of what a read is
    # unclaimed yet, so b and c claim and deliver it meanwhile.
    replicas.destination.gate = threading.Event()
    first, first_errors = in_thread(lambda: a.process_deliveries(flush=True))
    replicas.destination.wait_entries(workers)
    others = [in_thread(lambda r=r: r.process_deliveries(flush=True)) for r in (b, c)]  # type: ignore[misc]
    replicas.destination.wait_entries(workers + 2)
    replicas.destination.gate.set()
    for thread, errors in [(first, first_errors), *others]:
        thread.join(30)
        assert not thread.is_alive() and errors == []
    for relayer in (a, b, c):
        relayer.process_deliveries(flush=True)  # whatever a read but found taken is done by now
    assert states(a) == {S.DELIVERED: total}

    every_call = [i for call in replicas.destination.sent for i in call]
    assert Counter(every_call) == Counter({m.id: 1 for m in sent})  # no message sent twice
    assert replicas.destination.executions == Counter({m.id: 1 for m in sent})
    delivered = {
        r.config.replica_id: metric(r, "relay_messages_delivered_total", {"origin": "1", "destination": "2"})
        for r in (a, b, c)
    }
    assert sum(delivered.values()) == total and delivered["replica-a"] >= workers
    assert delivered["replica-b"] + delivered["replica-c"] >= 1


def test_three_replicas_in_background_deliver_everything_exactly_once(replicas: Replicas) -> None:
    relayers = [
        replicas.replica(name, time.time, batching={"max_batch": 5, "max_wait": 0.05}).start()
        for name in ("replica-a", "replica-b", "replica-c")
    ]
    sent = [replicas.chain.dispatch(f"background {n}".encode()) for n in range(40)]
    eventually(lambda: states(relayers[0]).get(S.DELIVERED, 0) == 40, 30, "40 deliveries", interval=0.05)
    assert replicas.destination.executions == Counter({m.id: 1 for m in sent})
    every_call = [i for call in replicas.destination.sent for i in call]
    assert Counter(every_call) == Counter({m.id: 1 for m in sent})
    holders = [r for r in relayers if r.sources[ORIGIN].lease is not None]
    assert len(holders) == 1  # one watcher for the origin


def test_a_call_waiting_longer_than_the_lease_stays_with_its_replica_while_it_renews(
    replicas: Replicas,
) -> None:
    clock = ReplicaClock(time.time())  # one clock for both: nobody stalls
    a = replicas.replica("replica-a", clock, submitter_timeout=60.0).open()
    b = replicas.replica("replica-b", clock).open()
    message = replicas.chain.dispatch(b"slow chain")
    a.process_sources()
    replicas.destination.gate = threading.Event()  # the destination takes its time
    waiting, errors = in_thread(lambda: a.process_deliveries(flush=True))
    replicas.destination.wait_entries(1)
    for step in range(1, 7):  # two leases, a third at a time: a renews every step
        clock.advance(LEASE / 3 + 0.01)
        expected = clock.now + LEASE
        eventually(
            lambda e=expected: (r := b.store.get(message.id)) is not None and r.claim_expires == e,  # type: ignore[misc]
            10,
            f"renewal {step}",
            interval=0.02,
        )
        assert b.requeue_stranded(DESTINATION) == []  # live claim: not taken over
    replicas.destination.gate.set()
    waiting.join(10)
    assert not waiting.is_alive() and errors == []
    assert states(a) == {S.DELIVERED: 1}
    assert replicas.destination.sent == [[message.id]]  # sent once, by a
    assert metric(a, "relay_fenced_writes_total", {"stage": "outcomes"}) == 0


# --- (c) fencing a late outcome ------------------------------------------------------------------


def test_a_late_outcome_of_a_replica_whose_claim_was_taken_over_is_fenced(replicas: Replicas) -> None:
    start = time.time()
    clock_a, clock_b = ReplicaClock(start), ReplicaClock(start)
    a = replicas.replica("replica-a", clock_a).open()
    b = replicas.replica("replica-b", clock_b).open()
    message = replicas.chain.dispatch(b"contested")
    a.process_sources()

    # a sends and stalls while its call waits (its clock stands still: it never renews).
    replicas.destination.hold_first = threading.Event()
    stalled, errors = in_thread(lambda: a.process_deliveries(flush=True))
    replicas.destination.wait_entries(1)
    record = a.store.get(message.id)
    assert record is not None and record.state is S.SUBMITTED and record.claim_owner == "replica-a"
    fence_a = record.fence

    clock_b.advance(LEASE + 1)  # past a's claim: b's stranded check takes the message back
    assert b.requeue_stranded(DESTINATION) == [message.id]
    assert metric(b, "relay_claims_requeued_total", {"destination": str(DESTINATION)}) == 1
    b.process_deliveries(flush=True)
    record = b.store.get(message.id)
    assert record is not None and record.state is S.DELIVERED and record.fence > fence_a
    delivered_by_b = record.destination_transaction

    replicas.destination.hold_first.set()  # a's call comes back: the message was delivered already
    stalled.join(10)
    assert not stalled.is_alive() and errors == []
    assert metric(a, "relay_fenced_writes_total", {"stage": "outcomes"}) == 1
    record = a.store.get(message.id)
    assert record is not None and record.state is S.DELIVERED
    assert record.destination_transaction == delivered_by_b  # the new holder's outcome stands
    assert replicas.destination.executions == Counter({message.id: 1})
    assert metric(a, "relay_messages_delivered_total", {"origin": "1", "destination": "2"}) == 0


# --- (d) recovery at open ------------------------------------------------------------------------


def test_recovery_at_open_on_a_shared_store_touches_only_expired_claims(replicas: Replicas) -> None:
    start = time.time()
    clock = ReplicaClock(start)
    a = replicas.replica("replica-a", clock).open()
    messages = [replicas.chain.dispatch(f"recover {n}".encode()) for n in range(4)]
    a.process_sources()
    store = a.store
    # Two messages sent by a replica that died a lease ago, two by one whose call still waits.
    dead = store.claim_messages([m.id for m in messages[:2]], "dead-replica", start - LEASE, LEASE)
    live = store.claim_messages([m.id for m in messages[2:]], "live-replica", start, LEASE)
    from relay.store import Transition

    store.apply_transitions(
        [Transition(r.id, S.VERIFIED, S.SUBMITTED, fence=r.fence) for r in [*dead, *live]], start
    )
    b = replicas.replica("replica-b", clock).open()
    assert metric(b, "relay_claims_requeued_total", {"destination": str(DESTINATION)}) == 2
    after = {m.id: b.store.get(m.id) for m in messages}
    for record in dead:
        now = after[record.id]
        assert now is not None and now.state is S.RETRYING and now.error_reason == REQUEUED_REASON
    for record in live:
        now = after[record.id]
        assert now is not None and now.state is S.SUBMITTED
        assert (now.claim_owner, now.fence) == ("live-replica", record.fence)  # untouched


# --- (e) one live process per replica id ---------------------------------------------------------


def test_a_second_live_process_with_the_same_replica_id_is_refused(replicas: Replicas) -> None:
    start = time.time()
    first = replicas.replica("same", ReplicaClock(start), lease_seconds=0.2).open()
    began = time.monotonic()
    with pytest.raises(ConfigurationError, match="replica id same is held by a live process"):
        replicas.replica("same", ReplicaClock(start), lease_seconds=0.2).open()
    assert time.monotonic() - began >= 0.2  # it waited for a previous incarnation's lease first
    assert metric(first, "relay_replica_info", {"replica": "same"}) == 1
    # A dead incarnation (its lease ran out, never released) does not block a restart.
    restarted = replicas.replica("same", ReplicaClock(start + 1.0), lease_seconds=0.2).open()
    assert metric(restarted, "relay_replica_info", {"replica": "same"}) == 1
    registration = [lease for lease in restarted.store.leases("replica/") if lease.name == "replica/same"]
    assert [lease.fence for lease in registration] == [2]


# --- real chains: two anvils, four attestors, a submitter, two replicas ---------------------------


DELIVERED_TOPIC = keccak256(b"Delivered(bytes32,uint32,uint32)")


def delivered_events(chains: Chains, message_id: bytes) -> int:
    """How many times the destination Gateway executed `message_id` (its `Delivered` logs)."""
    logs = deploy.rpc_request(
        chains.destination.rpc_url,
        "eth_getLogs",
        [
            {
                "fromBlock": "0x0",
                "toBlock": "latest",
                "address": chains.gateway,
                "topics": ["0x" + DELIVERED_TOPIC.hex(), "0x" + message_id.hex()],
            }
        ],
    )
    return len(logs)


@pytest.fixture(scope="module")
def real_chains() -> Iterator[Chains]:
    with running_chains() as started:
        yield started


@pytest.mark.anvil
def test_two_replicas_on_real_chains_deliver_once_and_take_over_a_dead_holders_origin(
    real_chains: Chains, shared_store: SharedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    chains = real_chains
    attestors = [
        Attestor(
            AttestorConfig(
                chain=chains.source_chain(confirmations=1),
                bls_key=SecretRef(value=hex(secret)),
                signer_index=index,
                epoch=1,
                listen="127.0.0.1:0",
                poll_interval=0.1,
                insecure_plaintext=True,
            )
        ).start()
        for index, secret in enumerate(chains.secrets)
    ]
    loops = [threading.Thread(target=a.run_loop, daemon=True) for a in attestors]
    for loop in loops:
        loop.start()
    submitter = Submitter(
        SubmitterConfig(
            chain=chains.destination_chain(),
            key=SecretRef(value=SUBMITTER),
            listen="127.0.0.1:0",
            insecure_plaintext=True,
        )
    ).start()
    relayers: list[Relayer] = []

    def replica(replica_id: str) -> Relayer:
        config = RelayerConfig.model_validate(
            {
                "insecure_plaintext": True,
                "replica_id": replica_id,
                "lease_seconds": LEASE,
                "poll_interval": 0.1,
                "store": "injected.db",  # unused: each replica gets a store on the shared database
                "sources": [
                    {
                        "chain": chains.source_chain(confirmations=1).model_dump(mode="json"),
                        "committee": {
                            "epoch": 1,
                            "members": [
                                {
                                    "public_key": m.public_key.hex(),
                                    "proof_of_possession": m.proof_of_possession.hex(),
                                }
                                for m in chains.committee.members
                            ],
                        },
                        "attestors": [f"127.0.0.1:{a.grpc_port}" for a in attestors],
                    }
                ],
                "destinations": [
                    {
                        "domain": CHAIN_DESTINATION,
                        "submitter": f"127.0.0.1:{submitter.grpc_port}",
                        "chain": chains.destination_chain().model_dump(mode="json"),
                    }
                ],
                "batching": {"max_batch": 4, "max_wait": 0.05},
                "gas_policy": {"mode": "allow_all"},
            }
        )
        relayer = Relayer(config, store=shared_store(), registry=CollectorRegistry())
        relayers.append(relayer)
        return relayer.start()

    try:
        first, second = replica("replica-a"), replica("replica-b")
        sent = chains.send(8, "replicas ")
        chains.mine(2)

        def delivered(ids: list[bytes]) -> bool:
            return all((r := first.store.get(i)) is not None and r.state is S.DELIVERED for i in ids)

        eventually(lambda: delivered(sent), 60, "the first messages delivered", interval=0.1)
        [holder] = [r for r in (first, second) if r.sources[CHAIN_SOURCE].lease is not None]
        other = second if holder is first else first

        # The holder dies without giving its lease up (kill -9): the other takes the origin over
        # once the lease ran out, and delivers what is sent meanwhile.
        monkeypatch.setattr(holder.stages.replica, "release", lambda sources: None)
        died = time.monotonic()
        holder.stop()
        more = chains.send(4, "after the holder died ")
        chains.mine(2)
        eventually(lambda: other.sources[CHAIN_SOURCE].lease is not None, 30, "the takeover", interval=0.05)
        takeover = time.monotonic() - died
        assert takeover <= LEASE + 3.0  # within the lease, plus a few passes of slack on 2 shared cores
        lease_name = f"source/{CHAIN_SOURCE}"
        assert metric(other, "relay_lease_takeovers_total", {"lease": lease_name}) == 1
        eventually(lambda: delivered(more), 60, "the later messages delivered", interval=0.1)

        for message_id in [*sent, *more]:
            assert delivered_events(chains, message_id) == 1  # the recipient ran it once
            assert len(other.store.transactions_for(message_id)) == 1  # sent in one transaction only
    finally:
        for relayer in relayers:
            relayer.stop()
        submitter.stop()
        for attestor in attestors:
            attestor.stop()
