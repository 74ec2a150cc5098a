"""The submitter's light-client transactions: `EthereumLightClient.submitUpdate` and
`EthereumInbox.deliverFromEthereumBatch` (a light-client origin, `verification: lightclient`).

Both go through the destination's `AccountTransactions`, so they get the same nonce manager, fees,
stuck-transaction replacement and lost-transaction detection as committee deliveries, and both
are simulated first (`eth_estimateGas`): a contract that would refuse them costs nothing, and the
refusal comes back typed (`LightClientRefused`, `InboxRejected`: `InvalidProof`s with the
contract's error name). The addresses are the submitter's own (`chain.light_client_origins`),
never the caller's.

- `submit_light_client_update`: nothing is sent when the light client already stores the update's
  finalized header and needs no committee from it (a competing relayer's update landed first).
- `deliver_by_receipt`: the ids already delivered are left out (read first, and again after a
  reverted transaction, like `EvmDestination.submit`); the Gateway's `Delivered` /
  `DeliveryFailed` events give each message's outcome.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from eth_abi import decode as abi_decode
from eth_utils import function_abi_to_4byte_selector
from web3 import exceptions as web3_errors

from adapters.evm.calldata import PreparedCall
from adapters.evm.config import LightClientOriginConfig
from adapters.evm.errors import (
    DeliveryReverted,
    classify_send_error,
    decode_contract_error,
    error_for_revert,
    revert_data,
)
from adapters.evm.fees import compute_gas_limit, compute_minimum_gas_limit
from adapters.evm.lightclient_reads import EvmLightClientReader
from adapters.evm.rpc import checksum_address
from relay import errors
from relay.chains import SubmittedBatch
from relay.chains.lightclient import (
    HeaderUpdate,
    ReceiptDelivery,
    ReceiptProof,
    StoredHeaders,
    share_trie_nodes,
)

if TYPE_CHECKING:
    from adapters.evm.submitter import EvmDestination

log = logging.getLogger(__name__)

UPDATE_GAS_FLOOR = 300_000  # an update verifies a BLS aggregate and SHA-256 branches


class LightClientRefused(errors.InvalidProof):
    """The destination light client refuses the update (its simulation reverts)."""


class InboxRejected(errors.InvalidProof):
    """The destination inbox refuses the receipt proof (its simulation reverts)."""


class UnknownLightClientOrigin(errors.PermanentError):
    """The submitter's chain config names no light client / inbox for this origin."""


def origin_settings(destination: EvmDestination, origin: int) -> LightClientOriginConfig:
    """This destination's contracts of light-client origin `origin`."""
    settings = destination.chain.light_client_origins.get(origin)
    if settings is None:
        raise UnknownLightClientOrigin(
            "no light_client_origins entry for this origin", origin=origin, destination=destination.domain
        )
    return settings


@functools.cache
def _abi(name: str) -> list[dict[str, Any]]:
    from adapters.evm.build import load_artifact

    abi: list[dict[str, Any]] = load_artifact(name)["abi"]
    return abi


def describe_revert(abi: Sequence[dict[str, Any]], data: bytes | None) -> str:
    """`Name(args)` of a revert by `abi`'s custom errors (or Error / Panic), else its raw hex."""
    raw = bytes(data or b"")
    if len(raw) < 4:
        return "EmptyRevert()"
    table = {
        bytes.fromhex("08c379a0"): ("Error", ["string"]),
        bytes.fromhex("4e487b71"): ("Panic", ["uint256"]),
    }
    for entry in abi:
        if entry.get("type") == "error":
            selector = bytes(function_abi_to_4byte_selector(entry))  # type: ignore[arg-type]
            table[selector] = (entry["name"], [i["type"] for i in entry.get("inputs", [])])
    known = table.get(raw[:4])
    if known is None:
        return f"UnknownError(0x{raw.hex()[:200]})"
    name, types = known
    try:
        arguments = abi_decode(types, raw[4:]) if types else ()
    except Exception:  # noqa: BLE001 - malformed arguments still name the error
        arguments = ()
    shown = ", ".join("0x" + a.hex() if isinstance(a, bytes) else str(a) for a in arguments)
    return f"{name}({shown})"


