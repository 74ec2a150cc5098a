"""`measure_update_gas` (what `relay bench lightclient --onchain` calls) runs end to end on anvil.

At the minimal preset (32 members) to stay cheap; the figures at 512 members are the bench's job.
Nothing here asserts a gas figure: the rows' shape and the relations that hold by construction.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3 import Web3

from adapters.ethereum.lightclient_gas import BenchChain, measure_update_gas
from adapters.evm.anvil import AnvilProcess
from relay.tools.bench.lightclient_onchain import format_update_table
from relay.verify.ethereum.config import MINIMAL_PRESET


@pytest.fixture(scope="module")
def w3() -> Iterator[Web3]:
    with AnvilProcess(chain_id=31337, steps_tracing=True) as anvil:
        yield Web3(Web3.HTTPProvider(anvil.rpc_url))


def test_update_gas_rows_cover_participation_and_period_changes(w3: Web3) -> None:
    rows = measure_update_gas(w3, chain=BenchChain.build(preset=MINIMAL_PRESET), trace=True)
    assert [(r.kind, r.participants, r.period_change) for r in rows] == [
        ("learn next committee", 32, False),
        ("learn next committee", 26, False),
        ("no period change", 32, False),
        ("no period change", 26, False),
        ("period change", 32, True),
        ("period change", 26, True),
    ]
    by_kind = {(r.kind, r.participants): r for r in rows}
    # Keys cost only when a committee is stored, and only the non-participants' y when 80% sign.
    assert by_kind["period change", 32].gas > by_kind["no period change", 32].gas
    assert by_kind["no period change", 26].gas > by_kind["no period change", 32].gas
    assert (
        by_kind["no period change", 26].calldata_bytes
        == by_kind["no period change", 32].calldata_bytes + 6 * 48
    )
    for row in rows:
        assert row.breakdown["pairing"] > 0 and row.breakdown["hash-to-G2"] > 0
    table = format_update_table(rows)  # what `relay bench lightclient --onchain` prints
    assert table.splitlines()[2 : 2 + len(rows)] == [line for line in table.splitlines() if "pairing" in line]
