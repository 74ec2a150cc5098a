"""Hyperlane MessageId checkpoint digest and ISM metadata, the gas comparison's rows and options.

The on-chain check that Hyperlane's own ISM accepts exactly these encodings (and refuses tampered
ones) is tests/integration/test_gas_comparison.py.
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

from adapters.evm.gas_comparison import ComparisonRow, MessagesNotReceived, RecipientCheck
from adapters.evm.hyperlane import (
    HyperlaneNotInstalled,
    ValidatorSet,
    compute_message_id_digest,
    encode_message_id_metadata,
    load_hyperlane_artifact,
)
from relay.errors import ConfigurationError, InvalidSignature
from relay.tools.bench.gas import parse_batches, parse_committees
from relay.verify.ecdsa import compute_eth_signed_message_hash, recover_address, sign_digest
from relay.verify.hashing import keccak256

ORIGIN = 3000
HOOK = bytes(12) + b"\x22" * 20
ROOT = b"\x33" * 32
MESSAGE_ID = b"\x44" * 32


def test_digest_is_keccak_of_domain_hash_root_index_and_message_id() -> None:
    domain_hash = keccak256(struct.pack(">I", ORIGIN) + HOOK + b"HYPERLANE")
    expected = keccak256(domain_hash + ROOT + (7).to_bytes(4, "big") + MESSAGE_ID)
    assert compute_message_id_digest(ORIGIN, HOOK, ROOT, 7, MESSAGE_ID) == expected


@pytest.mark.parametrize(
    "changed",
    [
        (ORIGIN + 1, HOOK, ROOT, 7, MESSAGE_ID),
        (ORIGIN, bytes(12) + b"\x23" * 20, ROOT, 7, MESSAGE_ID),
        (ORIGIN, HOOK, b"\x34" * 32, 7, MESSAGE_ID),
        (ORIGIN, HOOK, ROOT, 8, MESSAGE_ID),
        (ORIGIN, HOOK, ROOT, 7, b"\x45" * 32),
    ],
)
def test_digest_binds_every_field(changed: tuple[int, bytes, bytes, int, bytes]) -> None:
    assert compute_message_id_digest(*changed) != compute_message_id_digest(ORIGIN, HOOK, ROOT, 7, MESSAGE_ID)


def test_metadata_layout_is_hook_root_index_then_signatures() -> None:
    signatures = [bytes([i]) * 65 for i in (1, 2, 3)]
    metadata = encode_message_id_metadata(HOOK, ROOT, 2**32 - 1, signatures)
    assert metadata[0:32] == HOOK
    assert metadata[32:64] == ROOT
    assert metadata[64:68] == b"\xff\xff\xff\xff"
    assert [metadata[68 + 65 * i : 68 + 65 * (i + 1)] for i in range(3)] == signatures
    assert len(metadata) == 68 + 3 * 65


@pytest.mark.parametrize(
    ("hook", "root", "index", "signatures"),
    [
        (HOOK[1:], ROOT, 0, []),  # a 31-byte hook
        (HOOK, ROOT + b"\x00", 0, []),  # a 33-byte root
        (HOOK, ROOT, 2**32, []),  # index beyond u32
        (HOOK, ROOT, -1, []),
        (HOOK, ROOT, 0, [b"\x01" * 64]),  # a signature without v
        (HOOK, ROOT, 0, [b"\x01" * 65, b"\x01" * 66]),
    ],
)
def test_metadata_refuses_malformed_parts(
    hook: bytes, root: bytes, index: int, signatures: list[bytes]
) -> None:
    with pytest.raises(InvalidSignature):
        encode_message_id_metadata(hook, root, index, signatures)


def test_digest_refuses_malformed_parts() -> None:
    with pytest.raises(InvalidSignature):
        compute_message_id_digest(ORIGIN, HOOK, ROOT, 0, MESSAGE_ID[:31])
    with pytest.raises(InvalidSignature):
        compute_message_id_digest(ORIGIN, HOOK, ROOT, 2**32, MESSAGE_ID)


def test_quorum_signatures_are_the_first_validators_in_order_over_the_eip191_hash() -> None:
    keys = tuple(keccak256(bytes([i])) for i in range(5))
    addresses = tuple(
        recover_address(compute_eth_signed_message_hash(ROOT), sign_digest(k, ROOT)) for k in keys
    )
    validators = ValidatorSet(addresses, keys, threshold=3)
    digest = compute_message_id_digest(ORIGIN, HOOK, ROOT, 0, MESSAGE_ID)
    signatures = validators.sign_quorum(digest)
    signed_hash = compute_eth_signed_message_hash(digest)
    assert [recover_address(signed_hash, s) for s in signatures] == list(addresses[:3])


@pytest.mark.parametrize(("size", "threshold"), [(3, 0), (3, 4), (0, 1)])
def test_validator_set_refuses_impossible_thresholds(size: int, threshold: int) -> None:
    keys = tuple(bytes([i + 1]) * 32 for i in range(size))
    with pytest.raises(ConfigurationError):
        ValidatorSet(tuple(bytes([i + 1]) * 20 for i in range(size)), keys, threshold)


def test_missing_package_names_make_tools(tmp_path: Path) -> None:
    with pytest.raises(HyperlaneNotInstalled, match="make tools"):
        load_hyperlane_artifact("Mailbox", tmp_path)


def test_artifact_of_another_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Mailbox.json").write_text(
        '{"package": "@hyperlane-xyz/core@5.0.0", "abi": [], "bytecode": "0x"}'
    )
    with pytest.raises(HyperlaneNotInstalled, match="make tools"):
        load_hyperlane_artifact("Mailbox", tmp_path)
    (tmp_path / "Mailbox.json").write_text("{not json")
    with pytest.raises(HyperlaneNotInstalled, match="make tools"):
        load_hyperlane_artifact("Mailbox", tmp_path)


def test_row_picks_the_cheaper_scheme_and_writes_the_documented_keys() -> None:
    row = ComparisonRow(5, 3, 1, ours_bls=242_000, ours_ecdsa=92_000, hyperlane=106_000)
    assert (row.ours, row.scheme) == (92_000, "ecdsa")
    assert row.ratio == pytest.approx(92_000 / 106_000)
    assert row.as_json() == {
        "committee": 5,
        "threshold": 3,
        "batch": 1,
        "ours": 92_000,
        "hyperlane": 106_000,
        "scheme": "ecdsa",
        "ours_bls": 242_000,
        "ours_ecdsa": 92_000,
    }
    bls_row = ComparisonRow(64, 43, 50, ours_bls=27_000, ours_ecdsa=40_000, hyperlane=340_000)
    assert (bls_row.ours, bls_row.scheme) == (27_000, "bls")


def test_options_accept_known_committees_and_batches() -> None:
    assert parse_committees("1, 64") == [(1, 1), (64, 43)]
    assert parse_batches("1,2,50") == [1, 2, 50]


@pytest.mark.parametrize("text", ["7", "0", "-5", "x", "", " , "])
def test_unknown_or_malformed_committee_sizes_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_committees(text)


@pytest.mark.parametrize("text", ["0", "-1", "2.5", "", "201", str(2**70)])
def test_malformed_batch_sizes_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_batches(text)


def test_a_row_is_refused_when_the_recipient_did_not_receive_every_message() -> None:
    received = [0]
    counter = SimpleNamespace(
        functions=SimpleNamespace(received=lambda: SimpleNamespace(call=lambda: received[0]))
    )
    recipient = RecipientCheck(counter)  # type: ignore[arg-type]

    def deliver_one_of(messages: int) -> int:
        received[0] += 1
        return 100_000 * messages

    assert recipient.measure("one", deliver_one_of, 1) == 100_000
    with pytest.raises(MessagesNotReceived):
        recipient.measure("two", deliver_one_of, 2)
