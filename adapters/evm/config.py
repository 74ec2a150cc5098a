"""The config model of EVM chains (`kind: evm`), registered in `relay.chains.registry`.

Free of web3 on purpose: the registry imports it with every role's config, and only a chain that
is actually used loads the chain libraries (`adapters.evm.adapter`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from relay.chains import ChainConfigBase
from relay.config import StrictModel
from relay.verify.message import address_to_bytes32

_ADDRESS = re.compile(r"(0x)?[0-9a-fA-F]{40}")


class SubmissionConfig(StrictModel):
    """How a submitter's delivery transactions land (`chain.submission`; used by submitters only).

    A transaction without a receipt `stuck_after` seconds after it was (re)sent is replaced: the
    same nonce, `maxFeePerGas` and `maxPriorityFeePerGas` each raised by `fee_bump_percent`
    (EIP-1559 replacement needs at least 10 %), and never beyond `max_fee_per_gas_cap` (wei).
    At the cap the submitter keeps waiting; if no version is mined within `receipt_timeout`
    seconds the delivery fails with the transient `FeeCapReached`. Keep `receipt_timeout` below
    the relayer's `submitter_timeout` (120 s by default).
    """

    stuck_after: float = 30.0
    fee_bump_percent: float = 12.5
    max_fee_per_gas_cap: int = 500 * 10**9  # 500 gwei
    receipt_timeout: float = 90.0

    @model_validator(mode="after")
    def _check(self) -> SubmissionConfig:
        if self.stuck_after <= 0 or self.receipt_timeout <= 0:
            raise ValueError("stuck_after and receipt_timeout must be positive")
        if not 10.0 <= self.fee_bump_percent <= 1000.0:
            raise ValueError("fee_bump_percent must be in 10..1000 (EIP-1559 replacement needs >= 10 %)")
        if self.max_fee_per_gas_cap <= 0:
            raise ValueError("max_fee_per_gas_cap must be positive (wei)")
        return self


class LightClientOriginConfig(StrictModel):
    """An Ethereum origin that this chain's Gateway verifies with no committee (`chain.light_client_origins`).

    `light_client`: the `EthereumLightClient` that follows the origin's sync committee on this
    chain; `inbox`: the `EthereumInbox` the Gateway enrolled as the origin's verifier
    (`enrollOriginVerifier`), which proves receipts against the light client's stored headers.
    Read by the relayer (the light client's stored block) and the submitter (where it sends
    `submitUpdate` and `deliverFromEthereumBatch`).
    """

    light_client: str
    inbox: str

    @field_validator("light_client", "inbox")
    @classmethod
    def _is_an_address(cls, value: str) -> str:
        if not _ADDRESS.fullmatch(value):
            raise ValueError("must be a 20-byte hex address (40 hex digits, 0x-prefixed or not)")
        return value if value.startswith("0x") else "0x" + value


class EvmCompatibleChainConfig(ChainConfigBase):
    """A chain whose gateway is an EVM contract (kinds `evm` and `ethereum`): a 20-byte address.

    `rpc_quorum`: how many of `rpc_urls` a source watcher needs to answer, alike, before it acts
    on a head, a block hash or a range of logs (`adapters.evm.source_reads.QuorumSource`).
    Unset means all of them. Any two endpoints that answer differently halt the origin (an
    alert) until they agree again; a lower quorum only tolerates endpoints that are down or lag.
    """

    rpc_quorum: int | None = None
    # Ethereum origins verified on this chain by an on-chain light client instead of a committee,
    # by origin domain (docs/operations.md, "Light-client origins").
    light_client_origins: dict[int, LightClientOriginConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _quorum_fits(self) -> EvmCompatibleChainConfig:
        if self.rpc_quorum is not None and not 1 <= self.rpc_quorum <= len(self.rpc_urls):
            raise ValueError("rpc_quorum must be between 1 and the number of rpc_urls")
        return self

    def source_quorum(self) -> int:
        """How many endpoints must agree for the source watcher (all of them by default)."""
        return self.rpc_quorum if self.rpc_quorum is not None else len(self.rpc_urls)

    submission: SubmissionConfig = Field(default_factory=SubmissionConfig)

    @field_validator("gateway")
    @classmethod
    def _gateway_is_an_address(cls, value: str) -> str:
        if not _ADDRESS.fullmatch(value):
            raise ValueError("gateway must be a 20-byte hex address (40 hex digits, 0x-prefixed or not)")
        return value if value.startswith("0x") else "0x" + value

    def gateway_bytes32(self) -> bytes:
        """The gateway address left-padded to 32 bytes, as messages and checkpoints carry it."""
        return address_to_bytes32(self.gateway)


class EvmChainConfig(EvmCompatibleChainConfig):
    """An EVM chain read and written over JSON-RPC; finality by the `finalized` tag or confirmations."""

    kind: Literal["evm"] = "evm"


CHAIN_CONFIG = EvmChainConfig
