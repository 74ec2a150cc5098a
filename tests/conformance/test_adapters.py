"""The chain roles of `relay.chains` (`SourceWatcher`, `DestinationChain`), run for every chain kind.

Every kind registered in `relay.chains.registry.CHAIN_FAMILIES` runs the same cases on real anvil
chains (the session's `chains` fixture): adapters are created only through the registry, so
this checks what the relayer and the submitter will get. A new chain family joins with one entry
in `KIND_SETTINGS` (the extra config its kind needs); the suite fails for a registered kind
without one.

- watcher: every Dispatch reported once, in ranges of at most `max_block_range` blocks across a
  gap; resumes from its stored cursor; a reorg before finality reports the orphan and finds the
  replacement; every Dispatch of the watched gateway is a leaf, in nonce order without a gap,
  even when its message does not decode (too long, unknown version, undecodable data, an id
  that is not its hash): those are malformed leaves under the log's id; a Dispatch from another
  address is ignored; an RPC that fails or answers nonsense raises `RpcUnavailable`, never
  anything untyped, and leaves the cursor alone.
- destination: submitting is idempotent (what is delivered is reported delivered and never run
  twice); a forged certificate, a short quorum or a bad branch is refused with a typed
  `InvalidProof` before anything runs; an unreachable RPC raises `RpcUnavailable`.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from prometheus_client import CollectorRegistry

from adapters.evm import deploy
from adapters.evm.rpc import DISPATCH_TOPIC, checksum_address
from relay import errors
from relay.chains import ChainConfigBase as ChainConfig
from relay.chains import CursorStore, DeliveryItem, DestinationChain, SourceWatcher, registry
from relay.metrics import RelayMetrics
from relay.verify.bls import get_backend, keygen
from relay.verify.committee import Checkpoint, QuorumCertificate
from relay.verify.hashing import keccak256
from relay.verify.message import MAX_BODY_LENGTH, Message
from tests.chains import (
    DEPLOYER,
    DESTINATION,
    SOURCE,
    SUBMITTER,
    Chains,
    MemoryCursors,
    all_source_messages,
    certify,
    observe_all,
)

pytestmark = pytest.mark.anvil

KIND_SETTINGS: dict[str, dict[str, Any]] = {
    "evm": {},
    # The light client is the attestor's finality source only; watcher and destination ignore it.
    "ethereum": {"light_client": {"trusted_block_root": "0x" + "00" * 32}},
}
"""Chain kind -> the extra `ChainConfig` fields a chain of that kind needs (besides rpc_urls, gateway)."""


@dataclass
class KindUnderTest:
    """One chain kind over the session's anvil chains: its configs and its adapters."""

    kind: str
    chains: Chains
    metrics: RelayMetrics = field(default_factory=lambda: RelayMetrics(CollectorRegistry()))

    def source_config(self, confirmations: int = 2, **extra: Any) -> ChainConfig:
        return self.chains.source_chain(confirmations, kind=self.kind, **KIND_SETTINGS[self.kind], **extra)

    def destination_config(self, **extra: Any) -> ChainConfig:
        return self.chains.destination_chain(kind=self.kind, **KIND_SETTINGS[self.kind], **extra)

    # The only two places adapters are created: a factory signature change is a one-line edit.

    def watcher(self, chain: ChainConfig, cursors: CursorStore) -> SourceWatcher:
        return registry.create_watcher(chain, cursors, self.metrics)

    def destination(self, chain: ChainConfig, private_key: str = SUBMITTER) -> DestinationChain:
        return registry.create_destination(chain, private_key, self.metrics)


@pytest.fixture(params=sorted(registry.CHAIN_FAMILIES))
def kind(request: pytest.FixtureRequest, chains: Chains) -> KindUnderTest:
    """Each registered chain kind in turn (a kind without a `KIND_SETTINGS` entry fails here)."""
    if request.param not in KIND_SETTINGS:
        pytest.fail(f"chain kind {request.param!r} is registered but has no KIND_SETTINGS entry")
    return KindUnderTest(request.param, chains)


# --- chain tricks (anvil) ---------------------------------------------------------------------

# Runtime code of a log emitter: LOG2(topic0 = Dispatch, topic1 = calldata[0:32], data = calldata[32:]).
EMITTER_CODE = bytes.fromhex(
    "366000600037"  # CALLDATACOPY(0, 0, CALLDATASIZE)
    "600035"  # topic1 = CALLDATALOAD(0)
    "7f"
    + DISPATCH_TOPIC.hex()  # topic0
    + "602036036020"  # size = CALLDATASIZE - 32, offset = 32
    "a200"  # LOG2, STOP
)


