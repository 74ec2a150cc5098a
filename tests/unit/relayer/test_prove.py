"""Proving: ATTESTED -> VERIFIED (branch stored), REJECTED (typed reason), or back to FINAL."""

from __future__ import annotations

import pytest

from relay.metrics import RelayMetrics
from relay.relayer.prove import Prover
from relay.store import Store
from relay.verify.committee import Checkpoint, QuorumCertificate
from relay.verify.merkle import verify_branch

from .helpers import (
    BLS,
    EPOCH,
    Clock,
    certify,
    checkpoint_over,
    make_message,
    make_source,
    observe,
    state_of,
    store_final,
)
from .helpers import S as St

MESSAGES = [make_message(n) for n in range(4)]


def prover(store: Store, metrics: RelayMetrics, clock: Clock) -> Prover:
    return Prover(store, metrics, clock, BLS)


def test_attested_messages_become_verified_with_their_branch(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    source = make_source(store)
    store_final(store, source, MESSAGES)
    checkpoint = checkpoint_over(MESSAGES, 2)
    store.attest_messages(checkpoint, certify(checkpoint), [m.id for m in MESSAGES[:3]], 1.0)
    assert prover(store, metrics, clock).verify_attested(source) is True
    for message in MESSAGES[:3]:
        record = store.get(message.id)
        assert record is not None and record.state is St.VERIFIED and record.verified_at == clock.now
        assert len(record.branch) == 32
        verify_branch(message.id, record.branch, message.nonce, checkpoint.root)
    assert state_of(store, MESSAGES[3].id) is St.FINAL
    assert prover(store, metrics, clock).verify_attested(source) is False  # nothing left to verify


def test_a_quorum_over_a_root_the_gateway_never_had_is_rejected(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    source = make_source(store)
    store_final(store, source, MESSAGES[:2])
    tampered = checkpoint_over(MESSAGES[:2], root=b"\xee" * 32)
    store.attest_messages(tampered, certify(tampered), [m.id for m in MESSAGES[:2]], 1.0)
    assert prover(store, metrics, clock).verify_attested(source) is False
    for message in MESSAGES[:2]:
        record = store.get(message.id)
        assert record is not None and record.state is St.REJECTED
        assert record.error_reason == "InvalidMerkleProof"
        assert record.last_error.startswith("InvalidMerkleProof: checkpoint root differs")
        assert record.branch == ()
    assert (
        metrics.registry.get_sample_value(
            "relay_proof_rejections_total", {"origin": "1", "reason": "InvalidMerkleProof"}
        )
        == 2
    )


def test_a_checkpoint_the_tree_does_not_reach_sends_its_messages_back_to_final(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    source = make_source(store)
    store_final(store, source, MESSAGES[:2])
    store.insert_observed([observe(MESSAGES[3])], 1.0)  # nonce 2 missing: the tree stops at 2 leaves
    source.tree.extend()
    ahead = checkpoint_over(MESSAGES, 3)
    store.attest_messages(ahead, certify(ahead), [m.id for m in MESSAGES[:2]], 1.0)
    assert prover(store, metrics, clock).verify_attested(source) is False
    for message in MESSAGES[:2]:
        record = store.get(message.id)
        assert record is not None and record.state is St.FINAL and record.checkpoint_id is None


def forged_certificate(checkpoint: Checkpoint, case: str) -> tuple[Checkpoint, QuorumCertificate]:
    if case == "QuorumNotReached":
        return checkpoint, certify(checkpoint, (0, 1))
    if case == "InvalidSignature":
        other = Checkpoint(
            checkpoint.origin, checkpoint.gateway, checkpoint.epoch, b"\x01" * 32, checkpoint.index
        )
        return checkpoint, QuorumCertificate(certify(other).signers, certify(other).signature)
    if case == "EpochMismatch":
        moved = Checkpoint(
            checkpoint.origin, checkpoint.gateway, EPOCH + 1, checkpoint.root, checkpoint.index
        )
        return moved, certify(moved)
    if case == "GatewayMismatch":
        moved = Checkpoint(
            checkpoint.origin, b"\x07" * 32, checkpoint.epoch, checkpoint.root, checkpoint.index
        )
        return moved, certify(moved)
    raise AssertionError(case)


@pytest.mark.parametrize(
    "reason", ["EpochMismatch", "GatewayMismatch", "InvalidSignature", "QuorumNotReached"]
)
def test_a_certificate_that_does_not_verify_rejects_its_messages(
    store: Store, metrics: RelayMetrics, clock: Clock, reason: str
) -> None:
    source = make_source(store)
    store_final(store, source, MESSAGES[:2])
    checkpoint, certificate = forged_certificate(checkpoint_over(MESSAGES[:2]), reason)
    store.attest_messages(checkpoint, certificate, [m.id for m in MESSAGES[:2]], 1.0)
    assert prover(store, metrics, clock).verify_attested(source) is False
    for message in MESSAGES[:2]:
        record = store.get(message.id)
        assert record is not None and record.state is St.REJECTED and record.error_reason == reason


def test_compute_transitions_rejects_a_message_the_checkpoint_does_not_cover(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    source = make_source(store)
    store_final(store, source, MESSAGES[:3])
    checkpoint = checkpoint_over(MESSAGES[:3], 1)
    checkpoint_id = store.attest_messages(checkpoint, certify(checkpoint), [m.id for m in MESSAGES[:3]], 1.0)
    certified = store.get_certificate(checkpoint_id)
    records = [store.get(m.id) for m in MESSAGES[:3]]
    transitions = prover(store, metrics, clock).compute_transitions(source, certified, records)  # type: ignore[arg-type]
    assert [t.new for t in transitions] == [St.VERIFIED, St.VERIFIED, St.REJECTED]
    assert transitions[2].updates["error_reason"] == "InvalidMerkleProof"
    assert [state_of(store, m.id) for m in MESSAGES[:3]] == [St.ATTESTED] * 3  # computing writes nothing


def test_messages_under_different_checkpoints_are_judged_separately(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    source = make_source(store)
    store_final(store, source, MESSAGES)
    good = checkpoint_over(MESSAGES, 1)
    store.attest_messages(good, certify(good), [m.id for m in MESSAGES[:2]], 1.0)
    tampered = checkpoint_over(MESSAGES, 3, root=b"\xee" * 32)
    store.attest_messages(tampered, certify(tampered), [m.id for m in MESSAGES[2:]], 1.0)
    assert prover(store, metrics, clock).verify_attested(source) is True
    assert [state_of(store, m.id) for m in MESSAGES] == [St.VERIFIED, St.VERIFIED, St.REJECTED, St.REJECTED]
