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

from relay.chains import SubmittedBatch
from relay.chains.lightclient import HeaderUpdate, ReceiptDelivery, ReceiptProof, StoredHeaders
from relay.roles.submitter import DestinationServicer
from relay.v1 import destination_pb2

SLOW, FAST = 1, 5
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
