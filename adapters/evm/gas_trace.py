"""Where a transaction's gas goes: a struct-log trace and its calldata, attributed.

`attribute_trace(steps)` walks the top-level frame of a `debug_traceTransaction` struct log and
charges each step the gas it really took (its gas minus the gas at the next step of the same
frame, so a CALL includes everything its callee spent and a precompile call its precompile
price). Calls are named by target (`PRECOMPILE_NAMES`, else "call"), so the figures for
MAP_FP2_TO_G2 or PAIRING_CHECK are those the chain charged, not the EIP's table.

`count_calldata(data)` counts zero and non-zero bytes and prices them under EIP-2028 (4 / 16 gas)
and the EIP-7623 floor (10 / 40 gas per byte, charged instead when it is larger than the
standard cost plus execution). Used by `adapters/evm/gas_ideas.py` for
docs/adr/0008-gas-per-message.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TX_BASE_GAS = 21_000
STANDARD_ZERO_BYTE_GAS = 4
STANDARD_NONZERO_BYTE_GAS = 16
FLOOR_GAS_PER_TOKEN = 10  # EIP-7623: tokens = zero bytes + 4 * non-zero bytes

PRECOMPILE_NAMES: Mapping[int, str] = {
    0x01: "ECRECOVER",
    0x02: "SHA256",
    0x05: "MODEXP",
    0x0B: "G1_ADD",
    0x0C: "G1_MSM",
    0x0D: "G2_ADD",
    0x0E: "G2_MSM",
    0x0F: "PAIRING_CHECK",
    0x10: "MAP_FP_TO_G1",
    0x11: "MAP_FP2_TO_G2",
}
_CALLS = frozenset({"CALL", "STATICCALL", "DELEGATECALL", "CALLCODE"})
_NAMED_OPCODES = frozenset({"SSTORE", "SLOAD", "EXTCODECOPY", "EXTCODESIZE", "KECCAK256", "SHA3", "CREATE"})


@dataclass(frozen=True)
class CalldataCost:
    """Zero and non-zero bytes of some calldata and what they cost."""

    zero_bytes: int
    nonzero_bytes: int

    @property
    def length(self) -> int:
        return self.zero_bytes + self.nonzero_bytes

    @property
    def standard_gas(self) -> int:
        """EIP-2028 pricing: 4 gas a zero byte, 16 a non-zero byte."""
        return STANDARD_ZERO_BYTE_GAS * self.zero_bytes + STANDARD_NONZERO_BYTE_GAS * self.nonzero_bytes

    @property
    def tokens(self) -> int:
        """EIP-7623 tokens: a zero byte is one, a non-zero byte four."""
        return self.zero_bytes + 4 * self.nonzero_bytes

    @property
    def floor_gas(self) -> int:
        """What EIP-7623's floor charges for these bytes (without the 21,000 base)."""
        return FLOOR_GAS_PER_TOKEN * self.tokens

    def __add__(self, other: CalldataCost) -> CalldataCost:
        return CalldataCost(self.zero_bytes + other.zero_bytes, self.nonzero_bytes + other.nonzero_bytes)


def count_calldata(data: bytes) -> CalldataCost:
    """The zero and non-zero bytes of `data`."""
    zeros = data.count(0)
    return CalldataCost(zeros, len(data) - zeros)


def is_floor_bound(calldata: CalldataCost, execution_gas: int) -> bool:
    """Whether EIP-7623's floor, not the standard cost plus execution, sets the gas used."""
    return calldata.floor_gas > calldata.standard_gas + execution_gas


@dataclass(frozen=True)
class TraceAttribution:
    """A top-level frame's gas by category, with the counts of each category's steps."""

    gas: Counter[str]
    counts: Counter[str]
    execution_gas: int  # gas the frame used before refunds (start gas minus gas left at the end)
    start_gas: int  # gas available to the first step: the transaction's gas limit minus intrinsic gas
    gas_through_pairing: int  # execution gas up to and including the first PAIRING_CHECK (0 if none)
    used_before: dict[str, int]  # execution gas used before the first step of each category


def attribute_trace(steps: Sequence[Mapping[str, Any]]) -> TraceAttribution:
    """Charge each top-level step of a struct-log trace the gas it took, by category.

    Categories are precompile names, "call" (a call to a contract, its callee included), the
    opcodes in `_NAMED_OPCODES`, "LOG" (events) and "other" (everything else).
    """
    gas: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    top = [index for index, step in enumerate(steps) if int(step["depth"]) == 1]
    if not top:
        raise ValueError("the trace has no top-level steps")
    through_pairing = 0
    used_before: dict[str, int] = {}
    start = int(steps[top[0]]["gas"])
    for position, index in enumerate(top):
        step = steps[index]
        if position + 1 < len(top):
            cost = int(step["gas"]) - int(steps[top[position + 1]]["gas"])
        else:
            cost = int(step["gasCost"])
        category = _category(step)
        used_before.setdefault(category, start - int(step["gas"]))
        gas[category] += cost
        counts[category] += 1
        if category == "PAIRING_CHECK" and not through_pairing:
            through_pairing = start - int(step["gas"]) + cost
    last = steps[top[-1]]
    execution = start - (int(last["gas"]) - int(last["gasCost"]))
    return TraceAttribution(gas, counts, execution, start, through_pairing, used_before)


def _category(step: Mapping[str, Any]) -> str:
    op = str(step["op"])
    if op in _CALLS:
        target = int(str(step["stack"][-2]), 16)
        return PRECOMPILE_NAMES.get(target, "call")
    if op.startswith("LOG"):
        return "LOG"
    if op == "SHA3":
        return "KECCAK256"
    if op in _NAMED_OPCODES:
        return op
    return "other"
