"""The light-client origin's update planner: which verified updates a destination light client
needs, in which order, from what it stores (the spec's period rules; supermajority only)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from adapters.ethereum.lightclient_origin import EthereumLightClientOrigin, _Verified
from relay.chains.lightclient import StoredHeaders
from relay.verify.ethereum.config import MAINNET

SIZE = MAINNET.preset.sync_committee_size
FULL, WEAK = SIZE, SIZE * 2 // 3 - 1  # participants: a supermajority, and one short of it


def verified(
    period: int,
    *,
    finalized_period: int | None = None,
    signers: int = FULL,
    committee: bool = True,
    later: int = 0,
) -> _Verified:
    finalized = period if finalized_period is None else finalized_period
    update: Any = SimpleNamespace(
        sync_aggregate=SimpleNamespace(participant_count=lambda: signers),
        next_sync_committee=object() if committee else None,
    )
    slot = finalized * 8192 + 100 + later
    return _Verified(update, slot, slot * 2, finalized, period)


def origin(periods: dict[int, _Verified], finality: _Verified | None = None) -> EthereumLightClientOrigin:
    planner = EthereumLightClientOrigin(
        beacon=None,  # type: ignore[arg-type]
        execution=None,  # type: ignore[arg-type]
        network=MAINNET,
        trusted_block_root=bytes(32),
        gateway=bytes(20),
        origin_domain=1,
    )
    planner._by_period = dict(periods)
    planner._finality = finality
    return planner


def stored(period: int, has_next: bool, finalized_slot: int = 0) -> StoredHeaders:
    return StoredHeaders(0, finalized_slot or period * 8192, period, has_next)


def steps(plan: list[tuple[_Verified, int, bool]]) -> list[tuple[int, int, bool]]:
    return [(v.attested_period, period, has_next) for v, period, has_next in plan]


def test_a_destination_without_its_next_committee_learns_it_then_rotates_period_by_period() -> None:
    periods = {p: verified(p) for p in range(10, 14)}
    finality = verified(13, committee=False, later=50)  # finalizes past the period update
    plan = origin(periods, finality).plan(stored(10, has_next=False))
    # update 10 teaches committee 11; 11, 12, 13 rotate; then the finality update of period 13.
    assert steps(plan) == [(10, 10, False), (11, 10, True), (12, 11, True), (13, 12, True), (13, 13, True)]
    assert plan[-1][0] is finality


def test_a_destination_that_knows_its_next_committee_starts_one_period_later() -> None:
    periods = {p: verified(p) for p in range(10, 13)}
    assert steps(origin(periods).plan(stored(10, has_next=True))) == [(11, 10, True), (12, 11, True)]


def test_a_missing_weak_or_lagging_update_ends_the_plan_there() -> None:
    missing = {10: verified(10), 12: verified(12)}
    assert steps(origin(missing).plan(stored(10, has_next=True))) == []
    weak = {11: verified(11, signers=WEAK), 12: verified(12)}
    assert steps(origin(weak).plan(stored(10, has_next=True))) == []
    lagging = {11: verified(11, finalized_period=10)}  # finality did not cross into period 11
    assert steps(origin(lagging).plan(stored(10, has_next=True))) == []


def test_the_finality_update_goes_only_where_it_applies_and_moves_the_header() -> None:
    assert steps(origin({}, verified(10, committee=False)).plan(stored(10, True))) == [(10, 10, True)]
    older = verified(10, committee=False)
    assert origin({}, older).plan(stored(10, True, finalized_slot=older.finalized_slot)) == []
    too_far = verified(12, committee=False)  # two periods ahead: the destination cannot check it
    assert origin({}, too_far).plan(stored(10, True)) == []
    weak = verified(10, committee=False, signers=WEAK)
    assert origin({}, weak).plan(stored(10, True)) == []
