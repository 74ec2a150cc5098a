"""Replicas: the config of a replica, its registration and source leases, committees without the lease.

A real SQLite store and the injectable clock; two `ReplicaLeases` on one store stand for two replicas.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from relay.errors import ConfigurationError
from relay.lifecycle import LeaseLost
from relay.metrics import RelayMetrics
from relay.relayer.config import default_replica_id
from relay.relayer.replicas import ReplicaLeases
from relay.store import SqliteStore, Store

from .helpers import (
    COMMITTEE,
    Clock,
    checkpoint_over,
    make_message,
    make_source,
    relayer_config,
    state_of,
    store_verified,
)
from .helpers import S as St
from .test_committees import FakeGateway, certificate_for, make_follower, proposal_for

LEASE = 6.0


def metrics_pair() -> tuple[RelayMetrics, RelayMetrics]:
    """The metrics of two replicas (one registry each, as two processes)."""
    return RelayMetrics(CollectorRegistry()), RelayMetrics(CollectorRegistry())


def held(metrics: RelayMetrics, name: str = "source/1") -> float | None:
    return metrics.registry.get_sample_value("relay_lease_held", {"lease": name})


# --- config ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [("relay-0.relay.svc", "relay-0.relay.svc"), ("weird host/name", "weird-host-name"), ("", "relayer")],
)
def test_the_replica_id_defaults_to_the_host_name_and_leases_to_15_seconds(
    monkeypatch: pytest.MonkeyPatch, host: str, expected: str
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    config = relayer_config()
    assert config.replica_id == default_replica_id() == expected
    assert config.lease_seconds == 15.0


@pytest.mark.parametrize(
    "replica_id",
    ["a/b", "-leading-dash", ".hidden", "x" * 129, "pod 1", "pod\n1", "pödchen", "a:b", "*"],
)
def test_a_replica_id_outside_the_allowed_characters_is_refused(replica_id: str) -> None:
    with pytest.raises(ValidationError, match="replica_id must be"):
        relayer_config(replica_id=replica_id)


@pytest.mark.parametrize(
    "overrides",
    [
        {"lease_seconds": 0.0},
        {"lease_seconds": -1.0},
        {"lease_seconds": float("nan")},
        {"lease_seconds": float("inf")},
        {"lease_seconds": 0.9, "poll_interval": 0.5},  # below twice the poll interval
        {"lease_seconds": 600.1},  # a dead replica's work would wait longer than 10 minutes
    ],
)
def test_a_lease_too_short_too_long_or_not_finite_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="lease_seconds must be at least twice poll_interval"):
        relayer_config(**overrides)


def test_a_lease_of_twice_the_poll_interval_is_accepted() -> None:
    assert relayer_config(lease_seconds=1.0, poll_interval=0.5, replica_id="pod-0.relay").lease_seconds == 1.0


# --- registration ---------------------------------------------------------------------------------


def test_a_second_process_with_the_same_replica_id_is_refused_until_the_first_lease_ran_out(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    first = ReplicaLeases(store, metrics, clock, "pod-0", LEASE)
    first.register(lambda seconds: True)
    second = ReplicaLeases(store, metrics, clock, "pod-0", LEASE)
    assert second.process_owner != first.process_owner
    with pytest.raises(ConfigurationError, match="replica id pod-0 is held by a live process") as raised:
        second.register(lambda seconds: True)  # gives up at once instead of waiting
    assert raised.value.fields["holder"] == first.process_owner
    clock.advance(LEASE)  # the first process died without releasing: its lease runs out
    assert second.register(lambda seconds: True).fence == 2
    assert not first.renew_registration(force=True)  # the first, woken up, cannot renew it
    assert first.registration is None and not first.renew_registration()  # and works no more
    assert second.renew_registration(force=True)


@pytest.mark.parametrize("shared", [False, True])
def test_a_dead_previous_process_frees_the_replica_id_at_once_only_on_a_one_host_store(
    tmp_path: Path, metrics: RelayMetrics, clock: Clock, shared: bool
) -> None:
    store = SqliteStore(tmp_path / "one.db", shared=shared)
    try:
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
        dead_pid = int(gone.stdout)  # exited: no live process has this pid now (barring reuse)
        assert store.acquire_lease("replica/pod-0", f"pod-0:{dead_pid}:00ff", clock(), LEASE) is not None
        restarted = ReplicaLeases(store, metrics, clock, "pod-0", LEASE)
        if shared:  # the holder may live on another host: its lease has to run out
            with pytest.raises(ConfigurationError, match="held by a live process"):
                restarted.register(lambda seconds: True)
        else:  # SQLite: the file is this host's, and the pid names no process here
            assert restarted.register(lambda seconds: True).fence == 2
    finally:
        store.close()


def test_the_registration_is_renewed_after_a_third_of_the_lease_and_released_at_stop(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    replica = ReplicaLeases(store, metrics, clock, "pod-0", LEASE)
    lease = replica.register(lambda seconds: True)
    assert metrics.registry.get_sample_value("relay_replica_info", {"replica": "pod-0"}) == 1
    clock.advance(LEASE / 3 - 0.1)
    assert replica.renew_registration() and replica.registration == lease  # not due yet
    clock.advance(0.1)
    assert replica.renew_registration()
    assert replica.registration is not None and replica.registration.expires_at == clock.now + LEASE
    replica.release([])
    successor = ReplicaLeases(store, metrics, clock, "pod-0", LEASE)
    assert successor.register(lambda seconds: True).fence == 2  # at once: no wait for the lease


# --- source leases --------------------------------------------------------------------------------


def test_one_replica_holds_a_source_and_another_takes_it_over_once_it_expired(
    store: Store, clock: Clock
) -> None:
    metrics_a, metrics_b = metrics_pair()
    a = ReplicaLeases(store, metrics_a, clock, "replica-a", LEASE)
    b = ReplicaLeases(store, metrics_b, clock, "replica-b", LEASE)
    source_a, source_b = make_source(store), make_source(store)

    lease, acquired = a.hold_source(source_a)
    assert lease is not None and acquired and lease.fence == 1 and not source_a.stale
    assert b.hold_source(source_b) == (None, False) and source_b.stale
    assert (held(metrics_a), held(metrics_b)) == (1, 0)
    clock.advance(LEASE - 0.1)
    renewed, acquired = a.hold_source(source_a)
    assert renewed is not None and not acquired and renewed.fence == 1  # renewal keeps the fence
    clock.advance(LEASE)  # a stalls past its lease
    taken, acquired = b.hold_source(source_b)
    assert taken is not None and acquired and taken.fence == 2
    assert metrics_b.registry.get_sample_value("relay_lease_takeovers_total", {"lease": "source/1"}) == 1
    assert a.hold_source(source_a) == (None, False) and source_a.stale and source_a.lease is None
    assert (held(metrics_a), held(metrics_b)) == (0, 1)
    # The stalled replica's write under its old lease is refused whole.
    with pytest.raises(LeaseLost):
        store.mark_final(1, 10, clock.now, lease=renewed)
    a.fenced(source_a, "ingest", LeaseLost("moved on"))
    assert metrics_a.registry.get_sample_value("relay_fenced_writes_total", {"stage": "ingest"}) == 1


def test_a_source_taken_back_after_another_held_it_is_marked_for_reload(store: Store, clock: Clock) -> None:
    metrics_a, metrics_b = metrics_pair()
    a = ReplicaLeases(store, metrics_a, clock, "replica-a", LEASE)
    b = ReplicaLeases(store, metrics_b, clock, "replica-b", LEASE)
    source_a, source_b = make_source(store), make_source(store)
    a.hold_source(source_a)
    clock.advance(LEASE)
    b.hold_source(source_b)
    b.release([source_b])
    # a never ran a pass meanwhile, yet its lease changed hands twice: it must reload.
    lease, acquired = a.hold_source(source_a)
    assert lease is not None and acquired and lease.fence == 3 and source_a.stale
    assert metrics_a.registry.get_sample_value("relay_lease_takeovers_total", {"lease": "source/1"}) == 1


def test_a_restarted_process_with_the_same_id_waits_for_its_predecessors_source_lease(
    store: Store, clock: Clock
) -> None:
    metrics_a, metrics_b = metrics_pair()
    before = ReplicaLeases(store, metrics_a, clock, "pod-0", LEASE)
    stale, _ = before.hold_source(make_source(store))
    after = ReplicaLeases(store, metrics_b, clock, "pod-0", LEASE)  # same id, new process, lease live
    assert after.hold_source(make_source(store)) == (None, False)  # the predecessor may only be stalled
    clock.advance(LEASE)
    lease, acquired = after.hold_source(make_source(store))
    assert lease is not None and acquired and stale is not None and lease.fence == stale.fence + 1
    assert metrics_b.registry.get_sample_value("relay_lease_takeovers_total", {"lease": "source/1"}) == 1


# --- committees without the lease -----------------------------------------------------------------


def test_a_replica_without_the_source_lease_follows_committees_but_submits_and_reattests_nothing(
    store: Store, metrics: RelayMetrics, clock: Clock
) -> None:
    gateway = FakeGateway(COMMITTEE)
    follower, submitter = make_follower(store, metrics, clock, gateway)
    source = make_source(store)
    message = make_message(0)
    store_verified(store, source, [message], checkpoint_over([message]))
    follower.accept(source, certificate_for(proposal_for()))
    assert not follower.follow(source, holding=False)  # the gateway still holds epoch 1: stays
    assert submitter.submitted == [] and state_of(store, message.id) is St.VERIFIED
    # The holder submitted the hand-over meanwhile: every replica follows the gateway's epoch.
    submitter.submit_handover(certificate_for(proposal_for()), 1.0)
    source.committee_sync_due = True
    assert follower.follow(source, holding=False)
    assert source.committee.epoch == 2
    assert state_of(store, message.id) is St.VERIFIED  # re-attesting is the holder's write
