"""`SimulatedBeaconChain`: a beacon chain made up around a real execution chain (anvil).

One beacon slot per execution block: slot `s` carries execution block `s`, whose payload header
is copied field by field from the node's real header (block number and hash, parent hash, state,
receipts and transactions roots, logs bloom, gas, timestamp, ...), after checking that those
fields hash to the block hash the node claims. Beacon blocks chain by parent root; each block's
state holds the finalized checkpoint (the first block of the epoch `finality_delay_epochs` back,
or the zero genesis checkpoint before that) and the sync committees of its period and the next.

Committees change every sync-committee period; their secret keys are derived from a public seed,
so the chain can sign anything: this is what is simulated, and why a devnet built on it proves
the relay's mechanics, not Ethereum's consensus. Updates are signed over the real signing root
(fork version of `signature_slot - 1`, genesis validators root) by a chosen share of the
committee (`participation`). A forged update is the same update signed by keys of another seed.

The chain reads the node lazily (each request extends it to the node's head) and is thread safe.
Its clock is the node's: slot `s` starts at `genesis_time + s * seconds_per_slot`, with the genesis
time of execution block 0, so with one block every `seconds_per_slot` seconds no slot it signs
lies in a verifier's future.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.ethereum.transport import ExecutionTransport
from relay.errors import ConfigurationError, NotYetAvailable, RelayError
from relay.tools.beacon_sim.builders import (
    Committee,
    State,
    make_committee,
    make_light_client_header,
    make_network,
    make_state,
    make_sync_aggregate,
)
from relay.verify.bls import BlsBackend
from relay.verify.ethereum.config import MINIMAL_PRESET, Fork, NetworkConfig, Preset, customize_preset
from relay.verify.ethereum.containers import (
    ZERO_ROOT,
    ExecutionPayloadHeader,
    LightClientBootstrap,
    LightClientFinalityUpdate,
    LightClientHeader,
    LightClientOptimisticUpdate,
    LightClientUpdate,
    compute_beacon_block_root,
    compute_sync_committee_root,
)
from relay.verify.ethereum.execution import parse_block_header, verify_block_hash
from relay.verify.ethereum.execution_encoding import parse_quantity

SIMULATED_GENESIS_VALIDATORS_ROOT = hashlib.sha256(b"relay simulated beacon chain").digest()
DEFAULT_COMMITTEE_SEED = "relay-beacon-sim"
FORGED_COMMITTEE_SEED = "relay-beacon-sim/forged"
DEFAULT_FINALITY_DELAY_EPOCHS = 2
"""Epochs between a block and its finalization, as on Ethereum when every validator votes."""


class UnknownBlockRoot(NotYetAvailable):
    """The simulated chain has no block with this root (yet)."""


class SimulationDiverged(RelayError):
    """The execution node's chain no longer extends the blocks the simulation already built (a reorg)."""


def simulated_preset(
    committee_size: int = MINIMAL_PRESET.sync_committee_size,
    epochs_per_sync_committee_period: int = MINIMAL_PRESET.epochs_per_sync_committee_period,
    slots_per_epoch: int = MINIMAL_PRESET.slots_per_epoch,
) -> Preset:
    """The minimal preset, or a variant of it (512 members for gas figures, shorter periods for a devnet)."""
    return customize_preset(
        MINIMAL_PRESET,
        sync_committee_size=committee_size,
        slots_per_epoch=slots_per_epoch,
        epochs_per_sync_committee_period=epochs_per_sync_committee_period,
    )


def simulated_network(
    genesis_time: int, seconds_per_slot: int = 1, preset: Preset = MINIMAL_PRESET, fork: Fork = Fork.ELECTRA
) -> NetworkConfig:
    """The simulated chain's identity: every fork up to `fork` (Electra) active from genesis."""
    if fork < Fork.CAPELLA:
        raise ConfigurationError("the simulated chain carries execution payloads: Capella or later")
    return make_network(
        fork,
        preset,
        name="beacon-sim",
        genesis_validators_root=SIMULATED_GENESIS_VALIDATORS_ROOT,
        genesis_time=genesis_time,
        seconds_per_slot=seconds_per_slot,
    )


