"""Real mainnet light-client data (Capella, periods 862-867): bootstrap, six updates, finality, optimistic."""

from __future__ import annotations

import pytest

from relay.verify.bls import get_backend
from relay.verify.ethereum.committee_keys import SyncCommitteeKeyCache
from relay.verify.ethereum.config import MAINNET
from relay.verify.ethereum.containers import compute_beacon_block_root
from relay.verify.ethereum.errors import InvalidTrustedRoot
from relay.verify.ethereum.sync_protocol import LightClient

from .conftest import CURRENT_SLOT, MAINNET_LC, MainnetVectors, read_json


def period(slot: int) -> int:
    return MAINNET.compute_sync_committee_period_at_slot(slot)


def test_updates_cover_periods_862_to_867(mainnet: MainnetVectors) -> None:
    assert [period(u.attested_header.beacon.slot) for u in mainnet.updates] == [862, 863, 864, 865, 866, 867]
    assert period(mainnet.bootstrap.header.beacon.slot) == 862


def test_full_sync_with_blst_reaches_the_finality_update_header(mainnet: MainnetVectors) -> None:
    backend = get_backend("blst")
    client = LightClient.from_bootstrap(mainnet.trusted_root, mainnet.bootstrap, MAINNET, backend)
    outcomes = [client.process_update(update, CURRENT_SLOT) for update in mainnet.updates]

    # The first update (same period as the bootstrap) only teaches the next committee;
    # each later one crosses into its period and finalizes a header there.
    assert outcomes[0].next_sync_committee_learned and not outcomes[0].finalized_advanced
    assert all(o.period_advanced and o.finalized_advanced for o in outcomes[1:])
    assert client.current_period() == 867
    assert client.finalized_header == mainnet.updates[-1].finalized_header

    finality = client.process_finality_update(mainnet.finality, CURRENT_SLOT)
    assert finality.finalized_advanced
    expected = read_json(MAINNET_LC / "finality.json")["data"]["finalized_header"]
    assert client.finalized_header == mainnet.finality.finalized_header
    assert client.finalized_header.beacon.slot == int(expected["beacon"]["slot"])
    assert client.finalized_header.execution.block_number == int(expected["execution"]["block_number"])
    assert "0x" + client.finalized_header.execution.block_hash.hex() == expected["execution"]["block_hash"]

    optimistic = client.process_optimistic_update(mainnet.optimistic, CURRENT_SLOT)
    assert optimistic.optimistic_advanced and not optimistic.finalized_advanced
    assert client.optimistic_header == mainnet.optimistic.attested_header
    assert client.finalized_header == mainnet.finality.finalized_header


def test_committee_keys_are_decoded_once_per_period(mainnet: MainnetVectors) -> None:
    keys = SyncCommitteeKeyCache(get_backend("blst"))
    client = LightClient.from_bootstrap(
        mainnet.trusted_root, mainnet.bootstrap, MAINNET, keys.backend, keys=keys
    )
    for update in mainnet.updates:
        client.process_update(update, CURRENT_SLOT)
    assert keys.decoded_committees == 6  # the committees of periods 862..867, each once
    client.process_finality_update(mainnet.finality, CURRENT_SLOT)
    client.process_optimistic_update(mainnet.optimistic, CURRENT_SLOT)
    assert keys.decoded_committees == 6  # period 867 again: served from the cache


def test_bootstrap_must_match_the_trusted_root(mainnet: MainnetVectors) -> None:
    other_root = compute_beacon_block_root(mainnet.updates[0].attested_header.beacon)
    with pytest.raises(InvalidTrustedRoot) as error:
        LightClient.from_bootstrap(other_root, mainnet.bootstrap, MAINNET, get_backend("blst"))
    assert error.value.check == "trusted_block_root"
    assert error.value.fields["trusted_block_root"] == other_root


@pytest.mark.slow
def test_py_ecc_backend_processes_one_real_update(mainnet: MainnetVectors) -> None:
    """The reference backend on one update: decoding 512 keys in pure Python takes ~10 s."""
    client = LightClient.from_bootstrap(
        mainnet.trusted_root, mainnet.bootstrap, MAINNET, get_backend("py_ecc")
    )
    outcome = client.process_update(mainnet.updates[0], CURRENT_SLOT)
    assert outcome.next_sync_committee_learned
    assert client.store.next_sync_committee == mainnet.updates[0].next_sync_committee
    assert client.store == mainnet.stores[1]
