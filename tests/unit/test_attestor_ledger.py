"""The attestor never signs two roots for one index, across restarts when it keeps a signed log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relay.errors import ConfigurationError
from relay.roles.attestor import AttestorIdentity, CheckpointLedger, FinalityConflict
from relay.verify.bls import get_backend
from relay.verify.committee import Checkpoint, sign_checkpoint

BLS = get_backend("blst")
SECRET = 424242
IDENTITY = AttestorIdentity(
    7, b"\x01" * 32, 1, 0, BLS.secret_to_public_key(SECRET), BLS.prove_possession(SECRET)
)
ROOT_A, ROOT_B, ROOT_C = b"\xaa" * 32, b"\xbb" * 32, b"\xcc" * 32


def ledger(log: Path | None) -> CheckpointLedger:
    return CheckpointLedger(IDENTITY, SECRET, BLS, history=2, signed_log=str(log) if log else None)


def test_signs_each_new_final_state_once() -> None:
    book = ledger(None)
    first = book.apply_final_state(ROOT_A, 3)
    assert first is not None and first.checkpoint.index == 2
    assert first.signature == sign_checkpoint(SECRET, Checkpoint(7, b"\x01" * 32, 1, ROOT_A, 2), BLS)
    assert book.apply_final_state(ROOT_A, 3) is None  # nothing new
    assert book.apply_final_state(ROOT_B, 5) is not None


def test_a_changed_root_at_a_signed_index_is_refused_even_beyond_the_kept_history() -> None:
    book = ledger(None)
    for count, root in ((1, ROOT_A), (2, ROOT_B), (3, ROOT_C)):  # history=2: index 0 falls out of the deque
        book.apply_final_state(root, count)
    with pytest.raises(FinalityConflict):
        book.apply_final_state(ROOT_B, 1)


def test_the_signed_log_survives_a_restart(tmp_path: Path) -> None:
    log = tmp_path / "signed.jsonl"
    book = ledger(log)
    book.apply_final_state(ROOT_A, 4)
    assert [json.loads(line)["index"] for line in log.read_text().splitlines()] == [3]
    restarted = ledger(log)
    with pytest.raises(FinalityConflict) as caught:
        restarted.apply_final_state(ROOT_B, 4)  # the same index, another root: equivocation refused
    assert caught.value.index == 3
    again = restarted.apply_final_state(ROOT_A, 4)  # the same root again is fine
    assert again is not None and again.checkpoint.root == ROOT_A
    assert len(log.read_text().splitlines()) == 1  # not recorded twice


def test_a_corrupt_or_self_contradicting_log_stops_the_attestor(tmp_path: Path) -> None:
    log = tmp_path / "signed.jsonl"
    log.write_text("not json\n")
    with pytest.raises(ConfigurationError, match="corrupt"):
        ledger(log)
    entry = {"origin": 7, "epoch": 1, "index": 3}
    log.write_text(
        json.dumps({**entry, "root": ROOT_A.hex()})
        + "\n"
        + json.dumps({**entry, "root": ROOT_B.hex()})
        + "\n"
    )
    with pytest.raises(FinalityConflict):
        ledger(log)
    # Entries of another origin or epoch are not this identity's concern.
    log.write_text(json.dumps({"origin": 8, "epoch": 1, "index": 3, "root": ROOT_B.hex()}) + "\n")
    assert ledger(log).apply_final_state(ROOT_A, 4) is not None
