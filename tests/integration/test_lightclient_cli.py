"""`relay lightclient sync`, `relay proof ...` and `relay bench lightclient` on the shared vectors.

One run goes through a subprocess (`python -m relay`), the rest call `relay.cli.main` in process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relay.cli import main

PROJECT = Path(__file__).resolve().parents[2]
VECTORS = Path(os.environ.get("RELAY_VECTORS", PROJECT.parent / "shared" / "vectors"))
LC = VECTORS / "ethereum-mainnet-lc"
EXECUTION = VECTORS / "ethereum-execution"


def sync_arguments(updates: Path = LC / "updates.json") -> list[str]:
    return [
        "lightclient",
        "sync",
        "--bootstrap",
        str(LC / "bootstrap.json"),
        "--updates",
        str(updates),
        "--finality",
        str(LC / "finality.json"),
        "--optimistic",
        str(LC / "optimistic.json"),
        "--bls-backend",
        "blst",
    ]


def test_sync_prints_the_finalized_header_in_a_subprocess() -> None:
    finalized = json.loads((LC / "finality.json").read_text())["data"]["finalized_header"]
    result = subprocess.run(
        [sys.executable, "-m", "relay", *sync_arguments()],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"slot              {finalized['beacon']['slot']}" in out
    assert f"execution block   {finalized['execution']['block_number']}" in out
    assert f"block hash        {finalized['execution']['block_hash']}" in out
    assert f"receipts root     {finalized['execution']['receipts_root']}" in out
    assert out.count(" ms") >= 9  # bootstrap, six updates, finality, optimistic


def test_sync_with_an_explicit_trusted_root(capsys: pytest.CaptureFixture[str]) -> None:
    root = "0x5afc212a7924789b2bc86acad3ab3a6ffb1f6e97253ea50bee7f4f51422c9275"
    assert main([*sync_arguments(), "--trusted-root", root]) == 0
    assert "trusting the bootstrap file" not in capsys.readouterr().out
    assert main([*sync_arguments(), "--trusted-root", "0x" + "11" * 32]) == 1
    assert "check 'trusted_block_root' failed" in capsys.readouterr().err


def test_sync_names_the_failed_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    updates = json.loads((LC / "updates.json").read_text())
    signature = updates[2]["data"]["sync_aggregate"]["sync_committee_signature"]
    updates[2]["data"]["sync_aggregate"]["sync_committee_signature"] = (
        signature[:50] + ("0" if signature[50] != "0" else "1") + signature[51:]
    )
    tampered = tmp_path / "updates.json"
    tampered.write_text(json.dumps(updates))
    assert main(sync_arguments(tampered)) == 1
    err = capsys.readouterr().err
    assert "update 3/6" in err and "check 'sync_aggregate_signature' failed" in err

    skipped = tmp_path / "skipped.json"
    skipped.write_text(json.dumps(updates[:2] + updates[3:]))
    assert main(sync_arguments(skipped)) == 1
    assert "check 'sync_committee_period' failed" in capsys.readouterr().err


def test_proof_commands(capsys: pytest.CaptureFixture[str]) -> None:
    block = str(EXECUTION / "block.json")
    assert main(["proof", "receipts", "--block", block, "--receipts", str(EXECUTION / "receipts.json")]) == 0
    assert "rebuilt from 202 receipts" in capsys.readouterr().out
    assert (
        main(["proof", "receipt", "--block", block, "--receipt", str(EXECUTION / "receipt_with_proof.json")])
        == 0
    )
    assert "receipt 39" in capsys.readouterr().out
    assert main(["proof", "account", "--block", block, "--proof", str(EXECUTION / "proof.json")]) == 0
    out = capsys.readouterr().out
    assert "account 0x00000000219ab540356cbb839cbe05303d7705fa" in out and "storage 0x" in out
    assert (
        main(
            [
                "proof",
                "receipt",
                "--block",
                block,
                "--receipt",
                str(EXECUTION / "receipt_with_proof.json"),
                "--index",
                "40",
            ]
        )
        == 1
    )
    assert "check 'receipt_proof' failed" in capsys.readouterr().err


def test_proof_account_accepts_a_storage_key_written_as_short_as_the_schema_allows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof = json.loads((EXECUTION / "proof.json").read_text())
    proof["storageProof"][0]["key"] = "0x1"  # bytesMax32: the slot-1 key of the vector, unpadded
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    block = str(EXECUTION / "block.json")
    assert main(["proof", "account", "--block", block, "--proof", str(tmp_path / "proof.json")]) == 0
    assert "storage 0x" + "00" * 31 + "01 = " in capsys.readouterr().out


def test_proof_commands_reject_tampered_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    receipts = json.loads((EXECUTION / "receipts.json").read_text())
    receipts[3]["cumulativeGasUsed"] = hex(int(receipts[3]["cumulativeGasUsed"], 16) + 1)
    (tmp_path / "receipts.json").write_text(json.dumps(receipts))
    assert (
        main(
            [
                "proof",
                "receipts",
                "--block",
                str(EXECUTION / "block.json"),
                "--receipts",
                str(tmp_path / "receipts.json"),
            ]
        )
        == 1
    )
    assert "check 'receipts_root' failed" in capsys.readouterr().err

    proof = json.loads((EXECUTION / "proof.json").read_text())
    proof["storageProof"][0]["value"] = "0x1"
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    assert (
        main(
            [
                "proof",
                "account",
                "--block",
                str(EXECUTION / "block.json"),
                "--proof",
                str(tmp_path / "proof.json"),
            ]
        )
        == 1
    )
    assert "check 'storage_proof' failed" in capsys.readouterr().err

    block = json.loads((EXECUTION / "block.json").read_text())
    block["gasUsed"] = "0x1"
    (tmp_path / "block.json").write_text(json.dumps(block))
    assert (
        main(
            [
                "proof",
                "receipts",
                "--block",
                str(tmp_path / "block.json"),
                "--receipts",
                str(EXECUTION / "receipts.json"),
            ]
        )
        == 1
    )
    assert "check 'block_hash' failed" in capsys.readouterr().err


def test_bench_lightclient(capsys: pytest.CaptureFixture[str]) -> None:
    """Timing is reported, never asserted (the machine may be busy)."""
    assert main(["bench", "lightclient", "--vectors", str(LC), "--backends", "blst", "--runs", "5"]) == 0
    out = capsys.readouterr().out
    assert "blst" in out and "target: at most 10 ms per update with the fast backend:" in out


def test_sync_on_a_network_from_its_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The official minimal-preset sync test, converted to beacon-API JSON, through `--network-config`."""
    import cramjam
    import yaml

    from relay.verify.ethereum.codec import decode_bootstrap_ssz, decode_update_ssz, to_versioned_json
    from relay.verify.ethereum.config import MINIMAL_PRESET, Fork

    spec = VECTORS / "ethereum-spec-lc-sync"
    meta = yaml.safe_load((spec / "meta.yaml").read_text())
    steps = yaml.safe_load((spec / "steps.yaml").read_text())
    first = steps[0]["process_update"]

    def raw(name: str) -> bytes:
        return bytes(cramjam.snappy.decompress_raw((spec / f"{name}.ssz_snappy").read_bytes()))

    bootstrap = decode_bootstrap_ssz(raw("bootstrap"), Fork.DENEB, MINIMAL_PRESET)
    update = decode_update_ssz(raw(first["update"]), Fork.DENEB, MINIMAL_PRESET)
    (tmp_path / "bootstrap.json").write_text(json.dumps(to_versioned_json(bootstrap, Fork.DENEB)))
    (tmp_path / "updates.json").write_text(json.dumps([to_versioned_json(update, Fork.DENEB)]))
    assert (
        main(
            [
                "lightclient",
                "sync",
                "--bootstrap",
                str(tmp_path / "bootstrap.json"),
                "--updates",
                str(tmp_path / "updates.json"),
                "--network-config",
                str(spec / "config.yaml"),
                "--genesis-validators-root",
                meta["genesis_validators_root"],
                "--trusted-root",
                meta["trusted_block_root"],
                "--current-slot",
                str(first["current_slot"]),
                "--bls-backend",
                "blst",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"slot              {first['checks']['finalized_header']['slot']}" in out
    assert f"beacon root       {first['checks']['finalized_header']['beacon_root']}" in out
