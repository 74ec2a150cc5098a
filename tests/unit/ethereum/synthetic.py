"""A small, self-consistent chain built by the tests: beacon headers, states, committees, execution blocks.

The beacon builders are shared with the simulated beacon chain (`relay.tools.beacon_sim.builders`).

Real vectors cannot show a Gateway `Dispatch` in a finalized block, nor an Electra-layout state,
so the tests build one: a minimal-preset network, a 32-member committee with known secret keys,
a beacon state tree holding the fields the light client proves (finalized checkpoint, current and
next sync committees at their Deneb or Electra generalized indices), a block body holding the
execution payload, and execution blocks whose RLP headers hash to the payloads' block hashes.
Only the proven fields are real; every other leaf is filler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import rlp

from relay.tools.beacon_sim.builders import (
    Committee,
    State,
    filler,
    make_committee,
    make_light_client_header,
    make_network,
    make_state,
    make_sync_aggregate,
    tree_branch,
)
from relay.verify.bls import BlsBackend
from relay.verify.ethereum.config import Fork, NetworkConfig
from relay.verify.ethereum.containers import (
    ExecutionPayloadHeader,
    LightClientBootstrap,
    LightClientUpdate,
    compute_beacon_block_root,
)
from relay.verify.ethereum.dispatch import DISPATCH_TOPIC
from relay.verify.ethereum.execution_encoding import EMPTY_TRIE_ROOT
from relay.verify.ethereum.receipts import Log, Receipt, compute_receipts_root
from relay.verify.hashing import keccak256
from relay.verify.message import Message

__all__ = [
    "Committee",
    "ExecutionBlock",
    "Scenario",
    "State",
    "filler",
    "make_committee",
    "make_light_client_header",
    "make_network",
    "make_scenario",
    "make_state",
    "tree_branch",
]

GATEWAY = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
ORIGIN_DOMAIN = 1
EMPTY_UNCLES_HASH = keccak256(rlp.encode([]))


# --- execution blocks ------------------------------------------------------------------------------------------------


def compute_logs_bloom(logs: list[Log]) -> bytes:
    """The 2048-bit bloom of `logs` (addresses and topics)."""
    bloom = bytearray(256)
    for log in logs:
        for value in (log.address, *log.topics):
            digest = keccak256(value)
            for i in (0, 2, 4):
                bit = int.from_bytes(digest[i : i + 2], "big") & 2047
                bloom[255 - bit // 8] |= 1 << (bit % 8)
    return bytes(bloom)


def dispatch_log(message: Message, gateway: bytes = GATEWAY) -> Log:
    """The Gateway's `Dispatch(id, destination, nonce, message)` log for `message`."""
    encoded = message.encode()
    padded = encoded + b"\x00" * (-len(encoded) % 32)
    data = (
        message.nonce.to_bytes(32, "big")
        + (64).to_bytes(32, "big")
        + len(encoded).to_bytes(32, "big")
        + padded
    )
    return Log(
        address=gateway,
        topics=(DISPATCH_TOPIC, message.id, message.destination.to_bytes(32, "big")),
        data=data,
    )


def make_message(nonce: int, body: bytes = b"hello") -> Message:
    """A message from the synthetic origin to domain 31337."""
    return Message.create(
        nonce=nonce,
        origin=ORIGIN_DOMAIN,
        sender=b"\x00" * 12 + b"\x11" * 20,
        destination=31337,
        recipient=b"\x00" * 12 + b"\x22" * 20,
        body=body,
    )


def receipt_json(receipt: Receipt, index: int, block_number: int) -> dict[str, Any]:
    """A JSON-RPC receipt for `receipt`."""
    return {
        "type": hex(receipt.transaction_type),
        "status": hex(receipt.outcome if isinstance(receipt.outcome, int) else 1),
        "cumulativeGasUsed": hex(receipt.cumulative_gas_used),
        "logsBloom": "0x" + receipt.logs_bloom.hex(),
        "logs": [
            {
                "address": "0x" + log.address.hex(),
                "topics": ["0x" + t.hex() for t in log.topics],
                "data": "0x" + log.data.hex(),
            }
            for log in receipt.logs
        ],
        "transactionIndex": hex(index),
        "transactionHash": "0x" + filler(f"tx/{block_number}", index).hex(),
        "blockNumber": hex(block_number),
    }


@dataclass
class ExecutionBlock:
    """An execution block: its JSON-RPC header, receipts, and the payload header that commits to it."""

    number: int
    header_json: dict[str, Any]
    receipts: list[Receipt]
    payload: ExecutionPayloadHeader
    messages: list[Message] = field(default_factory=list)

    @property
    def receipts_json(self) -> list[dict[str, Any]]:
        """The block's receipts as `eth_getBlockReceipts` answers them."""
        return [receipt_json(r, i, self.number) for i, r in enumerate(self.receipts)]


