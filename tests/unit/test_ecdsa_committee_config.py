"""An origin's committee declared ECDSA: strict parsing, typed errors, the committee it builds."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from coincurve import PrivateKey

from relay.config import CommitteeConfig, load_config
from relay.errors import ConfigurationError, InvalidCommittee
from relay.verify.ecdsa_quorum import EcdsaCheckpointCommittee
from relay.verify.hashing import keccak256

KEYS = [bytes([0x21 + i]) * 32 for i in range(4)]
ADDRESSES = [keccak256(PrivateKey(k).public_key.format(compressed=False)[1:])[12:] for k in KEYS]


def checksummed(address: bytes) -> str:
    """EIP-55, written out here independently of the code under test."""
    digits = address.hex()
    hashed = keccak256(digits.encode()).hex()
    return "0x" + "".join(
        c.upper() if int(h, 16) >= 8 else c for c, h in zip(digits, hashed[:40], strict=True)
    )


def committee(members: list[dict[str, Any]], **extra: Any) -> CommitteeConfig:
    return load_config(
        CommitteeConfig, environ={}, overrides={"epoch": 3, "scheme": "ecdsa", "members": members, **extra}
    )


def test_an_ecdsa_committee_builds_with_its_d1_hash() -> None:
    members = [{"address": checksummed(a), "weight": 2 if i == 0 else 1} for i, a in enumerate(ADDRESSES)]
    members[1]["address"] = members[1]["address"].lower()  # all-lower case needs no checksum
    built = committee(members).build()
    assert isinstance(built, EcdsaCheckpointCommittee)
    assert [m.address for m in built.members] == ADDRESSES
    assert built.threshold == 4  # more than two thirds of 5
    expected = keccak256(
        b"RELAY/ECDSA-COMMITTEE/V1".ljust(32, b"\0")
        + struct.pack(">QQI", 3, 4, 4)
        + b"".join(a + struct.pack(">Q", w) for a, w in zip(ADDRESSES, (2, 1, 1, 1), strict=True))
    )
    assert built.hash() == expected


BAD_ADDRESSES = {
    "too short": "0x" + "ab" * 19,
    "no 0x": "ab" * 20,
    "not hex": "0x" + "zz" * 20,
    "the zero address": "0x" + "00" * 20,
    "a broken checksum": None,  # filled below: one letter's case flipped
}


@pytest.mark.parametrize("case", sorted(BAD_ADDRESSES))
def test_a_bad_member_address_is_a_configuration_error(case: str) -> None:
    address = BAD_ADDRESSES[case]
    if address is None:
        good = checksummed(ADDRESSES[0])
        position = next(i for i, c in enumerate(good) if i > 1 and c.isalpha())
        address = good[:position] + good[position].swapcase() + good[position + 1 :]
    members = [{"address": address}, *({"address": "0x" + a.hex()} for a in ADDRESSES[1:])]
    with pytest.raises(ConfigurationError, match="members"):
        committee(members)


def test_a_duplicate_address_is_refused_whatever_its_case() -> None:
    members = [{"address": "0x" + a.hex()} for a in ADDRESSES]
    members.append({"address": checksummed(ADDRESSES[2])})
    with pytest.raises(ConfigurationError, match=r"members\[4\].*appears twice"):
        committee(members)


def test_schemes_cannot_be_mixed() -> None:
    bls_member = {"public_key": "aa" * 48, "proof_of_possession": "bb" * 96}
    with pytest.raises(ConfigurationError, match=r"members\[1\].*ecdsa committee"):
        committee([{"address": "0x" + ADDRESSES[0].hex()}, bls_member])
    with pytest.raises(ConfigurationError, match=r"members\[0\].*bls committee"):
        load_config(
            CommitteeConfig,
            environ={},
            overrides={"epoch": 1, "members": [{"address": "0x" + ADDRESSES[0].hex()}]},
        )
    with pytest.raises(ConfigurationError, match=r"members\[0\].*ecdsa committee"):  # both in one member
        committee([{**bls_member, "address": "0x" + ADDRESSES[0].hex()}])
    with pytest.raises(ConfigurationError, match="scheme must be one of"):
        committee([{"address": "0x" + ADDRESSES[0].hex()}], scheme="schnorr")


def test_the_threshold_rule_is_the_bls_one() -> None:
    members = [{"address": "0x" + a.hex()} for a in ADDRESSES]
    with pytest.raises(InvalidCommittee, match="two thirds"):
        committee(members, threshold=2).build()
    assert committee(members, threshold=2, allow_low_threshold=True).build().threshold == 2
    with pytest.raises(InvalidCommittee, match="1..total"):
        committee(members, threshold=5).build()
    with pytest.raises(InvalidCommittee, match="weight"):
        committee([{"address": "0x" + ADDRESSES[0].hex(), "weight": 0}]).build()
    with pytest.raises(ConfigurationError, match="members"):
        committee([{"address": "0x" + ADDRESSES[0].hex(), "pubkey": "x"}])  # unknown key
