"""`relay bench verify` prints its table (timing is reported, never asserted)."""

from __future__ import annotations

import pytest

from relay.cli import main


def test_bench_verify_prints_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "bench",
                "verify",
                "--sizes",
                "4",
                "--reference-sizes",
                "",
                "--backends",
                "blst",
                "--repeat",
                "3",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for row in (
        "merkle branch verify, 32 levels",
        "committee checkpoint, 4 members",
        "fast-aggregate-verify, 512 keys",
        "ECDSA threshold, 13 of 19",
    ):
        assert row in out


def test_unknown_backend_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "bench",
                "verify",
                "--sizes",
                "4",
                "--reference-sizes",
                "",
                "--backends",
                "nope",
                "--repeat",
                "1",
            ]
        )
        == 2
    )
    assert "unknown BLS backend" in capsys.readouterr().err


def test_bench_e2e_refuses_replicas_on_sqlite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "e2e", "--relayers", "3"]) == 2
    assert "use --store postgres" in capsys.readouterr().err


def test_the_replica_table_puts_each_run_side_by_side() -> None:
    from relay.tools.bench.backlog import BacklogDrain
    from relay.tools.bench.e2e_replicas import format_comparison

    one = BacklogDrain(relayers=1, sent=400, delivered=400, seconds=20.0, cpu_seconds=8.0)
    three = BacklogDrain(relayers=3, sent=400, delivered=399, seconds=16.0, cpu_seconds=12.0)
    table = format_comparison([(one, True), (three, False)], "15.14", cores=2).splitlines()
    assert table[0] == "relay capacity (backlog drain) by relayer replicas; PostgreSQL 15.14; 2 CPU cores"
    assert table[2].split() == ["1", "400/400", "20.0", "20.0", "0.0200", "agree"]
    assert table[3].split() == ["3", "399/400", "16.0", "24.9", "0.0301", "DISAGREE"]


def test_process_cpu_seconds_reads_this_process_and_knows_nothing_of_the_dead() -> None:
    import os

    from relay.tools.bench.backlog import process_cpu_seconds

    spent = sum(range(2_000_000))  # some CPU of our own
    assert spent and process_cpu_seconds(os.getpid()) > 0
    assert process_cpu_seconds(None) == 0.0
    assert process_cpu_seconds(2**22 + 12345) == 0.0  # above pid_max's default: no such process
