"""How a delivery transaction's gas limit and EIP-1559 fees are chosen, first and on replacement.

The margins are policy, each written down here with why, apart from the code that signs, sends
and replaces (`adapters.evm.transactions`). `compute_` functions are pure; `read_fees` asks the
node, through the caller's retried read (`SUBMITTER_READ`).

Replacement (EIP-1559, as geth, reth and anvil enforce it): a transaction with the same nonce
replaces a pending one only if both its `maxFeePerGas` and its `maxPriorityFeePerGas` are at least
10 % higher. The bump is configured (`chain.submission.fee_bump_percent`, 12.5 % by default) and
never passes `max_fee_per_gas_cap`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from web3 import exceptions as web3_errors

from adapters.evm.errors import FeeCapReached
from relay.errors import RpcUnavailable

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

# `read(method, operation)`: an idempotent chain read under the caller's retry policy.
ChainRead = Callable[[str, Callable[[], Any]], Any]


@dataclass(frozen=True)
class Fees:
    """The two EIP-1559 fee fields of a transaction, in wei."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int


def compute_gas_limit(estimate: int) -> int:
    """The gas limit to send with, from the simulation's `eth_estimateGas` result."""
    return estimate * GAS_MARGIN_NUMERATOR // GAS_MARGIN_DENOMINATOR + GAS_MARGIN_FIXED


def compute_estimate_ceiling(gas_limit: int) -> int:
    """The largest estimate `compute_gas_limit` turns into at most `gas_limit`: a simulation that
    succeeds with this much gas shows that `gas_limit` already holds the usual margin."""
    return max((gas_limit - GAS_MARGIN_FIXED) * GAS_MARGIN_DENOMINATOR // GAS_MARGIN_NUMERATOR, 0)


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


def compute_bumped(value: int, bump_percent: float) -> int:
    """`value` raised by `bump_percent`, rounded up, and by at least 1 wei."""
    basis_points = round(bump_percent * 100)
    return value + max(1, -(-value * basis_points // 10_000))


def compute_initial_fees(base_fee: int, tip: int, cap: int) -> Fees:
    """Fees of a first send: `2 * base + tip`, lowered to `cap` if needed.

    `FeeCapReached` if even `base + tip` is above the cap: such a transaction could not be mined
    now, and sending it would only hold the nonce; the caller backs off instead.
    """
    if base_fee + tip > cap:
        raise FeeCapReached(
            "the base fee is above the configured fee cap", base_fee=base_fee, tip=tip, cap=cap
        )
    return Fees(min(compute_max_fee_per_gas(base_fee, tip), cap), tip)


def compute_replacement_fees(
    previous: Fees, base_fee: int, suggested_tip: int, bump_percent: float, cap: int
) -> Fees | None:
    """Fees replacing `previous` under the same nonce, or None if the bump would pass `cap`.

    Each field rises by at least `bump_percent` (the node's replacement rule), and further to what
    the latest base fee and the node's suggested tip call for, as a first send would; the fee cap
    stays within `cap`. None means: keep waiting at `previous`.
    """
    least_tip = compute_bumped(previous.max_priority_fee_per_gas, bump_percent)
    least_max_fee = compute_bumped(previous.max_fee_per_gas, bump_percent)
    tip = max(least_tip, suggested_tip)
    max_fee = min(max(least_max_fee, compute_max_fee_per_gas(base_fee, tip)), cap)
    tip = min(tip, max_fee)
    if max_fee < least_max_fee or tip < least_tip:
        return None  # the node would refuse a smaller bump, and a larger one passes the cap
    return Fees(max_fee, tip)


def read_fees(read: ChainRead, web3: Any) -> tuple[int, int]:
    """The latest block's base fee (0 if it has none) and the node's suggested priority fee.

    A node that cannot suggest a priority fee (a JSON-RPC error answer) gets
    `DEFAULT_PRIORITY_FEE_WEI`; a node that does not answer raises `RpcUnavailable` after `read`'s
    retries.
    """
    eth = web3.eth

    def latest() -> Any:
        try:
            return eth.get_block("latest")
        except web3_errors.Web3RPCError as error:
            # Every healthy node has a latest block: an error answer is a misbehaving endpoint.
            raise RpcUnavailable("chain RPC answered with an error", method="eth_getBlockByNumber") from error

    block = read("eth_getBlockByNumber", latest)
    base_fee = int(block.get("baseFeePerGas", 0) or 0) if block is not None else 0
    try:
        tip = int(read("eth_maxPriorityFeePerGas", lambda: eth.max_priority_fee))
    except web3_errors.Web3RPCError:
        tip = DEFAULT_PRIORITY_FEE_WEI
    return base_fee, tip
