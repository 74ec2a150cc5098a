"""Hyperlane v3's compiled contracts on a local chain, for side-by-side gas benchmarks.

Only Hyperlane's published ABI and creation bytecode are used: `scripts/install-hyperlane.sh`
(run by `make tools`) extracts them from the npm package `@hyperlane-xyz/core` (pinned version
below) into `.tools/hyperlane/artifacts/`. No Hyperlane source is copied here; what this module
writes itself is the part a Hyperlane relayer and validator do off-chain:

- the MessageId multisig checkpoint digest the validators sign (`compute_message_id_digest`):
  keccak256(domain_hash || root || index u32 || message id), where
  domain_hash = keccak256(origin u32 || merkle tree hook bytes32 || "HYPERLANE"); each validator
  signs its EIP-191 hash (`relay.verify.ecdsa.sign_digest`);
- the MessageIdMultisigIsm metadata (`encode_message_id_metadata`): merkle tree hook (32) ||
  root (32) || index (u32) || one 65-byte signature r || s || v per signer, in the order of the
  ISM's validator list (the ISM walks that list once, so out-of-order signatures fail).

`HyperlaneRoute` deploys, on one chain, an origin Mailbox with its MerkleTreeHook and a destination
Mailbox whose default ISM is a StaticMessageIdMultisigIsm made by the package's factory (one per
validator set, `use_validators`), and delivers each message with its own `Mailbox.process`: the
simplest wiring, so the figures are Hyperlane's lower bound (a recipient naming its own ISM or a
routing ISM adds to them).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from adapters.evm.anvil import PROJECT_ROOT
from relay.errors import ConfigurationError, InvalidSignature, RelayError
from relay.verify.ecdsa import SIGNATURE_LENGTH, compute_hyperlane_domain_hash, sign_digest
from relay.verify.hashing import keccak256
from relay.verify.message import address_to_bytes32

HYPERLANE_PACKAGE = "@hyperlane-xyz/core@12.1.0"
HYPERLANE_ARTIFACTS = PROJECT_ROOT / ".tools" / "hyperlane" / "artifacts"
HYPERLANE_CONTRACTS = (
    "Mailbox",
    "MerkleTreeHook",
    "TestPostDispatchHook",
    "StaticMessageIdMultisigIsmFactory",
    "StaticMessageIdMultisigIsm",
)
_UINT32_MAX = 2**32 - 1
_MAX_VALIDATORS = 255  # the ISM factory takes the threshold as a uint8


class HyperlaneNotInstalled(ConfigurationError):
    """Hyperlane's compiled contracts are missing from .tools/ (installed by `make tools`)."""


class HyperlaneDeliveryFailed(RelayError):
    """A Hyperlane transaction of the bench reverted, or `process` did not deliver."""


def load_hyperlane_artifact(name: str, directory: Path = HYPERLANE_ARTIFACTS) -> dict[str, Any]:
    """The ABI and creation bytecode of Hyperlane contract `name`, from the installed npm package."""
    path = directory / f"{name}.json"
    try:
        artifact: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise HyperlaneNotInstalled(
            f"Hyperlane's contracts ({HYPERLANE_PACKAGE}) are not installed: run `make tools`",
            missing=str(path),
        ) from error
    except ValueError as error:
        raise HyperlaneNotInstalled(
            "Hyperlane artifact is not valid JSON: run `make tools` again", path=str(path)
        ) from error
    if not isinstance(artifact, dict):
        raise HyperlaneNotInstalled(
            "Hyperlane artifact is not an object: run `make tools` again", path=str(path)
        )
    if artifact.get("package") != HYPERLANE_PACKAGE:
        raise HyperlaneNotInstalled(
            f"Hyperlane artifact from another package version: run `make tools` ({HYPERLANE_PACKAGE})",
            path=str(path),
            found=str(artifact.get("package")),
        )
    bytecode = artifact.get("bytecode")
    if (
        not isinstance(artifact.get("abi"), list)
        or not isinstance(bytecode, str)
        or not bytecode.startswith("0x")
    ):
        raise HyperlaneNotInstalled(
            "Hyperlane artifact lacks its ABI or bytecode: run `make tools` again", path=str(path)
        )
    return artifact


