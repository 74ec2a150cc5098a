"""The example app on the devnet: sending messages that pay for their delivery.

`send_paid_counter_messages` is what `Devnet.send` and the end-to-end tests use to send from one
chain's `Counter` to another's, each message paying the source Gateway's quote (the relayer's
default gas policy delivers only paid messages).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay.tools.devnet import DevnetChain

SEND_WITH_GAS_GAS = 500_000  # gas for one Counter.sendWithGas transaction

# The handle gas the devnet's Counter messages declare (and pay for). Measured on anvil: the
# Counter's `handle` uses 91,717 gas for the first message to a fresh Counter (four zero-to-nonzero
# SSTOREs: the worst case for short bodies), 37,617 for a new (origin, sender), 20,517 afterwards.
# 120,000 covers that worst case with a 30% margin; tests/integration/test_counter_handle_gas.py
# measures it again. Declaring what the recipient needs (not a blanket 200,000) matters for
# throughput: a delivery's gas limit reserves every message's declared gas, and a node admits a
# transaction only while that limit fits the block's remaining gas.
COUNTER_HANDLE_GAS_LIMIT = 120_000
COUNTER_HANDLE_GAS_MARGIN = 1.3  # declared / measured worst case, at least


def send_paid_counter_messages(
    sender: Any, origin: DevnetChain, target: DevnetChain, bodies: list[bytes], *, gas_limit: int
) -> list[bytes]:
    """One `Counter.sendWithGas` per body from `origin`'s app to `target`'s, each paying the
    Gateway's quote for `gas_limit` of handle gas plus the delivery overhead of its message (what
    the relayer's gas policy requires); not awaited; return the transaction hashes."""
    from adapters.evm import deploy
    from relay.relayer.sizing import compute_delivery_overhead
    from relay.verify.message import HEADER_LENGTH, address_to_bytes32

    gateway = deploy.contract(sender.web3, "Gateway", origin.gateway)
    app = deploy.contract(sender.web3, "Counter", origin.counter)
    fees = sender._fees()
    recipient = address_to_bytes32(target.counter)
    hashes = []
    for body in bodies:
        paid_gas = gas_limit + compute_delivery_overhead(HEADER_LENGTH + len(body))
        quote = int(gateway.functions.quoteGasPayment(target.domain, paid_gas).call())
        call = app.functions.sendWithGas(target.domain, recipient, body, paid_gas)
        data = call._encode_transaction_data()
        hashes.append(
            sender.send({"to": call.address, "data": data, "gas": SEND_WITH_GAS_GAS, "value": quote}, fees)
        )
    return hashes
