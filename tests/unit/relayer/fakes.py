"""A fake destination submitter (`SubmitterClient` / `PendingDelivery`) for the delivery stage tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from relay.chains import DeliveryItem
from relay.peers import DeliveryOutcome, DeliveryReport, DeliveryResult
from relay.verify.committee import Checkpoint, QuorumCertificate


@dataclass
class Call:
    """One `deliver` call as the submitter received it."""

    checkpoint: Checkpoint
    certificate: QuorumCertificate
    items: list[DeliveryItem]
    cancelled: bool = False


class FakePending:
    """A call in progress: `wait` answers what the submitter decides, `None` while `hold` is set."""

    def __init__(self, submitter: FakeSubmitter, call: Call) -> None:
        self.submitter = submitter
        self.call = call

    def wait(self, timeout: float) -> DeliveryReport | None:
        self.submitter.waits += 1
        if self.submitter.on_wait is not None:
            self.submitter.on_wait(self.call)
        if self.submitter.hold:
            return None
        if self.submitter.error is not None:
            raise self.submitter.error
        return self.submitter.answer(self.call)

    def cancel(self) -> None:
        self.call.cancelled = True


@dataclass
class FakeSubmitter:
    """Delivers everything (or reports `outcomes[id]`), fails with `error`, or holds calls open."""

    address: str = "submitter"
    outcomes: dict[bytes, DeliveryResult] = field(default_factory=dict)
    error: Exception | None = None
    hold: bool = False
    answers: bool = True
    on_wait: Callable[[Call], None] | None = None
    calls: list[Call] = field(default_factory=list)
    waits: int = 0
    probes: int = 0

    def deliver(
        self,
        checkpoint: Checkpoint,
        certificate: QuorumCertificate,
        items: Sequence[DeliveryItem],
        timeout: float,
    ) -> FakePending:
        call = Call(checkpoint, certificate, list(items))
        self.calls.append(call)
        return FakePending(self, call)

    def answer(self, call: Call) -> DeliveryReport:
        results = {
            i.message.id: self.outcomes.get(i.message.id, DeliveryResult(DeliveryOutcome.DELIVERED))
            for i in call.items
        }
        return DeliveryReport(b"\xaa" * 32, 7, 90_000, results)

    def probe(self, timeout: float) -> bool:
        self.probes += 1
        return self.answers

    def close(self) -> None:
        pass

    def sizes(self) -> list[int]:
        return sorted(len(c.items) for c in self.calls)
