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