def make_execution_block(
    number: int, parent_hash: bytes, messages: list[Message], fork: Fork, timestamp: int
) -> ExecutionBlock:
    """A block with one plain receipt and one receipt per message (each with a Dispatch log)."""
    receipts = [Receipt(2, 1, 21000, b"\x00" * 256, ())]
    gas = 21000
    for message in messages:
        gas += 50000
        log = dispatch_log(message)
        other = Log(address=b"\x33" * 20, topics=(filler("topic", message.nonce),), data=b"")
        receipts.append(Receipt(2, 1, gas, compute_logs_bloom([other, log]), (other, log)))
    all_logs = [log for receipt in receipts for log in receipt.logs]
    fields: list[tuple[str, Any]] = [
        ("parentHash", parent_hash),
        ("sha3Uncles", EMPTY_UNCLES_HASH),
        ("miner", b"\x44" * 20),
        ("stateRoot", filler("state", number)),
        ("transactionsRoot", filler("txs", number)),
        ("receiptsRoot", compute_receipts_root(receipts)),
        ("logsBloom", compute_logs_bloom(all_logs)),
        ("difficulty", 0),
        ("number", number),
        ("gasLimit", 30_000_000),
        ("gasUsed", gas),
        ("timestamp", timestamp),
        ("extraData", b"synthetic"),
        ("mixHash", filler("randao", number)),
        ("nonce", b"\x00" * 8),
        ("baseFeePerGas", 7),
        ("withdrawalsRoot", EMPTY_TRIE_ROOT),
        ("blobGasUsed", 0),
        ("excessBlobGas", 0),
        ("parentBeaconBlockRoot", filler("pbbr", number)),
    ]
    if fork >= Fork.ELECTRA:
        fields.append(("requestsHash", filler("requests", number)))
    block_hash = keccak256(rlp.encode([value for _, value in fields]))
    header_json: dict[str, Any] = {
        name: (hex(value) if isinstance(value, int) else "0x" + value.hex()) for name, value in fields
    }
    header_json["hash"] = "0x" + block_hash.hex()
    header_json["transactions"] = ["0x" + filler(f"tx/{number}", i).hex() for i in range(len(receipts))]
    values = dict(fields)
    payload = ExecutionPayloadHeader(
        parent_hash=parent_hash,
        fee_recipient=values["miner"],
        state_root=values["stateRoot"],
        receipts_root=values["receiptsRoot"],
        logs_bloom=values["logsBloom"],
        prev_randao=values["mixHash"],
        block_number=number,
        gas_limit=values["gasLimit"],
        gas_used=gas,
        timestamp=timestamp,
        extra_data=values["extraData"],
        base_fee_per_gas=values["baseFeePerGas"],
        block_hash=block_hash,
        transactions_root=values["transactionsRoot"],
        withdrawals_root=values["withdrawalsRoot"],
    )
    return ExecutionBlock(number, header_json, receipts, payload, list(messages))


# --- beacon headers and states -----------------------------------------------------------------------------------------


# --- a whole scenario -------------------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    """Bootstrap at slot 8, then one update (attested at 24, signed at 25) finalizing slot 16.

    The finalized execution block (number 100) and its parent (99) each dispatch one message.
    """

    network: NetworkConfig
    fork: Fork
    committee: Committee
    next_committee: Committee
    bootstrap: LightClientBootstrap
    trusted_root: bytes
    update: LightClientUpdate
    blocks: dict[int, ExecutionBlock]
    participants: list[int]


def make_scenario(
    backend: BlsBackend,
    fork: Fork = Fork.DENEB,
    participants: list[int] | None = None,
    *,
    offset: int = 0,
    history: int = 0,
) -> Scenario:
    """Build the scenario for `fork` (Deneb or Electra state layout).

    `offset` moves the four execution blocks up from 98-101 to 98+offset-101+offset; `history`
    adds that many empty blocks right below them (a long chain for walks beyond 8,192 blocks).
    """
    network = make_network(fork)
    committee = make_committee(backend, f"{fork.name}/committee/0")
    next_committee = make_committee(backend, f"{fork.name}/committee/1")
    genesis = network.genesis_time
    base = 98 + offset
    earlier: list[ExecutionBlock] = []
    parent = filler("block", base - history - 1)
    for number in range(base - history, base):
        earlier.append(make_execution_block(number, parent, [], fork, genesis + 1))
        parent = earlier[-1].payload.block_hash
    block_98 = make_execution_block(base, parent, [], fork, genesis + 40)
    block_99 = make_execution_block(
        base + 1, block_98.payload.block_hash, [make_message(0, b"first")], fork, genesis + 48
    )
    block_100 = make_execution_block(
        base + 2, block_99.payload.block_hash, [make_message(1, b"second")], fork, genesis + 96
    )
    block_101 = make_execution_block(
        base + 3, block_100.payload.block_hash, [make_message(2, b"third")], fork, genesis + 144
    )

    bootstrap_state = make_state(
        8, network, committee.committee, next_committee.committee, filler("genesis-cp", 0), 0
    )
    bootstrap_header = make_light_client_header(8, bootstrap_state.root, block_98.payload, network)
    bootstrap = LightClientBootstrap(bootstrap_header, committee.committee, bootstrap_state.current_branch)

    finalized_state = make_state(
        16, network, committee.committee, next_committee.committee, filler("cp", 1), 1
    )
    finalized_header = make_light_client_header(16, finalized_state.root, block_100.payload, network)
    attested_state = make_state(
        24,
        network,
        committee.committee,
        next_committee.committee,
        compute_beacon_block_root(finalized_header.beacon),
        2,
    )
    attested_header = make_light_client_header(24, attested_state.root, block_101.payload, network)
    signers = list(range(len(committee.secrets))) if participants is None else participants
    update = LightClientUpdate(
        attested_header=attested_header,
        next_sync_committee=next_committee.committee,
        next_sync_committee_branch=attested_state.next_branch,
        finalized_header=finalized_header,
        finality_branch=attested_state.finality_branch,
        sync_aggregate=make_sync_aggregate(backend, committee, attested_header.beacon, 25, network, signers),
        signature_slot=25,
    )
    return Scenario(
        network=network,
        fork=fork,
        committee=committee,
        next_committee=next_committee,
        bootstrap=bootstrap,
        trusted_root=compute_beacon_block_root(bootstrap_header.beacon),
        update=update,
        blocks={b.number: b for b in (*earlier, block_98, block_99, block_100, block_101)},
        participants=signers,
    )
