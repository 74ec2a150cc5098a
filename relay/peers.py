"""What the relayer needs from its peers, as small Protocols with domain types.

The relayer talks to two kinds of peer: the attestors of each source committee and the submitter of
each destination. The stages see only these Protocols and the plain types below; the gRPC
implementations (`relay.rpc.clients`) are the only relayer code that touches generated `*_pb2`
types, and they map every transport failure to a typed `relay.errors` error:
`TransientError` (try again later) or `PermanentError` (the peer refused the request).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from relay.chains import DeliveryItem
from relay.handover import HandoverCertificate
from relay.handover_ecdsa import EcdsaHandoverCertificate
from relay.verify.committee import Checkpoint, QuorumCertificate


@dataclass(frozen=True)
class PartialSignature:
    """One committee member's signature over a checkpoint, as an attestor serves it."""

    checkpoint: Checkpoint
    signer_index: int
    public_key: bytes
    signature: bytes


@dataclass(frozen=True)
class AttestorIdentity:
    """Who an attestor says it is: the committee member index and key, and the origin it signs for."""

    origin: int
    signer_index: int
    public_key: bytes
    epoch: int = 0
    member: bool = True  # False: the attestor reads that it left the committee
    proof_of_possession: bytes = b""


class AttestorClient(Protocol):
    """One attestor of a source committee."""

    address: str

    def get_checkpoint(self, origin: int, min_index: int, timeout: float) -> PartialSignature | None:
        """Its signature on a checkpoint of `origin` covering at least `min_index`; None if it has not
        signed that far yet. Raises `TransientError`, `PermanentError`, or `InvalidProof` for an
        answer that does not decode."""
        ...

    def get_identity(self, timeout: float) -> AttestorIdentity:
        """Who it says it is; raises `RelayError` if it does not answer."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


@runtime_checkable
class HandoverSubmitter(Protocol):
    """A destination submitter that submits hand-overs (`DestinationService.SubmitHandover`)."""

    def submit_handover(
        self, certificate: HandoverCertificate | EcdsaHandoverCertificate, timeout: float
    ) -> tuple[bytes, int]:
        """(transaction hash or b"" if none was needed, the gateway's epoch afterwards). Raises
        `TransientError`, or `PermanentError` when the gateway refuses it."""
        ...


class DeliveryOutcome(enum.Enum):
    """What a submitter reports for one message of a batch."""

    UNSPECIFIED = "unspecified"  # no outcome: treated as a transient failure
    DELIVERED = "delivered"  # delivered by this transaction
    ALREADY_DELIVERED = "already_delivered"  # delivered earlier; nothing was sent for it
    RECIPIENT_REVERTED = "recipient_reverted"  # the recipient's handle() reverted; still deliverable
    REJECTED = "rejected"  # the destination gateway rejected the proof
    PAUSED = "paused"  # the destination gateway paused delivery from the origin; nothing was sent


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome for one message id, with the revert reason or error name when not delivered."""

    outcome: DeliveryOutcome
    reason: str = ""


@dataclass(frozen=True)
class DeliveryReport:
    """A submitter's answer to one batch: the transaction (empty if none was sent) and per-id results."""

    transaction_hash: bytes = b""
    block_number: int = 0
    gas_used: int = 0
    results: Mapping[bytes, DeliveryResult] = field(default_factory=dict)
    effective_gas_price: int = 0  # smallest native unit per gas the transaction paid (0: unknown)


class PendingDelivery(Protocol):
    """A delivery call in progress."""

    def wait(self, timeout: float) -> DeliveryReport | None:
        """The report once it arrived, None if it is still running after `timeout` seconds.
        Raises `TransientError` or `PermanentError` if the call failed."""
        ...

    def cancel(self) -> None:
        """Stop waiting (the submitter may still complete the delivery)."""
        ...


class SubmitterClient(Protocol):
    """The submitter of one destination chain."""

    address: str

    def deliver(
        self,
        checkpoint: Checkpoint,
        certificate: QuorumCertificate,
        items: Sequence[DeliveryItem],
        timeout: float,
    ) -> PendingDelivery:
        """Start delivering `items` under `checkpoint`; the call runs for at most `timeout` seconds."""
        ...

    def probe(self, timeout: float) -> bool:
        """Whether the submitter answers at all (any answer, even an error status, counts)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...
