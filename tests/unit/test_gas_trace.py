"""Gas attribution of a struct-log trace and calldata pricing (adapters/evm/gas_trace.py)."""

from __future__ import annotations

from typing import Any

from adapters.evm.gas_trace import CalldataCost, attribute_trace, count_calldata, is_floor_bound


def step(op: str, gas: int, cost: int, depth: int = 1, stack: list[str] | None = None) -> dict[str, Any]:
    return {"op": op, "gas": gas, "gasCost": cost, "depth": depth, "stack": stack or []}


def call_to(address: int) -> list[str]:
    return [hex(address), hex(10_000)]  # ..., address, gas (the top of the stack is last)


def test_each_top_level_step_is_charged_what_it_took_callees_included() -> None:
    steps = [
        step("PUSH1", 1_000_000, 3),
        step("STATICCALL", 999_997, 103_000, stack=call_to(0x0F)),  # pairing: 103,000 taken
        step("SSTORE", 896_997, 2_900),
        step("CALL", 894_097, 9_000, stack=call_to(0xABCDEF)),  # a contract: its steps are depth 2
        step("SLOAD", 880_000, 2_100, depth=2),
        step("STOP", 877_900, 0, depth=2),
        step("LOG2", 877_000, 1_756),
        step("STOP", 875_244, 0),
    ]
    trace = attribute_trace(steps)
    assert trace.gas["PAIRING_CHECK"] == 103_000
    assert trace.gas["SSTORE"] == 2_900
    assert trace.gas["call"] == 894_097 - 877_000  # the callee's SLOAD is inside the call
    assert trace.gas["LOG"] == 1_756
    assert "SLOAD" not in trace.gas
    assert trace.execution_gas == 1_000_000 - 875_244 == sum(trace.gas.values())
    assert trace.gas_through_pairing == 3 + 103_000
    assert trace.used_before["SSTORE"] == 103_003
    assert trace.start_gas == 1_000_000


def test_calldata_is_priced_by_eip_2028_and_the_eip_7623_floor() -> None:
    cost = count_calldata(b"\x00" * 10 + b"\x01" * 5)
    assert cost == CalldataCost(10, 5)
    assert cost.standard_gas == 10 * 4 + 5 * 16
    assert cost.tokens == 30
    assert cost.floor_gas == 300
    assert is_floor_bound(cost, execution_gas=179)  # 120 + 179 < 300
    assert not is_floor_bound(cost, execution_gas=180)
