"""The EVM adapter's errors: typed failures, and what a revert or a refusing node means.

`EvmDestination` (adapters/evm/submitter.py) turns every failure into a `relay.errors` type that
says what the caller must do (see its docstring); the tables and decoders that decide which type
live here, apart from the sending code: the adapter's own `TransientError` / `PermanentError`
subclasses, the Gateway custom-error -> relay-error table, revert decoding by the ABI's error
selectors (`decode_contract_error`), and the classification of a node's refusal messages.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_abi_to_4byte_selector

from adapters.evm.rpc import gateway_abi
from relay import errors
from relay.errors import InvalidProof, PermanentError, RelayError, TransientError

log = logging.getLogger(__name__)


# --- typed transient failures of this adapter -------------------------------------------------


class NonceConflict(TransientError):
    """The account's nonce moved under us (another sender, a dropped or replaced transaction)."""


class FeeTooLow(TransientError):
    """The node refused the transaction's fees (underpriced replacement, base fee spike)."""


class InsufficientFunds(TransientError):
    """The submitter's account cannot pay for gas; an operator must top it up."""


class OutOfGas(TransientError):
    """The transaction ran out of gas (the recipient was starved); retry with a fresh estimate."""


class ReceiptTimeout(TransientError):
    """The transaction was sent but no receipt arrived in time; it may still be mined."""


class FeeCapReached(TransientError):
    """The fees a transaction needs to be mined now are above the configured `max_fee_per_gas_cap`;
    it waits (or is not sent) until the base fee falls."""


class TransactionLost(TransientError):
    """A sent transaction is neither mined nor known to the node any more (dropped from the pool,
    or its nonce was used by another transaction): the nonce is read again and the delivery resent."""


class DeliveryReverted(TransientError):
    """The delivery transaction reverted on-chain although its simulation passed (state changed)."""


class GatewayRejected(InvalidProof):
    """The Gateway rejected the proof with a custom error that has no more specific class."""


class GatewayNotReady(PermanentError):
    """The destination Gateway is not set up for this delivery yet (origin not enrolled, another
    committee epoch after a hand-over): not a forged proof; parked until an operator retries."""


class DeliveryRefused(PermanentError):
    """A revert that names no proof check (Error(string), Panic, empty or unknown data): parked
    for an operator rather than counted as a forged proof."""


class RecipientGasUnavailable(PermanentError):
    """The delivery names more gas for a recipient than a transaction can give it: the Gateway's
    `InsufficientGasForRecipient(id, gasLimit, gasLeft)` even in a simulation with the block's gas
    limit. That message cannot be delivered with this gas limit."""


# Gateway custom errors -> the relay error saying what the caller must do.
_GATEWAY_ERRORS: dict[str, type[RelayError]] = {
    "InvalidSignature": errors.InvalidSignature,
    "InvalidSignatureLength": errors.InvalidSignature,
    "QuorumNotReached": errors.QuorumNotReached,
    "BitfieldLengthMismatch": errors.UnknownSigner,
    "BitfieldOutOfRange": errors.UnknownSigner,
    "EcdsaSignaturesLengthMismatch": errors.InvalidSignature,
    "EcdsaSignatureMalleable": errors.InvalidSignature,
    "EcdsaInvalidRecoveryId": errors.InvalidSignature,
    "EcdsaSignatureUnrecoverable": errors.InvalidSignature,
    "EcdsaSignerMismatch": errors.InvalidSignature,
    "WrongGateway": errors.GatewayMismatch,
    "WrongEpoch": GatewayNotReady,
    "WrongOrigin": errors.OriginMismatch,
    "UnknownOrigin": GatewayNotReady,
    "WrongDestination": errors.DestinationMismatch,
    "NonceAfterCheckpoint": errors.IndexOutOfRange,
    "InvalidMerkleProof": errors.InvalidMerkleProof,
    "MalformedMessage": errors.MalformedEncoding,
    "UnsupportedVersion": errors.MalformedEncoding,
    "EmptyBatch": errors.MalformedEncoding,
    "BatchLengthMismatch": errors.MalformedEncoding,
    "InsufficientGasForRecipient": RecipientGasUnavailable,
    "DeliveryIsPaused": errors.DeliveryPaused,
    "PrecompileFailed": TransientError,
    "Error": DeliveryRefused,
    "Panic": DeliveryRefused,
    "EmptyRevert": DeliveryRefused,
    "UnknownError": DeliveryRefused,
}