def network_spec_config(network: NetworkConfig) -> dict[str, Any]:
    """`network` as a consensus `config.yaml` mapping, which `network_config_from_spec` reads back.

    What an operator of a light-client origin on the simulated chain puts in `network_config`
    (with the genesis validators root beside it).
    """
    preset = network.preset
    base = preset.name.split("-")[0]
    config: dict[str, Any] = {
        "PRESET_BASE": base,
        "SYNC_COMMITTEE_SIZE": preset.sync_committee_size,
        "SLOTS_PER_EPOCH": preset.slots_per_epoch,
        "EPOCHS_PER_SYNC_COMMITTEE_PERIOD": preset.epochs_per_sync_committee_period,
        "MIN_GENESIS_TIME": network.genesis_time,
        "GENESIS_DELAY": 0,
        "SECONDS_PER_SLOT": network.seconds_per_slot,
        "GENESIS_FORK_VERSION": "0x" + network.forks[0].version.hex(),
    }
    for activation in network.forks[1:]:
        config[f"{activation.fork.name}_FORK_VERSION"] = "0x" + activation.version.hex()
        config[f"{activation.fork.name}_FORK_EPOCH"] = activation.epoch
    return config


def execution_payload_from_block(block: Mapping[str, Any]) -> ExecutionPayloadHeader:
    """The execution payload header of an `eth_getBlockBy*` answer, its fields checked against its hash."""
    header = parse_block_header(block)
    block_hash = verify_block_hash(header)
    values = dict(header.fields)

    def data(name: str, default: bytes = ZERO_ROOT) -> bytes:
        value = values.get(name, default)
        return value if isinstance(value, bytes) else default

    def quantity(name: str) -> int:
        value = values.get(name, 0)
        return value if isinstance(value, int) else 0

    return ExecutionPayloadHeader(
        parent_hash=header.parent_hash,
        fee_recipient=data("miner"),
        state_root=header.state_root,
        receipts_root=header.receipts_root,
        logs_bloom=data("logsBloom"),
        prev_randao=data("mixHash"),
        block_number=header.number,
        gas_limit=quantity("gasLimit"),
        gas_used=quantity("gasUsed"),
        timestamp=quantity("timestamp"),
        extra_data=data("extraData", b""),
        base_fee_per_gas=quantity("baseFeePerGas"),
        block_hash=block_hash,
        transactions_root=header.transactions_root,
        withdrawals_root=data("withdrawalsRoot"),
        blob_gas_used=quantity("blobGasUsed"),
        excess_blob_gas=quantity("excessBlobGas"),
    )


@dataclass(frozen=True)
class SimulatedBlock:
    """One beacon block of the simulation: its light-client header, root and reduced state."""

    header: LightClientHeader
    root: bytes
    state: State
    finalized_slot: int
    """The slot of the state's finalized checkpoint; 0 stands for the zero genesis checkpoint."""