def compute_message_id_digest(
    origin: int, merkle_tree_hook: bytes, root: bytes, index: int, message_id: bytes
) -> bytes:
    """The checkpoint digest a MessageIdMultisigIsm validator signs (before EIP-191 hashing)."""
    _require_word("merkle tree hook", merkle_tree_hook)
    _require_word("root", root)
    _require_word("message id", message_id)
    if not 0 <= index <= _UINT32_MAX:
        raise InvalidSignature("checkpoint index must be a u32", index=index)
    domain_hash = compute_hyperlane_domain_hash(origin, merkle_tree_hook)
    return keccak256(domain_hash + root + struct.pack(">I", index) + message_id)


def encode_message_id_metadata(
    merkle_tree_hook: bytes, root: bytes, index: int, signatures: Sequence[bytes]
) -> bytes:
    """`Mailbox.process` metadata for a MessageIdMultisigIsm; `signatures` in validator order."""
    _require_word("merkle tree hook", merkle_tree_hook)
    _require_word("root", root)
    if not 0 <= index <= _UINT32_MAX:
        raise InvalidSignature("checkpoint index must be a u32", index=index)
    for position, signature in enumerate(signatures):
        if len(signature) != SIGNATURE_LENGTH:
            raise InvalidSignature(
                "a validator signature is 65 bytes r || s || v", position=position, length=len(signature)
            )
    return merkle_tree_hook + root + struct.pack(">I", index) + b"".join(signatures)


def _require_word(what: str, value: bytes) -> None:
    if len(value) != 32:
        raise InvalidSignature(f"{what} must be 32 bytes", length=len(value))


@dataclass(frozen=True)
class ValidatorSet:
    """A MessageIdMultisigIsm's validators (in the ISM's order), their keys and the threshold."""

    addresses: tuple[bytes, ...]
    secret_keys: tuple[bytes, ...]
    threshold: int

    def __post_init__(self) -> None:
        if len(self.addresses) != len(self.secret_keys) or not 0 < len(self.addresses) <= _MAX_VALIDATORS:
            raise ConfigurationError("a validator set needs 1..255 validators, one key each")
        if not 0 < self.threshold <= len(self.addresses):
            raise ConfigurationError(
                "threshold must be in 1..validators", threshold=self.threshold, size=len(self.addresses)
            )

    def sign_quorum(self, digest: bytes) -> list[bytes]:
        """Signatures of the first `threshold` validators over `digest`, in validator order."""
        return [sign_digest(key, digest) for key in self.secret_keys[: self.threshold]]


