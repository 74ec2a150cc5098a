"""Gas of the on-chain light client's updates at mainnet size, measured on anvil.

Real mainnet updates are all signed by (nearly) the whole committee, so the bench builds its own
chain with known keys (with the simulated beacon chain's builders, `relay.tools.beacon_sim.builders`): the mainnet preset (512 members, 32 slots an epoch, 256 epochs a period),
the Electra layout (deeper state branches, the 17-field payload header), three committees with
secret keys derived from a seed, and beacon states reduced to the fields the light client proves
(everything else is filler). Signatures are real BLS signatures by the chosen participants.

`measure_update_gas` deploys the light client on a chain, then measures, from the same states
(anvil snapshots), each kind of update at full and at 80% participation:

- "learn next committee": the first update of a period, which brings the next committee's 512
  keys (hashed into its SSZ root, stored as code);
- "no period change": a finality update inside the period (the common case);
- "period change": the finalized header crosses into the next period, whose committee becomes
  current, and the update brings the one after (512 keys stored again).

With `trace=True` (anvil started with `--steps-tracing`) each row also says where the gas goes:
calldata, SHA-256, G1ADD, hash-to-G2 (MODEXP, MAP_FP2_TO_G2, G2ADD), the pairing, storage (SSTORE,
CREATE of the key contracts), EXTCODECOPY of keys, and the rest.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from adapters.ethereum import onchain_client
from adapters.evm.anvil import DEV_PRIVATE_KEYS
from adapters.evm.deploy import TransactionSender
from adapters.evm.gas_trace import attribute_trace, count_calldata
from relay.tools.beacon_sim import builders
from relay.verify.bls import BlsBackend, get_backend
from relay.verify.ethereum.config import MAINNET_PRESET, Fork, NetworkConfig, Preset
from relay.verify.ethereum.containers import (
    ZERO_ROOT,
    ExecutionPayloadHeader,
    LightClientBootstrap,
    LightClientHeader,
    LightClientUpdate,
    SyncCommittee,
    compute_beacon_block_root,
)

PARTICIPATION_LEVELS = (1.0, 0.8)
UPDATE_GAS_TARGET = 600_000
GAS_CATEGORIES = {
    "SHA256": "SHA-256",
    "G1_ADD": "G1ADD",
    "MODEXP": "hash-to-G2",
    "MAP_FP2_TO_G2": "hash-to-G2",
    "G2_ADD": "hash-to-G2",
    "PAIRING_CHECK": "pairing",
    "SSTORE": "storage",
    "CREATE": "storage",
    "call": "storage",
    "EXTCODECOPY": "key reads",
}


# --- a chain with known keys ------------------------------------------------------------------------------------


def make_network(preset: Preset = MAINNET_PRESET, genesis_time: int | None = None) -> NetworkConfig:
    """A network of `preset` with every fork through Electra from genesis, started 60 days ago."""
    return builders.make_network(
        Fork.ELECTRA,
        preset,
        name=f"bench-{preset.name}",
        genesis_validators_root=hashlib.sha256(b"light client bench").digest(),
        genesis_time=genesis_time if genesis_time is not None else int(time.time()) - 60 * 86_400,
        seconds_per_slot=12,
    )


def _execution(slot: int, network: NetworkConfig) -> ExecutionPayloadHeader:
    """A full execution payload header (every field non-zero) numbered after the slot."""
    return ExecutionPayloadHeader(
        parent_hash=builders.filler("parent", slot),
        fee_recipient=b"\x44" * 20,
        state_root=builders.filler("execution-state", slot),
        receipts_root=builders.filler("receipts", slot),
        logs_bloom=builders.filler("bloom", slot) * 8,
        prev_randao=builders.filler("randao", slot),
        block_number=20_000_000 + slot,
        gas_limit=36_000_000,
        gas_used=15_000_000,
        timestamp=network.genesis_time + slot * network.seconds_per_slot,
        extra_data=b"bench",
        base_fee_per_gas=7,
        block_hash=builders.filler("block", slot),
        transactions_root=builders.filler("transactions", slot),
        withdrawals_root=builders.filler("withdrawals", slot),
        blob_gas_used=131_072,
        excess_blob_gas=0,
    )


def _state(
    slot: int,
    network: NetworkConfig,
    current: SyncCommittee,
    next_: SyncCommittee,
    finalized: LightClientHeader | None,
) -> builders.State:
    """A state at `slot` whose finalized checkpoint is `finalized`'s block (genesis's if None)."""
    if finalized is None:
        return builders.make_state(slot, network, current, next_, builders.GENESIS_CHECKPOINT_ROOT, 0)
    epoch = finalized.beacon.slot // network.preset.slots_per_epoch
    return builders.make_state(
        slot, network, current, next_, compute_beacon_block_root(finalized.beacon), epoch
    )


def _header(slot: int, state_root: bytes, network: NetworkConfig) -> LightClientHeader:
    parent_root = builders.filler("parent-root", slot)
    return builders.make_light_client_header(
        slot, state_root, _execution(slot, network), network, parent_root
    )


@dataclass
class BenchChain:
    """A bootstrap and the updates the bench measures, with the committees that sign them."""

    network: NetworkConfig
    committees: list[builders.Committee]
    bootstrap: LightClientBootstrap
    backend: BlsBackend
    headers: dict[int, LightClientHeader] = field(default_factory=dict)

    @classmethod
    def build(cls, backend: BlsBackend | None = None, preset: Preset = MAINNET_PRESET) -> BenchChain:
        backend = backend or get_backend("blst")
        network = make_network(preset)
        size = preset.sync_committee_size
        committees = [builders.make_committee(backend, f"bench/committee/{p}", size) for p in range(3)]
        slot = preset.slots_per_epoch
        state = _state(slot, network, committees[0].committee, committees[1].committee, None)
        header = _header(slot, state.root, network)
        return cls(
            network,
            committees,
            LightClientBootstrap(header, committees[0].committee, state.current_branch),
            backend,
        )

    def update(
        self, attested_slot: int, finalized_slot: int, participation: float, *, with_next_committee: bool
    ) -> LightClientUpdate:
        """An update attested at `attested_slot`, finalizing `finalized_slot`, signed the slot after."""
        period = self.network.compute_sync_committee_period_at_slot(attested_slot)
        current, next_ = self.committees[period], self.committees[period + 1]
        finalized_state = _state(finalized_slot, self.network, current.committee, next_.committee, None)
        finalized = _header(finalized_slot, finalized_state.root, self.network)
        state = _state(attested_slot, self.network, current.committee, next_.committee, finalized)
        attested = _header(attested_slot, state.root, self.network)
        size = len(current.secrets)
        # 80%: every fifth member is absent (410 of 512 sign, above 2/3).
        participants = [i for i in range(size) if participation >= 1.0 or i % 5 != 4]
        aggregate = builders.make_sync_aggregate(
            self.backend, current, attested.beacon, attested_slot + 1, self.network, participants
        )
        return LightClientUpdate(
            attested_header=attested,
            next_sync_committee=next_.committee if with_next_committee else None,
            next_sync_committee_branch=state.next_branch if with_next_committee else (ZERO_ROOT,) * 6,
            finalized_header=finalized,
            finality_branch=state.finality_branch,
            sync_aggregate=aggregate,
            signature_slot=attested_slot + 1,
        )


# --- measuring ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateGasRow:
    """Gas of one light-client update transaction."""

    kind: str
    participants: int
    committee_size: int
    period_change: bool
    gas: int
    calldata_bytes: int
    breakdown: dict[str, int]
    """Gas by where it goes (empty unless traced): calldata, SHA-256, G1ADD, hash-to-G2, pairing, ..."""


def measure_update_gas(
    w3: Web3, *, chain: BenchChain | None = None, trace: bool = False, private_key: str = DEV_PRIVATE_KEYS[0]
) -> list[UpdateGasRow]:
    """Gas per update at full and 80% participation, with and without a period change (see the module doc).

    `w3` is an anvil chain (snapshots are used); `trace=True` needs it started with `--steps-tracing`.
    Returns also the bootstrap (`initialize`) as the first row.
    """
    chain = chain or BenchChain.build()
    rpc_url = str(w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    slots = chain.network.preset.slots_per_sync_committee_period
    epoch = chain.network.preset.slots_per_epoch
    address = onchain_client.deploy_light_client(
        w3, TransactionSender(rpc_url, private_key), chain.bootstrap, chain.network
    )
    contract = onchain_client.light_client_contract(w3, address)

    def measure(kind: str, update: LightClientUpdate, period_change: bool, keep: bool) -> UpdateGasRow:
        snapshot = None if keep else w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
        sender = TransactionSender(rpc_url, private_key)  # after a revert the nonce is read again
        call = contract.functions.submitUpdate(
            onchain_client.prepare_update(w3, contract, update, chain.network)
        )
        gas_limit = onchain_client.call_or_refuse(call, sender.address) * 2
        (receipt,) = sender.wait([sender.send_call(call, gas_limit)])
        data = bytes.fromhex(call._encode_transaction_data()[2:])
        breakdown = _breakdown(w3, receipt, data) if trace else {}
        if snapshot is not None:
            w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
        aggregate = update.sync_aggregate
        return UpdateGasRow(
            kind=kind,
            participants=aggregate.participant_count(),
            committee_size=len(aggregate.sync_committee_bits) * 8,
            period_change=period_change,
            gas=int(receipt["gasUsed"]),
            calldata_bytes=len(data),
            breakdown=breakdown,
        )

    learn = "learn next committee"
    rows = [
        measure(learn, chain.update(3 * epoch, 2 * epoch, 0.8, with_next_committee=True), False, keep=False),
        measure(learn, chain.update(3 * epoch, 2 * epoch, 1.0, with_next_committee=True), False, keep=True),
    ]
    rows.reverse()  # full participation first; the 80% one ran first so that the full one stays applied
    for level in PARTICIPATION_LEVELS:
        update = chain.update(5 * epoch, 4 * epoch, level, with_next_committee=False)
        rows.append(measure("no period change", update, False, keep=False))
    for level in PARTICIPATION_LEVELS:
        update = chain.update(slots + 3 * epoch, slots + 2 * epoch, level, with_next_committee=True)
        rows.append(measure("period change", update, True, keep=False))
    return rows


def _breakdown(w3: Web3, receipt: Any, data: bytes) -> dict[str, int]:
    response = w3.provider.make_request(
        "debug_traceTransaction",  # type: ignore[arg-type]
        ["0x" + bytes(receipt["transactionHash"]).hex(), {"enableMemory": False, "disableStorage": True}],
    )
    attribution = attribute_trace(response["result"]["structLogs"])
    calldata = count_calldata(data)
    result = {"transaction + calldata": 21_000 + calldata.standard_gas}
    for category, gas in attribution.gas.items():
        name = GAS_CATEGORIES.get(category, "other (ABI decoding, memory, SLOAD, loops)")
        result[name] = result.get(name, 0) + gas
    return result
