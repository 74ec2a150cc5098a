"""Attestation collection: real BLS partial signatures, checked per member, aggregated per checkpoint."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any

import pytest

from relay.errors import PermanentError, RpcUnavailable
from relay.metrics import RelayMetrics
from relay.peers import AttestorIdentity, PartialSignature
from relay.relayer import attest
from relay.relayer.attest import AttestationCollector
from relay.relayer.state import SourceState
from relay.store import Store
from relay.verify.committee import Checkpoint, verify_checkpoint

from .helpers import (
    BLS,
    EPOCH,
    GATEWAY,
    MEMBERS,
    ORIGIN,
    OUTSIDER,
    OUTSIDER_KEY,
    Clock,
    checkpoint_over,
    make_message,
    make_source,
    observe,
    partial,
    state_of,
    store_final,
)
from .helpers import S as St

MESSAGES = [make_message(n) for n in range(4)]
Answer = PartialSignature | Exception | None


class FakeAttestor:
    """An `AttestorClient` answering what the test sets (a partial, None for NOT_FOUND, or an error)."""

    def __init__(
        self, index: int, answer: Answer = None, identity: AttestorIdentity | Exception | None = None
    ):
        self.address = f"attestor-{index}"
        self.answer = answer
        self.identity = (
            identity if identity is not None else AttestorIdentity(ORIGIN, index, MEMBERS[index].public_key)
        )
        self.asked: list[tuple[int, int]] = []
        self.identified = 0

    def get_checkpoint(self, origin: int, min_index: int, timeout: float) -> PartialSignature | None:
        self.asked.append((origin, min_index))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def get_identity(self, timeout: float) -> AttestorIdentity:
        self.identified += 1
        if isinstance(self.identity, Exception):
            raise self.identity
        return self.identity

    def close(self) -> None:
        pass


def honest(checkpoint: Checkpoint, *members: int) -> list[FakeAttestor]:
    return [FakeAttestor(i, partial(i, checkpoint)) for i in members]


def collector(
    store: Store, metrics: RelayMetrics, clock: Clock, pool: futures.Executor
) -> AttestationCollector:
    return AttestationCollector(store, metrics, clock, BLS, pool, timeout=1.0)


def final_source(store: Store, attestors: Sequence[FakeAttestor], count: int = 3) -> SourceState:
    source = make_source(store, attestors=attestors)
    store_final(store, source, MESSAGES[:count])
    return source


def signature_checks(metrics: RelayMetrics) -> float:
    """How many partial signatures went through a pairing check."""
    return metrics.registry.get_sample_value("relay_verification_seconds_count", {"kind": "signature"}) or 0.0


@pytest.fixture
def make(
    store: Store, metrics: RelayMetrics, clock: Clock, pool: futures.Executor
) -> Callable[[], AttestationCollector]:
    return lambda: collector(store, metrics, clock, pool)


def test_three_of_four_over_one_checkpoint_attest_what_it_covers(store: Store, make: Any) -> None:
    checkpoint = checkpoint_over(MESSAGES[:3])
    attestors = [*honest(checkpoint, 0, 1, 2), FakeAttestor(3, None)]  # member 3: NOT_FOUND
    source = final_source(store, attestors)
    make().collect(source)
    records = [store.get(m.id) for m in MESSAGES[:3]]
    assert all(r is not None and r.state is St.ATTESTED for r in records)
    assert len({r.checkpoint_id for r in records if r is not None}) == 1
    certified = store.get_certificate(records[0].checkpoint_id)  # type: ignore[union-attr, arg-type]
    assert certified is not None and certified.checkpoint == checkpoint
    assert certified.certificate.signer_indices(4) == [0, 1, 2]
    assert (
        verify_checkpoint(
            source.committee, checkpoint, certified.certificate, origin=ORIGIN, gateway=GATEWAY, backend=BLS
        )
        == 3
    )
    assert all(a.asked == [(ORIGIN, 0)] for a in attestors)
    assert source.reachable_weight == 3


def test_below_the_threshold_nothing_moves(store: Store, metrics: RelayMetrics, make: Any) -> None:
    checkpoint = checkpoint_over(MESSAGES[:3])
    attestors = [*honest(checkpoint, 0, 1), FakeAttestor(2, RpcUnavailable("down")), FakeAttestor(3, None)]
    source = final_source(store, attestors)
    make().collect(source)
    assert [state_of(store, m.id) for m in MESSAGES[:3]] == [St.FINAL] * 3
    assert source.reachable_weight == 2
    assert metrics.registry.get_sample_value("relay_attestor_quorum_reachable_weight", {"origin": "1"}) == 2
    assert metrics.registry.get_sample_value("relay_attestor_quorum_threshold_weight", {"origin": "1"}) == 3
    assert len(attestors[2].asked) == 2  # a transient failure is retried once in-call, then skipped
    assert len(attestors[3].asked) == 1  # NOT_FOUND is an answer


def test_the_quorum_must_be_over_the_same_checkpoint(store: Store, make: Any) -> None:
    older, newer = checkpoint_over(MESSAGES[:3], 1), checkpoint_over(MESSAGES[:3], 2)
    attestors = [*honest(older, 0, 1), *honest(newer, 2, 3)]
    source = final_source(store, attestors)
    stage = make()
    stage.collect(source)  # four valid signatures, but two per checkpoint
    assert [state_of(store, m.id) for m in MESSAGES[:3]] == [St.FINAL] * 3
    assert source.reachable_weight == 4
    attestors[1].answer = partial(1, newer)  # member 1 catches up: 3 over `newer`
    stage.collect(source)
    assert [state_of(store, m.id) for m in MESSAGES[:3]] == [St.ATTESTED] * 3


def test_the_newest_checkpoint_with_a_quorum_is_chosen(store: Store, make: Any) -> None:
    older, newer = checkpoint_over(MESSAGES[:3], 1), checkpoint_over(MESSAGES[:3], 2)
    attestors = [*honest(older, 0, 1), *honest(newer, 2, 3)]
    source = final_source(store, attestors)
    stage = make()
    stage.collect(source)
    for attestor, checkpoint in zip(attestors, [newer, newer, older, older], strict=True):
        attestor.answer = partial(int(attestor.address[-1]), checkpoint)
    stage.collect(source)  # both checkpoints now have all four signatures
    records = [store.get(m.id) for m in MESSAGES[:3]]
    assert all(r is not None and r.state is St.ATTESTED for r in records)
    certified = store.get_certificate(records[0].checkpoint_id)  # type: ignore[union-attr, arg-type]
    assert certified is not None and certified.checkpoint == newer


def test_a_checkpoint_past_the_final_leaves_is_not_used(store: Store, make: Any) -> None:
    beyond = checkpoint_over(MESSAGES[:4], 3)  # nonce 3 is only OBSERVED in the relayer's store
    attestors = honest(beyond, 0, 1, 2, 3)
    source = final_source(store, attestors, count=3)
    store.insert_observed([observe(MESSAGES[3])], 1.0)
    source.tree.extend()
    make().collect(source)
    assert [state_of(store, m.id) for m in MESSAGES[:3]] == [St.FINAL] * 3
    assert len(store.signatures_for(ORIGIN, 0)) == 4  # kept for when the tree gets there


def test_nothing_is_asked_while_the_tree_does_not_reach_the_lowest_final_nonce(
    store: Store, make: Any
) -> None:
    attestors = honest(checkpoint_over(MESSAGES[:3]), 0, 1, 2)
    source = make_source(store, attestors=attestors)
    store.insert_observed([observe(m) for m in MESSAGES[:3]], 1.0)
    store.mark_final(ORIGIN, 3, 1.0)  # FINAL in the store, but the tree was not extended yet
    make().collect(source)
    assert all(a.asked == [] for a in attestors)
    assert [state_of(store, m.id) for m in MESSAGES[:3]] == [St.FINAL] * 3
    assert store.signatures_for(ORIGIN, 0, valid_only=False) == []


def test_a_crashing_or_refusing_attestor_does_not_stop_the_others(store: Store, make: Any) -> None:
    checkpoint = checkpoint_over(MESSAGES[:3])
    attestors = [*honest(checkpoint, 0, 1, 2), FakeAttestor(3, RuntimeError("bug in a client"))]
    attestors[2].answer = PermanentError("refused", code="FAILED_PRECONDITION")
    attestors.append(FakeAttestor(2, partial(2, checkpoint)))
    source = final_source(store, attestors)
    make().collect(source)
    assert [state_of(store, m.id) for m in MESSAGES[:3]] == [St.ATTESTED] * 3


FORGERIES: dict[str, tuple[Callable[[Checkpoint], PartialSignature], str]] = {
    "signed with another key": (lambda c: partial(0, c, secret=OUTSIDER), "InvalidSignature"),
    "outsider key for a member": (
        lambda c: partial(0, c, secret=OUTSIDER, public_key=OUTSIDER_KEY),
        "UnknownSigner",
    ),
    "index outside the committee": (
        lambda c: PartialSignature(c, 7, OUTSIDER_KEY, BLS.sign(OUTSIDER, c.digest())),
        "UnknownSigner",
    ),
    "another origin": (
        lambda c: partial(0, Checkpoint(9, c.gateway, c.epoch, c.root, c.index)),
        "OriginMismatch",
    ),
    "another gateway": (
        lambda c: partial(0, Checkpoint(c.origin, b"\x07" * 32, c.epoch, c.root, c.index)),
        "GatewayMismatch",
    ),
    "another epoch": (
        lambda c: partial(0, Checkpoint(c.origin, c.gateway, EPOCH + 1, c.root, c.index)),
        "EpochMismatch",
    ),
    "signature over another root": (
        lambda c: PartialSignature(
            c,
            0,
            MEMBERS[0].public_key,
            partial(0, Checkpoint(c.origin, c.gateway, c.epoch, b"\xee" * 32, c.index)).signature,
        ),
        "InvalidSignature",
    ),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_partial_is_stored_with_its_reason_and_never_counts(
    store: Store, metrics: RelayMetrics, make: Any, forgery: str
) -> None:
    checkpoint = checkpoint_over(MESSAGES[:3])
    forge, reason = FORGERIES[forgery]
    forged = forge(checkpoint)
    attestors = [FakeAttestor(0, forged), *honest(checkpoint, 1, 2)]
    source = final_source(store, attestors)
    stage = make()
    assert stage.record_partial(source, "attestor-0", forged).startswith(f"{reason}: ")
    stage.collect(source)
    assert [state_of(store, m.id) for m in MESSAGES[:3]] == [St.FINAL] * 3  # 2 honest < threshold 3
    assert source.reachable_weight == 2
    stored = [
        s
        for s in store.signatures_for(forged.checkpoint.origin, 0, valid_only=False)
        if s.signature == forged.signature
    ]
    assert (
        len(stored) == 1
        and stored[0].rejected_reason.startswith(reason)
        and stored[0].attestor == "attestor-0"
    )
    assert forged.signature not in {s.signature for s in store.signatures_for(ORIGIN, 0)}
    assert (
        metrics.registry.get_sample_value("relay_proof_rejections_total", {"origin": "1", "reason": reason})
        == 1
    )  # once per distinct signature


def test_a_forgery_under_a_members_index_does_not_block_its_real_signature(store: Store, make: Any) -> None:
    checkpoint = checkpoint_over(MESSAGES[:3])
    forged = partial(0, checkpoint, secret=OUTSIDER)
    attestors = [FakeAttestor(0, forged), *honest(checkpoint, 1, 2)]
    source = final_source(store, attestors)
    stage = make()
    stage.collect(source)
    attestors[0].answer = partial(0, checkpoint)
    stage.collect(source)
    assert [state_of(store, m.id) for m in MESSAGES[:3]] == [St.ATTESTED] * 3


def test_a_members_signature_replayed_under_a_wrong_key_does_not_shadow_the_real_one(
    store: Store, make: Any
) -> None:
    """An attestor replays member 0's real signature bytes with another public key before member 0
    answers: the replay is rejected, and member 0's own copy (same bytes, right key) still counts,
    also after a restart of the relayer (a fresh verdict cache over the same store)."""
    checkpoint = checkpoint_over(MESSAGES[:3])
    real = partial(0, checkpoint)
    replay = PartialSignature(real.checkpoint, 0, MEMBERS[1].public_key, real.signature)
    replayer = FakeAttestor(0, replay)
    source = final_source(store, [replayer, *honest(checkpoint, 1)])
    stage = make()
    stage.collect(source)
    assert [state_of(store, m.id) for m in MESSAGES[:3]] == [St.FINAL] * 3  # 1 valid of threshold 3
    source = final_source(store, [replayer, FakeAttestor(0, real), *honest(checkpoint, 1, 2)])
    make().collect(source)  # a restarted relayer: empty verdict cache, the replay stored first
    assert [state_of(store, m.id) for m in MESSAGES[:3]] == [St.ATTESTED] * 3


def test_verdicts_are_cached_and_the_cache_is_bounded(
    store: Store, metrics: RelayMetrics, make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(attest, "VERDICT_CACHE_SIZE", 2)
    checkpoint = checkpoint_over(MESSAGES[:3])
    source = final_source(store, [])
    stage = make()
    first, second, third = (partial(i, checkpoint) for i in range(3))
    assert stage.record_partial(source, "a", first) == ""
    assert signature_checks(metrics) == 1
    assert stage.record_partial(source, "a", first) == ""
    assert signature_checks(metrics) == 1  # cached: no second pairing
    stage.record_partial(source, "a", second)
    stage.record_partial(source, "a", third)  # evicts `first` (least recently used)
    assert signature_checks(metrics) == 3
    assert stage.record_partial(source, "a", third) == ""
    assert signature_checks(metrics) == 3
    assert stage.record_partial(source, "a", first) == ""
    assert signature_checks(metrics) == 4  # evicted, so checked again


def test_a_cached_rejection_is_still_a_rejection(store: Store, metrics: RelayMetrics, make: Any) -> None:
    checkpoint = checkpoint_over(MESSAGES[:3])
    source = final_source(store, [])
    stage = make()
    forged = partial(1, checkpoint, secret=OUTSIDER)
    assert stage.record_partial(source, "a", forged).startswith("InvalidSignature")
    assert stage.record_partial(source, "a", forged).startswith("InvalidSignature")
    assert signature_checks(metrics) == 1
    assert (
        metrics.registry.get_sample_value(
            "relay_proof_rejections_total", {"origin": "1", "reason": "InvalidSignature"}
        )
        == 1
    )


def test_an_idle_source_probes_who_answers_at_most_every_probe_interval(
    store: Store, metrics: RelayMetrics, clock: Clock, make: Any
) -> None:
    attestors = [
        FakeAttestor(0),
        FakeAttestor(1),
        FakeAttestor(2, identity=AttestorIdentity(ORIGIN, 2, OUTSIDER_KEY)),  # not the member's key
        FakeAttestor(3, identity=RpcUnavailable("down")),
        FakeAttestor(3, identity=AttestorIdentity(9, 3, MEMBERS[3].public_key)),  # another origin
        # A wrong claimed index: the relayer maps attestors to members by their key, not by what they claim.
        FakeAttestor(3, identity=AttestorIdentity(ORIGIN, 8, MEMBERS[3].public_key)),
        FakeAttestor(3, identity=AttestorIdentity(ORIGIN, 3, MEMBERS[3].public_key, member=False)),  # left
    ]
    source = make_source(store, attestors=attestors)
    stage = make()
    stage.collect(source)  # nothing FINAL: a quorum probe
    assert source.reachable_weight == 3
    assert metrics.registry.get_sample_value("relay_attestor_quorum_reachable_weight", {"origin": "1"}) == 3
    assert all(a.identified == 1 and a.asked == [] for a in attestors)
    clock.advance(attest.QUORUM_PROBE_SECONDS - 0.1)
    stage.collect(source)
    assert all(a.identified == 1 for a in attestors)
    attestors[2].identity = AttestorIdentity(ORIGIN, 2, MEMBERS[2].public_key)
    clock.advance(0.1)
    stage.collect(source)
    assert all(a.identified == 2 for a in attestors)
    assert source.reachable_weight == 4
