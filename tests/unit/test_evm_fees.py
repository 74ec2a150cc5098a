"""The delivery gas-limit policy (adapters/evm/fees.py), pinned."""

from __future__ import annotations

from adapters.evm.fees import compute_gas_limit, compute_minimum_gas_limit


def test_the_gas_limit_never_falls_below_what_the_recipients_need() -> None:
    # Each recipient call needs its limit * 64/63 left (EIP-150), plus fixed overheads.
    assert compute_minimum_gas_limit([630_000]) == 640_000 + 300_000 + 40_000
    assert compute_minimum_gas_limit([200_000] * 50) == 10_000_000 * 64 // 63 + 300_000 + 50 * 40_000
    assert compute_minimum_gas_limit([]) == 300_000
    assert compute_gas_limit(400_000) == 550_000
