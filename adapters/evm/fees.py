"""How a delivery transaction's gas limit and EIP-1559 fees are chosen.

The margins are policy, each written down here with why, apart from the code that signs and
sends (`EvmDestination` in adapters/evm/submitter.py, which also keeps the account's nonce, since
the nonce is counted under the same lock as the send). `compute_` functions are pure;
`read_fees` asks the node.
"""

from __future__ import annotations

from collections.abc import Sequence

from web3 import exceptions as web3_errors

from adapters.evm.rpc import EvmEndpoint

# Gas limit = estimate * 5/4 + 50,000: a margin for state that changes between the estimate and
# the block. The Gateway gives each recipient exactly its delivery's gas limit and reverts the
# whole transaction (InsufficientGasForRecipient) rather than start a call with less.
GAS_MARGIN_NUMERATOR, GAS_MARGIN_DENOMINATOR, GAS_MARGIN_FIXED = 5, 4, 50_000
# The floor under any delivery's gas limit: each recipient call needs gasLimit * 64/63 left
# (EIP-150 keeps 1/64 back), plus the proof checks and the per-message bookkeeping around them.
RECIPIENT_GAS_NUMERATOR, RECIPIENT_GAS_DENOMINATOR = 64, 63
DELIVERY_OVERHEAD_GAS = 300_000  # above one checkpoint check with a large committee
PER_MESSAGE_OVERHEAD_GAS = 40_000  # Merkle branch, replay bit, events, the call's own cost
# maxFeePerGas = 2 * base fee + tip: survives six full blocks of base-fee increases.
BASE_FEE_MULTIPLIER = 2
DEFAULT_PRIORITY_FEE_WEI = 1_000_000_000


def compute_gas_limit(estimate: int) -> int:
    """The gas limit to send with, from the simulation's `eth_estimateGas` result."""
    return estimate * GAS_MARGIN_NUMERATOR // GAS_MARGIN_DENOMINATOR + GAS_MARGIN_FIXED


def compute_minimum_gas_limit(handle_gas_limits: Sequence[int]) -> int:
    """The least gas limit a delivery of messages with these `handle` gas limits is sent with.

    eth_estimateGas already finds a limit the Gateway's pre-call check accepts; this floor keeps
    a low or wrong estimate from starving a recipient (the transaction would revert, not the
    delivery fail, but the fee would be wasted).
    """
    forwarded = sum(handle_gas_limits) * RECIPIENT_GAS_NUMERATOR // RECIPIENT_GAS_DENOMINATOR
    return forwarded + DELIVERY_OVERHEAD_GAS + PER_MESSAGE_OVERHEAD_GAS * len(handle_gas_limits)


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
