"""The Gateway contract pair the contract tests share: a source and a destination Gateway on one
anvil chain with the example Counter app, and helpers to send, certify and deliver.

Fixtures built from it (`w3`, `signing`, `bridge`) are in tests/integration/conftest.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi import decode
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from adapters.evm.deploy import committee_struct
from adapters.evm.gas import SigningCommittee, deploy_contract
from relay.chains import DEFAULT_HANDLE_GAS_LIMIT
from relay.verify.committee import Checkpoint
from relay.verify.hashing import keccak256
from relay.verify.merkle import MerkleTree
from relay.verify.message import address_to_bytes32

ORIGIN = 1
DESTINATION = 2
SHA256: Any = hashlib.sha256  # py_ecc's annotations want a hash object, it calls the constructor
NO_SIGNATURE = bytes(256)  # for checks that fail before the signature is looked at

CheckpointTuple = tuple[int, bytes, int, bytes, int]


def checkpoint_digest(checkpoint: CheckpointTuple) -> bytes:
    """The off-chain verifier's digest of the contract's Checkpoint struct."""
    origin, gateway, epoch, root, index = checkpoint
    return Checkpoint(origin=origin, gateway=gateway, epoch=epoch, root=root, index=index).digest()


def account(w3: Web3, index: int) -> str:
    """anvil's unlocked account `index` (0 is the default sender)."""
    return str(list(w3.eth.accounts)[index])


def transact(w3: Web3, call: Any) -> Any:
    receipt = w3.eth.wait_for_transaction_receipt(call.transact())
    assert receipt["status"] == 1
    return receipt


def events(contract: Contract, name: str, receipt: Any) -> list[Any]:
    return [event["args"] for event in contract.events[name]().process_receipt(receipt, errors=DISCARD)]


def decode_error(contract: Contract, data: bytes) -> tuple[str, tuple[Any, ...]]:
    """(name, arguments) of a custom error of `contract` from its ABI encoding."""
    for entry in contract.abi:
        if entry["type"] != "error":
            continue
        types = [parameter["type"] for parameter in entry["inputs"]]
        if keccak256(f"{entry['name']}({','.join(types)})".encode())[:4] == data[:4]:
            values = decode(types, data[4:])
            return entry["name"], tuple(
                Web3.to_checksum_address(value) if kind == "address" else value
                for kind, value in zip(types, values, strict=True)
            )
    raise AssertionError(f"unknown error data 0x{data.hex()}")


def assert_reverts(
    contract: Contract, call: Any, name: str, *arguments: Any, sender: str | None = None, value: int = 0
) -> None:
    fields: dict[str, Any] = {"from": sender} if sender else {}
    if value:
        fields["value"] = value
    with pytest.raises(ContractCustomError) as raised:
        call.call(fields or None)
    decoded = decode_error(contract, bytes.fromhex(str(raised.value.data)[2:]))
    assert decoded == (name, arguments), decoded


@dataclass
class Bridge:
    """Source Gateway (domain 1) -> destination Gateway (domain 2) with the Counter app, one chain."""

    w3: Web3
    signing: SigningCommittee
    source: Contract
    destination: Contract
    counter: Contract
    tree: MerkleTree

    @property
    def source_word(self) -> bytes:
        return address_to_bytes32(self.source.address)

    def send(
        self, body: bytes, recipient: str | None = None, destination: int = DESTINATION
    ) -> tuple[bytes, int]:
        """Dispatch from the default account; returns (message, nonce)."""
        recipient_word = address_to_bytes32(recipient or self.counter.address)
        receipt = transact(self.w3, self.source.functions.dispatch(destination, recipient_word, body))
        (event,) = events(self.source, "Dispatch", receipt)
        self.tree.insert(bytes(event["id"]))
        return bytes(event["message"]), int(event["nonce"])

    def checkpoint(self, **changes: Any) -> CheckpointTuple:
        root, index = self.source.functions.latestCheckpoint().call()
        fields = {"origin": ORIGIN, "gateway": self.source_word, "epoch": 1, "root": root, "index": index}
        fields.update(changes)
        return (fields["origin"], fields["gateway"], fields["epoch"], fields["root"], fields["index"])

    def certify(
        self, digest: bytes, signers: tuple[int, ...] = (0, 1, 2), signing: SigningCommittee | None = None
    ) -> tuple[bytes, bytes]:
        return (signing or self.signing).certify(digest, signers)

    def process(
        self,
        message: bytes,
        nonce: int,
        checkpoint: Any = None,
        certificate: Any = None,
        gas_limit: int = DEFAULT_HANDLE_GAS_LIMIT,
    ) -> Any:
        checkpoint = checkpoint or self.checkpoint()
        bitfield, signature = certificate or self.certify(checkpoint_digest(checkpoint))
        return self.destination.functions.process(
            checkpoint, bitfield, signature, message, self.tree.branch(nonce), gas_limit
        )


def make_bridge(w3: Web3, signing: SigningCommittee) -> Bridge:
    """Deploy both Gateways and the Counter; enroll the source with `signing`'s committee."""
    source = deploy_contract(w3, "Gateway", ORIGIN)
    destination = deploy_contract(w3, "Gateway", DESTINATION)
    counter = deploy_contract(w3, "Counter", destination.address)
    source_word = address_to_bytes32(source.address)
    transact(w3, destination.functions.enrollOrigin(ORIGIN, source_word, committee_struct(signing.committee)))
    return Bridge(w3, signing, source, destination, counter, MerkleTree())
