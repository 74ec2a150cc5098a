"""`relay devnet --source-mode lightclient` refuses what the simulated beacon chain cannot run."""

from __future__ import annotations

import pytest

from relay.errors import ConfigurationError
from relay.tools.devnet_lightclient import validate_lightclient_options
from relay.tools.devnet_options import DevnetOptions


@pytest.mark.parametrize(
    "changes",
    [
        {"block_time": 0.5},  # slots would start after their blocks: signed "in the future"
        {"block_time": 0.0},
        {"block_time": 1.5},
        {"committee_scheme": "ecdsa"},
        {"spare_members": 2},  # a rotation needs a committee
        {"lightclient_participation": 0.0},
        {"lightclient_participation": 1.01},
        {"source_mode": "optimistic"},
    ],
)
def test_refused(changes: dict[str, object]) -> None:
    options = DevnetOptions(source_mode="lightclient")
    for key, value in changes.items():
        setattr(options, key, value)
    with pytest.raises(ConfigurationError):
        validate_lightclient_options(options)


def test_accepted() -> None:
    validate_lightclient_options(DevnetOptions(source_mode="lightclient", block_time=2.0))
    validate_lightclient_options(DevnetOptions(source_mode="lightclient", lightclient_participation=0.8))
    validate_lightclient_options(DevnetOptions(block_time=0.5))  # committee mode: anything goes