def emit_dispatch_logs(chains: Chains, address: str, logs: list[tuple[bytes, bytes]]) -> None:
    """Make `address` emit Dispatch-topic logs (id topic, data), one transaction each, restoring its code."""
    url = chains.source.rpc_url
    original = deploy.rpc_request(url, "eth_getCode", [address, "latest"])
    deploy.rpc_request(url, "anvil_setCode", [address, "0x" + EMITTER_CODE.hex()])
    try:
        sender = deploy.TransactionSender(url, DEPLOYER)
        hashes = [
            sender.send({"to": address, "data": "0x" + (topic + data).hex(), "gas": 200_000})
            for topic, data in logs
        ]
        receipts = sender.wait(hashes)
        assert all(len(receipt["logs"]) == 1 for receipt in receipts)
    finally:
        deploy.rpc_request(url, "anvil_setCode", [address, original])


def dispatch_data(message: Message) -> bytes:
    """A Dispatch event's data as the Gateway emits it: (uint32 nonce, bytes message)."""
    return abi_encode(["uint32", "bytes"], [message.nonce, message.encode()])


class _Misbehaving(BaseHTTPRequestHandler):
    """Answers every JSON-RPC request the way `server.mode` says: error answers, HTTP 500, non-JSON."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "http-500":
            self.send_response(500)
            self.end_headers()
            return
        if mode == "not-json":
            body = b"<html>bad gateway</html>"
        else:

            def answer(one: dict[str, Any]) -> dict[str, Any]:
                return {
                    "jsonrpc": "2.0",
                    "id": one.get("id"),
                    "error": {"code": -32000, "message": "internal error"},
                }

            body = json.dumps(
                [answer(r) for r in request] if isinstance(request, list) else answer(request)
            ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(params=["refused", "error-answer", "http-500", "not-json"])
def broken_rpc(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of an RPC endpoint that does not answer properly, one way per param."""
    if request.param == "refused":
        yield "http://127.0.0.1:9"  # the discard port: nothing listens
        return
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    server.mode = request.param  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- watcher ------------------------------------------------------------------------------------


def test_watcher_reports_each_dispatch_once_in_ranges_of_at_most_max_block_range(kind: KindUnderTest) -> None:
    cursors = MemoryCursors()
    watcher = kind.watcher(kind.source_config(max_block_range=3), cursors)
    before = observe_all(watcher)
    ids = kind.chains.send(2, "before-gap")
    kind.chains.mine(17)  # a gap of empty blocks
    ids += kind.chains.send(2, "after-gap")
    seen: list[Message] = []
    while True:
        start = cursors.load_cursor(SOURCE)
        update = watcher.poll()
        assert start is not None and update.cursor is not None
        assert 0 <= update.cursor.block_number - start.block_number <= 3
        assert all(start.block_number < o.block_number <= update.cursor.block_number for o in update.observed)
        seen.extend(o.message for o in update.observed)
        if update.cursor.block_number >= update.head_block:
            break
    assert [m.id for m in seen] == ids
    assert [m.nonce for m in seen] == list(range(len(before), len(before) + 4))
    stored = cursors.load_cursor(SOURCE)
    assert stored is not None and stored.block_hash == watcher.block_hash(stored.block_number)
    assert watcher.poll().observed == []  # nothing new: nothing reported twice
    assert watcher.block_hash(stored.block_number + 1000) is None


def test_watcher_resumes_from_its_stored_cursor(kind: KindUnderTest) -> None:
    cursors = MemoryCursors()
    observe_all(kind.watcher(kind.source_config(confirmations=3), cursors))
    stopped_at = cursors.load_cursor(SOURCE)
    ids = kind.chains.send(3, "while-down")
    restarted = kind.watcher(kind.source_config(confirmations=3), cursors)
    seen = [m.id for m in observe_all(restarted)]
    # Everything after the cursor, plus at most re-reports of non-final blocks (the relayer keys by id).
    assert set(ids) <= set(seen) and len(seen) <= len(ids) + 3
    assert stopped_at is not None and cursors.cursors[SOURCE].block_number > stopped_at.block_number


def test_watcher_reports_a_reorg_before_finality_as_orphans_and_finds_the_replacement(
    kind: KindUnderTest,
) -> None:
    chains = kind.chains
    watcher = kind.watcher(kind.source_config(confirmations=5), MemoryCursors())
    observe_all(watcher)
    snapshot = deploy.rpc_request(chains.source.rpc_url, "evm_snapshot")
    (orphan,) = chains.send(1, "orphan")
    update = watcher.poll()
    assert [o.message.id for o in update.observed] == [orphan]
    assert update.observed[0].block_number > update.finalized_block  # not final yet
    assert update.orphaned_ids == []
    orphan_nonce = update.observed[0].message.nonce
    assert deploy.rpc_request(chains.source.rpc_url, "evm_revert", [snapshot]) is True
    (replacement,) = chains.send(1, "replacement")
    chains.mine(1)  # the new branch is longer than the old one
    update = watcher.poll()
    assert update.orphaned_ids == [orphan]
    assert [o.message.id for o in update.observed] == [replacement]
    assert update.observed[0].message.nonce == orphan_nonce  # the replacement took the orphan's place
    assert watcher.poll().orphaned_ids == []


