"""The `ethereum` family's factories: an EVM chain whose attestors trust no RPC endpoint.

The relayer's watcher and the submitter are the plain EVM ones (the relayer trusts nothing it
watches: it verifies the committee's certificate and the Merkle branch anyway). Only the attestor's
finality source differs: it is the light client (`adapters.ethereum.source`), which proves each
Dispatch log against a finalized execution header before the attestor may sign a root that covers it.
"""

from __future__ import annotations

from typing import Any

from adapters.ethereum.attestation import EnrolledCheckpoint, ProvenTreeFinalitySource
from adapters.ethereum.config import EthereumChainConfig, LightClientConfig
from adapters.ethereum.lightclient_origin import EthereumLightClientOrigin
from adapters.ethereum.source import EthereumFinalitySource
from adapters.ethereum.transport import HttpBeaconTransport, HttpExecutionTransport, ReplayTransport
from adapters.evm import adapter as evm
from relay.chains import (
    ChainConfigBase,
    CommitteeReader,
    CursorStore,
    DeliveryReader,
    DestinationChain,
    FinalitySource,
    GasMarketReader,
    PaymentReader,
    SourceWatcher,
)
from relay.chains.lightclient import LightClientOrigin, LightClientReader
from relay.errors import ConfigurationError
from relay.metrics import RelayMetrics
from relay.verify.bls import get_backend


def create_watcher(chain: ChainConfigBase, cursors: CursorStore, metrics: RelayMetrics) -> SourceWatcher:
    """The EVM watcher: the relayer verifies certificates itself, so it may read any RPC."""
    return evm.create_watcher(chain, cursors, metrics)


def create_destination(chain: ChainConfigBase, private_key: str, metrics: RelayMetrics) -> DestinationChain:
    """The EVM submitter."""
    return evm.create_destination(chain, private_key, metrics)


def create_delivery_reader(chain: ChainConfigBase, metrics: RelayMetrics) -> DeliveryReader:
    """The EVM delivery reader (the relayer's keyless view of the destination gateway)."""
    return evm.create_delivery_reader(chain, metrics)


def create_payment_reader(chain: ChainConfigBase, metrics: RelayMetrics) -> PaymentReader:
    """The EVM payment reader (the source gateway's `gasPaid`)."""
    return evm.create_payment_reader(chain, metrics)


def create_gas_market_reader(chain: ChainConfigBase, metrics: RelayMetrics) -> GasMarketReader:
    """The EVM gas market reader (`eth_gasPrice`, the latest block's gas limit)."""
    return evm.create_gas_market_reader(chain, metrics)


def create_committee_reader(chain: ChainConfigBase, metrics: RelayMetrics) -> CommitteeReader:
    """The EVM committee reader (the destination gateway's `committeeOf` / `currentCommittee`)."""
    return evm.create_committee_reader(chain, metrics)


def create_finality_source(chain: ChainConfigBase, metrics: RelayMetrics) -> FinalitySource:
    """The light-client finality source for an attestor of `chain`.

    It reads beacon and execution nodes through its own transports and counts nothing on
    `metrics` yet (its RPC calls are not `relay_rpc_*` ones).
    """
    ethereum = _ethereum_chain(chain, "the ethereum adapter needs an ethereum chain config")
    settings = ethereum.light_client
    source = EthereumFinalitySource(
        **_light_client_arguments(ethereum), allow_force_update=settings.allow_force_update
    )
    checkpoint = None
    if settings.checkpoint is not None:
        enrolled = settings.checkpoint
        checkpoint = EnrolledCheckpoint(
            block=enrolled.block,
            count=enrolled.count,
            root=bytes.fromhex(enrolled.root.removeprefix("0x")),
            frontier=tuple(bytes.fromhex(node.removeprefix("0x")) for node in enrolled.frontier),
        )
    return ProvenTreeFinalitySource(
        source,
        domain=chain.domain,
        start_block=chain.start_block,
        state_file=settings.state_file,
        checkpoint=checkpoint,
    )


def create_light_client_reader(
    chain: ChainConfigBase, origin: int, metrics: RelayMetrics
) -> LightClientReader:
    """The EVM light-client reader (a destination's `EthereumLightClient` of `origin`)."""
    return evm.create_light_client_reader(chain, origin, metrics)


def create_light_client_origin(chain: ChainConfigBase, metrics: RelayMetrics) -> LightClientOrigin:
    """The relayer's view of light-client origin `chain`: its `light_client` section's beacon node
    (`beacon_url`, or `replay_file`), execution RPC (`execution_url`, else the first `rpc_urls`),
    network and trusted block root."""
    ethereum = _ethereum_chain(chain, "verification lightclient needs an ethereum chain config")
    return EthereumLightClientOrigin(**_light_client_arguments(ethereum))


def _ethereum_chain(chain: ChainConfigBase, refusal: str) -> EthereumChainConfig:
    if not isinstance(chain, EthereumChainConfig):
        raise ConfigurationError(refusal, chain=chain.name, kind=chain.kind)
    return chain


def _light_client_arguments(chain: EthereumChainConfig) -> dict[str, Any]:
    """What both light-client views (finality source, relayer's origin) take from `light_client`:
    the beacon node (`beacon_url`, or `replay_file`), execution RPC (`execution_url`, else the
    first `rpc_urls`), network, trusted block root, BLS backend, and a fixed clock if configured."""
    settings = chain.light_client
    beacon: Any
    execution: Any
    if settings.replay_file:
        beacon = execution = ReplayTransport.from_file(settings.replay_file)
    else:
        beacon = HttpBeaconTransport(settings.beacon_url)
        execution = HttpExecutionTransport(settings.execution_url or chain.rpc_urls[0])
    arguments: dict[str, Any] = {
        "beacon": beacon,
        "execution": execution,
        "network": _network(settings),
        "trusted_block_root": bytes.fromhex(settings.trusted_block_root.removeprefix("0x")),
        "gateway": bytes.fromhex(chain.gateway.removeprefix("0x")),
        "origin_domain": chain.domain,
        "backend": get_backend(settings.bls_backend),
    }
    if settings.fixed_time is not None:
        fixed = float(settings.fixed_time)
        arguments["clock"] = lambda: fixed  # replaying a recording: the time it was recorded at
    return arguments


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
        spec,
        genesis_validators_root=bytes.fromhex(settings.genesis_validators_root.removeprefix("0x")),
        name=settings.network,
    )
