"""How a delivery transaction's gas limit and EIP-1559 fees are chosen.

The margins are policy, each written down here with why, apart from the code that signs and
sends (`EvmDestination` in adapters/evm/submitter.py, which also keeps the account's nonce, since
the nonce is counted under the same lock as the send). `compute_` functions are pure;
`read_fees` asks the node.
"""

from __future__ import annotations

from web3 import exceptions as web3_errors

from adapters.evm.rpc import EvmEndpoint

# Gas limit = estimate * 5/4 + 50,000: the recipient call only gets 63/64 of what is left, and a
# recipient starved of gas makes the Gateway revert the whole transaction (RecipientOutOfGas).
GAS_MARGIN_NUMERATOR, GAS_MARGIN_DENOMINATOR, GAS_MARGIN_FIXED = 5, 4, 50_000
# maxFeePerGas = 2 * base fee + tip: survives six full blocks of base-fee increases.
BASE_FEE_MULTIPLIER = 2
DEFAULT_PRIORITY_FEE_WEI = 1_000_000_000


def compute_gas_limit(estimate: int) -> int:
    """The gas limit to send with, from the simulation's `eth_estimateGas` result."""
    return estimate * GAS_MARGIN_NUMERATOR // GAS_MARGIN_DENOMINATOR + GAS_MARGIN_FIXED


def compute_max_fee_per_gas(base_fee: int, tip: int) -> int:
    """`maxFeePerGas` for the latest base fee and the priority fee (tip)."""
    return base_fee * BASE_FEE_MULTIPLIER + tip


def read_fees(endpoint: EvmEndpoint) -> tuple[int, int]:
    """The latest block's base fee (0 if it has none) and the node's suggested priority fee.

    A node that cannot suggest a priority fee gets `DEFAULT_PRIORITY_FEE_WEI`.
    """
    eth = endpoint.web3.eth
    latest = endpoint.block("latest")
    base_fee = int(latest.get("baseFeePerGas", 0) or 0) if latest is not None else 0
    try:
        tip = int(endpoint.read("eth_maxPriorityFeePerGas", lambda: eth.max_priority_fee))
    except web3_errors.Web3RPCError:
        tip = DEFAULT_PRIORITY_FEE_WEI
    return base_fee, tip
