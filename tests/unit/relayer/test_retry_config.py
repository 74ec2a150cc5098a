"""The relayer's `retry` section: a retry window in seconds, never a count of attempts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from relay.relayer.config import RetryConfig


def test_the_default_window_is_days_and_the_schedule_follows_it() -> None:
    config = RetryConfig()
    assert config.give_up_after >= 3 * 24 * 3600
    schedule = config.schedule()
    assert (schedule.base, schedule.cap, schedule.give_up_after) == (1.0, 300.0, config.give_up_after)


def test_max_attempts_is_refused_with_what_replaced_it() -> None:
    with pytest.raises(ValidationError, match="give_up_after"):
        RetryConfig.model_validate({"max_attempts": 8})


@pytest.mark.parametrize(
    "settings",
    [
        {"give_up_after": 10, "max_delay": 300},  # would give up before the first capped wait
        {"give_up_after": -1},
        {"base_delay": 0},
        {"base_delay": 5, "max_delay": 1},
        {"jitter": 1.0},
    ],
)
def test_bad_windows_and_delays_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        RetryConfig.model_validate(settings)
