"""The light-client stage and receipt-proof delivery, with fake beacon/RPC/destination parties.

A light-client origin's messages go FINAL -> WAITING_FOR_HEADER -> HEADER_SUBMITTED -> VERIFIED
-> SUBMITTED -> DELIVERED with no attestor; whatever one party (beacon node, execution RPC,
submitter, destination chain) gets wrong keeps only the messages it concerns waiting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError

from relay.chains.lightclient import (
    HeaderUpdate,
    ProvenReceipt,
    ReceiptDelivery,
    ReceiptProof,
    StoredHeaders,
)
from relay.errors import MessageNotInBlock, PermanentError, RpcUnavailable, UntrustedAnswer
from relay.metrics import RelayMetrics
from relay.peers import DeliveryOutcome, DeliveryReport, DeliveryResult
from relay.relayer.config import BatchingConfig, DestinationConfig, RelayerConfig, SourceConfig
from relay.relayer.deliver import Deliverer
from relay.relayer.deliver_receipts import compute_receipt_batch
from relay.relayer.gauges import Gauges
from relay.relayer.ingest import DeferredCursors
from relay.relayer.lightclient import HeaderDriver, inert_committee
from relay.relayer.outcomes import Outcomes
from relay.relayer.state import DestinationState, SourceState
from relay.relayer.tree import OriginTree
from relay.retry import BackoffSchedule
from relay.store import Store

from .helpers import GATEWAY, GATEWAY_ADDRESS, ORIGIN, IdleWatcher, make_message, observe, state_of
from .helpers import S as St

DEST_A, DEST_B = 2, 3
LIGHT_CLIENT = "0x" + "11" * 20
INBOX = "0x" + "12" * 20


def light_client_chain(domain: int = ORIGIN) -> dict[str, Any]:
    return {
        "kind": "ethereum",
        "name": "ethereum",
        "domain": domain,
        "rpc_urls": ["http://127.0.0.1:1"],
        "gateway": GATEWAY_ADDRESS,
        "light_client": {"trusted_block_root": "0x" + "ab" * 32, "beacon_url": "http://127.0.0.1:2"},
    }


def destination_chain(domain: int, origins: dict[int, Any] | None = None) -> dict[str, Any]:
    return {
        "name": f"dest-{domain}",
        "domain": domain,
        "rpc_urls": ["http://127.0.0.1:3"],
        "gateway": "0x" + "43" * 20,
        "light_client_origins": origins
        if origins is not None
        else {ORIGIN: {"light_client": LIGHT_CLIENT, "inbox": INBOX}},
    }


def light_client_source() -> SourceConfig:
    return SourceConfig.model_validate({"chain": light_client_chain(), "verification": "lightclient"})


# --- fakes ---------------------------------------------------------------------------------------


@dataclass
class FakeLightClient:
    """A destination's light client (`LightClientReader`); `error` makes reads fail."""

    latest: int = 0
    error: Exception | None = None
    also_stored: set[int] = field(default_factory=set)  # stored blocks besides the latest
    reads: int = 0

    def stored_headers(self) -> StoredHeaders:
        if self.error is not None:
            raise self.error
        return StoredHeaders(self.latest, self.latest * 10, 0, True)

    def execution_header(self, block_number: int) -> tuple[bytes, bytes] | None:
        self.reads += 1
        if block_number == self.latest or block_number in self.also_stored:
            return block_number.to_bytes(32, "big"), b"\x77" * 32
        return None


@dataclass
class FakeOrigin:
    """The beacon node + execution RPC: `finalized` is what the origin's light client finalized."""

    finalized: int = 0
    update_error: Exception | None = None
    proof_errors: dict[bytes, Exception] = field(default_factory=dict)
    proved: list[tuple[bytes, int, int]] = field(default_factory=list)

    def updates_to_reach(self, block_number: int, stored: StoredHeaders) -> Sequence[HeaderUpdate]:
        if self.update_error is not None:
            raise self.update_error
        if self.finalized < block_number:
            return []
        return [HeaderUpdate(b'{"version": "deneb"}', self.finalized * 10, self.finalized, 0, False)]

    def prove_message(
        self, message_id: bytes, block_number: int, anchor_block: int, anchor_hash: bytes, anchor_root: bytes
    ) -> ProvenReceipt:
        if message_id in self.proof_errors:
            raise self.proof_errors[message_id]
        self.proved.append((message_id, block_number, anchor_block))
        walk = tuple(bytes([n % 256]) * 4 for n in range(anchor_block, block_number - 1, -1))
        proof = ReceiptProof(anchor_block, walk if anchor_block != block_number else (), 0, (b"node",))
        return ProvenReceipt(proof, 0)


