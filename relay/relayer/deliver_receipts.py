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
from relay.errors import PermanentError, RelayError, RpcUnavailable
from relay.lifecycle import MessageState
from relay.relayer.common import describe
from relay.relayer.policy import Decision
from relay.relayer.sizing import CALLDATA_GAS_PER_BYTE, message_bytes, message_gas
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


PROOF_FRAMING_BYTES = 6 * 32  # ABI framing of one ReceiptProof: offsets, lengths, number, index
ELEMENT_FRAMING_BYTES = 2 * 32  # a trie node's or header's offset and length
HEADER_GAS = 5_000  # the inbox's work per header of a walk (RLP walk, keccak), besides its calldata


def compute_proof_bytes(proof: ReceiptProof, previous: ReceiptProof | None = None) -> int:
    """Calldata bytes one receipt proof adds to a batch (its nodes and headers, padded and framed).
    A header equal to the `previous` proof's at the same position is sent empty (the submitter
    shares them: proofs walking back from one stored block share the walk's first headers)."""
    headers = sent_headers(proof, previous)
    shared = len(proof.headers) - len(headers)
    elements = (*proof.nodes, *headers)
    return (
        PROOF_FRAMING_BYTES
        + shared * ELEMENT_FRAMING_BYTES
        + sum((len(e) + 31) // 32 * 32 + ELEMENT_FRAMING_BYTES for e in elements)
    )


def sent_headers(proof: ReceiptProof, previous: ReceiptProof | None) -> list[bytes]:
    """The headers of `proof` a batch sends after `previous`: those not equal to its header at the
    same position (`relay.chains.lightclient.share_trie_nodes`)."""
    before = previous.headers if previous is not None else ()
    return [h for i, h in enumerate(proof.headers) if i >= len(before) or before[i] != h]


def cut_receipt_batches(
    records: Sequence[MessageRecord],
    proofs: Mapping[bytes, ProvenReceipt],
    gas_limits: Mapping[bytes, int],
    max_bytes: int,
    max_gas: int,
) -> list[list[MessageRecord]]:
    """`records` (each with a proof) in order, cut so that each batch's calldata (messages, and each
    distinct proof once, its headers shared with the previous distinct proof once) and declared gas
    stay within the bounds; one above a bound goes alone."""

    def cost(record: MessageRecord, carried: set[ReceiptProof], last: ReceiptProof | None) -> tuple[int, int]:
        proof = proofs[record.id].proof
        size = message_bytes(record)
        gas = message_gas(record, gas_limits.get(record.id, DEFAULT_HANDLE_GAS_LIMIT))
        if proof not in carried:  # a proof shared with an earlier message of the batch is sent once
            extra = compute_proof_bytes(proof, last)
            size += extra
            gas += extra * CALLDATA_GAS_PER_BYTE + HEADER_GAS * len(sent_headers(proof, last))
        return size, gas

    batches: list[list[MessageRecord]] = []
    current: list[MessageRecord] = []
    carried: set[ReceiptProof] = set()
    last: ReceiptProof | None = None  # the batch's last distinct proof, as the submitter orders them
    size = gas = 0
    for record in records:
        item_bytes, item_gas = cost(record, carried, last)
        if current and (size + item_bytes > max_bytes or gas + item_gas > max_gas):
            batches.append(current)
            current, carried, last, size, gas = [], set(), None, 0, 0
            item_bytes, item_gas = cost(record, carried, last)
        current.append(record)
        proof = proofs[record.id].proof
        if proof not in carried:
            carried.add(proof)
            last = proof
        size += item_bytes
        gas += item_gas
    if current:
        batches.append(current)
    return batches


def submit_receipt_batch(
    deliverer: Deliverer,
    headers: HeaderDriver,
    destination: DestinationState,
    source: SourceState,
    records: Sequence[MessageRecord],
    decisions: Mapping[bytes, Decision],
) -> None:
    """Claim `records`, mark the first batch of those claimed and proven SUBMITTED (bounded by
    bytes and gas with their proofs, `cut_receipt_batches`), and send it by receipt proof; the
    rest is released for the next pass."""
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
            if error.reason == RpcUnavailable.__name__:
                # The node did not answer (not one block's error): the rest of the batch would wait
                # for it too, one timeout each, in a delivery slot every origin of this destination
                # shares. They are sent later.
                break
    proven = [r for r in claimed if r.id in proofs]
    gas_limits = {i: d.gas_limit for i, d in decisions.items()}
    bounds = (deliverer.max_batch_bytes, deliverer.max_batch_gas(destination.domain))
    first = cut_receipt_batches(proven, proofs, gas_limits, *bounds)[0] if proven else []
    # The rest waits for the next pass (still VERIFIED, its proofs kept): one call per batch.
    transitions = [Transition(r.id, r.state, S.SUBMITTED, {}, fence=r.fence) for r in first]
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