# Runtime code of a gateway that emits whatever it is told: LOG3(topic0 = Dispatch,
# topic1 = calldata[0:32], topic2 = calldata[32:64], data = calldata[64:]).
LYING_GATEWAY_CODE = bytes.fromhex(
    "366000600037"  # CALLDATACOPY(0, 0, CALLDATASIZE)
    "602035"  # topic2 = CALLDATALOAD(32)
    "600035"  # topic1 = CALLDATALOAD(0)
    "7f"
    + DISPATCH_TOPIC.hex()  # topic0
    + "604036036040"  # size = CALLDATASIZE - 64, offset = 64
    "a300"  # LOG3, STOP
)


def emit_from_gateway(chains: Chains, address: str, logs: list[tuple[bytes, int, bytes]]) -> None:
    """Make the contract at `address` emit Dispatch logs (id topic, destination topic, data), in order."""
    url = chains.source.rpc_url
    deploy.rpc_request(url, "anvil_setCode", [address, "0x" + LYING_GATEWAY_CODE.hex()])
    sender = deploy.TransactionSender(url, DEPLOYER)
    hashes = [
        sender.send(
            {
                "to": address,
                "data": "0x" + (topic + destination.to_bytes(32, "big") + data).hex(),
                "gas": 100_000 + 40 * (len(data) + 64),
            }
        )
        for topic, destination, data in logs
    ]
    receipts = sender.wait(hashes)
    assert all(len(receipt["logs"]) == 1 for receipt in receipts)


def raw_dispatch_data(nonce: int, encoded: bytes) -> bytes:
    """A Dispatch event's data around any message bytes."""
    return abi_encode(["uint32", "bytes"], [nonce, encoded])


def test_watcher_reports_every_dispatch_as_a_leaf_even_if_its_message_does_not_decode(
    kind: KindUnderTest,
) -> None:
    chains = kind.chains
    gateway = checksum_address("0x" + secrets.token_hex(20))
    head = chains.head()
    watcher = kind.watcher(kind.source_config(gateway=gateway, start_block=head + 1), MemoryCursors())

    def message(nonce: int, body: bytes) -> Message:
        return Message.create(
            nonce=nonce,
            origin=SOURCE,
            sender=b"\x01" * 32,
            destination=DESTINATION,
            recipient=b"\x02" * 32,
            body=body,
        )

    first, last = message(0, b"first"), message(5, b"after the malformed ones")
    too_long = (
        first.encode()[:5] + (1).to_bytes(4, "big") + first.encode()[9:77] + b"x" * (MAX_BODY_LENGTH + 1)
    )
    unknown_version = b"\x07" + message(2, b"v7").encode()[1:]
    mismatched = message(4, b"under another id")
    emit_from_gateway(
        chains,
        gateway,
        [
            (first.id, DESTINATION, dispatch_data(first)),
            (keccak256(too_long), DESTINATION, raw_dispatch_data(1, too_long)),
            (keccak256(unknown_version), DESTINATION, raw_dispatch_data(2, unknown_version)),
            (b"\x33" * 32, DESTINATION, b"\xff" * 7),  # no readable nonce: placed by its neighbours
            (b"\x11" * 32, DESTINATION, dispatch_data(mismatched)),
            (last.id, DESTINATION, dispatch_data(last)),
        ],
    )
    # From another address: a well-formed Dispatch the watched gateway never emitted.
    emit_dispatch_logs(
        chains, checksum_address("0x" + "de" * 20), [(last.id, dispatch_data(message(6, b"x")))]
    )
    leaves = []
    while True:
        update = watcher.poll()
        leaves.extend(update.observed)
        if update.cursor is not None and update.cursor.block_number >= update.head_block:
            break
    assert [leaf.id for leaf in leaves] == [
        first.id,
        keccak256(too_long),
        keccak256(unknown_version),
        b"\x33" * 32,
        b"\x11" * 32,
        last.id,
    ]
    assert [leaf.message.nonce for leaf in leaves] == list(range(6))  # gapless, leaf index == nonce
    assert [leaf.is_malformed for leaf in leaves] == [False, True, True, True, True, False]
    assert "too long" in leaves[1].malformed_reason and "version" in leaves[2].malformed_reason
    assert "keccak256" in leaves[4].malformed_reason
    assert all(leaf.message.origin == SOURCE and leaf.message.destination == DESTINATION for leaf in leaves)
    assert leaves[1].message.sender == b"\x01" * 32 and leaves[1].message.body == b""
    assert leaves[0].message == first and leaves[5].message == last


