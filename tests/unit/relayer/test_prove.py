"""Proving: ATTESTED -> VERIFIED (branch stored), REJECTED (typed reason), or back to FINAL."""

from __future__ import annotations

import pytest

from relay.chains import ObservedMessage
from relay.metrics import RelayMetrics
from relay.relayer.prove import Prover
from relay.store import Store
from relay.verify.committee import Checkpoint, QuorumCertificate
from relay.verify.merkle import MerkleTree, verify_branch

from .helpers import (
    BLS,
    EPOCH,
    GATEWAY,
    ORIGIN,
    Clock,
    block_hash,
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


def test_a_genuine_quorum_over_another_root_sends_its_messages_back_and_asks_for_a_repair(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    # The committee signed a root the relayer's tree does not have: the tree (an RPC's word) is
    # what is suspect. Nothing is rejected; the messages wait for a re-read and a new checkpoint.
    source = make_source(store)
    store_final(store, source, MESSAGES[:2])
    other = checkpoint_over(MESSAGES[:2], root=b"\xee" * 32)
    store.attest_messages(other, certify(other), [m.id for m in MESSAGES[:2]], 1.0)
    assert prover(store, metrics, clock).verify_attested(source) is False
    for message in MESSAGES[:2]:
        record = store.get(message.id)
        assert record is not None and record.state is St.FINAL and record.checkpoint_id is None
        assert record.error_reason == ""
    assert source.repair_requested is True
    assert metrics.registry.get_sample_value("relay_tree_repairs_total", {"origin": "1"}) == 1
    assert store.count_rejections() == {}


def test_a_malformed_leaf_is_rejected_once_the_committee_confirmed_it_and_its_neighbours_verify(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    source = make_source(store)
    leaf_id = b"\x5a" * 32
    malformed = ObservedMessage(
        make_message(1, body=b"-"), 2, block_hash(2), b"\x01" * 32, 0, "message body too long", leaf_id
    )
    store.insert_observed([observe(MESSAGES[0]), malformed, observe(MESSAGES[2])], 1.0)
    store.mark_final(source.domain, 10, 1.0)
    source.tree.extend()
    assert source.tree.count == 3  # no gap
    record = store.get(leaf_id)
    assert record is not None and record.is_malformed and record.id == leaf_id
    assert record.error_reason == "MalformedMessage" and "too long" in record.last_error
    tree = MerkleTree([MESSAGES[0].id, leaf_id, MESSAGES[2].id])
    checkpoint = Checkpoint(ORIGIN, GATEWAY, EPOCH, tree.root_at(3), 2)
    store.attest_messages(checkpoint, certify(checkpoint), [MESSAGES[0].id, leaf_id, MESSAGES[2].id], 1.0)
    assert prover(store, metrics, clock).verify_attested(source) is True
    assert state_of(store, MESSAGES[0].id) is St.VERIFIED and state_of(store, MESSAGES[2].id) is St.VERIFIED
    record = store.get(leaf_id)
    assert record is not None and record.state is St.REJECTED and record.error_reason == "MalformedMessage"
    assert "does not decode" in record.last_error and "too long" in record.last_error
    assert source.repair_requested is False


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
    other_root = checkpoint_over(MESSAGES, 3, root=b"\xee" * 32)
    store.attest_messages(other_root, certify(other_root), [m.id for m in MESSAGES[2:]], 1.0)
    forged, certificate = forged_certificate(checkpoint_over(MESSAGES, 3), "InvalidSignature")
    assert prover(store, metrics, clock).verify_attested(source) is True
    assert [state_of(store, m.id) for m in MESSAGES] == [St.VERIFIED, St.VERIFIED, St.FINAL, St.FINAL]
    store.attest_messages(forged, certificate, [m.id for m in MESSAGES[2:]], 2.0)
    assert prover(store, metrics, clock).verify_attested(source) is False
    assert [state_of(store, m.id) for m in MESSAGES] == [St.VERIFIED, St.VERIFIED, St.REJECTED, St.REJECTED]


def test_a_long_backlog_is_committed_in_chunks_with_the_committee_checked_once(
    store: Store, metrics: RelayMetrics, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A restarted relayer proving a long backlog commits verdicts a chunk at a time (deliveries can
    # start on the first chunk); the certificate's signature is checked once per pass, and every
    # message's branch is still checked against the checkpoint root.
    monkeypatch.setattr("relay.relayer.prove.PROVE_CHUNK", 3)
    source = make_source(store)
    messages = [make_message(n) for n in range(7)]
    store_final(store, source, messages)
    checkpoint = checkpoint_over(messages, 6)
    store.attest_messages(checkpoint, certify(checkpoint), [m.id for m in messages], 1.0)
    commits: list[int] = []
    apply = store.apply_transitions
    monkeypatch.setattr(
        store,
        "apply_transitions",
        lambda transitions, *a, **k: (commits.append(len(transitions)), apply(transitions, *a, **k))[1],
    )
    assert prover(store, metrics, clock).verify_attested(source) is True
    assert commits == [3, 3, 1]
    checks = metrics.registry.get_sample_value("relay_verification_seconds_count", {"kind": "checkpoint"})
    assert checks == 1
    for message in messages:
        record = store.get(message.id)
        assert record is not None and record.state is St.VERIFIED
        verify_branch(message.id, record.branch, message.nonce, checkpoint.root)


def test_a_forged_certificate_rejects_every_chunk_of_its_messages(
    store: Store, metrics: RelayMetrics, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("relay.relayer.prove.PROVE_CHUNK", 1)
    source = make_source(store)
    store_final(store, source, MESSAGES[:3])
    checkpoint, certificate = forged_certificate(checkpoint_over(MESSAGES[:3]), "InvalidSignature")
    store.attest_messages(checkpoint, certificate, [m.id for m in MESSAGES[:3]], 1.0)
    assert prover(store, metrics, clock).verify_attested(source) is False
    for message in MESSAGES[:3]:
        assert state_of(store, message.id) is St.REJECTED
