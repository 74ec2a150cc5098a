"""The lifecycle table: the legal moves of docs/DESIGN (Message lifecycle), and nothing else."""

from __future__ import annotations

import pytest

from relay.errors import RelayError
from relay.lifecycle import (
    ALLOWED_TRANSITIONS,
    IllegalTransition,
    MessageState,
    is_transition_allowed,
    verify_transition,
)

S = MessageState

HAPPY_PATH = [S.OBSERVED, S.FINAL, S.ATTESTED, S.VERIFIED, S.SUBMITTED, S.DELIVERED]


LIGHT_CLIENT_PATH = [
    S.OBSERVED,
    S.FINAL,
    S.WAITING_FOR_HEADER,
    S.HEADER_SUBMITTED,
    S.VERIFIED,
    S.SUBMITTED,
    S.DELIVERED,
]


def test_the_happy_path_is_allowed_step_by_step() -> None:
    for old, new in zip(HAPPY_PATH, HAPPY_PATH[1:], strict=False):
        verify_transition(old, new)


def test_the_light_client_path_needs_no_attestation() -> None:
    for old, new in zip(LIGHT_CLIENT_PATH, LIGHT_CLIENT_PATH[1:], strict=False):
        verify_transition(old, new)
    assert S.ATTESTED not in LIGHT_CLIENT_PATH


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.ATTESTED, S.REJECTED),  # a proof failed off-chain
        (S.SUBMITTED, S.REJECTED),  # the gateway refused the proof
        (S.SUBMITTED, S.RETRYING),  # transient failure
        (S.RETRYING, S.SUBMITTED),  # due again
        (S.RETRYING, S.PARKED),  # out of attempts
        (S.SUBMITTED, S.PARKED),  # recipient reverted
        (S.PARKED, S.VERIFIED),  # operator retry with the stored proof
        (S.PARKED, S.FINAL),  # operator retry from scratch
        (S.PARKED, S.DELIVERED),  # found delivered on the destination chain
        (S.RETRYING, S.DELIVERED),  # found delivered on the destination chain
        (S.REJECTED, S.FINAL),  # operator retry with force
        (S.WAITING_FOR_HEADER, S.VERIFIED),  # the destination light client already stores a later block
        (S.HEADER_SUBMITTED, S.WAITING_FOR_HEADER),  # the update did not bring it far enough
        (S.WAITING_FOR_HEADER, S.REJECTED),  # the proven receipts do not hold the message
    ],
)
def test_side_paths_are_allowed(old: MessageState, new: MessageState) -> None:
    assert is_transition_allowed(old, new)
    verify_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.DELIVERED, S.SUBMITTED),
        (S.DELIVERED, S.PARKED),
        (S.OBSERVED, S.ATTESTED),  # skipping finality
        (S.FINAL, S.VERIFIED),  # skipping the certificate
        (S.ATTESTED, S.SUBMITTED),  # skipping verification
        (S.REJECTED, S.VERIFIED),  # a rejected proof is never reused
        (S.RETRYING, S.RETRYING),
        (S.OBSERVED, S.OBSERVED),
        (S.OBSERVED, S.WAITING_FOR_HEADER),  # skipping finality
        (S.HEADER_SUBMITTED, S.SUBMITTED),  # skipping the receipt proof
        (S.WAITING_FOR_HEADER, S.ATTESTED),  # a light-client origin has no certificate
    ],
)
def test_illegal_moves_raise_a_typed_error(old: MessageState, new: MessageState) -> None:
    assert not is_transition_allowed(old, new)
    with pytest.raises(IllegalTransition) as raised:
        verify_transition(old, new)
    assert isinstance(raised.value, RelayError)
    assert raised.value.fields["old"] == old.name and raised.value.fields["new"] == new.name


def test_every_state_has_a_row_and_delivered_is_final() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(MessageState)
    assert ALLOWED_TRANSITIONS[S.DELIVERED] == frozenset()
    assert {s for s in MessageState if s.is_terminal} == {S.DELIVERED, S.REJECTED, S.PARKED}


def test_every_state_is_reachable_from_observed() -> None:
    seen = {S.OBSERVED}
    frontier = [S.OBSERVED]
    while frontier:
        for new in ALLOWED_TRANSITIONS[frontier.pop()]:
            if new not in seen:
                seen.add(new)
                frontier.append(new)
    assert seen == set(MessageState)
