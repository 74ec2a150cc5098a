"""A small, self-consistent chain built by the tests: beacon headers, states, committees, execution blocks.

Real vectors cannot show a Gateway `Dispatch` in a finalized block, nor an Electra-layout state,
so the tests build one: a minimal-preset network, a 32-member committee with known secret keys,
a beacon state tree holding the fields the light client proves (finalized checkpoint, current and
next sync committees at their Deneb or Electra generalized indices), a block body holding the
execution payload, and execution blocks whose RLP headers hash to the payloads' block hashes.
Only the proven fields are real; every other leaf is filler.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import rlp

from relay.verify.bls import CURVE_ORDER, BlsBackend
from relay.verify.ethereum import ssz
from relay.verify.ethereum.config import MINIMAL_PRESET, Fork, ForkActivation, NetworkConfig
from relay.verify.ethereum.containers import (
    BeaconBlockHeader,
    ExecutionPayloadHeader,
    LightClientBootstrap,
    LightClientHeader,
    LightClientUpdate,
    SyncAggregate,
    SyncCommittee,
    compute_beacon_block_root,
    compute_execution_payload_root,
    compute_sync_committee_root,
)
from relay.verify.ethereum.dispatch import DISPATCH_TOPIC
from relay.verify.ethereum.execution_encoding import EMPTY_TRIE_ROOT
from relay.verify.ethereum.receipts import Log, Receipt, compute_receipts_root
from relay.verify.ethereum.signing import compute_sync_committee_signing_root
from relay.verify.hashing import keccak256
from relay.verify.message import Message

GATEWAY = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
ORIGIN_DOMAIN = 1
EMPTY_UNCLES_HASH = keccak256(rlp.encode([]))


def make_network(fork: Fork) -> NetworkConfig:
    """A minimal-preset network with every fork up to `fork` active from genesis."""
    forks = [ForkActivation(f, bytes([f.value, 0, 0, 0x42]), 0) for f in Fork if f <= fork]
    return NetworkConfig(
        name=f"synthetic-{fork.name.lower()}",
        preset=MINIMAL_PRESET,
        genesis_validators_root=hashlib.sha256(b"synthetic genesis").digest(),
        forks=tuple(forks),
        genesis_time=1_700_000_000,
        seconds_per_slot=6,
    )


def filler(label: str, index: int) -> bytes:
    """A deterministic 32-byte stand-in for a field nobody proves."""
    return hashlib.sha256(f"{label}/{index}".encode()).digest()


def tree_branch(leaves: list[bytes], index: int) -> tuple[bytes, tuple[bytes, ...]]:
    """The root of `leaves` (a power of two) and the branch of leaf `index`, bottom up."""
    layer = list(leaves)
    branch = []
    while len(layer) > 1:
        branch.append(layer[index ^ 1])
        layer = [ssz.sha256(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
        index //= 2
    return layer[0], tuple(branch)


# --- committees -------------------------------------------------------------------------------------------------


@dataclass
class Committee:
    """A sync committee with its secret keys."""

    secrets: list[int]
    committee: SyncCommittee

    def sign(self, backend: BlsBackend, message: bytes, participants: list[int]) -> bytes:
        """The aggregate signature of `participants` over `message` (one signature by the summed key)."""
        secret = sum(self.secrets[i] for i in participants) % CURVE_ORDER
        return backend.sign(secret, message)


def make_committee(
    backend: BlsBackend, seed: str, size: int = MINIMAL_PRESET.sync_committee_size
) -> Committee:
    """`size` members with secret keys derived from `seed`."""
    secrets = [
        int.from_bytes(hashlib.sha256(f"{seed}/{i}".encode()).digest(), "big") % CURVE_ORDER
        for i in range(size)
    ]
    pubkeys = tuple(backend.secret_to_public_key(secret) for secret in secrets)
    aggregate = backend.secret_to_public_key(sum(secrets) % CURVE_ORDER)
    return Committee(secrets, SyncCommittee(pubkeys=pubkeys, aggregate_pubkey=aggregate))


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


def make_light_client_header(
    slot: int, state_root: bytes, execution: ExecutionPayloadHeader, network: NetworkConfig
) -> LightClientHeader:
    """A header whose body commits to `execution` at gindex 25."""
    fork = network.compute_fork_at_slot(slot)
    leaves = [filler(f"body/{slot}", i) for i in range(16)]
    leaves[9] = compute_execution_payload_root(execution, fork)
    body_root, branch = tree_branch(leaves, 9)
    beacon = BeaconBlockHeader(
        slot=slot,
        proposer_index=slot % 7,
        parent_root=filler("parent", slot),
        state_root=state_root,
        body_root=body_root,
    )
    return LightClientHeader(beacon=beacon, execution=execution, execution_branch=branch)


@dataclass
class State:
    """A beacon state reduced to the leaves the light client proves."""

    root: bytes
    finality_branch: tuple[bytes, ...]
    current_branch: tuple[bytes, ...]
    next_branch: tuple[bytes, ...]


def make_state(
    slot: int,
    network: NetworkConfig,
    current: SyncCommittee,
    next_: SyncCommittee,
    finalized_root: bytes,
    finalized_epoch: int,
) -> State:
    """A state with the finalized checkpoint (field 20) and the sync committees (fields 22, 23)."""
    fork = network.compute_fork_at_slot(slot)
    width = 64 if fork >= Fork.ELECTRA else 32
    leaves = [filler(f"state/{slot}", i) for i in range(width)]
    epoch_chunk = ssz.uint_chunk(finalized_epoch)
    leaves[20] = ssz.sha256(epoch_chunk + finalized_root)
    leaves[22] = compute_sync_committee_root(current)
    leaves[23] = compute_sync_committee_root(next_)
    root, checkpoint_branch = tree_branch(leaves, 20)
    _, current_branch = tree_branch(leaves, 22)
    _, next_branch = tree_branch(leaves, 23)
    return State(root, (epoch_chunk, *checkpoint_branch), current_branch, next_branch)


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
    signing_root = compute_sync_committee_signing_root(attested_header.beacon, 25, network)
    bits = bytearray(len(committee.secrets) // 8)
    for i in signers:
        bits[i // 8] |= 1 << (i % 8)
    update = LightClientUpdate(
        attested_header=attested_header,
        next_sync_committee=next_committee.committee,
        next_sync_committee_branch=attested_state.next_branch,
        finalized_header=finalized_header,
        finality_branch=attested_state.finality_branch,
        sync_aggregate=SyncAggregate(bytes(bits), committee.sign(backend, signing_root, signers)),
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
