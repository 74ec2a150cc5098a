"""The on-chain Ethereum light client (`EthereumLightClient.sol`): ABI encoding, deployment, updates.

The contract takes the light-client objects of `relay.verify.ethereum` in its own layout
(documented in the contract's NatSpec): headers as their beacon fields plus the 17 SSZ chunks of
the execution payload header, sync committees as compressed keys followed by the compressed
aggregate key and its y coordinate, the aggregate signature as an uncompressed EIP-2537 G2 point,
and, for the signature check, the y coordinates of exactly the keys the contract sums (none at
full participation, the non-participants' when more than half signed, else the participants').
y is the square root of x^3 + 4 with the sign the compressed key's flag names; the contract
checks flag and curve, so a wrong y is refused, never trusted.

`encode_bootstrap` / `encode_update` build call arguments; `deploy_light_client` deploys and
initialises; `submit_update` reads what the contract knows (period, next committee, the signing
committee's keys from their code contracts), encodes, and sends. Refusals surface as
`LightClientRefused` carrying the contract's error name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError

from adapters.evm.build import load_artifact
from adapters.evm.deploy import TransactionSender
from relay.errors import InvalidProof, InvalidPublicKey, InvalidSignature
from relay.verify.bls import signature_to_eip2537
from relay.verify.ethereum.config import Fork, NetworkConfig
from relay.verify.ethereum.containers import (
    LightClientBootstrap,
    LightClientFinalityUpdate,
    LightClientHeader,
    LightClientOptimisticUpdate,
    LightClientUpdate,
    SyncCommittee,
    compute_beacon_block_root,
    compute_execution_payload_chunks,
    compute_sync_committee_root,
    is_empty_sync_committee,
    is_zero_branch,
)
from relay.verify.ethereum.sync_protocol import convert_finality_update, convert_optimistic_update
from relay.verify.hashing import keccak256

CONTRACT_NAME = "EthereumLightClient"
FIELD_MODULUS = (
    0x1A0111EA397FE69A4B1BA7B6434BACD764774B84F38512BF6730D2A0F6B0F6241EABFFFEB153FFFFB9FEFFFFFFFFAAAB
)
KEY_LENGTH = 48
KEYS_PER_CHUNK = 256
LAYOUT_PRE_CAPELLA, LAYOUT_CAPELLA, LAYOUT_DENEB, LAYOUT_ELECTRA = 0, 1, 2, 3
DEPLOY_GAS = 4_000_000
GAS_MARGIN_PERCENT = 25

AnyUpdate = LightClientUpdate | LightClientFinalityUpdate | LightClientOptimisticUpdate


class LightClientRefused(InvalidProof):
    """The contract refused a call; `error` is its Solidity error name (e.g. `InvalidFinalityBranch`)."""


# --- points ----------------------------------------------------------------------------------------------


def compute_public_key_y(compressed: bytes) -> bytes:
    """The 48-byte big-endian y of a compressed G1 key: the root of x^3 + 4 its sign flag names.

    Raises `InvalidPublicKey` if the flags are not "compressed, not infinity" or x is not on the curve.
    """
    if len(compressed) != KEY_LENGTH or compressed[0] & 0xC0 != 0x80:
        raise InvalidPublicKey("not a compressed, finite G1 key", public_key=compressed)
    x = int.from_bytes(bytes([compressed[0] & 0x1F]) + compressed[1:], "big")
    if x >= FIELD_MODULUS:
        raise InvalidPublicKey("x is not a field element", public_key=compressed)
    square = (pow(x, 3, FIELD_MODULUS) + 4) % FIELD_MODULUS
    y = pow(square, (FIELD_MODULUS + 1) // 4, FIELD_MODULUS)
    if y * y % FIELD_MODULUS != square:
        raise InvalidPublicKey("x is not on the curve", public_key=compressed)
    larger = y > (FIELD_MODULUS - 1) // 2
    if larger != bool(compressed[0] & 0x20):
        y = FIELD_MODULUS - y
    return y.to_bytes(KEY_LENGTH, "big")


def encode_signature(signature: bytes) -> bytes:
    """The 256-byte EIP-2537 G2 point of a 96-byte signature.

    A signature that does not decompress is still sent (its x with a zero y, not a curve point)
    so that the contract, not this encoder, refuses it: the on-chain check is the one that counts.
    """
    try:
        return signature_to_eip2537(signature)
    except InvalidSignature:
        data = bytes(signature).ljust(96, b"\x00")[:96]
        x1 = bytes([data[0] & 0x1F]) + data[1:48]
        x0 = data[48:96]
        return b"\x00" * 16 + x0 + b"\x00" * 16 + x1 + b"\x00" * 128


# --- headers, committees, configuration ----------------------------------------------------------------------


def encode_header(header: LightClientHeader, network: NetworkConfig) -> tuple[Any, ...]:
    """The contract's `Header` tuple."""
    beacon = header.beacon
    if len(header.execution_branch) != 4:
        raise InvalidProof("execution branch must have 4 nodes", nodes=len(header.execution_branch))
    return (
        (beacon.slot, beacon.proposer_index, beacon.parent_root, beacon.state_root, beacon.body_root),
        # Always the 17 chunks of the Deneb layout: the contract drops the blob-gas ones for Capella.
        compute_execution_payload_chunks(header.execution, Fork.DENEB, network.preset.max_extra_data_bytes),
        list(header.execution_branch),
    )


