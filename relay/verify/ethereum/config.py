"""Presets and networks: the constants the light client needs to know which chain it follows.

A `Preset` holds the sizes compiled into the consensus specs (`mainnet` or `minimal`); a
`NetworkConfig` holds one chain's identity: its genesis validators root and its fork schedule
(version and activation epoch of each fork), which together fix the signing domain of the sync
committee. `MAINNET` is built in; any other chain comes from its consensus `config.yaml`
through `network_config_from_spec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from relay.errors import ConfigurationError

FAR_FUTURE_EPOCH = 2**64 - 1
DOMAIN_SYNC_COMMITTEE = bytes.fromhex("07000000")


@dataclass(frozen=True)
class Preset:
    """Sizes fixed by a consensus-spec preset."""

    name: str
    sync_committee_size: int
    slots_per_epoch: int
    epochs_per_sync_committee_period: int
    min_sync_committee_participants: int = 1
    max_extra_data_bytes: int = 32

    @property
    def slots_per_sync_committee_period(self) -> int:
        """Slots in one sync-committee period."""
        return self.slots_per_epoch * self.epochs_per_sync_committee_period

    @property
    def update_timeout(self) -> int:
        """Slots without finality after which the spec allows the (unsafe) force update."""
        return self.slots_per_sync_committee_period


MAINNET_PRESET = Preset(
    "mainnet", sync_committee_size=512, slots_per_epoch=32, epochs_per_sync_committee_period=256
)
MINIMAL_PRESET = Preset(
    "minimal", sync_committee_size=32, slots_per_epoch=8, epochs_per_sync_committee_period=8
)
PRESETS = {preset.name: preset for preset in (MAINNET_PRESET, MINIMAL_PRESET)}
PRESET_OVERRIDES = ("SYNC_COMMITTEE_SIZE", "SLOTS_PER_EPOCH", "EPOCHS_PER_SYNC_COMMITTEE_PERIOD")
"""Preset values a config may override, for local chains sized otherwise (e.g. a simulated devnet)."""


def customize_preset(
    base: Preset,
    *,
    sync_committee_size: int | None = None,
    slots_per_epoch: int | None = None,
    epochs_per_sync_committee_period: int | None = None,
) -> Preset:
    """`base` with other sizes, named after them (`minimal-512x8x4`); `base` itself if nothing changes."""
    size = base.sync_committee_size if sync_committee_size is None else sync_committee_size
    slots = base.slots_per_epoch if slots_per_epoch is None else slots_per_epoch
    epochs = (
        base.epochs_per_sync_committee_period
        if epochs_per_sync_committee_period is None
        else epochs_per_sync_committee_period
    )
    if (size, slots, epochs) == (
        base.sync_committee_size,
        base.slots_per_epoch,
        base.epochs_per_sync_committee_period,
    ):
        return base
    if size < 8 or size & (size - 1) or slots < 1 or epochs < 1:
        raise ConfigurationError(
            "a committee size is a power of two (at least 8), epochs and periods at least 1",
            sync_committee_size=size,
            slots_per_epoch=slots,
            epochs_per_sync_committee_period=epochs,
        )
    return Preset(
        f"{base.name}-{size}x{slots}x{epochs}",
        sync_committee_size=size,
        slots_per_epoch=slots,
        epochs_per_sync_committee_period=epochs,
        min_sync_committee_participants=base.min_sync_committee_participants,
        max_extra_data_bytes=base.max_extra_data_bytes,
    )


class Fork(IntEnum):
    """Consensus forks in activation order; the light client needs Altair or later."""

    PHASE0 = 0
    ALTAIR = 1
    BELLATRIX = 2
    CAPELLA = 3
    DENEB = 4
    ELECTRA = 5
    FULU = 6


@dataclass(frozen=True)
class ForkActivation:
    """One fork of a chain: its 4-byte version and the epoch it activates at."""

    fork: Fork
    version: bytes
    epoch: int


@dataclass(frozen=True)
class NetworkConfig:
    """One chain's identity for the light client."""

    name: str
    preset: Preset
    genesis_validators_root: bytes
    forks: tuple[ForkActivation, ...]
    genesis_time: int
    seconds_per_slot: int

    def __post_init__(self) -> None:
        if len(self.genesis_validators_root) != 32:
            raise ConfigurationError("genesis validators root must be 32 bytes", network=self.name)
        if not self.forks or self.forks[0].fork is not Fork.PHASE0 or self.forks[0].epoch != 0:
            raise ConfigurationError("the fork schedule must start with phase0 at epoch 0", network=self.name)
        for earlier, later in zip(self.forks, self.forks[1:], strict=False):
            if later.fork <= earlier.fork or later.epoch < earlier.epoch:
                raise ConfigurationError(
                    "the fork schedule must be in fork order with non-decreasing epochs",
                    network=self.name,
                    fork=later.fork.name.lower(),
                )
        for activation in self.forks:
            if len(activation.version) != 4:
                raise ConfigurationError("fork versions are 4 bytes", fork=activation.fork.name.lower())

    def compute_epoch_at_slot(self, slot: int) -> int:
        """The epoch of `slot`."""
        return slot // self.preset.slots_per_epoch

    def compute_sync_committee_period_at_slot(self, slot: int) -> int:
        """The sync-committee period of `slot`."""
        return slot // self.preset.slots_per_sync_committee_period

    def compute_fork_at_epoch(self, epoch: int) -> Fork:
        """The fork active at `epoch`."""
        return self._activation_at_epoch(epoch).fork

    def compute_fork_at_slot(self, slot: int) -> Fork:
        """The fork active at `slot`."""
        return self.compute_fork_at_epoch(self.compute_epoch_at_slot(slot))

    def compute_fork_version(self, epoch: int) -> bytes:
        """The fork version active at `epoch` (the spec's `compute_fork_version`)."""
        return self._activation_at_epoch(epoch).version

    def compute_slot_at_time(self, unix_time: float) -> int:
        """The slot that `unix_time` falls in (0 before genesis)."""
        return max(0, int(unix_time - self.genesis_time) // self.seconds_per_slot)

    def fork_epoch(self, fork: Fork) -> int:
        """The activation epoch of `fork`, `FAR_FUTURE_EPOCH` if it is not scheduled."""
        for activation in self.forks:
            if activation.fork is fork:
                return activation.epoch
        return FAR_FUTURE_EPOCH

    def _activation_at_epoch(self, epoch: int) -> ForkActivation:
        current = self.forks[0]
        for activation in self.forks[1:]:
            if epoch >= activation.epoch:
                current = activation
        return current


MAINNET = NetworkConfig(
    name="mainnet",
    preset=MAINNET_PRESET,
    genesis_validators_root=bytes.fromhex("4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"),
    forks=(
        ForkActivation(Fork.PHASE0, bytes.fromhex("00000000"), 0),
        ForkActivation(Fork.ALTAIR, bytes.fromhex("01000000"), 74240),
        ForkActivation(Fork.BELLATRIX, bytes.fromhex("02000000"), 144896),
        ForkActivation(Fork.CAPELLA, bytes.fromhex("03000000"), 194048),
        ForkActivation(Fork.DENEB, bytes.fromhex("04000000"), 269568),
        ForkActivation(Fork.ELECTRA, bytes.fromhex("05000000"), 364032),
        ForkActivation(Fork.FULU, bytes.fromhex("06000000"), 411392),
    ),
    genesis_time=1606824023,
    seconds_per_slot=12,
)

NETWORKS = {MAINNET.name: MAINNET}
"""Built-in networks by name; others are loaded from their consensus `config.yaml`."""


def get_network(name: str) -> NetworkConfig:
    """Return the built-in network called `name` or raise `ConfigurationError`."""
    try:
        return NETWORKS[name]
    except KeyError:
        raise ConfigurationError(f"unknown network {name!r}", network=name, known=sorted(NETWORKS)) from None


def network_config_from_spec(
    config: Mapping[str, Any],
    *,
    genesis_validators_root: bytes,
    name: str = "custom",
    genesis_time: int | None = None,
) -> NetworkConfig:
    """Build a `NetworkConfig` from a consensus-spec `config.yaml` mapping.

    Values may be YAML integers or hex strings (YAML reads `0x01000000` as an integer). Forks
    scheduled at `FAR_FUTURE_EPOCH` are left out. `SYNC_COMMITTEE_SIZE`, `SLOTS_PER_EPOCH` and
    `EPOCHS_PER_SYNC_COMMITTEE_PERIOD`, if present, override the preset's (`customize_preset`).
    """
    preset_name = str(config.get("PRESET_BASE", "mainnet")).strip("'\"")
    if preset_name not in PRESETS:
        raise ConfigurationError(f"unknown preset {preset_name!r}", preset=preset_name)
    try:
        sizes = [int(config[key]) if key in config else None for key in PRESET_OVERRIDES]
    except (TypeError, ValueError):
        raise ConfigurationError("preset overrides are integers", keys=list(PRESET_OVERRIDES)) from None
    preset = customize_preset(
        PRESETS[preset_name],
        sync_committee_size=sizes[0],
        slots_per_epoch=sizes[1],
        epochs_per_sync_committee_period=sizes[2],
    )
    forks = [ForkActivation(Fork.PHASE0, _fork_version(config, "GENESIS_FORK_VERSION"), 0)]
    for fork in list(Fork)[1:]:
        epoch_key = f"{fork.name}_FORK_EPOCH"
        if epoch_key not in config:
            continue
        epoch = int(config[epoch_key])
        if epoch >= FAR_FUTURE_EPOCH:
            continue
        forks.append(ForkActivation(fork, _fork_version(config, f"{fork.name}_FORK_VERSION"), epoch))
    time = genesis_time
    if time is None:
        time = int(config.get("MIN_GENESIS_TIME", 0)) + int(config.get("GENESIS_DELAY", 0))
    return NetworkConfig(
        name=name,
        preset=preset,
        genesis_validators_root=genesis_validators_root,
        forks=tuple(forks),
        genesis_time=time,
        seconds_per_slot=int(config.get("SECONDS_PER_SLOT", 12)),
    )


def _fork_version(config: Mapping[str, Any], key: str) -> bytes:
    if key not in config:
        raise ConfigurationError(f"config has no {key}", key=key)
    value = config[key]
    if isinstance(value, int):
        return value.to_bytes(4, "big")
    text = str(value)
    try:
        version = bytes.fromhex(text[2:] if text.startswith("0x") else text)
    except ValueError:
        raise ConfigurationError(f"{key} is not hex", key=key, value=text) from None
    if len(version) != 4:
        raise ConfigurationError(f"{key} must be 4 bytes", key=key, value=text)
    return version
