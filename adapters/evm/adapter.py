"""The EVM family's factories, called by `relay.chains.registry` for `kind: evm` chains.

Each gets the role's `relay.metrics.RelayMetrics` at construction, so RPC calls, retries, chain
progress, reorgs, gas and balances are counted from the first call.
"""

from __future__ import annotations

from adapters.evm.committees import EvmCommitteeReader
from adapters.evm.config import EvmCompatibleChainConfig
from adapters.evm.delivery import EvmDeliveryReader
from adapters.evm.economics import EvmGasMarketReader, EvmPaymentReader
from adapters.evm.finality import EvmFinalitySource
from adapters.evm.lightclient_reads import EvmLightClientReader
from adapters.evm.submitter import EvmDestination
from adapters.evm.watcher import EvmWatcher
from relay.chains import ChainConfigBase, CursorStore
from relay.errors import ConfigurationError
from relay.metrics import RelayMetrics


def evm_chain(chain: ChainConfigBase) -> EvmCompatibleChainConfig:
    """`chain` as an EVM-compatible config; `ConfigurationError` if another family's model came here."""
    if not isinstance(chain, EvmCompatibleChainConfig):
        raise ConfigurationError(
            "the EVM adapter needs an EVM chain config", chain=chain.name, kind=chain.kind
        )
    return chain


def create_watcher(chain: ChainConfigBase, cursors: CursorStore, metrics: RelayMetrics) -> EvmWatcher:
    """A Dispatch watcher for `chain`'s gateway, keeping its cursor in `cursors`."""
    return EvmWatcher(evm_chain(chain), cursors, metrics=metrics)


def create_finality_source(chain: ChainConfigBase, metrics: RelayMetrics) -> EvmFinalitySource:
    """What an attestor of `chain` believes final (every rpc_url must agree)."""
    return EvmFinalitySource(evm_chain(chain), metrics=metrics)


def create_destination(chain: ChainConfigBase, private_key: str, metrics: RelayMetrics) -> EvmDestination:
    """A submitter's hold on `chain`'s gateway, sending from the account of `private_key`."""
    return EvmDestination(evm_chain(chain), private_key, metrics=metrics)


def create_delivery_reader(chain: ChainConfigBase, metrics: RelayMetrics) -> EvmDeliveryReader:
    """The relayer's keyless view of `chain`'s gateway: `delivered(origin, nonce)` flags."""
    return EvmDeliveryReader(evm_chain(chain), metrics)


def create_payment_reader(chain: ChainConfigBase, metrics: RelayMetrics) -> EvmPaymentReader:
    """The relayer's keyless view of `chain`'s (source) gateway gas payments: `gasPaid(id)`."""
    return EvmPaymentReader(evm_chain(chain), metrics)


def create_gas_market_reader(chain: ChainConfigBase, metrics: RelayMetrics) -> EvmGasMarketReader:
    """The relayer's keyless view of `chain`'s gas price and block gas limit."""
    return EvmGasMarketReader(evm_chain(chain), metrics)


def create_committee_reader(chain: ChainConfigBase, metrics: RelayMetrics) -> EvmCommitteeReader:
    """A keyless view of the committees `chain`'s gateway trusts (`committeeOf`, `currentCommittee`)."""
    return EvmCommitteeReader(evm_chain(chain), metrics)


def create_light_client_reader(
    chain: ChainConfigBase, origin: int, metrics: RelayMetrics
) -> EvmLightClientReader:
    """The relayer's keyless view of `chain`'s light client of `origin` (`chain.light_client_origins`)."""
    return EvmLightClientReader(evm_chain(chain), origin, metrics)


def create_light_client_origin(chain: ChainConfigBase, metrics: RelayMetrics) -> object:
    """Refused: a light-client origin is `kind: ethereum` (the relayer config checks it first)."""
    raise ConfigurationError(
        "verification lightclient needs kind ethereum", chain=chain.name, kind=chain.kind
    )