def encode_committee(committee: SyncCommittee) -> bytes:
    """Compressed keys, compressed aggregate key, then the aggregate key's y (the contract's layout)."""
    return (
        b"".join(committee.pubkeys)
        + committee.aggregate_pubkey
        + compute_public_key_y(committee.aggregate_pubkey)
    )


def fork_layout(fork: Fork) -> int:
    """The contract's LAYOUT_* for a fork: light-client headers by payload layout and state depth."""
    if fork >= Fork.ELECTRA:
        return LAYOUT_ELECTRA
    if fork >= Fork.DENEB:
        return LAYOUT_DENEB
    if fork >= Fork.CAPELLA:
        return LAYOUT_CAPELLA
    return LAYOUT_PRE_CAPELLA


def encode_config(network: NetworkConfig) -> tuple[Any, ...]:
    """The contract's `Config` tuple for `network`."""
    preset = network.preset
    return (
        network.genesis_validators_root,
        network.genesis_time,
        network.seconds_per_slot,
        preset.slots_per_epoch,
        preset.epochs_per_sync_committee_period,
        preset.sync_committee_size,
        [(fork.epoch, fork.version, fork_layout(fork.fork)) for fork in network.forks],
    )


def encode_bootstrap(
    bootstrap: LightClientBootstrap, network: NetworkConfig, trusted_block_root: bytes | None = None
) -> tuple[Any, ...]:
    """`initialize` arguments: config, trusted root (the header's own root if not given), header, committee, branch."""
    root = (
        trusted_block_root
        if trusted_block_root is not None
        else compute_beacon_block_root(bootstrap.header.beacon)
    )
    return (
        encode_config(network),
        root,
        encode_header(bootstrap.header, network),
        encode_committee(bootstrap.current_sync_committee),
        list(bootstrap.current_sync_committee_branch),
    )


# --- updates ---------------------------------------------------------------------------------------------------


def as_full_update(update: AnyUpdate, network: NetworkConfig) -> LightClientUpdate:
    """A finality or optimistic update as the full update the contract (and the spec) processes."""
    if isinstance(update, LightClientFinalityUpdate):
        return convert_finality_update(update, network)
    if isinstance(update, LightClientOptimisticUpdate):
        return convert_optimistic_update(update, network)
    return update


def needs_committee_keys(
    update: LightClientUpdate, store_period: int, next_known: bool, network: NetworkConfig
) -> bool:
    """Whether applying `update` makes the contract store its next committee (so it needs the keys)."""
    if is_zero_branch(update.next_sync_committee_branch) or is_empty_sync_committee(
        update.next_sync_committee
    ):
        return False
    finalized_period = network.compute_sync_committee_period_at_slot(update.finalized_header.beacon.slot)
    return finalized_period == (store_period + 1 if next_known else store_period)


def compute_signer_key_ys(bits: bytes, committee_keys: Sequence[bytes] | None) -> bytes:
    """The y coordinates the contract needs to sum the signers' key (see the module docstring)."""
    if committee_keys is None:
        return b""
    size = len(committee_keys)
    present = [i < len(bits) * 8 and bool(bits[i >> 3] >> (i & 7) & 1) for i in range(size)]
    count = sum(present)
    if count == size:
        return b""
    wanted = not 2 * count > size
    return b"".join(compute_public_key_y(committee_keys[i]) for i in range(size) if present[i] == wanted)


def encode_update(
    update: AnyUpdate,
    network: NetworkConfig,
    signing_committee_keys: Sequence[bytes] | None,
    *,
    include_next_sync_committee_keys: bool,
) -> tuple[Any, ...]:
    """The contract's `Update` tuple.

    `signing_committee_keys` are the compressed keys of the committee that signed (the contract's
    committee of the signature period; None if it has none, the contract then refuses the period).
    The next committee goes as keys when `include_next_sync_committee_keys` (the contract stores
    it: `needs_committee_keys`), else as its root only.
    """
    full = as_full_update(update, network)
    committee = full.next_sync_committee
    keys = b""
    root = b"\x00" * 32
    if not is_empty_sync_committee(committee) and committee is not None:
        if include_next_sync_committee_keys:
            keys = encode_committee(committee)
        else:
            root = compute_sync_committee_root(committee)
    aggregate = full.sync_aggregate
    return (
        encode_header(full.attested_header, network),
        encode_header(full.finalized_header, network),
        list(full.finality_branch),
        root,
        keys,
        list(full.next_sync_committee_branch),
        aggregate.sync_committee_bits,
        encode_signature(aggregate.sync_committee_signature),
        full.signature_slot,
        compute_signer_key_ys(aggregate.sync_committee_bits, signing_committee_keys),
    )


