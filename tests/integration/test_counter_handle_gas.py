"""The handle gas the devnet's Counter messages declare covers what the Counter's `handle` uses.

The devnet declares `COUNTER_HANDLE_GAS_LIMIT` per message (not a blanket 200,000) so that a
delivery's gas limit reserves what the recipient needs. The Gateway gives the recipient exactly the
declared gas, so a figure below the worst case would fail the first message: measured here on a
fresh Counter (every storage slot still zero), where `handle` costs the most.
"""

from __future__ import annotations

from typing import Any

import pytest
from web3 import Web3

from adapters.evm.gas import deploy_contract
from relay.tools.devnet_app import COUNTER_HANDLE_GAS_LIMIT, COUNTER_HANDLE_GAS_MARGIN

pytestmark = pytest.mark.anvil

INTRINSIC_GAS = 21_000
DEVNET_BODY = b"message 999 from alpha" + b"x" * 42  # longer than any devnet body (64 bytes)


def handle_gas_used(w3: Web3, counter: Any, gateway: str, origin: int, sender: bytes, body: bytes) -> int:
    """The gas `handle` itself used: the receipt's gasUsed less the intrinsic and calldata gas."""
    data = counter.functions.handle(origin, sender, body)._encode_transaction_data()
    raw = bytes.fromhex(data[2:])
    calldata_gas = sum(4 if byte == 0 else 16 for byte in raw)
    tx_hash = w3.eth.send_transaction(
        {"from": gateway, "to": counter.address, "data": data, "gas": 1_000_000}
    )
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    return int(receipt["gasUsed"]) - INTRINSIC_GAS - calldata_gas


def test_declared_handle_gas_covers_the_first_message_to_a_fresh_counter_with_margin(w3: Web3) -> None:
    gateway = w3.eth.accounts[1]  # an account stands in for the Gateway: `handle` admits only it
    counter = deploy_contract(w3, "Counter", gateway)
    sender = b"\x11" * 32

    first = handle_gas_used(w3, counter, gateway, 1, sender, DEVNET_BODY)
    later = handle_gas_used(w3, counter, gateway, 1, sender, DEVNET_BODY)

    assert later < first  # the fresh Counter is the worst case measured
    assert first * COUNTER_HANDLE_GAS_MARGIN <= COUNTER_HANDLE_GAS_LIMIT
