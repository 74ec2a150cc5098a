"""`relay bench lightclient --onchain`: its options and tables (the figures come from real runs in
tests/integration/test_lightclient_gas.py and test_inbox_delivery.py)."""

from __future__ import annotations

import argparse

import pytest

from adapters.ethereum.inbox_gas import InboxGas
from adapters.ethereum.lightclient_gas import UpdateGasRow
from relay.tools.bench.lightclient_onchain import format_message_table, format_update_table, parse_batches


def row(kind: str, participants: int, gas: int) -> UpdateGasRow:
    return UpdateGasRow(kind, participants, 512, kind == "period change", gas, 100, {"pairing": 103_000})


def test_batches_are_checked() -> None:
    assert parse_batches("10,50") == (10, 50)
    for bad in ("", "1", "ten", "10,500"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_batches(bad)


@pytest.mark.parametrize(("gas", "verdict"), [(580_309, "met"), (600_001, "MISSED")])
def test_the_update_target_is_judged_on_the_partial_row_inside_a_period(gas: int, verdict: str) -> None:
    table = format_update_table([row("no period change", 512, 362_609), row("no period change", 410, gas)])
    assert table.endswith(f"{verdict} ({gas:,})")
    assert "| no period change | 410/512 |" in table


@pytest.mark.parametrize(("lone", "verdict"), [(112_562, "met"), (150_001, "MISSED")])
def test_the_message_target_is_judged_on_the_lone_delivery(lone: int, verdict: str) -> None:
    table = format_message_table(InboxGas(lone=lone, first_delivery=191_882, per_message={10: 59_104}))
    assert table.endswith(f"a lone message <= 150,000 gas, its block stored: {verdict}")
    assert "| `deliverFromEthereumBatch` | 10 | 59,104 |" in table


def test_the_header_walk_rows_are_printed_when_measured() -> None:
    measured = InboxGas(
        lone=112_961,
        first_delivery=192_281,
        per_message={10: 59_533},
        walk_lone={8: 226_532, 31: 556_260},
        walk_batch_shared=122_552,
        walk_batch_unshared=308_288,
        walk_header_bytes=610,
    )
    table = format_message_table(measured)
    assert "| `deliverFromEthereum`, 31 blocks below the stored one (32 headers) | 1 | 556,260 |" in table
    assert "shared headers sent once | 10 | 122,552 |" in table
    assert "| the same, each proof's whole walk sent | 10 | 308,288 |" in table
    # The target is judged where walks are needed too, not only for a message in a stored block.
    assert "header walk): 8 below: MISSED (226,532), 31 below: MISSED (556,260)" in table
    assert table.endswith("per message in a batch of 10 below the stored block: met (122,552)")
    assert "blocks below" not in format_message_table(InboxGas(lone=1, first_delivery=2))
