"""The official consensus-spec light-client sync test (minimal preset, Deneb), step by step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cramjam
import pytest
import yaml

from relay.errors import ConfigurationError
from relay.verify.bls import get_backend
from relay.verify.ethereum.codec import decode_bootstrap_ssz, decode_update_ssz
from relay.verify.ethereum.config import Fork, NetworkConfig, network_config_from_spec
from relay.verify.ethereum.containers import compute_beacon_block_root, compute_fork_data_root
from relay.verify.ethereum.errors import ForceUpdateDisabled
from relay.verify.ethereum.sync_protocol import LightClient
from relay.verify.ethereum.validation import compute_light_client_execution_root

from .conftest import SPEC_LC_SYNC


def read_yaml(name: str) -> Any:
    path = SPEC_LC_SYNC / name
    if not path.exists():
        pytest.fail(f"test vector missing: {path}")
    return yaml.safe_load(path.read_text())


def read_ssz(name: str) -> bytes:
    return bytes(cramjam.snappy.decompress_raw((SPEC_LC_SYNC / f"{name}.ssz_snappy").read_bytes()))


def spec_network() -> NetworkConfig:
    meta = read_yaml("meta.yaml")
    return network_config_from_spec(
        read_yaml("config.yaml"),
        genesis_validators_root=bytes.fromhex(meta["genesis_validators_root"][2:]),
        name="spec",
    )


def header_checks(client: LightClient, network: NetworkConfig, name: str) -> dict[str, Any]:
    header = getattr(client.store, name)
    return {
        "slot": header.beacon.slot,
        "beacon_root": "0x" + compute_beacon_block_root(header.beacon).hex(),
        "execution_root": "0x" + compute_light_client_execution_root(header, network).hex(),
    }


def test_config_gives_the_vectors_fork_digest() -> None:
    network = spec_network()
    meta = read_yaml("meta.yaml")
    assert network.preset.name == "minimal"
    digest = compute_fork_data_root(network.compute_fork_version(0), network.genesis_validators_root)[:4]
    assert "0x" + digest.hex() == meta["bootstrap_fork_digest"] == meta["store_fork_digest"]


def test_sync_steps_match_the_expected_headers() -> None:
    network = spec_network()
    meta = read_yaml("meta.yaml")
    bootstrap = decode_bootstrap_ssz(read_ssz("bootstrap"), Fork.DENEB, network.preset)
    client = LightClient.from_bootstrap(
        bytes.fromhex(meta["trusted_block_root"][2:]),
        bootstrap,
        network,
        get_backend("blst"),
        allow_force_update=True,
    )
    steps = read_yaml("steps.yaml")
    kinds = []
    for number, step in enumerate(steps):
        ((kind, body),) = step.items()
        kinds.append(kind)
        if kind == "process_update":
            update = decode_update_ssz(read_ssz(body["update"]), Fork.DENEB, network.preset)
            client.process_update(update, body["current_slot"])
        elif kind == "force_update":
            assert client.process_force_update(body["current_slot"]) is True
        else:
            pytest.fail(f"unexpected step kind {kind}")
        for name in ("finalized_header", "optimistic_header"):
            assert header_checks(client, network, name) == body["checks"][name], (
                f"step {number} ({kind}): {name}"
            )
    assert kinds.count("force_update") == 2 and kinds.count("process_update") == 8


def test_force_update_is_off_unless_configured() -> None:
    network = spec_network()
    meta = read_yaml("meta.yaml")
    bootstrap = decode_bootstrap_ssz(read_ssz("bootstrap"), Fork.DENEB, network.preset)
    client = LightClient.from_bootstrap(
        bytes.fromhex(meta["trusted_block_root"][2:]), bootstrap, network, get_backend("blst")
    )
    with pytest.raises(ForceUpdateDisabled):
        client.process_force_update(10_000)


def test_vector_files_are_all_used() -> None:
    steps = read_yaml("steps.yaml")
    used = {step["process_update"]["update"] for step in steps if "process_update" in step}
    on_disk = {
        Path(p.name).name.removesuffix(".ssz_snappy") for p in SPEC_LC_SYNC.glob("update_*.ssz_snappy")
    }
    assert used == on_disk


def test_config_may_resize_the_preset_but_only_sanely() -> None:
    """A local chain's config.yaml may override the preset's sizes (the simulated devnet does)."""
    meta = read_yaml("meta.yaml")
    root = bytes.fromhex(meta["genesis_validators_root"][2:])
    config = read_yaml("config.yaml")
    resized = network_config_from_spec(
        {**config, "EPOCHS_PER_SYNC_COMMITTEE_PERIOD": 4}, genesis_validators_root=root
    )
    assert resized.preset.name == "minimal-32x8x4"
    assert resized.preset.slots_per_sync_committee_period == 32
    for bad in (
        {"SYNC_COMMITTEE_SIZE": 33},
        {"SLOTS_PER_EPOCH": 0},
        {"EPOCHS_PER_SYNC_COMMITTEE_PERIOD": "x"},
    ):
        with pytest.raises(ConfigurationError):
            network_config_from_spec({**config, **bad}, genesis_validators_root=root)
