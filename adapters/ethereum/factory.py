"""`kind: ethereum`: an EVM chain whose attestors trust no RPC endpoint.

The relayer's watcher and the submitter are the plain EVM ones (the relayer trusts nothing it
watches: it verifies the committee's certificate and the Merkle branch anyway). Only the attestor's
finality source differs: it is the light client (`relay.lightclient`), which proves each Dispatch
log against a finalized execution header before the attestor may sign a root that covers it.
"""

from __future__ import annotations

from typing import Any

from relay.chains import CursorStore, DestinationChain, FinalitySource, SourceWatcher
from relay.config import ChainConfig, LightClientConfig
from relay.errors import ConfigurationError
from relay.lightclient.attestation import ProvenTreeFinalitySource
from relay.lightclient.source import EthereumFinalitySource
from relay.lightclient.transport import HttpBeaconTransport, HttpExecutionTransport, ReplayTransport
from relay.verify.bls import get_backend


def create_watcher(chain: ChainConfig, cursors: CursorStore) -> SourceWatcher:
    """The EVM watcher: the relayer verifies certificates itself, so it may read any RPC."""
    from adapters.evm import factory

    return factory.create_watcher(chain, cursors)


def create_destination(chain: ChainConfig, private_key: str) -> DestinationChain:
    """The EVM submitter."""
    from adapters.evm import factory

    return factory.create_destination(chain, private_key)


def create_finality_source(chain: ChainConfig) -> FinalitySource:
    """The light-client finality source for an attestor of `chain`."""
    settings = chain.light_client
    if settings is None:
        raise ConfigurationError("kind ethereum needs a light_client section", chain=chain.name)
    beacon: Any
    execution: Any
    if settings.replay_file:
        beacon = execution = ReplayTransport.from_file(settings.replay_file)
    else:
        beacon = HttpBeaconTransport(settings.beacon_url)
        execution = HttpExecutionTransport(settings.execution_url or chain.rpc_urls[0])
    extra: dict[str, Any] = {}
    if settings.fixed_time is not None:
        fixed = float(settings.fixed_time)
        extra["clock"] = lambda: fixed  # replaying a recording: the time it was recorded at
    source = EthereumFinalitySource(
        beacon, execution, network=_network(settings),
        trusted_block_root=bytes.fromhex(settings.trusted_block_root.removeprefix("0x")),
        gateway=bytes.fromhex(chain.gateway.removeprefix("0x")), origin_domain=chain.domain,
        backend=get_backend(settings.bls_backend), allow_force_update=settings.allow_force_update, **extra,
    )
    return ProvenTreeFinalitySource(source, domain=chain.domain, start_block=chain.start_block)


def _network(settings: LightClientConfig) -> Any:
    from relay.verify.ethereum.config import get_network, network_config_from_spec

    if settings.network_config is None:
        return get_network(settings.network)
    import yaml

    with open(settings.network_config) as handle:
        spec = yaml.safe_load(handle)
    if settings.genesis_validators_root is None:
        raise ConfigurationError("network_config needs genesis_validators_root", chain=settings.network)
    return network_config_from_spec(
        spec, genesis_validators_root=bytes.fromhex(settings.genesis_validators_root.removeprefix("0x")),
        name=settings.network,
    )