class SimulatedBeaconChain:
    """Beacon blocks, states, committees and light-client objects for a real execution chain."""

    def __init__(
        self,
        execution: ExecutionTransport,
        network: NetworkConfig,
        backend: BlsBackend,
        *,
        committee_seed: str = DEFAULT_COMMITTEE_SEED,
        participation: float = 1.0,
        finality_delay_epochs: int = DEFAULT_FINALITY_DELAY_EPOCHS,
    ) -> None:
        preset = network.preset
        if network.compute_fork_at_slot(0) < Fork.CAPELLA:
            raise ConfigurationError("the simulated chain starts at Capella or later", network=network.name)
        if not 1 <= finality_delay_epochs < preset.epochs_per_sync_committee_period:
            # Otherwise no update could finalize a block of its own period, and committees never rotate.
            raise ConfigurationError(
                "finality delay must be at least 1 epoch and shorter than a period",
                finality_delay_epochs=finality_delay_epochs,
                epochs_per_period=preset.epochs_per_sync_committee_period,
            )
        self.execution = execution
        self.network = network
        self.backend = backend
        self.committee_seed = committee_seed
        self.participation = _check_participation(participation)
        self.finality_delay_epochs = finality_delay_epochs
        self.serve_forged = False
        """When set, every update this chain hands out is signed by the wrong keys (refusal tests)."""
        self._lock = threading.RLock()
        self._blocks: list[SimulatedBlock] = []
        self._slot_by_root: dict[bytes, int] = {}
        self._committees: dict[str, Committee] = {}
        self._committee_roots: dict[str, bytes] = {}

    @classmethod
    def follow(
        cls,
        execution: ExecutionTransport,
        backend: BlsBackend,
        *,
        seconds_per_slot: int = 1,
        preset: Preset = MINIMAL_PRESET,
        **options: Any,
    ) -> SimulatedBeaconChain:
        """A chain for the node behind `execution`, its genesis time that of execution block 0."""
        genesis = execution.call("eth_getBlockByNumber", ["0x0", False])
        genesis_time = parse_quantity(
            genesis.get("timestamp") if isinstance(genesis, dict) else None, what="genesis timestamp"
        )
        network = simulated_network(genesis_time, seconds_per_slot, preset)
        return cls(execution, network, backend, **options)

    # --- committees -----------------------------------------------------------------------------------------

    @property
    def preset(self) -> Preset:
        """The sizes of the simulated chain."""
        return self.network.preset

    def committee(self, period: int, *, forged: bool = False) -> Committee:
        """The sync committee of `period` with its secret keys (or the impostors' when `forged`)."""
        seed = f"{FORGED_COMMITTEE_SEED if forged else self.committee_seed}/period/{period}"
        with self._lock:
            if seed not in self._committees:
                made = make_committee(self.backend, seed, self.preset.sync_committee_size)
                self._committees[seed] = made
                self._committee_roots[seed] = compute_sync_committee_root(made.committee)
            return self._committees[seed]

    def _committee_root(self, period: int) -> bytes:
        self.committee(period)
        return self._committee_roots[f"{self.committee_seed}/period/{period}"]

    def participants(self, signature_slot: int, participation: float | None = None) -> list[int]:
        """The members who sign at `signature_slot`: a share `participation`, a different set each slot."""
        share = self.participation if participation is None else _check_participation(participation)
        size = self.preset.sync_committee_size
        count = math.ceil(size * share - 1e-9)
        order = sorted(range(size), key=lambda i: hashlib.sha256(f"{signature_slot}/{i}".encode()).digest())
        return sorted(order[:count])

    # --- following the execution chain ------------------------------------------------------------------------

    def head_slot(self) -> int:
        """The slot of the execution node's latest block, after building every block up to it."""
        head = parse_quantity(self.execution.call("eth_blockNumber", []), what="eth_blockNumber")
        self._extend_to(head)
        return head

    def block(self, slot: int) -> SimulatedBlock:
        """The beacon block at `slot` (built up to it first; `NotYetAvailable` past the node's head)."""
        with self._lock:
            if slot < len(self._blocks):
                return self._blocks[slot]
        if slot > self.head_slot():
            raise NotYetAvailable("no execution block for this slot yet", slot=slot)
        return self._blocks[slot]

    def _extend_to(self, slot: int) -> None:
        with self._lock:
            while len(self._blocks) <= slot:
                self._blocks.append(self._build(len(self._blocks)))
                self._slot_by_root[self._blocks[-1].root] = len(self._blocks) - 1

    def _build(self, slot: int) -> SimulatedBlock:
        answer = self.execution.call("eth_getBlockByNumber", [hex(slot), False])
        payload = execution_payload_from_block(answer)
        if payload.block_number != slot:
            raise SimulationDiverged("node answered another block", asked=slot, got=payload.block_number)
        parent = self._blocks[slot - 1] if slot else None
        if parent is not None and payload.parent_hash != parent.header.execution.block_hash:
            raise SimulationDiverged(
                "execution block does not extend the simulated chain (reorg below the followed head)",
                slot=slot,
                parent_hash=payload.parent_hash,
                expected=parent.header.execution.block_hash,
            )
        network = self.network
        period = network.compute_sync_committee_period_at_slot(slot)
        finalized_epoch = max(0, network.compute_epoch_at_slot(slot) - self.finality_delay_epochs)
        finalized_slot = finalized_epoch * self.preset.slots_per_epoch
        finalized_root = self._blocks[finalized_slot].root if finalized_epoch else ZERO_ROOT
        current, next_ = self.committee(period), self.committee(period + 1)
        state = make_state(
            slot,
            network,
            current.committee,
            next_.committee,
            finalized_root,
            finalized_epoch,
            current_root=self._committee_root(period),
            next_root=self._committee_root(period + 1),
        )
        header = make_light_client_header(
            slot, state.root, payload, network, parent.root if parent is not None else ZERO_ROOT
        )
        return SimulatedBlock(header, compute_beacon_block_root(header.beacon), state, finalized_slot)

    # --- light-client objects ---------------------------------------------------------------------------------

    def block_root(self, slot: int) -> bytes:
        """The beacon block root at `slot`."""
        return self.block(slot).root

    def checkpoint_slot(self) -> int:
        """A slot to trust: the head's finalized checkpoint, or before any, the head's epoch boundary."""
        head = self.block(self.head_slot())
        if head.finalized_slot:
            return head.finalized_slot
        return self.network.compute_epoch_at_slot(head.header.beacon.slot) * self.preset.slots_per_epoch

    def bootstrap(self, block_root: bytes) -> LightClientBootstrap:
        """The `LightClientBootstrap` of the block with root `block_root`."""
        self.head_slot()
        with self._lock:
            slot = self._slot_by_root.get(block_root)
        if slot is None:
            raise UnknownBlockRoot("no simulated block has this root", block_root=block_root)
        block = self.block(slot)
        return LightClientBootstrap(
            block.header, self.committee(self._period(slot)).committee, block.state.current_branch
        )

    def update(
        self,
        attested_slot: int,
        signature_slot: int,
        *,
        participation: float | None = None,
        forged: bool | None = None,
    ) -> LightClientUpdate:
        """The full update for `attested_slot` signed at `signature_slot`: finality and next committee."""
        if not 0 <= attested_slot < signature_slot:
            raise ConfigurationError(
                "the signature slot follows the attested slot",
                attested_slot=attested_slot,
                signature_slot=signature_slot,
            )
        attested = self.block(attested_slot)
        signed = self.block(signature_slot)  # the block that includes the aggregate must exist
        if attested.finalized_slot:
            finalized_header = self.block(attested.finalized_slot).header
        else:
            finalized_header = LightClientHeader()  # the genesis checkpoint: an empty header
        forge = self.serve_forged if forged is None else forged
        committee = self.committee(self._period(signature_slot), forged=forge)
        aggregate = make_sync_aggregate(
            self.backend,
            committee,
            attested.header.beacon,
            signed.header.beacon.slot,
            self.network,
            self.participants(signature_slot, participation),
        )
        return LightClientUpdate(
            attested_header=attested.header,
            next_sync_committee=self.committee(self._period(attested_slot) + 1).committee,
            next_sync_committee_branch=attested.state.next_branch,
            finalized_header=finalized_header,
            finality_branch=attested.state.finality_branch,
            sync_aggregate=aggregate,
            signature_slot=signature_slot,
        )

    def update_for_period(self, period: int, **options: Any) -> LightClientUpdate | None:
        """The best update of `period` so far (None before its second slot): attested and signed in it.

        Signed at the period's last slot once it is over (or at the head before), it carries the
        next committee and the latest finality the period's own committee can vouch for.
        """
        size = self.preset.slots_per_sync_committee_period
        first = period * size
        head = self.head_slot()
        signature_slot = min(head, first + size - 1)
        if signature_slot < first + 1:
            return None
        return self.update(signature_slot - 1, signature_slot, **options)

    def updates(self, start_period: int, count: int, **options: Any) -> list[LightClientUpdate]:
        """The best updates of `count` periods from `start_period`, as far as the chain has them."""
        found = []
        for period in range(start_period, start_period + count):
            update = self.update_for_period(period, **options)
            if update is None:
                break
            found.append(update)
        return found

    def latest_update(self, **options: Any) -> LightClientUpdate:
        """The update of the head: attested at the slot before it, signed at it."""
        head = self.head_slot()
        if head < 1:
            raise NotYetAvailable("the chain has no block to attest yet", head=head)
        return self.update(head - 1, head, **options)

    def finality_update(self, **options: Any) -> LightClientFinalityUpdate:
        """The latest `LightClientFinalityUpdate`."""
        update = self.latest_update(**options)
        return LightClientFinalityUpdate(
            attested_header=update.attested_header,
            finalized_header=update.finalized_header,
            finality_branch=update.finality_branch,
            sync_aggregate=update.sync_aggregate,
            signature_slot=update.signature_slot,
        )

    def optimistic_update(self, **options: Any) -> LightClientOptimisticUpdate:
        """The latest `LightClientOptimisticUpdate`."""
        update = self.latest_update(**options)
        return LightClientOptimisticUpdate(
            attested_header=update.attested_header,
            sync_aggregate=update.sync_aggregate,
            signature_slot=update.signature_slot,
        )

    def forged_update(self, **options: Any) -> LightClientUpdate:
        """The head's update signed by a committee of the wrong keys: every verifier must refuse it."""
        return self.latest_update(forged=True, **options)

    def _period(self, slot: int) -> int:
        return self.network.compute_sync_committee_period_at_slot(slot)


def _check_participation(share: float) -> float:
    if not 0 < share <= 1:
        raise ConfigurationError("participation is a share in (0, 1]", participation=share)
    return share
