"""How much calldata and gas one message costs a delivery, besides its recipient's `handle`.

Used twice: to bound batches by bytes and gas (`cut_batches`, for `relay.relayer.deliver`), and to decide whether a
message is paid for (`relay.relayer.policy`): a sender pays for its recipient's handle gas PLUS
the delivery overhead of its message (`compute_delivery_overhead`), so a message cannot make the
operator pay for calldata and the Gateway's own work. The figures are upper bounds for the EVM
Gateway: a full 32-level branch, the ABI framing, and calldata priced at the EIP-7623 floor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from relay.store.base import MessageRecord

BRANCH_BYTES = 32 * 32  # a full Merkle branch in calldata
ITEM_FRAMING_BYTES = 4 * 32  # ABI framing per message: offset, length, padding, its gas limit
CALLDATA_GAS_PER_BYTE = 40  # the EIP-7623 floor per non-zero calldata byte (the worst case)
MESSAGE_OVERHEAD_GAS = 50_000  # the Gateway's own work per message (hashing, branch, bookkeeping)


def compute_message_bytes(encoded_length: int) -> int:
    """Calldata bytes a message of `encoded_length` bytes adds to a batch: encoding, branch, framing."""
    return (encoded_length + 31) // 32 * 32 + BRANCH_BYTES + ITEM_FRAMING_BYTES


def compute_delivery_overhead(encoded_length: int) -> int:
    """Gas a delivery spends on a message of `encoded_length` bytes besides its recipient's handle."""
    return compute_message_bytes(encoded_length) * CALLDATA_GAS_PER_BYTE + MESSAGE_OVERHEAD_GAS


def message_bytes(record: MessageRecord) -> int:
    """Calldata bytes one message adds to a batch: its encoding (padded), branch and framing."""
    return compute_message_bytes(len(record.message.encode()))


def message_gas(record: MessageRecord, gas_limit: int) -> int:
    """Gas one message declares: its gas limit, its calldata and the Gateway's work for it."""
    return gas_limit + compute_delivery_overhead(len(record.message.encode()))


def cut_batches(
    records: Sequence[MessageRecord],
    gas_limits: Mapping[bytes, int],
    max_count: int,
    max_bytes: int,
    max_gas: int,
) -> list[list[MessageRecord]]:
    """`records` in order, cut into batches within every bound; a message above a bound goes alone."""
    batches: list[list[MessageRecord]] = []
    current: list[MessageRecord] = []
    size = gas = 0
    for record in records:
        item_bytes = message_bytes(record)
        item_gas = message_gas(record, gas_limits.get(record.id, 0))
        if current and (
            len(current) >= max_count or size + item_bytes > max_bytes or gas + item_gas > max_gas
        ):
            batches.append(current)
            current, size, gas = [], 0, 0
        current.append(record)
        size += item_bytes
        gas += item_gas
    if current:
        batches.append(current)
    return batches