def _estimate(
    destination: EvmDestination,
    call: Any,
    abi: Sequence[dict[str, Any]],
    refused: type[errors.InvalidProof],
    *,
    through_gateway: bool = False,
) -> int:
    """eth_estimateGas; a revert is `refused`, except, for a call that reaches the Gateway
    (`through_gateway`), its pause (`DeliveryPaused`: the messages wait, as committee deliveries
    do), a precompile failure and the inbox's `UnknownBlock` (transient: the relayer proved
    against a header its own endpoint shows stored, which this node may not show yet), which say
    nothing about the proof."""

    def estimate() -> int:
        return int(call.estimate_gas({"from": destination.account}))

    try:
        return destination.transactions.read("eth_estimateGas", estimate)
    except (web3_errors.ContractLogicError, web3_errors.ContractCustomError) as error:
        data = revert_data(error)
        if through_gateway:
            decoded = decode_contract_error(data)  # the Gateway's errors and the inbox's
            typed = error_for_revert(decoded)
            if isinstance(typed, errors.DeliveryPaused | errors.TransientError):
                raise typed from error
            if decoded.name == "UnknownBlock":  # not stored yet as this node sees it: never forgotten
                raise errors.NotYetAvailable(
                    f"the light client stores no such block yet: {decoded.describe()}",
                    contract_error=decoded.name,
                ) from error
            reason = decoded.describe()
        else:
            reason = describe_revert(abi, data)
        raise refused(f"the contract refuses it: {reason}", contract_error=reason.split("(", 1)[0]) from error
    except web3_errors.Web3RPCError as error:
        # As the committee path's `_simulate`: a node refusing for the account's nonce, fees or
        # funds is typed (and transient), never reported as a refusal of the proof.
        refusal = classify_send_error(error, destination.account)
        if refusal is not None:
            raise refusal from error
        raise


# --- light-client updates ---------------------------------------------------------------------------


def is_update_needed(
    stored: StoredHeaders, *, finalized_slot: int, carries_next_committee: bool, attested_period: int
) -> bool:
    """Whether a light client in state `stored` learns anything from an update: a later finalized
    header, or the next committee it does not know yet for its current period."""
    if finalized_slot > stored.finalized_slot:
        return True
    return carries_next_committee and not stored.has_next_committee and attested_period == stored.period


def submit_light_client_update(
    destination: EvmDestination, origin: int, update: HeaderUpdate
) -> tuple[bytes, StoredHeaders]:
    """Send `submitUpdate` with `update.payload` (its ABI-encoded arguments) unless the light client
    no longer needs it; return (transaction hash or b"", the light client's state afterwards)."""
    settings = origin_settings(destination, origin)
    reader = EvmLightClientReader(destination.chain, origin, destination.metrics)
    stored = reader.stored_headers()
    needed = functools.partial(
        is_update_needed,
        finalized_slot=update.finalized_slot,
        carries_next_committee=update.carries_next_committee,
        attested_period=update.attested_period,
    )
    if not needed(stored):
        return b"", stored
    abi = _abi("EthereumLightClient")
    selector = next(
        bytes(function_abi_to_4byte_selector(e))  # type: ignore[arg-type]
        for e in abi
        if e.get("type") == "function" and e.get("name") == "submitUpdate"
    )
    address = checksum_address(settings.light_client, "light client address")
    call = PreparedCall(destination.endpoint.web3, address, selector + update.payload)
    estimated = _estimate(destination, call, abi, LightClientRefused)
    sent = destination.transactions.send(call, max(compute_gas_limit(estimated), UPDATE_GAS_FLOOR))
    transaction_hash, receipt = destination.transactions.wait(sent)
    after = reader.stored_headers()
    if int(receipt["status"]) != 1:
        if not needed(after):
            return b"", after  # a competing update landed first
        raise errors.DeliveryNotConfirmed(
            "light-client update transaction reverted", transaction=transaction_hash
        )
    log.info(
        "light-client update submitted",
        extra={
            "destination": destination.domain,
            "origin": origin,
            "finalized_slot": update.finalized_slot,
            "transaction": transaction_hash,
            "gas_used": int(receipt["gasUsed"]),
        },
    )
    return transaction_hash, after


