"""The encodings adapters/ethereum/onchain_client.py sends to EthereumLightClient.sol, checked in Python.

The contract recomputes roots from these chunks and refuses a wrong y, so these tests pin the
encoder's side: y is the decompression py_ecc computes, the chunks hash to the payload root of
each layout, and the y coordinates cover exactly the keys the contract sums.
"""

from __future__ import annotations

import pytest

from adapters.ethereum import onchain_client
from relay.errors import InvalidPublicKey
from relay.verify.bls import BlsBackend, public_key_to_eip2537
from relay.verify.ethereum import ssz
from relay.verify.ethereum.config import Fork
from relay.verify.ethereum.containers import compute_execution_payload_root

from .synthetic import make_committee, make_scenario


def test_y_is_the_keys_decompression(blst: BlsBackend) -> None:
    for key in make_committee(blst, "encoding", 8).committee.pubkeys:
        assert onchain_client.compute_public_key_y(key) == public_key_to_eip2537(key)[64 + 16 :]


@pytest.mark.parametrize(
    "key",
    [
        b"\xc0" + b"\x00" * 47,  # the identity
        b"\x00" * 48,  # not flagged compressed
        b"\x9f" + b"\xff" * 47,  # x >= p
        b"\x80" + b"\x00" * 46 + b"\x03",  # x = 3: x^3 + 4 = 31 is not a square mod p
        b"\x80" * 47,  # too short
    ],
)
def test_keys_without_a_y_are_refused(key: bytes) -> None:
    with pytest.raises(InvalidPublicKey):
        onchain_client.compute_public_key_y(key)


@pytest.mark.parametrize("fork", [Fork.CAPELLA, Fork.DENEB, Fork.ELECTRA])
def test_execution_chunks_hash_to_the_payload_root(blst: BlsBackend, fork: Fork) -> None:
    scenario = make_scenario(blst, Fork.DENEB)
    header = scenario.update.attested_header
    payload = header.execution
    chunks = onchain_client.encode_header(header, scenario.network)[1]
    assert len(chunks) == 17  # the contract always takes the Deneb layout and trims it for Capella
    count = 15 if fork == Fork.CAPELLA else 17
    assert ssz.merkleize(chunks[:count]) == compute_execution_payload_root(payload, fork)


def test_signer_ys_are_the_smaller_side(blst: BlsBackend) -> None:
    keys = make_committee(blst, "signers", 16).committee.pubkeys
    full, most, few = b"\xff\xff", b"\xff\x7f", b"\x05\x00"  # 16, 15 (member 15 absent), 2 (members 0, 2)
    assert onchain_client.compute_signer_key_ys(full, keys) == b""
    assert onchain_client.compute_signer_key_ys(most, keys) == onchain_client.compute_public_key_y(keys[15])
    assert onchain_client.compute_signer_key_ys(few, keys) == b"".join(
        onchain_client.compute_public_key_y(keys[i]) for i in (0, 2)
    )
    assert onchain_client.compute_signer_key_ys(few, None) == b""


def test_an_undecodable_signature_still_reaches_the_contract() -> None:
    encoded = onchain_client.encode_signature(b"\x80" + b"\x00" * 94 + b"\x03")
    assert len(encoded) == 256 and encoded[128:] == b"\x00" * 128


def test_keys_are_sent_only_when_the_contract_stores_the_committee(blst: BlsBackend) -> None:
    scenario = make_scenario(blst, Fork.ELECTRA)
    update, network = scenario.update, scenario.network  # finalizes slot 16 of period 0
    assert onchain_client.needs_committee_keys(update, 0, next_known=False, network=network)
    assert not onchain_client.needs_committee_keys(update, 0, next_known=True, network=network)
    assert onchain_client.needs_committee_keys(update, -1, next_known=True, network=network)  # crossing
    args = onchain_client.encode_update(update, network, None, include_next_sync_committee_keys=False)
    assert args[3] != b"\x00" * 32 and args[4] == b""
