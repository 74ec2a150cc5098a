"""Review of issue 11 (replicas, leases, fencing): findings shown as tests.

Each `xfail(strict=True)` test states what the code should do and fails today; the reason names the
finding of the review report. When a finding is fixed its test passes, and strict xfail turns that
into a failure: remove the marker then. A real SQLite store and the injectable clock, as in
tests/unit/relayer/test_replicas.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from relay.chains import Cursor
from relay.errors import ConfigurationError, RelayError
from relay.lifecycle import LeaseLost
from relay.metrics import RelayMetrics
from relay.relayer.replicas import ReplicaLeases
from relay.store import Store, open_store
from relay.store.postgres_connect import describe_dsn, parse_dsn

from .helpers import Clock, make_source, relayer_config

LEASE = 6.0


def metrics() -> RelayMetrics:
    return RelayMetrics(CollectorRegistry())


# --- F1: a stalled incarnation of the same replica id writes under the new one's fence ------------


def test_a_stalled_previous_process_of_the_same_replica_id_cannot_write_under_the_new_ones_source_lease(
    store: Store, clock: Clock
) -> None:
    old = ReplicaLeases(store, metrics(), clock, "pod-0", LEASE)
    old.register(lambda seconds: True)
    stale, _ = old.hold_source(make_source(store))
    assert stale is not None
    store.save_cursor(1, Cursor(10, b"\x01" * 32), lease=stale)

    clock.advance(LEASE)  # the old process stalls (SIGSTOP, GC, partition) past every lease
    new = ReplicaLeases(store, metrics(), clock, "pod-0", LEASE)  # restarted by its supervisor
    new.register(lambda seconds: True)  # allowed: the old registration ran out
    lease, _ = new.hold_source(make_source(store))
    assert lease is not None
    store.save_cursor(1, Cursor(20, b"\x02" * 32), lease=lease)

    # The old process wakes up mid-pass and flushes the cursor it held before the stall.
    with pytest.raises(LeaseLost):
        store.save_cursor(1, Cursor(11, b"\x03" * 32), lease=stale)
    assert store.load_cursor(1) == Cursor(20, b"\x02" * 32)


def test_a_woken_previous_process_cannot_renew_the_source_lease_mid_pass(store: Store, clock: Clock) -> None:
    """F1 fixed: the woken process's `hold()` between stages fails (another process owns the
    lease under a new fence), so its attest and prove stages do not run either."""
    old = ReplicaLeases(store, metrics(), clock, "pod-0", LEASE)
    old.register(lambda seconds: True)
    source_old = make_source(store)
    stale, _ = old.hold_source(source_old)
    clock.advance(LEASE)
    new = ReplicaLeases(store, metrics(), clock, "pod-0", LEASE)
    new.register(lambda seconds: True)
    lease, _ = new.hold_source(make_source(store))
    assert lease is not None and stale is not None and lease.fence == stale.fence + 1
    assert old.hold_source(source_old) == (None, False)
    with pytest.raises(LeaseLost):
        store.save_cursor(1, Cursor(5, b"\x05" * 32), lease=stale)


# --- F2: a libpq keyword DSN silently becomes a SQLite file ----------------------------------------


def test_a_libpq_keyword_dsn_is_refused_rather_than_opened_as_a_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    dsn = "host=/nonexistent/postgresql dbname=relay user=relay"  # what `psql` and libpq docs show
    relayer_config(store=dsn)  # a PostgreSQL DSN (no password file: PGPASSWORD or peer auth)
    with pytest.raises(RelayError):  # tried as PostgreSQL: nobody listens at that socket
        open_store(dsn).close()
    assert list(tmp_path.rglob("*")) == []  # and no SQLite file was made of it


# --- F3: secrets in the DSN: sslpassword kept and shown; a parse error quotes the password --------


def test_a_dsn_with_an_ssl_key_passphrase_is_refused_and_never_shown() -> None:
    dsn = "postgresql://relay@db.internal/relay?sslmode=verify-full&sslpassword=hunter2"
    assert "hunter2" not in describe_dsn(dsn)  # what the logs, errors and `relay store status` show
    with pytest.raises(ConfigurationError):
        parse_dsn(dsn)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://relay:s3cr%ZZet@db.internal/relay",  # a bad percent-escape in the password
        "POSTGRESQL://relay:s3cret@db.internal/relay",  # upper-case scheme: libpq quotes it whole
    ],
)
def test_a_dsn_that_does_not_parse_does_not_quote_its_password_in_the_error(dsn: str) -> None:
    with pytest.raises(ValidationError) as raised:
        relayer_config(store=dsn)
    assert "s3cr" not in str(raised.value)


# --- F5: leases and claims expire on the writer's clock ---------------------------------------------


@pytest.mark.xfail(
    strict=True,
    reason="F5 (known limitation, docs/operations.md 'Clocks'): expiry is the holder's clock + ttl; a dead replica whose clock ran ahead blocks the "
    "takeover of its source (and its SUBMITTED claims) by the skew, not by lease_seconds",
)
def test_a_dead_replica_with_a_fast_clock_is_taken_over_within_the_lease_of_real_time(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "skew.db"))
    try:
        real = Clock(1_000_000.0)
        fast = Clock(real.now + 3600.0)  # one hour ahead: NTP broken on that node
        dead = ReplicaLeases(store, metrics(), fast, "pod-fast", LEASE)
        dead.hold_source(make_source(store))  # ... and then it is killed
        survivor = ReplicaLeases(store, metrics(), real, "pod-ok", LEASE)
        real.advance(LEASE + 1.0)
        taken, _ = survivor.hold_source(make_source(store))
        assert taken is not None, "the origin stays unwatched for the clock skew (an hour here)"
    finally:
        store.close()


# --- F8: lease_seconds has no upper bound and no floor tied to the calls made under a lease -------


def test_a_lease_longer_than_any_outage_an_operator_would_accept_is_refused() -> None:
    with pytest.raises(ValidationError):
        relayer_config(lease_seconds=1e9)
