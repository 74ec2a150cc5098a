"""The config model of EVM chains (`kind: evm`), registered in `relay.chains.registry`.

Free of web3 on purpose: the registry imports it with every role's config, and only a chain that
is actually used loads the chain libraries (`adapters.evm.adapter`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator

from relay.chains import ChainConfigBase
from relay.verify.message import address_to_bytes32

_ADDRESS = re.compile(r"(0x)?[0-9a-fA-F]{40}")


class EvmCompatibleChainConfig(ChainConfigBase):
    """A chain whose gateway is an EVM contract (kinds `evm` and `ethereum`): a 20-byte address."""

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