@dataclass
class LightClientSubmitter:
    """A submitter serving the light-client RPCs; updates move `light_client` to their block."""

    light_client: FakeLightClient
    address: str = "submitter"
    refuse: Exception | None = None
    updates: list[HeaderUpdate] = field(default_factory=list)
    batches: list[tuple[list[ReceiptProof], list[ReceiptDelivery]]] = field(default_factory=list)
    calls: list[Any] = field(default_factory=list)

    def submit_light_client_update(
        self, origin: int, update: HeaderUpdate, timeout: float
    ) -> tuple[bytes, int]:
        if self.refuse is not None:
            raise self.refuse
        self.updates.append(update)
        self.light_client.latest = max(self.light_client.latest, update.finalized_block)
        return b"\x01" * 32, self.light_client.latest

    def deliver_by_receipt(
        self,
        origin: int,
        proofs: Sequence[ReceiptProof],
        deliveries: Sequence[ReceiptDelivery],
        timeout: float,
    ) -> Any:
        self.batches.append((list(proofs), list(deliveries)))
        results = {d.message.id: DeliveryResult(DeliveryOutcome.DELIVERED) for d in deliveries}
        report = DeliveryReport(b"\xbb" * 32, 9, 120_000, results)

        class Done:
            def wait(self, timeout: float) -> DeliveryReport:
                return report

            def cancel(self) -> None:
                pass

        return Done()

    def deliver(self, *args: Any) -> Any:
        raise AssertionError("a light-client origin is never delivered under a checkpoint")

    def probe(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        pass


class World:
    """One light-client origin, two destinations (each its own light client and submitter)."""

    def __init__(self, store: Store, metrics: RelayMetrics, clock: Any) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.origin = FakeOrigin()
        self.light_clients = {DEST_A: FakeLightClient(), DEST_B: FakeLightClient()}
        self.submitters = {d: LightClientSubmitter(lc) for d, lc in self.light_clients.items()}
        self.source = SourceState(
            config=light_client_source(),
            committee=inert_committee(),
            gateway=GATEWAY,
            cursors=DeferredCursors(store),
            watcher=IdleWatcher(),
            attestors=[],
            tree=OriginTree(store, ORIGIN, "ethereum"),
        )
        self.destinations = {
            d: DestinationState(DestinationConfig(domain=d, submitter="submitter"), self.submitters[d])
            for d in (DEST_A, DEST_B)
        }
        self.driver = HeaderDriver(
            store,
            metrics,
            clock,
            self.destinations,
            {ORIGIN: self.origin},
            lambda origin, domain: self.light_clients.get(domain),
            submitter_timeout=5.0,
            max_header_walk=64,
        )
        outcomes = Outcomes(
            store, metrics, clock, BackoffSchedule(1.0, 60.0), Gauges(store, metrics, clock), {}
        )
        self.deliverer = Deliverer(
            store,
            clock,
            BatchingConfig(max_batch=10, max_wait=0.0),
            5.0,
            {ORIGIN: self.source},
            outcomes,
            lambda: False,
            metrics=metrics,
            receipts=self.driver,
        )

    def dispatch(self, nonce: int, block: int, destination: int = DEST_A) -> bytes:
        message = make_message(nonce, destination=destination)
        self.store.insert_observed([observe(message, block)], self.clock())
        self.store.mark_final(ORIGIN, block + 1, self.clock())
        return message.id


@pytest.fixture
def world(store: Store, metrics: RelayMetrics, clock: Any) -> World:
    return World(store, metrics, clock)


# --- the path ------------------------------------------------------------------------------------


def test_a_message_goes_from_final_to_delivered_without_any_attestor(world: World) -> None:
    first = world.dispatch(0, block=10)
    assert world.driver.advance(world.source) is False  # the origin has not finalized block 10
    assert state_of(world.store, first) is St.WAITING_FOR_HEADER
    assert world.submitters[DEST_A].updates == []

    world.origin.finalized = 12
    assert world.driver.advance(world.source) is True  # update sent, stored, proven in one pass
    assert [u.finalized_block for u in world.submitters[DEST_A].updates] == [12]
    assert state_of(world.store, first) is St.VERIFIED
    # Block 10 is not stored itself: the proof walks back from stored block 12.
    assert world.origin.proved == [(first, 10, 12)]

    world.deliverer.deliver(world.destinations[DEST_A], flush=True)
    proofs, deliveries = world.submitters[DEST_A].batches[0]
    assert [d.message.id for d in deliveries] == [first] and proofs[0].block_number == 12
    assert state_of(world.store, first) is St.DELIVERED
    world.dispatch(1, block=13)
    world.driver.advance(world.source)
    assert world.metrics.light_client_stored_block.labels(str(ORIGIN), str(DEST_A))._value.get() == 12


def test_messages_of_one_receipt_share_one_proof_in_a_batch(world: World) -> None:
    ids = [world.dispatch(n, block=5) for n in range(3)]
    world.light_clients[DEST_A].latest = 5  # already stored: no update needed, no walk
    world.driver.advance(world.source)
    assert [state_of(world.store, i) for i in ids] == [St.VERIFIED] * 3
    assert world.submitters[DEST_A].updates == []
    world.deliverer.deliver(world.destinations[DEST_A], flush=True)
    proofs, deliveries = world.submitters[DEST_A].batches[0]
    assert len(proofs) == 1 and [d.proof_index for d in deliveries] == [0, 0, 0]
    assert all(state_of(world.store, i) is St.DELIVERED for i in ids)


def test_header_submitted_goes_back_to_waiting_when_the_destination_did_not_get_there(world: World) -> None:
    message = world.dispatch(0, block=10)
    world.origin.finalized = 10
    world.light_clients[DEST_A].latest = 0
    world.submitters[DEST_A].light_client = FakeLightClient()  # its updates land nowhere
    world.driver.advance(world.source)
    assert state_of(world.store, message) is St.HEADER_SUBMITTED
    world.origin.finalized = 9  # the beacon node now serves nothing that reaches block 10
    world.driver.advance(world.source)
    assert state_of(world.store, message) is St.WAITING_FOR_HEADER


# --- hostile or broken parties ----------------------------------------------------------------------


def test_a_lying_beacon_node_sends_nothing_and_rejects_nothing(world: World) -> None:
    message = world.dispatch(0, block=10)
    world.origin.update_error = UntrustedAnswer("sync aggregate signature does not verify")
    world.driver.advance(world.source)
    assert state_of(world.store, message) is St.WAITING_FOR_HEADER
    assert world.submitters[DEST_A].updates == []  # nobody paid for a refused update
    assert world.metrics.rejections.labels(str(ORIGIN), "UntrustedAnswer")._value.get() == 1
    world.origin.update_error = None
    world.origin.finalized = 10
    world.driver.advance(world.source)
    assert state_of(world.store, message) is St.VERIFIED


def test_a_refusing_submitter_or_dead_destination_stalls_only_its_own_messages(world: World) -> None:
    to_a = world.dispatch(0, block=10, destination=DEST_A)
    to_b = world.dispatch(1, block=11, destination=DEST_B)
    world.origin.finalized = 11
    world.submitters[DEST_A].refuse = PermanentError("UpdateRefused: participation below two thirds")
    world.driver.advance(world.source)
    assert state_of(world.store, to_a) is St.WAITING_FOR_HEADER
    assert state_of(world.store, to_b) is St.VERIFIED
    world.submitters[DEST_A].refuse = None
    world.light_clients[DEST_B].error = RpcUnavailable("destination chain away")
    world.driver.advance(world.source)
    assert state_of(world.store, to_a) is St.VERIFIED


def test_a_lying_execution_rpc_keeps_the_message_waiting_and_a_missing_message_is_rejected(
    world: World,
) -> None:
    lied = world.dispatch(0, block=10)
    absent = world.dispatch(1, block=10)
    honest = world.dispatch(2, block=10)
    world.light_clients[DEST_A].latest = 10
    world.origin.proof_errors = {
        lied: UntrustedAnswer("receipts do not rebuild the stored receipts root"),
        absent: MessageNotInBlock("no Dispatch of this id in the proven receipts"),
    }
    world.driver.advance(world.source)
    assert state_of(world.store, lied) is St.WAITING_FOR_HEADER
    assert state_of(world.store, absent) is St.REJECTED
    assert state_of(world.store, honest) is St.VERIFIED
    record = world.store.get(absent)
    assert record is not None and record.error_reason == "MessageNotInBlock"


def test_a_block_too_far_below_every_stored_header_waits(world: World) -> None:
    message = world.dispatch(0, block=10)
    world.light_clients[DEST_A].latest = 10 + 65  # max_header_walk is 64
    world.driver.advance(world.source)
    assert state_of(world.store, message) is St.WAITING_FOR_HEADER
    assert world.origin.proved == []
    reads = world.light_clients[DEST_A].reads
    world.driver.advance(world.source)  # nothing newer stored: the blocks above are not read again
    assert world.light_clients[DEST_A].reads - reads <= 2


def test_a_backlog_older_than_the_newest_header_walks_from_the_nearest_stored_one(world: World) -> None:
    old = world.dispatch(0, block=10)
    world.light_clients[DEST_A].latest = 500  # the newest finality update is far above block 10
    world.light_clients[DEST_A].also_stored = {40}  # an earlier update stored block 40
    world.driver.advance(world.source)
    assert state_of(world.store, old) is St.VERIFIED
    assert world.origin.proved == [(old, 10, 40)]


def test_a_lost_proof_is_rebuilt_at_delivery(
    world: World, store: Store, metrics: RelayMetrics, clock: Any
) -> None:
    message = world.dispatch(0, block=7)
    world.light_clients[DEST_A].latest = 7
    world.driver.advance(world.source)
    restarted = World(store, metrics, clock)  # a new process: no proofs kept in memory
    restarted.light_clients[DEST_A].latest = 7
    restarted.deliverer.deliver(restarted.destinations[DEST_A], flush=True)
    assert restarted.origin.proved == [(message, 7, 7)]
    assert state_of(store, message) is St.DELIVERED


def test_an_unreachable_execution_rpc_costs_one_timeout_per_batch_not_one_per_message(
    world: World, store: Store, metrics: RelayMetrics, clock: Any
) -> None:
    """Review of issue 13: proofs lost (a restart) are rebuilt in the destination's delivery
    slots, which every origin of that destination shares. An origin whose execution RPC does not
    answer must not hold a slot for one timeout per message of the batch: the first
    `RpcUnavailable` ends the rebuilding, the batch waits for the next pass."""
    messages = [world.dispatch(nonce, block=7) for nonce in range(3)]
    world.light_clients[DEST_A].latest = 7
    world.driver.advance(world.source)
    restarted = World(store, metrics, clock)  # a new process: no proofs kept in memory
    restarted.light_clients[DEST_A].latest = 7
    attempts: list[bytes] = []
    honest = restarted.origin.prove_message

    def unreachable(message_id: bytes, *args: Any) -> ProvenReceipt:
        attempts.append(message_id)
        raise RpcUnavailable("execution node unreachable or answered garbage")

    restarted.origin.prove_message = unreachable  # type: ignore[method-assign]
    restarted.deliverer.deliver(restarted.destinations[DEST_A], flush=True)
    assert len(attempts) == 1
    assert [state_of(store, m) for m in messages] == [St.VERIFIED] * 3  # released, sent later
    restarted.origin.prove_message = honest  # type: ignore[method-assign]
    restarted.deliverer.deliver(restarted.destinations[DEST_A], flush=True)
    assert [state_of(store, m) for m in messages] == [St.DELIVERED] * 3


def test_compute_receipt_batch_points_each_message_at_its_proof() -> None:
    from relay.store.base import MessageRecord

    proof_a = ReceiptProof(5, (), 1, (b"a",))
    proof_b = ReceiptProof(5, (), 2, (b"b",))
    messages = [make_message(n) for n in range(3)]
    records = [MessageRecord(m, St.VERIFIED) for m in messages]
    kept = {
        messages[0].id: ProvenReceipt(proof_a, 0),
        messages[1].id: ProvenReceipt(proof_b, 3),
        messages[2].id: ProvenReceipt(proof_a, 1),
    }
    proofs, deliveries = compute_receipt_batch(records, kept, {})
    assert proofs == [proof_a, proof_b]
    assert [(d.proof_index, d.log_index) for d in deliveries] == [(0, 0), (1, 3), (0, 1)]


# --- configuration --------------------------------------------------------------------------------


def test_config_a_light_client_source_needs_no_committee_and_names_its_destinations_contracts() -> None:
    config = RelayerConfig.model_validate(
        {
            "store": "unused.db",
            "insecure_plaintext": True,
            "sources": [{"chain": light_client_chain(), "verification": "lightclient"}],
            "destinations": [{"domain": DEST_A, "submitter": "s", "chain": destination_chain(DEST_A)}],
        }
    )
    assert config.sources[0].is_light_client and config.sources[0].committee is None


@pytest.mark.parametrize(
    ("source", "destination", "complaint"),
    [
        ({"verification": "lightclient", "attestors": ["a:1"]}, None, "no committee and no attestors"),
        ({"verification": "bogus"}, None, "verification"),
        ({"verification": "committee"}, None, "committee is required"),
        (
            {"verification": "lightclient", "chain": {**light_client_chain(), "kind": "evm"}},
            None,
            "light_client",
        ),
        ({"verification": "lightclient"}, destination_chain(DEST_A, origins={}), "light_client_origins.1"),
        (
            {"verification": "lightclient"},
            destination_chain(DEST_A, origins={ORIGIN: {"light_client": "0x12", "inbox": INBOX}}),
            "20-byte hex address",
        ),
    ],
)
def test_config_refuses_a_light_client_source_set_up_wrong(
    source: dict[str, Any], destination: dict[str, Any] | None, complaint: str
) -> None:
    chain = source.pop("chain", light_client_chain())
    if chain.get("kind") == "evm":
        chain.pop("light_client")
    destinations = [{"domain": DEST_A, "submitter": "s", "chain": destination or destination_chain(DEST_A)}]
    with pytest.raises(ValidationError, match=complaint):
        RelayerConfig.model_validate(
            {
                "store": "unused.db",
                "insecure_plaintext": True,
                "sources": [{"chain": chain, **source}],
                "destinations": destinations,
            }
        )


# --- the composed relayer ---------------------------------------------------------------------------


class OneShotWatcher:
    """Reports `messages` (each in its block, all final) on the first poll, then nothing new."""

    def __init__(self, observed: list[Any]) -> None:
        self.observed = observed

    def poll(self) -> Any:
        from relay.chains import Cursor, WatchUpdate

        found, self.observed = self.observed, []
        head = max([o.block_number for o in found], default=0) + 1
        return WatchUpdate(found, [], head, head, Cursor(head, head.to_bytes(32, "big")))

    def block_hash(self, number: int) -> bytes | None:
        return None


class ChainFlags:
    """The destination chain's delivered flags: whatever the submitter's batches carried."""

    domain = DEST_A

    def __init__(self, submitter: LightClientSubmitter) -> None:
        self.submitter = submitter

    def delivered(self, keys: Sequence[tuple[int, int]]) -> list[bool]:
        sent = {(d.message.origin, d.message.nonce) for _, batch in self.submitter.batches for d in batch}
        return [key in sent for key in keys]


def test_the_relayer_composes_a_light_client_origin_with_no_attestor(tmp_path: Any, clock: Any) -> None:
    """`Relayer` wires the light-client stage and receipt delivery from config alone (fakes for
    the outside parties): a message goes to DELIVERED with no attestor configured or asked."""
    from relay.relayer import Relayer

    message = make_message(0, destination=DEST_A)
    light_client = FakeLightClient()
    origin = FakeOrigin(finalized=5)
    submitter = LightClientSubmitter(light_client)
    config = RelayerConfig.model_validate(
        {
            "store": str(tmp_path / "relayer.db"),
            "insecure_plaintext": True,
            "sources": [{"chain": light_client_chain(), "verification": "lightclient"}],
            "destinations": [{"domain": DEST_A, "submitter": "s", "chain": destination_chain(DEST_A)}],
            "gas_policy": {"mode": "allow_all"},
            "batching": {"max_wait": 0.0},
        }
    )
    relayer = Relayer(
        config,
        clock=clock,
        watcher_factory=lambda chain, cursors: OneShotWatcher([observe(message, 4)]),
        submitter_factory=lambda address: submitter,
        delivery_reader_factory=lambda chain: ChainFlags(submitter),
        gas_market_reader_factory=lambda chain: type(
            "Market",
            (),
            {"domain": DEST_A, "gas_price": lambda s: 1, "block_gas_limit": lambda s: 30_000_000},
        )(),
        committee_reader_factory=lambda chain: None,  # type: ignore[arg-type,return-value]
        light_client_origin_factory=lambda chain: origin,
        light_client_reader_factory=lambda chain, origin_domain: light_client,
    )
    try:
        relayer.run_once()
        assert [u.finalized_block for u in submitter.updates] == [5]
        assert len(submitter.batches) == 1
        record = relayer.store.get(message.id)
        assert record is not None and record.state is St.DELIVERED
    finally:
        relayer.stop()


def test_gauges_show_the_light_client_states_and_count_them_as_pending(world: World) -> None:
    waiting = world.dispatch(0, block=10)
    world.driver.advance(world.source)
    world.clock.advance(40)
    Gauges(world.store, world.metrics, world.clock).refresh()

    def sample(name: str, **labels: str) -> float:
        value = world.metrics.registry.get_sample_value(
            name, {"origin": str(ORIGIN), "destination": str(DEST_A), **labels}
        )
        return value if value is not None else -1.0

    assert state_of(world.store, waiting) is St.WAITING_FOR_HEADER
    assert sample("relay_messages", state="waiting_for_header") == 1
    assert sample("relay_messages", state="header_submitted") == 0
    assert sample("relay_oldest_pending_message_age_seconds") == 40


def test_receipt_batches_are_bounded_by_bytes_and_gas_counting_each_proof_once() -> None:
    from relay.relayer.deliver_receipts import compute_proof_bytes, cut_receipt_batches
    from relay.relayer.sizing import message_bytes
    from relay.store.base import MessageRecord

    shared = ReceiptProof(5, (), 0, (b"\x01" * 500, b"\x02" * 700))
    walked = ReceiptProof(9, tuple(b"\x03" * 560 for _ in range(20)), 1, (b"\x04" * 600,))
    records = [MessageRecord(make_message(n), St.VERIFIED) for n in range(4)]
    kept = {
        records[0].id: ProvenReceipt(shared, 0),
        records[1].id: ProvenReceipt(shared, 1),
        records[2].id: ProvenReceipt(walked, 0),
        records[3].id: ProvenReceipt(shared, 2),
    }
    roomy = cut_receipt_batches(records, kept, {}, 1 << 20, 15_000_000)
    assert roomy == [records]
    # Room for the shared proof and its three messages, not for the walked one as well.
    budget = compute_proof_bytes(shared) + 4 * message_bytes(records[0])
    assert [
        [r.message.nonce for r in b] for b in cut_receipt_batches(records, kept, {}, budget, 15_000_000)
    ] == [
        [0, 1],
        [2],
        [3],
    ]
    alone = cut_receipt_batches(records[2:3], kept, {}, 10, 10)  # above every bound: alone, not lost
    assert alone == [records[2:3]]
    by_gas = cut_receipt_batches(records[:2], kept, {r.id: 5_000_000 for r in records}, 1 << 20, 6_000_000)
    assert len(by_gas) == 2


def test_receipt_batches_count_headers_shared_with_the_previous_proof_once() -> None:
    from relay.relayer.deliver_receipts import compute_proof_bytes, cut_receipt_batches, sent_headers
    from relay.relayer.sizing import message_bytes
    from relay.store.base import MessageRecord

    walk = tuple(bytes([n]) * 600 for n in range(32))  # one stored block's walk, 31 blocks deep
    deep = ReceiptProof(100, walk, 0, (b"\x01" * 500,))  # 31 blocks below the stored one
    shallow = ReceiptProof(100, walk[:9], 0, (b"\x02" * 500,))  # 8 below: a prefix of the walk
    other = ReceiptProof(100, walk[:9], 1, (b"\x03" * 500,))  # the shallow block's next receipt
    assert sent_headers(shallow, deep) == [] and sent_headers(deep, shallow) == list(walk[9:])
    assert sent_headers(deep, None) == list(walk)
    assert compute_proof_bytes(shallow, deep) < compute_proof_bytes(shallow) - 9 * 600
    records = [MessageRecord(make_message(n), St.VERIFIED) for n in range(3)]
    kept = {
        records[0].id: ProvenReceipt(deep, 0),
        records[1].id: ProvenReceipt(shallow, 0),
        records[2].id: ProvenReceipt(other, 0),
    }
    # Room for the deep walk once and two proofs whose headers it carries, not one byte less.
    budget = (
        compute_proof_bytes(deep)
        + compute_proof_bytes(shallow, deep)
        + compute_proof_bytes(other, shallow)
        + 3 * message_bytes(records[0])
    )
    assert cut_receipt_batches(records, kept, {}, budget, 15_000_000) == [records]
    assert [len(b) for b in cut_receipt_batches(records, kept, {}, budget - 1, 15_000_000)] == [2, 1]
