"""Review of issue 13 (attacker's view): the submitter's light-client RPCs.

One origin's light-client update waiting for its transaction (fees spiking, a stuck transaction
being replaced) must not hold back another origin's updates to the same destination: the
submitter serialises updates per origin (a second update of the same origin then finds the first
landed), not across origins. The servicer is driven directly with a fake destination whose first
origin blocks until released.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from adapters.ethereum.lightclient_origin import EthereumLightClientOrigin
from relay.chains import SubmittedBatch
from relay.chains.lightclient import HeaderUpdate, ReceiptDelivery, ReceiptProof, StoredHeaders
from relay.errors import MessageNotInBlock, RpcUnavailable
from relay.roles.submitter import DestinationServicer
from relay.v1 import destination_pb2
from relay.verify.ethereum.config import get_network

SLOW, FAST = 1, 5
BLANK_ROOT = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")  # empty trie
BOUND = 10.0  # seconds: a bound on waiting for another thread, never a synchronisation sleep


class BlockingDestination:
    """A light-client destination whose updates of origin SLOW wait until `release` is set."""

    domain = 2

    def __init__(self) -> None:
        self.slow_started = threading.Event()
        self.release = threading.Event()

    def submit_light_client_update(self, origin: int, update: HeaderUpdate) -> tuple[bytes, StoredHeaders]:
        if origin == SLOW:
            self.slow_started.set()
            assert self.release.wait(BOUND), "the test never released the slow update"
        return bytes([origin]) * 32, StoredHeaders(update.finalized_slot, update.finalized_slot, 0, False)

    def deliver_by_receipt(
        self, origin: int, proofs: Sequence[ReceiptProof], deliveries: Sequence[ReceiptDelivery]
    ) -> SubmittedBatch:
        raise AssertionError("not used")


class Context:
    def abort(self, code: Any, details: str) -> None:
        raise AssertionError(f"aborted {code}: {details}")


def request(origin: int) -> Any:
    return destination_pb2.SubmitLightClientUpdateRequest(
        origin=origin, update_arguments=bytes(32), finalized_slot=origin * 100
    )


def test_one_origins_slow_update_does_not_hold_back_another_origins() -> None:
    destination = BlockingDestination()
    servicer = DestinationServicer(destination)  # type: ignore[arg-type]
    answers: dict[int, Any] = {}
    fast_done = threading.Event()

    def call(origin: int, done: threading.Event | None = None) -> None:
        answers[origin] = servicer.SubmitLightClientUpdate(request(origin), Context())  # type: ignore[arg-type]
        if done is not None:
            done.set()

    slow = threading.Thread(target=call, args=(SLOW,), daemon=True)
    slow.start()
    try:
        assert destination.slow_started.wait(BOUND)
        fast = threading.Thread(target=call, args=(FAST, fast_done), daemon=True)
        fast.start()
        assert fast_done.wait(BOUND), "origin 5's update waited for origin 1's"
        assert answers[FAST].transaction_hash == bytes([FAST]) * 32
        assert SLOW not in answers
    finally:
        destination.release.set()
        slow.join(BOUND)
    assert answers[SLOW].finalized_slot == SLOW * 100


# --- the origin adapter: a slow beacon node and receipt proofs ----------------------------------


class BlockingBeacon:
    """A beacon node that answers nothing until released (then: unavailable)."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.release = threading.Event()

    def get(self, path: str) -> Any:
        self.asked.set()
        assert self.release.wait(BOUND), "the test never released the beacon node"
        raise RpcUnavailable("beacon node unreachable", path=path)


class EmptyBlocks:
    """An execution RPC whose blocks hold no receipts."""

    def call(self, method: str, params: Sequence[Any]) -> Any:
        assert method == "eth_getBlockReceipts"
        return []


def test_a_slow_beacon_node_does_not_hold_back_receipt_proofs() -> None:
    """Receipt proofs are rebuilt in the destination's delivery slots (shared by every origin of
    that destination); the origin's light-client sync waits on its beacon node. The proof must not
    wait for the sync: they share caches, not the beacon node's time."""
    beacon = BlockingBeacon()
    origin = EthereumLightClientOrigin(
        beacon,  # type: ignore[arg-type]
        EmptyBlocks(),  # type: ignore[arg-type]
        network=get_network("mainnet"),
        trusted_block_root=bytes(32),
        gateway=bytes(20),
        origin_domain=1,
    )
    syncing = threading.Thread(
        target=lambda: pytest.raises(
            RpcUnavailable, origin.updates_to_reach, 10, StoredHeaders(0, 0, 0, False)
        ),
        daemon=True,
    )
    syncing.start()
    outcome: list[BaseException] = []
    proved = threading.Event()

    def prove() -> None:
        try:
            origin.prove_message(bytes(32), 5, 5, bytes(32), BLANK_ROOT)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome.append(error)
        proved.set()

    try:
        assert beacon.asked.wait(BOUND)
        threading.Thread(target=prove, daemon=True).start()
        assert proved.wait(BOUND), "the receipt proof waited for the beacon node"
        assert [type(e) for e in outcome] == [MessageNotInBlock]  # an empty block: answered, not stuck
    finally:
        beacon.release.set()
        syncing.join(BOUND)