@dataclass(frozen=True)
class ContractError:
    """A decoded revert: the custom error's name and arguments (or the raw data if unknown)."""

    name: str
    arguments: tuple[Any, ...] = ()
    data: bytes = b""

    def describe(self) -> str:
        """`Name(arg, ...)` with bytes in hex, as stored for operators."""
        shown = ", ".join("0x" + a.hex() if isinstance(a, bytes) else str(a) for a in self.arguments)
        return f"{self.name}({shown})"


@functools.cache
def _error_table() -> dict[bytes, tuple[str, list[str]]]:
    from adapters.evm.build import load_artifact

    table: dict[bytes, tuple[str, list[str]]] = {}
    abis = [gateway_abi()]
    for name in ("Counter", "EthereumInbox"):
        try:
            abis.append(load_artifact(name)["abi"])
        except Exception:
            log.debug("the %s ABI is unavailable; its errors are not decoded", name, exc_info=True)
    for abi in abis:
        for entry in abi:
            if entry.get("type") == "error":
                selector = bytes(function_abi_to_4byte_selector(entry))  # type: ignore[arg-type]
                table[selector] = (entry["name"], [i["type"] for i in entry.get("inputs", [])])
    table[bytes.fromhex("08c379a0")] = ("Error", ["string"])
    table[bytes.fromhex("4e487b71")] = ("Panic", ["uint256"])
    return table


def decode_contract_error(data: bytes | str | None) -> ContractError:
    """Decode revert data by the custom error selectors of the Gateway, the example app and the
    EthereumInbox (receipt-proof deliveries)."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x")) if data.startswith("0x") else data.encode()
    raw = bytes(data or b"")
    if len(raw) < 4:
        return ContractError("EmptyRevert" if not raw else "UnknownError", (), raw)
    known = _error_table().get(raw[:4])
    if known is None:
        return ContractError("UnknownError", (), raw)
    name, types = known
    try:
        arguments = tuple(abi_decode(types, raw[4:])) if types else ()
    except Exception:  # noqa: BLE001 - malformed arguments still name the error
        arguments = ()
    return ContractError(name, arguments, raw)


def error_for_revert(error: ContractError) -> RelayError:
    """The typed relay error for a Gateway revert (`GatewayRejected` for other Gateway errors)."""
    cls = _GATEWAY_ERRORS.get(error.name, GatewayRejected)
    return cls(
        f"gateway rejected the delivery: {error.describe()}",
        contract_error=error.name,
        arguments=error.describe(),
        error_arguments=error.arguments,
    )


def revert_data(error: BaseException) -> bytes | None:
    """The revert data a web3 error carries (hex string, bytes or a JSON-RPC error dict), if any."""
    data = getattr(error, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, dict) and isinstance(data.get("data"), str):
        return bytes.fromhex(data["data"].removeprefix("0x"))
    return None


def classify_send_error(error: BaseException, account: str) -> RelayError | None:
    """Typed error for a node refusing a transaction, or None if it is not a known refusal."""
    text = str(error).lower()
    if (
        "nonce too low" in text
        or "nonce too high" in text
        or "already known" in text
        or "invalid nonce" in text
    ):
        return NonceConflict("node refused the transaction nonce", account=account, cause=str(error)[:200])
    if "underpriced" in text or "fee cap" in text or "max fee per gas less than block base fee" in text:
        return FeeTooLow("node refused the transaction fees", account=account, cause=str(error)[:200])
    if "insufficient funds" in text:
        return InsufficientFunds("submitter account cannot pay for gas", account=account)
    if "out of gas" in text or "gas required exceeds" in text:
        return OutOfGas("transaction ran out of gas", cause=str(error)[:200])
    return None


def first_bytes32(error: RelayError) -> bytes | None:
    """The first bytes32 argument of a decoded custom error (a message id), if any."""
    for argument in error.fields.get("error_arguments", ()):
        if isinstance(argument, bytes) and len(argument) == 32:
            return argument
    return None
