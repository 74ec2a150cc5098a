"""Helpers of the on-chain light-client tests: one anvil, calls with state overrides, refusal names.

A refused update is checked with `eth_call` against the contract's real state (the same code and
storage a transaction would run on) so that one walk through the mainnet vectors can try every
tampered object at the state it applies to. A state override replaces one storage word (the
genesis validators root, a fork's version or epoch, the genesis time) to stand for a contract
initialised with another network without walking a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import keccak
from web3 import Web3

from adapters.ethereum import onchain_client
from adapters.evm.deploy import TransactionSender

# Storage slots of EthereumLightClient (Owned: owner 0, pendingOwner 1; then its own variables).
GENESIS_TIME_SLOT = (
    2  # latestExecutionBlockNumber | committeeSize << 64 | genesisTime << 96 | secondsPerSlot << 160
)
GENESIS_TIME_SHIFT = 96
GENESIS_VALIDATORS_ROOT_SLOT = 4
FORKS_SLOT = 5


@dataclass
class LightClientChain:
    """One anvil chain with the owner's and a stranger's senders."""

    w3: Web3
    owner: TransactionSender
    stranger: TransactionSender

    def rpc(self, method: str, params: list[Any]) -> dict[str, Any]:
        response: dict[str, Any] = dict(self.w3.provider.make_request(method, params))  # type: ignore[arg-type]
        return response

    def storage_word(self, address: str, slot: int) -> int:
        return int.from_bytes(self.w3.eth.get_storage_at(Web3.to_checksum_address(address), slot), "big")

    def refusal(
        self,
        address: str,
        function: str,
        args: tuple[Any, ...],
        *,
        sender: str | None = None,
        overrides: dict[int, int] | None = None,
    ) -> str | None:
        """The contract's error name if `function(*args)` reverts at the current state, else None."""
        contract = onchain_client.light_client_contract(self.w3, address)
        data = contract.encode_abi(function, args=list(args))
        call = {"from": sender or self.owner.address, "to": address, "data": data, "gas": hex(29_000_000)}
        params: list[Any] = [call, "latest"]
        if overrides:
            params.append(
                {
                    address: {
                        "stateDiff": {
                            "0x" + slot.to_bytes(32, "big").hex(): "0x" + value.to_bytes(32, "big").hex()
                            for slot, value in overrides.items()
                        }
                    }
                }
            )
        response = self.rpc("eth_call", params)
        if "error" not in response:
            return None
        data_hex = response["error"].get("data")
        if not isinstance(data_hex, str) or len(data_hex) < 10:
            return f"revert without data: {response['error'].get('message')}"
        return onchain_client.error_names(_full_abi()).get(
            bytes.fromhex(data_hex[2:10]), f"unknown {data_hex[:10]}"
        )


def _full_abi() -> list[dict[str, Any]]:
    """The light client's ABI plus Owned's errors (already in it) as error names."""
    from adapters.evm.build import load_artifact

    abi: list[dict[str, Any]] = load_artifact(onchain_client.CONTRACT_NAME)["abi"]
    return abi


def with_genesis_time(word: int, genesis_time: int) -> int:
    """The storage word of GENESIS_TIME_SLOT with its genesis time replaced."""
    mask = (2**64 - 1) << GENESIS_TIME_SHIFT
    return (word & ~mask) | genesis_time << GENESIS_TIME_SHIFT


def fork_slot(index: int) -> int:
    """The storage slot of fork `index` of the schedule (a dynamic array at FORKS_SLOT)."""
    return int.from_bytes(keccak(FORKS_SLOT.to_bytes(32, "big")), "big") + index


def fork_word(epoch: int, version: bytes, layout: int) -> int:
    """A stored `ForkVersion` word: epoch, version and layout packed from the low end."""
    return epoch | int.from_bytes(version, "big") << 64 | layout << 96
