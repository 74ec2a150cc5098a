"""Strict decoding of beacon-API JSON and SSZ, and the SSZ/Merkle primitives."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import cramjam
import pytest

from relay.errors import ConfigurationError
from relay.verify.ethereum import ssz
from relay.verify.ethereum.codec import (
    decode_bootstrap_ssz,
    decode_update_ssz,
    parse_bootstrap,
    parse_update,
    parse_updates,
    to_beacon_json,
    to_versioned_json,
)
from relay.verify.ethereum.config import MAINNET, MINIMAL_PRESET, Fork, get_network
from relay.verify.ethereum.errors import MalformedObject
from relay.verify.ethereum.merkle import (
    compute_merkle_root_from_branch,
    floorlog2,
    get_subtree_index,
    is_valid_merkle_branch,
    is_valid_normalized_merkle_branch,
)

from .conftest import MAINNET_LC, SPEC_LC_SYNC, read_json


@pytest.fixture(scope="module")
def update_json() -> dict[str, Any]:
    return read_json(MAINNET_LC / "updates.json")[0]


def test_json_round_trips(update_json: dict[str, Any]) -> None:
    assert to_versioned_json(parse_update(update_json, MAINNET.preset), Fork.CAPELLA) == update_json
    bootstrap = read_json(MAINNET_LC / "bootstrap.json")
    assert to_versioned_json(parse_bootstrap(bootstrap, MAINNET.preset), Fork.CAPELLA) == bootstrap


def test_ssz_and_json_agree() -> None:
    raw = bytes(cramjam.snappy.decompress_raw((SPEC_LC_SYNC / "bootstrap.ssz_snappy").read_bytes()))
    bootstrap = decode_bootstrap_ssz(raw, Fork.DENEB, MINIMAL_PRESET)
    assert parse_bootstrap(to_versioned_json(bootstrap, Fork.DENEB), MINIMAL_PRESET) == bootstrap
    # Trailing bytes land in the last variable field, `extra_data`, whose limit is 32 bytes.
    assert decode_bootstrap_ssz(raw + b"\x00", Fork.DENEB, MINIMAL_PRESET) != bootstrap
    with pytest.raises(MalformedObject):
        decode_bootstrap_ssz(raw + b"\x00" * 33, Fork.DENEB, MINIMAL_PRESET)
    with pytest.raises(MalformedObject):
        decode_bootstrap_ssz(raw[:-1], Fork.DENEB, MINIMAL_PRESET)
    with pytest.raises(MalformedObject):  # the first offset must point right after the fixed part
        decode_bootstrap_ssz((1).to_bytes(4, "little") + raw[4:], Fork.DENEB, MINIMAL_PRESET)
    update = next(SPEC_LC_SYNC.glob("update_*.ssz_snappy"))
    with pytest.raises(MalformedObject):  # a Deneb update is not a Capella one
        decode_update_ssz(
            bytes(cramjam.snappy.decompress_raw(update.read_bytes())), Fork.CAPELLA, MINIMAL_PRESET
        )


def mutate(document: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target = changed
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["data", "signature_slot"], "12a"),
        (["data", "signature_slot"], "-1"),
        (["data", "signature_slot"], str(2**64)),
        (["data", "signature_slot"], True),
        (["data", "attested_header", "beacon", "state_root"], "0x1234"),
        (["data", "attested_header", "beacon", "state_root"], "1234" * 16),
        (["data", "attested_header", "beacon", "state_root"], "0x" + "zz" * 32),
        (["data", "attested_header", "execution", "blob_gas_used"], "0"),  # not a Capella field
        (["data", "attested_header", "execution", "extra_data"], "0x" + "00" * 33),
        (["data", "attested_header", "execution_branch"], []),
        (["data", "sync_aggregate", "sync_committee_bits"], "0xff"),
        (["data", "next_sync_committee", "pubkeys"], []),
        (["data", "finality_branch"], KeyError),
        (["data", "unexpected"], "1"),
        (["version"], "bogus"),
    ],
)
def test_malformed_json_is_rejected(update_json: dict[str, Any], path: list[Any], value: Any) -> None:
    with pytest.raises(MalformedObject) as error:
        parse_update(mutate(update_json, path, value), MAINNET.preset)
    assert error.value.check == "well_formed"


def test_updates_must_be_a_list(update_json: dict[str, Any]) -> None:
    with pytest.raises(MalformedObject):
        parse_updates(update_json, MAINNET.preset)


def test_merkleize_matches_hand_computation() -> None:
    a, b, c = (hashlib.sha256(bytes([i])).digest() for i in range(3))
    h = ssz.sha256
    assert ssz.merkleize([a]) == a
    assert ssz.merkleize([a, b]) == h(a + b)
    assert ssz.merkleize([a, b, c]) == h(h(a + b) + h(c + ssz.ZERO_CHUNK))
    assert ssz.merkleize([], limit=4) == h(h(ssz.ZERO_CHUNK * 2) * 2)
    assert ssz.root_of_byte_list(b"", 32) == h(ssz.ZERO_CHUNK + ssz.ZERO_CHUNK)
    assert ssz.root_of_byte_list(b"\x01", 32) == h(b"\x01".ljust(32, b"\x00") + (1).to_bytes(32, "little"))
    with pytest.raises(MalformedObject):
        ssz.merkleize([a, b, c], limit=2)


def test_merkle_branch_helpers() -> None:
    assert (floorlog2(105), get_subtree_index(105)) == (6, 41)
    assert (floorlog2(169), get_subtree_index(169)) == (7, 41)
    assert (floorlog2(25), get_subtree_index(25)) == (4, 9)
    leaf, branch = b"\x07" * 32, [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    root = compute_merkle_root_from_branch(leaf, branch, 5)
    assert is_valid_merkle_branch(leaf, branch, 3, 5, root)
    assert not is_valid_merkle_branch(leaf, branch, 3, 4, root)
    assert not is_valid_merkle_branch(leaf, branch[:2], 3, 5, root)
    assert is_valid_normalized_merkle_branch(leaf, [b"\x00" * 32, *branch], 8 + 5, root)
    assert not is_valid_normalized_merkle_branch(leaf, branch[:2], 8 + 5, root)


def test_networks() -> None:
    assert get_network("mainnet") is MAINNET
    with pytest.raises(ConfigurationError):
        get_network("nowhere")
    assert MAINNET.compute_fork_at_slot(7_069_376) is Fork.CAPELLA
    assert MAINNET.compute_fork_at_epoch(364_032) is Fork.ELECTRA
    assert MAINNET.compute_fork_version(269_567) == bytes.fromhex("03000000")
    assert MAINNET.compute_sync_committee_period_at_slot(7_069_376) == 862
    assert to_beacon_json(7, Fork.CAPELLA) == "7"