class HyperlaneRoute:
    """Hyperlane's origin (Mailbox + MerkleTreeHook) and destination Mailbox on one chain.

    Messages go to the recipient given to `set_recipient` (deployed by the caller for
    `destination_mailbox`; it must accept `handle(uint32, bytes32, bytes)` from it) under the
    validators given to `use_validators`. Transactions come from the node's default account, which
    owns both Mailboxes.
    """

    def __init__(self, w3: Web3, origin: int, destination: int) -> None:
        self.w3 = w3
        self.origin = origin
        self.destination = destination
        owner = w3.eth.default_account
        self.origin_mailbox = self._deploy("Mailbox", origin)
        self.merkle_tree_hook = self._deploy("MerkleTreeHook", self.origin_mailbox.address)
        self.origin_required_hook = self._deploy("TestPostDispatchHook")
        self._transact(
            self.origin_mailbox.functions.initialize(
                owner,
                self.merkle_tree_hook.address,  # never used on the origin; must be a contract
                self.merkle_tree_hook.address,
                self.origin_required_hook.address,
            )
        )
        self.destination_mailbox = self._deploy("Mailbox", destination)
        self.destination_hook = self._deploy("TestPostDispatchHook")
        self.ism_factory = self._deploy("StaticMessageIdMultisigIsmFactory")
        self._initialized = False
        self.recipient: Contract | None = None
        self.validators: ValidatorSet | None = None
        self.ism: Contract | None = None
        self.hook_word = address_to_bytes32(self.merkle_tree_hook.address)

    def set_recipient(self, recipient: Contract) -> None:
        """Deliver to `recipient` from now on."""
        self.recipient = recipient

    def use_validators(self, validators: ValidatorSet) -> str:
        """Deploy a StaticMessageIdMultisigIsm for `validators` and make it the destination
        Mailbox's default ISM; return its address."""
        addresses = [to_checksum_address(address) for address in validators.addresses]
        deploy = self.ism_factory.functions.deploy(addresses, validators.threshold)
        self._transact(deploy)
        ism_address = self.ism_factory.functions.getAddress(addresses, validators.threshold).call()
        ism = self._at("StaticMessageIdMultisigIsm", ism_address)
        listed, threshold = ism.functions.validatorsAndThreshold(b"").call()
        if [str(a).lower() for a in listed] != [
            a.lower() for a in addresses
        ] or threshold != validators.threshold:
            raise HyperlaneDeliveryFailed("the ISM lists other validators", ism=ism_address)
        mailbox = self.destination_mailbox.functions
        if not self._initialized:
            owner = self.w3.eth.default_account
            hook = self.destination_hook.address
            self._transact(mailbox.initialize(owner, ism_address, hook, hook))
            self._initialized = True
        else:
            self._transact(mailbox.setDefaultIsm(ism_address))
        self.validators, self.ism = validators, ism
        return str(ism_address)

    def dispatch(self, body: bytes) -> tuple[bytes, bytes]:
        """Dispatch `body` to the recipient; return (metadata signed by the validators, message)
        for the message's own checkpoint (the root right after it, its index)."""
        if self.recipient is None or self.validators is None:
            raise HyperlaneDeliveryFailed("set a recipient and validators before dispatching")
        recipient = address_to_bytes32(self.recipient.address)
        receipt = self._transact(self.origin_mailbox.functions.dispatch(self.destination, recipient, body))
        (event,) = self.origin_mailbox.events.Dispatch().process_receipt(receipt, errors=DISCARD)
        message = bytes(event["args"]["message"])
        root, index = self.merkle_tree_hook.functions.latestCheckpoint().call()
        digest = compute_message_id_digest(
            self.origin, self.hook_word, bytes(root), index, keccak256(message)
        )
        metadata = encode_message_id_metadata(
            self.hook_word, bytes(root), index, self.validators.sign_quorum(digest)
        )
        return metadata, message

    def process(self, metadata: bytes, message: bytes) -> Any:
        """`Mailbox.process(metadata, message)` on the destination; the receipt, once delivered."""
        receipt = self._transact(self.destination_mailbox.functions.process(metadata, message))
        processed = self.destination_mailbox.events.ProcessId().process_receipt(receipt, errors=DISCARD)
        if [bytes(e["args"]["messageId"]) for e in processed] != [keccak256(message)]:
            raise HyperlaneDeliveryFailed("process did not deliver the message", message=message.hex())
        return receipt

    def verify(self, metadata: bytes, message: bytes) -> bool:
        """The ISM's own answer (`verify`, a view) for `metadata` and `message`; False on a revert."""
        if self.ism is None:
            raise HyperlaneDeliveryFailed("no ISM deployed yet")
        try:
            return bool(self.ism.functions.verify(metadata, message).call())
        except Exception:  # noqa: BLE001 - the ISM reverts with reasons of its own on bad metadata
            return False

    def _deploy(self, name: str, *arguments: Any) -> Contract:
        artifact = load_hyperlane_artifact(name)
        factory = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        receipt = self._transact(factory.constructor(*arguments))
        if receipt["contractAddress"] is None:
            raise HyperlaneDeliveryFailed(f"deploying Hyperlane's {name} created no contract")
        return self._at(name, receipt["contractAddress"])

    def _at(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(address=to_checksum_address(address), abi=hyperlane_abi(name))

    def _transact(self, call: Any) -> Any:
        try:
            transaction_hash = call.transact()
        except ContractLogicError as error:  # refused by the node's gas estimate: a revert
            raise HyperlaneDeliveryFailed(f"Hyperlane transaction reverted: {error}") from error
        receipt = self.w3.eth.wait_for_transaction_receipt(transaction_hash)
        if receipt["status"] != 1:
            raise HyperlaneDeliveryFailed("Hyperlane transaction reverted", receipt=str(dict(receipt)))
        return receipt


@cache
def hyperlane_abi(name: str) -> list[Any]:
    """The ABI of Hyperlane contract `name` (loaded once)."""
    abi: list[Any] = load_hyperlane_artifact(name)["abi"]
    return abi