# --- the deployed contract -----------------------------------------------------------------------------------


def light_client_contract(w3: Web3, address: str) -> Any:
    """A web3 contract object for the light client at `address`."""
    return w3.eth.contract(address=to_checksum_address(address), abi=load_artifact(CONTRACT_NAME)["abi"])


def read_committee_keys(w3: Web3, contract: Any, period: int) -> list[bytes] | None:
    """The compressed keys of the committee the contract stored for `period` (read from their code)."""
    keys0, keys1 = contract.functions.syncCommitteeKeys(period).call()
    if int(keys0, 16) == 0:
        return None
    size = int(contract.functions.committeeSize().call())
    data = bytes(w3.eth.get_code(keys0))[1:][: min(size, KEYS_PER_CHUNK) * KEY_LENGTH]
    if size > KEYS_PER_CHUNK:
        data += bytes(w3.eth.get_code(keys1))[1:]
    return [data[i : i + KEY_LENGTH] for i in range(0, size * KEY_LENGTH, KEY_LENGTH)]


def error_names(abi: Sequence[dict[str, Any]] | None = None) -> dict[bytes, str]:
    """The light client's custom errors by 4-byte selector."""
    entries = abi if abi is not None else load_artifact(CONTRACT_NAME)["abi"]
    names = {}
    for entry in entries:
        if entry.get("type") == "error":
            signature = f"{entry['name']}({','.join(_abi_type(i) for i in entry['inputs'])})"
            names[keccak256(signature.encode())[:4]] = entry["name"]
    return names


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + item["type"][5:]
    return str(item["type"])


def decode_refusal(error: Exception) -> LightClientRefused:
    """A web3 revert from the light client as `LightClientRefused` with the Solidity error's name."""
    data = getattr(error, "data", None)
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        name = error_names().get(bytes.fromhex(data[2:10]), "unknown")
        return LightClientRefused(f"light client refused: {name}", error=name, data=data)
    return LightClientRefused(f"light client refused: {error}", error="unknown")


def call_or_refuse(call: Any, sender: str | None = None) -> int:
    """Estimate `call`'s gas; raise `LightClientRefused` with the contract's error if it would revert."""
    try:
        return int(call.estimate_gas({"from": sender} if sender else {}))
    except (ContractCustomError, ContractLogicError) as error:
        raise decode_refusal(error) from error


def deploy_light_client(
    w3: Web3,
    sender: TransactionSender,
    bootstrap: LightClientBootstrap,
    network: NetworkConfig,
    trusted_block_root: bytes | None = None,
) -> str:
    """Deploy an `EthereumLightClient` owned by `sender` and initialise it from `bootstrap`; its address."""
    artifact = load_artifact(CONTRACT_NAME)
    transaction_hash = sender.send({"data": artifact["bytecode"], "gas": DEPLOY_GAS})
    (receipt,) = sender.wait([transaction_hash])
    address = str(receipt["contractAddress"])
    contract = light_client_contract(w3, address)
    call = contract.functions.initialize(*encode_bootstrap(bootstrap, network, trusted_block_root))
    gas = call_or_refuse(call, sender.address)
    sender.wait([sender.send_call(call, gas * (100 + GAS_MARGIN_PERCENT) // 100)])
    return address


def prepare_update(w3: Web3, contract: Any, update: AnyUpdate, network: NetworkConfig) -> tuple[Any, ...]:
    """`encode_update` with what the contract knows: its period, next committee and signing keys."""
    full = as_full_update(update, network)
    store_period = int(contract.functions.currentPeriod().call())
    next_known = bool(contract.functions.hasNextSyncCommittee().call())
    signature_period = network.compute_sync_committee_period_at_slot(full.signature_slot)
    signer_period = store_period if signature_period == store_period else store_period + 1
    return encode_update(
        full,
        network,
        read_committee_keys(w3, contract, signer_period),
        include_next_sync_committee_keys=needs_committee_keys(full, store_period, next_known, network),
    )


def submit_update(
    w3: Web3, sender: TransactionSender, address: str, update: AnyUpdate, network: NetworkConfig
) -> Any:
    """Send `submitUpdate` for `update` and return its receipt; `LightClientRefused` if it would revert."""
    contract = light_client_contract(w3, address)
    call = contract.functions.submitUpdate(prepare_update(w3, contract, update, network))
    gas = call_or_refuse(call, sender.address)
    (receipt,) = sender.wait([sender.send_call(call, gas * (100 + GAS_MARGIN_PERCENT) // 100)])
    return receipt
