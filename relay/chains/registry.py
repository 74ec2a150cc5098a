"""The one place a chain `kind` becomes an adapter: config model and factories.

`CHAIN_FAMILIES` maps each `kind` to a package under `adapters/`; adding a chain family is adding
its folder and one line here. Each package provides two modules, imported by name (so the core
never imports `adapters`, nor web3, statically):

- `<package>.config`: `CHAIN_CONFIG`, the family's config model (a `ChainConfigBase` whose `kind`
  is the literal of its registry key). Kept free of chain libraries: it is imported with the
  registry, to build `ChainConfig`.
- `<package>.adapter`: the factories, imported when one is first called:
  - `create_watcher(chain, cursors, metrics) -> SourceWatcher`
  - `create_finality_source(chain, metrics) -> FinalitySource`
  - `create_destination(chain, private_key, metrics) -> DestinationChain`
  - `create_delivery_reader(chain, metrics) -> DeliveryReader` (the relayer's keyless view)
  - `create_payment_reader(chain, metrics) -> PaymentReader` (a source gateway's gas payments)
  - `create_gas_market_reader(chain, metrics) -> GasMarketReader` (a destination's gas price)

`ChainConfig` is the annotation role configs use for a chain: the union of every family's model,
discriminated by `kind`; a chain without `kind` is an `evm` one (`DEFAULT_KIND`), and an unknown
kind is an error naming the known ones. For type checkers it is `ChainConfigBase`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args

from pydantic import BeforeValidator, Field, TypeAdapter

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
from relay.errors import BackendUnavailable, ConfigurationError

if TYPE_CHECKING:
    from relay.metrics import RelayMetrics

CHAIN_FAMILIES: dict[str, str] = {
    "evm": "adapters.evm",
    "ethereum": "adapters.ethereum",
}
DEFAULT_KIND = "evm"


def _family(kind: str) -> str:
    try:
        return CHAIN_FAMILIES[kind]
    except KeyError:
        raise BackendUnavailable("unknown chain kind", kind=kind, known=sorted(CHAIN_FAMILIES)) from None


def config_model(kind: str) -> type[ChainConfigBase]:
    """The config model of the family registered for `kind`."""
    package = _family(kind)
    model = getattr(importlib.import_module(f"{package}.config"), "CHAIN_CONFIG", None)
    if not (isinstance(model, type) and issubclass(model, ChainConfigBase)):
        raise ConfigurationError("chain family has no CHAIN_CONFIG model", kind=kind, package=package)
    if get_args(model.model_fields["kind"].annotation) != (kind,):
        raise ConfigurationError(
            "chain family's model does not fix kind to its key", kind=kind, package=package
        )
    return model


def _fill_kind(data: Any) -> Any:
    """A chain mapping without `kind` is an `evm` chain; an unknown kind names the known ones."""
    if not isinstance(data, Mapping):
        return data
    kind = data.get("kind", DEFAULT_KIND)
    if not isinstance(kind, str) or kind not in CHAIN_FAMILIES:
        raise ValueError(f"unknown chain kind {kind!r}; known kinds: {', '.join(sorted(CHAIN_FAMILIES))}")
    return data if "kind" in data else {**data, "kind": DEFAULT_KIND}


def _chain_config_annotation() -> Any:
    models = tuple(config_model(kind) for kind in CHAIN_FAMILIES)
    if len(models) == 1:
        return Annotated[models[0], BeforeValidator(_fill_kind)]
    return Annotated[Union[models], Field(discriminator="kind"), BeforeValidator(_fill_kind)]  # noqa: UP007


if TYPE_CHECKING:
    ChainConfig = ChainConfigBase
else:
    ChainConfig = _chain_config_annotation()

_CHAIN_CONFIG_ADAPTER: TypeAdapter[ChainConfigBase] = TypeAdapter(ChainConfig)


def parse_chain_config(data: Mapping[str, Any]) -> ChainConfigBase:
    """Validate one chain's config mapping into its family's model (pydantic `ValidationError` if invalid)."""
    return _CHAIN_CONFIG_ADAPTER.validate_python(data)


def _adapter(kind: str) -> ModuleType:
    return importlib.import_module(f"{_family(kind)}.adapter")


def create_watcher(chain: ChainConfigBase, cursors: CursorStore, metrics: RelayMetrics) -> SourceWatcher:
    """A watcher for `chain`'s source gateway, keeping its cursor in `cursors`, counting on `metrics`."""
    return _adapter(chain.kind).create_watcher(chain, cursors, metrics)  # type: ignore[no-any-return]


def create_finality_source(chain: ChainConfigBase, metrics: RelayMetrics) -> FinalitySource:
    """What an attestor of `chain` believes final, counting its chain reads on `metrics`."""
    return _adapter(chain.kind).create_finality_source(chain, metrics)  # type: ignore[no-any-return]


def create_destination(chain: ChainConfigBase, private_key: str, metrics: RelayMetrics) -> DestinationChain:
    """A submitter's hold on `chain`'s gateway, signing with `private_key`, counting on `metrics`."""
    return _adapter(chain.kind).create_destination(chain, private_key, metrics)  # type: ignore[no-any-return]


def create_delivery_reader(chain: ChainConfigBase, metrics: RelayMetrics) -> DeliveryReader:
    """A read-only view of `chain`'s gateway's delivered flags (no key), counting on `metrics`."""
    return _adapter(chain.kind).create_delivery_reader(chain, metrics)  # type: ignore[no-any-return]


def create_payment_reader(chain: ChainConfigBase, metrics: RelayMetrics) -> PaymentReader:
    """A read-only view of the gas payments recorded by `chain`'s (source) gateway."""
    return _adapter(chain.kind).create_payment_reader(chain, metrics)  # type: ignore[no-any-return]


def create_committee_reader(chain: ChainConfigBase, metrics: RelayMetrics) -> CommitteeReader:
    """A read-only view of the committees `chain`'s gateway trusts (`committeeOf`, `currentCommittee`)."""
    return _adapter(chain.kind).create_committee_reader(chain, metrics)  # type: ignore[no-any-return]


def create_gas_market_reader(chain: ChainConfigBase, metrics: RelayMetrics) -> GasMarketReader:
    """A read-only view of `chain`'s gas price and block gas limit."""
    return _adapter(chain.kind).create_gas_market_reader(chain, metrics)  # type: ignore[no-any-return]


def create_light_client_origin(chain: ChainConfigBase, metrics: RelayMetrics) -> LightClientOrigin:
    """The relayer's view of light-client origin `chain` (beacon node + execution RPC, verified)."""
    return _adapter(chain.kind).create_light_client_origin(chain, metrics)  # type: ignore[no-any-return]


def create_light_client_reader(
    chain: ChainConfigBase, origin: int, metrics: RelayMetrics
) -> LightClientReader:
    """Destination `chain`'s light client of `origin` (`chain.light_client_origins`), read without a key."""
    return _adapter(chain.kind).create_light_client_reader(chain, origin, metrics)  # type: ignore[no-any-return]