# --- receipt-proof deliveries ------------------------------------------------------------------------


def compute_pending_batch(
    proofs: Sequence[ReceiptProof], deliveries: Sequence[ReceiptDelivery], delivered: Sequence[bool]
) -> tuple[list[ReceiptProof], list[ReceiptDelivery]]:
    """The deliveries not yet delivered, with only the proofs they use, re-indexed."""
    kept: list[ReceiptProof] = []
    index: dict[int, int] = {}
    pending = []
    for delivery, done in zip(deliveries, delivered, strict=True):
        if done:
            continue
        if delivery.proof_index not in index:
            index[delivery.proof_index] = len(kept)
            kept.append(proofs[delivery.proof_index])
        pending.append(
            ReceiptDelivery(
                delivery.message, index[delivery.proof_index], delivery.log_index, delivery.gas_limit
            )
        )
    return kept, pending


def deliver_by_receipt(
    destination: EvmDestination,
    origin: int,
    proofs: Sequence[ReceiptProof],
    deliveries: Sequence[ReceiptDelivery],
    parse_logs: Callable[[Sequence[Any], str], tuple[list[bytes], dict[bytes, str]]],
) -> SubmittedBatch:
    """One `deliverFromEthereumBatch` for the undelivered `deliveries`; wait; report each (the
    Gateway's `Delivered` / `DeliveryFailed` events read by `parse_logs`)."""
    settings = origin_settings(destination, origin)
    for delivery in deliveries:
        message = delivery.message
        if message.destination != destination.domain:
            raise errors.DestinationMismatch(
                "message addressed to another domain", id=message.id, destination=message.destination
            )
        if message.origin != origin:
            raise errors.OriginMismatch("message of another origin", id=message.id, origin=message.origin)
    keys = [(d.message.origin, d.message.nonce) for d in deliveries]
    kept, pending = compute_pending_batch(proofs, deliveries, destination.delivered(keys))
    if not pending:
        return SubmittedBatch(b"", 0, 0, [], {})
    abi = _abi("EthereumInbox")
    address = checksum_address(settings.inbox, "inbox address")
    inbox = destination.endpoint.web3.eth.contract(address=address, abi=abi)
    call = inbox.functions.deliverFromEthereumBatch(
        [
            (p.block_number, list(p.headers), p.transaction_index, list(p.nodes))
            for p in share_trie_nodes(kept)
        ],
        [(d.proof_index, d.log_index, d.gas_limit) for d in pending],
    )
    estimated = _estimate(destination, call, abi, InboxRejected, through_gateway=True)
    floor = compute_minimum_gas_limit([d.gas_limit for d in pending])
    sent = destination.transactions.send(call, max(compute_gas_limit(estimated), floor))
    transaction_hash, receipt = destination.transactions.wait(sent)
    if int(receipt["status"]) != 1:
        if all(destination.delivered([(d.message.origin, d.message.nonce) for d in pending])):
            return SubmittedBatch(b"", 0, 0, [], {})  # a competing delivery landed first
        raise DeliveryReverted("receipt-proof delivery reverted", transaction=transaction_hash.hex())
    delivered, failed = parse_logs(receipt["logs"], destination.address)
    gas_used = int(receipt["gasUsed"])
    price = int(receipt.get("effectiveGasPrice", 0) or 0)
    if destination.metrics is not None:
        destination.metrics.gas_spent.labels(destination.chain.name, destination.account).inc(
            gas_used * price
        )
    return SubmittedBatch(
        transaction_hash, int(receipt["blockNumber"]), gas_used, delivered, failed, effective_gas_price=price
    )
