"""`relay bench gas --against hyperlane` on a real anvil with Hyperlane's npm contracts.

The rows must come from real deliveries: every side's recipient counts the messages, Hyperlane's
Mailbox records them as delivered, and Hyperlane's ISM refuses forged, reordered, foreign and
replayed metadata (so its figure is the cost of a real verification). Gas figures are printed by
the bench, never asserted beyond being real transactions (> 21,000).

Needs `make tools` (it installs `@hyperlane-xyz/core`); without it these tests fail, naming it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from adapters.evm.anvil import AnvilProcess
from adapters.evm.ecdsa_gas import EcdsaSigningCommittee
from adapters.evm.gas_comparison import HYPERLANE_ORIGIN, GasComparison
from adapters.evm.hyperlane import (
    HyperlaneDeliveryFailed,
    HyperlaneNotInstalled,
    ValidatorSet,
    encode_message_id_metadata,
    load_hyperlane_artifact,
)
from relay.cli import main
from relay.verify.ecdsa import sign_digest
from relay.verify.hashing import keccak256
from relay.verify.message import Message


@pytest.fixture(scope="module")
def w3() -> Iterator[Any]:
    try:
        load_hyperlane_artifact("Mailbox")
    except HyperlaneNotInstalled as error:
        pytest.fail(f"{error} (the gas comparison needs Hyperlane's npm package: run `make tools`)")
    with AnvilProcess(chain_id=31337) as anvil:
        web3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        web3.eth.default_account = web3.eth.accounts[0]
        yield web3


@pytest.fixture(scope="module")
def comparison(w3: Web3) -> GasComparison:
    return GasComparison(w3)


def test_rows_come_from_real_deliveries_on_every_side(comparison: GasComparison) -> None:
    rows = comparison.measure([(5, 3)], [1, 2])

    assert [(r.committee, r.threshold, r.batch) for r in rows] == [(5, 3, 1), (5, 3, 2)]
    for row in rows:
        assert min(row.ours_bls, row.ours_ecdsa, row.hyperlane) > 21_000
        assert row.ours == min(row.ours_bls, row.ours_ecdsa)
    # warm-up + 1 + 2 on each side, counted by each recipient itself
    for recipient in (comparison.bls_recipient, comparison.ecdsa_recipient, comparison.hyperlane_recipient):
        assert recipient.received() == 4
    route = comparison.route
    hyperlane_counter = comparison.hyperlane_recipient.counter
    processed = route.destination_mailbox.events.ProcessId().get_logs(from_block=0)
    assert len(processed) == 4
    assert all(
        route.destination_mailbox.functions.delivered(e["args"]["messageId"]).call() for e in processed
    )
    sender = bytes(12) + bytes.fromhex(str(comparison.w3.eth.default_account)[2:])
    assert hyperlane_counter.functions.receivedFrom(HYPERLANE_ORIGIN, sender).call() == 4
    last_body = keccak256((3).to_bytes(8, "big"))[:32]  # the fourth body of the sequence
    assert bytes(hyperlane_counter.functions.lastBodyHash().call()) == keccak256(last_body)


def test_hyperlane_ism_refuses_forged_reordered_foreign_and_replayed_metadata(
    comparison: GasComparison,
) -> None:
    route = comparison.route
    signing = EcdsaSigningCommittee.generate(5, threshold=3, seed=b"ism refusal test")
    validators = ValidatorSet(tuple(signing.committee.signers), signing.secret_keys, 3)
    route.use_validators(validators)
    metadata, message = route.dispatch(b"\x07" * 32)
    hook, root, index = metadata[:32], metadata[32:64], int.from_bytes(metadata[64:68], "big")
    signatures = [metadata[68 + 65 * i : 68 + 65 * (i + 1)] for i in range(3)]
    assert route.verify(metadata, message)

    flipped = bytearray(metadata)
    flipped[70] ^= 1  # a bit of the first signature's r
    reordered = encode_message_id_metadata(hook, root, index, [signatures[1], signatures[0], signatures[2]])
    digest_signer = EcdsaSigningCommittee.generate(1, seed=b"not a validator").secret_keys[0]
    foreign_signature = sign_digest(digest_signer, keccak256(b"anything"))
    foreign = encode_message_id_metadata(hook, root, index, [foreign_signature, *signatures[1:]])
    too_few = encode_message_id_metadata(hook, root, index, signatures[:2])
    other_root = encode_message_id_metadata(hook, b"\x01" * 32, index, signatures)
    other_message = Message.decode(message)
    tampered_body = Message.create(
        nonce=other_message.nonce,
        origin=other_message.origin,
        sender=other_message.sender,
        destination=other_message.destination,
        recipient=other_message.recipient,
        body=b"\x08" * 32,
    ).encode()
    for forged_metadata, forged_message in (
        (bytes(flipped), message),
        (reordered, message),
        (foreign, message),
        (too_few, message),
        (other_root, message),
        (metadata, tampered_body),
    ):
        assert not route.verify(forged_metadata, forged_message)
        with pytest.raises(HyperlaneDeliveryFailed, match="reverted"):
            route.process(forged_metadata, forged_message)

    before = comparison.hyperlane_recipient.received()
    route.process(metadata, message)
    assert comparison.hyperlane_recipient.received() == before + 1
    with pytest.raises(HyperlaneDeliveryFailed, match="delivered"):  # Mailbox: "already delivered"
        route.process(metadata, message)
    assert comparison.hyperlane_recipient.received() == before + 1


def test_cli_writes_the_json_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "gas.json"
    code = main(
        [
            "bench",
            "gas",
            "--against",
            "hyperlane",
            "--committees",
            "1",
            "--batches",
            "1",
            "--json",
            str(output),
        ]
    )
    assert code == 0
    rows = json.loads(output.read_text())
    assert [sorted(row) for row in rows] == [
        sorted(["committee", "threshold", "batch", "ours", "hyperlane", "scheme", "ours_bls", "ours_ecdsa"])
    ]
    (row,) = rows
    assert (row["committee"], row["threshold"], row["batch"]) == (1, 1, 1)
    assert row["ours"] == min(row["ours_bls"], row["ours_ecdsa"]) > 21_000
    assert row["hyperlane"] > 21_000
    out = capsys.readouterr().out
    assert "hardfork" in out and "@hyperlane-xyz/core@12.1.0" in out