def test_watcher_raises_rpc_unavailable_for_a_broken_rpc_and_keeps_its_cursor(
    kind: KindUnderTest, broken_rpc: str
) -> None:
    cursors = MemoryCursors()
    watcher = kind.watcher(kind.source_config(rpc_urls=[broken_rpc]), cursors)
    for _ in range(2):  # and again: a failed poll leaves the watcher usable
        with pytest.raises(errors.RpcUnavailable):
            watcher.poll()
    assert cursors.saves == 0


# --- destination --------------------------------------------------------------------------------


def test_destination_delivers_a_batch_then_reports_it_delivered_without_running_it_twice(
    kind: KindUnderTest,
) -> None:
    chains = kind.chains
    chains.send(3, "deliver")
    messages = all_source_messages(chains)
    checkpoint, certificate, tree = certify(chains, messages)
    destination = kind.destination(kind.destination_config())
    received = deploy.counter_received(chains.destination.rpc_url, chains.counter)
    items = [DeliveryItem(m, tree.branch(m.nonce)) for m in messages[-3:]]
    keys = [(SOURCE, item.message.nonce) for item in items]
    assert destination.delivered(keys) == [False] * 3
    single = destination.submit(checkpoint, certificate, items[:1])
    assert single.delivered == [items[0].message.id] and single.gas_used > 0 and single.failed == {}
    batch = destination.submit(checkpoint, certificate, items)
    assert batch.delivered == [item.message.id for item in items[1:]]
    assert destination.delivered(keys) == [True] * 3
    again = destination.submit(checkpoint, certificate, items)
    assert again.transaction_hash == b"" and again.delivered == [] and again.failed == {}
    assert deploy.counter_received(chains.destination.rpc_url, chains.counter) == received + 3


def test_destination_refuses_forged_proofs_with_typed_errors(kind: KindUnderTest) -> None:
    chains = kind.chains
    (message_id,) = chains.send(1, "forged")
    messages = all_source_messages(chains)
    checkpoint, certificate, tree = certify(chains, messages)
    item = DeliveryItem(messages[-1], tree.branch(messages[-1].nonce))
    assert item.message.id == message_id
    destination = kind.destination(kind.destination_config())
    received = deploy.counter_received(chains.destination.rpc_url, chains.counter)
    forged = QuorumCertificate(
        certificate.signers, get_backend().sign(keygen(b"\x07" * 32), checkpoint.digest())
    )
    with pytest.raises(errors.InvalidSignature):
        destination.submit(checkpoint, forged, [item])
    _, two_signers, _ = certify(chains, messages, range(2))
    with pytest.raises(errors.QuorumNotReached):
        destination.submit(checkpoint, two_signers, [item])
    with pytest.raises(errors.InvalidMerkleProof):
        destination.submit(checkpoint, certificate, [DeliveryItem(item.message, [bytes(32)] * 32)])
    tampered = Checkpoint(
        origin=SOURCE,
        gateway=checkpoint.gateway,
        epoch=checkpoint.epoch,
        root=bytes(32),
        index=checkpoint.index,
    )
    with pytest.raises(errors.InvalidProof):
        destination.submit(tampered, certificate, [item])
    # A checkpoint of another committee epoch (a hand-over in between) is not a forgery: parked.
    other_epoch = Checkpoint(
        origin=SOURCE, gateway=checkpoint.gateway, epoch=2, root=checkpoint.root, index=checkpoint.index
    )
    with pytest.raises(errors.PermanentError):
        destination.submit(other_epoch, certificate, [item])
    assert destination.delivered([(SOURCE, item.message.nonce)]) == [False]
    assert deploy.counter_received(chains.destination.rpc_url, chains.counter) == received
    assert destination.submit(checkpoint, certificate, [item]).delivered == [message_id]  # the real one goes


def test_destination_raises_rpc_unavailable_for_a_broken_rpc(kind: KindUnderTest, broken_rpc: str) -> None:
    chains = kind.chains
    messages = all_source_messages(chains)
    checkpoint, certificate, tree = certify(chains, messages)
    item = DeliveryItem(messages[0], tree.branch(0))
    destination = kind.destination(kind.destination_config(rpc_urls=[broken_rpc]))
    with pytest.raises(errors.RpcUnavailable):
        destination.delivered([(SOURCE, 0)])
    with pytest.raises(errors.RpcUnavailable):
        destination.submit(checkpoint, certificate, [item])
