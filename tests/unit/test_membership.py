"""An attestor follows its committee from the chain: new epoch and index, removal, no way back;
what it signed stays binding across epochs and restarts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from relay.chains import OnChainCommittee
from relay.handover import build_committee_from_chain
from relay.roles.attestor import AttestorIdentity, CheckpointLedger, FinalityConflict
from relay.roles.membership import CommitteeMembership
from relay.verify.bls import get_backend

BLS = get_backend("blst")
SECRET = 515151
KEY = BLS.secret_to_public_key(SECRET)
OTHER = [BLS.secret_to_public_key(1000 + i) for i in range(4)]
IDENTITY = AttestorIdentity(7, b"\x01" * 32, 1, 0, KEY, BLS.prove_possession(SECRET))
ROOT_A, ROOT_B = b"\xaa" * 32, b"\xbb" * 32


class Chain:
    """A committee chain whose Gateway holds `committee` for origin 7."""

    def __init__(self, epoch: int, keys: list[bytes]) -> None:
        self.domain = 2
        self.set(epoch, keys)

    def set(self, epoch: int, keys: list[bytes]) -> None:
        members = tuple((k, 1) for k in keys)
        committee_hash = build_committee_from_chain(OnChainCommittee(epoch, b"", len(keys), members)).hash()
        self.committee = OnChainCommittee(epoch, committee_hash, len(keys), members)

    def committee_of(self, origin: int) -> tuple[int, bytes] | None:
        return (self.committee.epoch, self.committee.committee_hash) if origin == 7 else None

    def current_committee(self, origin: int) -> OnChainCommittee | None:
        return self.committee if origin == 7 else None


def follow(log: Path | None, chain: Chain) -> tuple[CheckpointLedger, CommitteeMembership]:
    ledger = CheckpointLedger(IDENTITY, SECRET, BLS, history=4, signed_log=str(log) if log else None)
    return ledger, CommitteeMembership(ledger, chain, poll_interval=2.0)


def test_a_new_epoch_is_followed_and_the_final_state_signed_again_under_it(tmp_path: Path) -> None:
    chain = Chain(1, [KEY, *OTHER[:3]])
    log = tmp_path / "signed.jsonl"
    ledger, membership = follow(log, chain)
    assert not membership.refresh(0.0)  # in step with the chain
    first = ledger.apply_final_state(ROOT_A, 3)
    assert first is not None and first.checkpoint.epoch == 1

    chain.set(2, [*OTHER[:2], KEY, OTHER[3]])  # a hand-over moved this member to index 2
    assert not membership.refresh(1.0)  # not due yet
    assert membership.refresh(2.0)
    assert ledger.identity == replace(IDENTITY, epoch=2, signer_index=2)
    assert ledger.newest_at_least(0) is None  # epoch-1 signatures are no longer served
    again = ledger.apply_final_state(ROOT_A, 3)  # the same final state, signed under epoch 2
    assert again is not None and (again.checkpoint.epoch, again.signer_index) == (2, 2)
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1, 2]
    with pytest.raises(FinalityConflict):
        ledger.apply_final_state(ROOT_B, 3)  # a new epoch is no licence to sign another root

    # Restarted with its configured epoch 1, it follows the chain to epoch 2 and remembers both.
    restarted, membership = follow(log, chain)
    assert membership.refresh(0.0)
    assert restarted.identity.epoch == 2
    with pytest.raises(FinalityConflict):
        restarted.apply_final_state(ROOT_B, 3)


def test_a_removed_member_stops_signing_and_an_older_epoch_is_ignored() -> None:
    chain = Chain(1, [KEY, *OTHER[:3]])
    ledger, membership = follow(None, chain)
    membership.refresh(0.0)
    chain.set(2, OTHER)  # removed
    assert membership.refresh(5.0)
    assert not ledger.signing and not membership.member
    assert ledger.apply_final_state(ROOT_A, 3) is None
    chain.set(1, [KEY, *OTHER[:3]])  # a lying or lagging RPC shows the old committee again
    assert not membership.refresh(10.0)
    assert not ledger.signing and ledger.identity.epoch == 2


def test_the_handover_log_refuses_a_second_next_committee_across_restarts(tmp_path: Path) -> None:
    from relay.errors import ConfigurationError
    from relay.roles.membership import ConflictingHandover, HandoverLog

    path = str(tmp_path / "signed.jsonl.handovers")
    first = HandoverLog(path)
    first.record(5, 1, b"\x01" * 32)
    first.record(5, 1, b"\x01" * 32)  # the same hand-over again: fine
    first.record(6, 1, b"\x02" * 32)  # another origin: its own committee
    with pytest.raises(ConflictingHandover):
        first.record(5, 1, b"\x03" * 32)
    restarted = HandoverLog(path)  # a restart remembers
    with pytest.raises(ConflictingHandover):
        restarted.record(5, 1, b"\x03" * 32)
    restarted.record(5, 2, b"\x03" * 32)  # the next epoch's committee hands over on its own
    with open(path, "a", encoding="utf-8") as file:
        file.write('{"origin": 5, "ep')  # a torn write at the end: ignored
    with pytest.raises(ConflictingHandover):
        HandoverLog(path).record(5, 2, b"\x04" * 32)
    with open(path, "a", encoding="utf-8") as file:
        file.write("\n" + '{"origin": 7}' + "\n")  # a malformed line in the middle: refused
    with pytest.raises(ConfigurationError, match="malformed"):
        HandoverLog(path)


def test_a_jump_to_the_highest_epoch_is_followed_only_while_the_chain_shows_it() -> None:
    """A lying committee_chain RPC shows 2^64-1: logged, followed provisionally, and left as soon
    as the chain shows an epoch between the last one reached hand-over by hand-over and it."""
    chain = Chain(1, [KEY, *OTHER[:3]])
    ledger, membership = follow(None, chain)
    membership.refresh(0.0)
    chain.set(2, [*OTHER[:2], KEY, OTHER[3]])
    assert membership.refresh(2.0) and membership.anchor_epoch == 2  # one hand-over: anchored

    chain.set(2**64 - 1, OTHER)  # the worst epoch, without this attestor: it would stop signing
    assert membership.refresh(4.0)
    assert ledger.identity.epoch == 2**64 - 1 and not ledger.signing
    assert membership.anchor_epoch == 2  # provisional

    chain.set(2, [*OTHER[:2], KEY, OTHER[3]])  # the lie stops
    assert membership.refresh(6.0)
    assert ledger.identity == replace(IDENTITY, epoch=2, signer_index=2) and ledger.signing
    assert ledger.apply_final_state(ROOT_A, 3) is not None

    chain.set(1, [KEY, *OTHER[:3]])  # below the anchor: still ignored
    assert not membership.refresh(8.0)
    assert ledger.identity.epoch == 2


def test_a_recovery_jump_is_followed_and_the_next_hand_over_from_it_too() -> None:
    chain = Chain(1, [KEY, *OTHER[:3]])
    ledger, membership = follow(None, chain)
    chain.set(9, [OTHER[0], KEY])  # the owner re-enrolled the origin after a recovery
    assert membership.refresh(0.0) and ledger.identity == replace(IDENTITY, epoch=9, signer_index=1)
    chain.set(10, [KEY, OTHER[1]])
    assert membership.refresh(2.0) and ledger.identity == replace(IDENTITY, epoch=10, signer_index=0)


@pytest.mark.parametrize("lie", ["committeeOf hash", "answer's own hash"])
def test_a_committee_that_does_not_hash_to_committee_of_is_ignored(lie: str) -> None:
    chain = Chain(1, [KEY, *OTHER[:3]])
    ledger, membership = follow(None, chain)
    membership.refresh(0.0)
    chain.set(2, OTHER)  # would remove this attestor
    honest = chain.committee
    forged = b"\x22" * 32
    if lie == "committeeOf hash":
        chain.committee_of = lambda origin: (2, forged)  # type: ignore[method-assign]
    else:
        chain.committee = replace(honest, committee_hash=forged)
        chain.committee_of = lambda origin: (2, honest.committee_hash)  # type: ignore[method-assign]
    assert not membership.refresh(2.0)
    assert ledger.identity.epoch == 1 and ledger.signing
