"""The retry schedules, pinned: changing one is a decision, not an accident."""

from __future__ import annotations

import pytest

from relay.errors import ConfigurationError, InvalidSignature, RpcUnavailable
from relay.retry import (
    ATTESTOR_READ,
    DESTINATION_READ,
    POLICIES,
    SUBMITTER_READ,
    WATCHER_POLL,
    BackoffSchedule,
)


def test_in_call_policy_schedules() -> None:
    assert ATTESTOR_READ.attempts == 2 and ATTESTOR_READ.waits() == [0.05]
    assert DESTINATION_READ.attempts == 3 and DESTINATION_READ.waits() == [0.1, 0.2]
    assert WATCHER_POLL.attempts == 3 and WATCHER_POLL.waits() == [0.2, 0.4]
    assert SUBMITTER_READ.attempts == 5 and SUBMITTER_READ.waits() == [0.2, 0.4, 0.8, 1.6]
    assert set(POLICIES) == {"attestor_read", "destination_read", "watcher_poll", "submitter_read"}


def test_policies_retry_transient_errors_then_reraise_the_last() -> None:
    calls: list[int] = []
    slept: list[float] = []

    def flaky() -> int:
        calls.append(1)
        raise RpcUnavailable("down", attempt=len(calls))

    with pytest.raises(RpcUnavailable) as raised:
        DESTINATION_READ.call(flaky, sleep=slept.append)
    assert len(calls) == 3
    assert slept == [0.1, 0.2]
    assert raised.value.fields["attempt"] == 3


def test_policies_return_after_a_transient_failure() -> None:
    answers = iter([RpcUnavailable("down"), 7])

    def once_down() -> int:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert WATCHER_POLL.call(once_down, sleep=lambda _: None) == 7


def test_policies_never_retry_a_proof_failure() -> None:
    calls: list[int] = []

    def forged() -> None:
        calls.append(1)
        raise InvalidSignature("forged")

    with pytest.raises(InvalidSignature):
        DESTINATION_READ.call(forged, sleep=lambda _: None)
    assert len(calls) == 1


def test_the_default_message_backoff() -> None:
    schedule = BackoffSchedule()
    assert (schedule.base, schedule.cap, schedule.max_attempts) == (1.0, 300.0, 8)
    assert schedule.delays() == [1, 2, 4, 8, 16, 32, 64]
    assert not schedule.is_exhausted(7)
    assert schedule.is_exhausted(8)


def test_the_backoff_is_capped_without_a_cliff() -> None:
    schedule = BackoffSchedule(base=1, cap=10, max_attempts=7, jitter=0)
    assert schedule.delays() == [1, 2, 4, 8, 10, 10]
    assert schedule.compute_delay(10_000) == 10  # no float overflow for huge counts


def test_jitter_is_deterministic_bounded_and_below_the_cap() -> None:
    schedule = BackoffSchedule(base=1, cap=30, max_attempts=10, jitter=0.2)
    key = b"\x11" * 32
    first = schedule.delays(key)
    assert first == schedule.delays(key)
    assert first != schedule.delays(b"\x22" * 32)
    raw = BackoffSchedule(base=1, cap=30, max_attempts=10, jitter=0).delays()
    for jittered, plain in zip(first, raw, strict=True):
        assert plain * 0.8 <= jittered <= plain <= 30
    assert [round(d, 6) for d in first] == [round(d, 6) for d in schedule.delays(key)]


def test_bad_schedules_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        BackoffSchedule(base=0)
    with pytest.raises(ConfigurationError):
        BackoffSchedule(base=5, cap=1)
    with pytest.raises(ValueError, match="count from 1"):
        BackoffSchedule().compute_delay(0)
