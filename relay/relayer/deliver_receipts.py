"""Delivery by receipt proof: a light-client origin's batch (`EthereumInbox.deliverFromEthereumBatch`).

The delivery stage (`relay.relayer.deliver`) batches a light-client origin's VERIFIED and due
RETRYING messages like any other (gas policy, count, bytes and gas bounds, claims), then hands
each batch here instead of sending it under a checkpoint: every message goes with the receipt
proof the light-client stage verified (`relay.relayer.lightclient.ReceiptProofs`; rebuilt and
verified again on a miss, e.g. after a restart). Messages of the same receipt share one proof.
The claims, the SUBMITTED marks, the wait and the outcomes are the certificate path's own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from relay.chains import DEFAULT_HANDLE_GAS_LIMIT
from relay.chains.lightclient import ProvenReceipt, ReceiptDelivery, ReceiptProof
from relay.errors import PermanentError, RelayError
from relay.lifecycle import MessageState
from relay.relayer.common import describe
from relay.relayer.policy import Decision
from relay.store.base import MessageRecord, Transition

if TYPE_CHECKING:
    from relay.relayer.deliver import Deliverer
    from relay.relayer.lightclient import HeaderDriver
    from relay.relayer.state import DestinationState, SourceState

log = logging.getLogger("relay.relayer")

S = MessageState


def compute_receipt_batch(
    records: Sequence[MessageRecord],
    proofs: Mapping[bytes, ProvenReceipt],
    decisions: Mapping[bytes, Decision],
) -> tuple[list[ReceiptProof], list[ReceiptDelivery]]:
    """The distinct proofs of `records` (those with a proof), and one delivery per message pointing
    at its proof, with the gas limit its policy decision grants (the default without one)."""
    distinct: list[ReceiptProof] = []
    index_of: dict[ReceiptProof, int] = {}
    deliveries = []
    for record in records:
        proven = proofs.get(record.id)
        if proven is None:
            continue
        if proven.proof not in index_of:
            index_of[proven.proof] = len(distinct)
            distinct.append(proven.proof)
        decision = decisions.get(record.id)
        deliveries.append(
            ReceiptDelivery(
                record.message,
                index_of[proven.proof],
                proven.log_index,
                decision.gas_limit if decision is not None else DEFAULT_HANDLE_GAS_LIMIT,
            )
        )
    return distinct, deliveries


def submit_receipt_batch(
    deliverer: Deliverer,
    headers: HeaderDriver,
    destination: DestinationState,
    source: SourceState,
    records: Sequence[MessageRecord],
    decisions: Mapping[bytes, Decision],
) -> None:
    """Claim `records`, mark what was claimed and proven SUBMITTED, and send them by receipt proof."""
    store = deliverer.store
    now = deliverer.now()
    claimed = store.claim_messages([r.id for r in records], deliverer.owner, now, deliverer.lease_seconds)
    if not claimed:
        return
    proofs: dict[bytes, ProvenReceipt] = {}
    for record in claimed:
        if record.state is S.RETRYING and record.next_attempt_at > now:
            continue
        try:
            proofs[record.id] = headers.proof_for(source, destination.domain, record)
        except RelayError as error:
            log.warning(
                "receipt proof unavailable; the message is sent later",
                extra={"message_id": record.id, "error": describe(error)},
            )
    transitions = [
        Transition(record.id, record.state, S.SUBMITTED, {}, fence=record.fence)
        for record in claimed
        if record.id in proofs
    ]
    applied = deliverer.mark_submitted(transitions, now)
    deliverer.release([r for r in claimed if r.id not in applied])
    submitted = [r for r in claimed if r.id in applied]
    if not submitted:
        return
    proof_list, deliveries = compute_receipt_batch(submitted, proofs, decisions)
    fields = {"origin": source.domain, "destination": destination.domain}
    log.info(
        "receipt batch submitted", extra={**fields, "messages": len(deliveries), "proofs": len(proof_list)}
    )
    submitter = destination.submitter
    deliver = getattr(submitter, "deliver_by_receipt", None)
    if deliver is None:
        deliverer.outcomes.fail(
            submitted, PermanentError("the destination's submitter does not deliver by receipt proof"), fields
        )
        return
    call = deliver(source.domain, proof_list, deliveries, deliverer.submitter_timeout)
    deliverer.finish(destination, None, submitted, call, decisions, fields, claimed_at=now)
