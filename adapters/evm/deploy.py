"""Deploying a Gateway and the example app (`Counter`), and enrolling an origin's committee.

Used by `relay devnet`, the benchmarks and the tests. Transactions are signed locally and sent
back to back with consecutive nonces (contract addresses follow from the deployer's nonce), then
awaited together, so a deployment costs one block, not one block per transaction.

`TransactionSender` is the small signer they share: nonces kept locally, EIP-1559 fees, optional
waiting for receipts. It is for throw-away devnet and test accounts, not for the submitter
(`adapters.evm.submitter` has the careful one).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from rlp import encode as rlp_encode
from web3 import Web3

from adapters.evm.build import load_artifact
from adapters.evm.rpc import EvmEndpoint
from relay.errors import TransientError
from relay.verify.bls import proof_of_possession_to_eip2537, public_key_to_eip2537
from relay.verify.committee import Committee
from relay.verify.ecdsa import EcdsaCommittee
from relay.verify.hashing import keccak256
from relay.verify.message import address_to_bytes32

DEPLOY_GATEWAY_GAS = 6_000_000
DEPLOY_COUNTER_GAS = 2_000_000
# enrollOrigin / handover: about 230k gas per new member (its proof of possession verified
# on-chain, ~182k of it; `python -m adapters.evm.gas --committees`), ~46k per already proven one.
ENROLL_GAS_PER_MEMBER = 300_000
ENROLL_GAS_BASE = 400_000
ENROLL_GAS_CAP = 30_000_000  # a block's gas limit on the devnet (anvil's default)
DISPATCH_GAS = 400_000
SET_GAS_ORACLE_GAS = 100_000
# The devnet's gas oracle for every destination: 1 gwei per gas, native tokens at par (scale 1e10).
DEVNET_GAS_PRICE = 1_000_000_000
DEVNET_EXCHANGE_RATE = 10**10
RECEIPT_TIMEOUT_SECONDS = 60.0


class TransactionFailed(TransientError):
    """A devnet/test transaction reverted or was not mined in time."""


def compute_create_address(deployer: str, nonce: int) -> str:
    """The address of the contract `deployer` creates with transaction nonce `nonce`."""
    raw = keccak256(rlp_encode([bytes.fromhex(deployer[2:]), nonce]))[12:]
    return str(to_checksum_address(raw))


class TransactionSender:
    """Signs and sends transactions from one throw-away key, keeping its nonce locally."""

    def __init__(self, endpoint: EvmEndpoint | str, private_key: str) -> None:
        self.endpoint = endpoint if isinstance(endpoint, EvmEndpoint) else EvmEndpoint(endpoint)
        self.web3: Web3 = self.endpoint.web3
        self.account = Account.from_key(private_key)
        self.address: ChecksumAddress = self.account.address
        eth = self.web3.eth
        self.chain_id = int(self.endpoint.read("eth_chainId", lambda: eth.chain_id))
        self.nonce = int(
            self.endpoint.read(
                "eth_getTransactionCount", lambda: eth.get_transaction_count(self.address, "pending")
            )
        )

    def _fees(self) -> dict[str, int]:
        block = self.endpoint.block("latest")
        base = int(block.get("baseFeePerGas", 0) or 0) if block is not None else 0
        tip = 1_000_000_000
        return {"maxFeePerGas": base * 3 + tip, "maxPriorityFeePerGas": tip}

    def send(self, transaction: dict[str, Any], fees: dict[str, int] | None = None) -> bytes:
        """Sign and send `transaction` (needs `gas`; `to`/`data`/`value` as given); return its hash."""
        fields = {
            "chainId": self.chain_id,
            "nonce": self.nonce,
            "value": 0,
            **(fees or self._fees()),
            **transaction,
        }
        signed = self.account.sign_transaction(fields)
        eth = self.web3.eth
        transaction_hash = self.endpoint.call(
            "eth_sendRawTransaction", lambda: eth.send_raw_transaction(signed.raw_transaction)
        )
        self.nonce += 1
        return bytes(transaction_hash)

    def send_call(self, call: Any, gas: int, fees: dict[str, int] | None = None) -> bytes:
        """Send a contract function call (`contract.functions.f(...)`) with a fixed gas limit."""
        data = call._encode_transaction_data()
        return self.send({"to": call.address, "data": data, "gas": gas}, fees)

    def wait(
        self,
        transaction_hashes: Sequence[bytes],
        timeout: float = RECEIPT_TIMEOUT_SECONDS,
        require_success: bool = True,
    ) -> list[Any]:
        """Receipts of all `transaction_hashes`, in order; raise `TransactionFailed` on a revert."""
        return wait_for_receipts(self.endpoint, transaction_hashes, timeout, require_success)


def wait_for_receipts(
    endpoint: EvmEndpoint,
    transaction_hashes: Sequence[bytes],
    timeout: float = RECEIPT_TIMEOUT_SECONDS,
    require_success: bool = True,
) -> list[Any]:
    """Poll until every transaction has a receipt; raise `TransactionFailed` on revert or timeout."""
    from web3.exceptions import TransactionNotFound

    eth = endpoint.web3.eth
    receipts: dict[bytes, Any] = {}
    deadline = time.monotonic() + timeout
    while len(receipts) < len(transaction_hashes):
        for transaction_hash in transaction_hashes:
            if transaction_hash in receipts:
                continue
            try:
                receipt = endpoint.read(
                    "eth_getTransactionReceipt",
                    functools.partial(eth.get_transaction_receipt, HexBytes(transaction_hash)),
                )
            except TransactionNotFound:
                continue
            if receipt is None:
                continue
            if require_success and int(receipt["status"]) != 1:
                raise TransactionFailed("transaction reverted", transaction="0x" + transaction_hash.hex())
            receipts[transaction_hash] = receipt
        if len(receipts) < len(transaction_hashes):
            if time.monotonic() > deadline:
                raise TransactionFailed(
                    "transactions not mined in time", missing=len(transaction_hashes) - len(receipts)
                )
            time.sleep(0.1)
    return [receipts[h] for h in transaction_hashes]


def contract(web3: Web3, name: str, address: str) -> Any:
    """A web3 contract object for the compiled contract `name` at `address`."""
    return web3.eth.contract(address=to_checksum_address(address), abi=load_artifact(name)["abi"])


def committee_struct(committee: Committee) -> tuple[int, int, list[tuple[bytes, bytes, int]]]:
    """The Gateway's `Committee` struct for `enrollOrigin`/`handover`: EIP-2537 public keys and
    proofs of possession (the Gateway verifies each key's proof once)."""
    return (
        committee.epoch,
        committee.threshold,
        [
            (
                public_key_to_eip2537(m.public_key),
                proof_of_possession_to_eip2537(m.proof_of_possession),
                m.weight,
            )
            for m in committee.members
        ],
    )


def ecdsa_committee_struct(committee: EcdsaCommittee) -> tuple[int, int, list[str], list[int]]:
    """The Gateway's `EcdsaCommittee` struct (epoch, threshold, signers, weights) for
    `enrollOriginEcdsa`/`handoverEcdsa`/`computeEcdsaCommitteeHash`: checksummed addresses."""
    return (
        committee.epoch,
        committee.threshold,
        [str(to_checksum_address(signer)) for signer in committee.signers],
        list(committee.weights),
    )


@dataclass(frozen=True)
class Deployment:
    """The contracts of one chain: its Gateway and the example app, and who deployed them."""

    domain: int
    rpc_url: str
    gateway: str
    counter: str
    owner: str


def start_deployment(sender: TransactionSender, domain: int) -> tuple[Deployment, list[bytes]]:
    """Send the Gateway and Counter deployments (not awaited); return the addresses they will have."""
    gateway_artifact, counter_artifact = load_artifact("Gateway"), load_artifact("Counter")
    gateway_address = compute_create_address(sender.address, sender.nonce)
    gateway_data = gateway_artifact["bytecode"] + abi_encode(["uint32"], [domain]).hex()
    hashes = [sender.send({"data": gateway_data, "gas": DEPLOY_GATEWAY_GAS})]
    counter_address = compute_create_address(sender.address, sender.nonce)
    counter_data = counter_artifact["bytecode"] + abi_encode(["address"], [gateway_address]).hex()
    hashes.append(sender.send({"data": counter_data, "gas": DEPLOY_COUNTER_GAS}))
    deployment = Deployment(domain, sender.endpoint.url, gateway_address, counter_address, sender.address)
    return deployment, hashes


def send_enrollment(
    sender: TransactionSender, gateway: str, origin: int, source_gateway: str, committee: Committee
) -> bytes:
    """Send `enrollOrigin(origin, source gateway, committee)` on `gateway` (not awaited)."""
    call = contract(sender.web3, "Gateway", gateway).functions.enrollOrigin(
        origin, address_to_bytes32(source_gateway), committee_struct(committee)
    )
    gas = min(ENROLL_GAS_BASE + ENROLL_GAS_PER_MEMBER * len(committee), ENROLL_GAS_CAP)
    return sender.send_call(call, gas)


# enrollOriginEcdsa: the committee is stored as one contract's code (28 bytes per member).
ENROLL_ECDSA_GAS_BASE = 300_000
ENROLL_ECDSA_GAS_PER_MEMBER = 20_000


def send_ecdsa_enrollment(
    sender: TransactionSender, gateway: str, origin: int, source_gateway: str, committee: Any
) -> bytes:
    """Send `enrollOriginEcdsa(origin, source gateway, committee)` on `gateway` (not awaited).

    `committee` is a `relay.verify.ecdsa.EcdsaCommittee`, or the relayer's
    `relay.verify.ecdsa_quorum.EcdsaCheckpointCommittee` (its `rules`).
    """
    rules: EcdsaCommittee = getattr(committee, "rules", committee)
    call = contract(sender.web3, "Gateway", gateway).functions.enrollOriginEcdsa(
        origin, address_to_bytes32(source_gateway), ecdsa_committee_struct(rules)
    )
    gas = min(ENROLL_ECDSA_GAS_BASE + ENROLL_ECDSA_GAS_PER_MEMBER * len(rules), ENROLL_GAS_CAP)
    return sender.send_call(call, gas)


# enrollOriginVerifier: one storage slot and the source Gateway binding.
ENROLL_VERIFIER_GAS = 150_000
# Gateway.committeeScheme of an origin proven by a verifier contract (0 none, 1 BLS, 2 ECDSA).
SCHEME_VERIFIER = 3


def send_verifier_enrollment(
    sender: TransactionSender, gateway: str, origin: int, source_gateway: str, verifier: str
) -> bytes:
    """Send `enrollOriginVerifier(origin, source gateway, verifier)` on `gateway` (not awaited):
    `origin`'s messages are then proven by the contract `verifier` (e.g. an EthereumInbox),
    with no committee."""
    call = contract(sender.web3, "Gateway", gateway).functions.enrollOriginVerifier(
        origin, address_to_bytes32(source_gateway), to_checksum_address(verifier)
    )
    return sender.send_call(call, ENROLL_VERIFIER_GAS)


def send_gas_oracle(
    sender: TransactionSender,
    gateway: str,
    destination: int,
    gas_price: int = DEVNET_GAS_PRICE,
    exchange_rate: int = DEVNET_EXCHANGE_RATE,
) -> bytes:
    """Send `setGasOracle(destination, gas price, exchange rate)` on `gateway` (not awaited), so
    senders can pay there for gas on `destination`."""
    call = contract(sender.web3, "Gateway", gateway).functions.setGasOracle(
        destination, gas_price, exchange_rate
    )
    return sender.send_call(call, SET_GAS_ORACLE_GAS)


def deploy(rpc_url: str, private_key: str, domain: int, destinations: Sequence[int] = ()) -> Deployment:
    """Deploy a Gateway for `domain` and a Counter on it, set the devnet gas oracle for each of
    `destinations`; wait until all are mined."""
    sender = TransactionSender(rpc_url, private_key)
    deployment, hashes = start_deployment(sender, domain)
    hashes += [send_gas_oracle(sender, deployment.gateway, destination) for destination in destinations]
    sender.wait(hashes)
    return deployment


def enroll_origin(
    rpc_url: str, private_key: str, gateway: str, origin: int, source_gateway: str, committee: Committee
) -> None:
    """Trust `committee` for messages from `source_gateway` on `origin`; wait until mined."""
    sender = TransactionSender(rpc_url, private_key)
    sender.wait([send_enrollment(sender, gateway, origin, source_gateway, committee)])


def send_counter_messages(
    sender: TransactionSender, counter: str, destination: int, recipient: str, bodies: Sequence[bytes]
) -> list[bytes]:
    """Send one `Counter.send` per body (not awaited); return the transaction hashes."""
    app = contract(sender.web3, "Counter", counter)
    fees = sender._fees()
    target = address_to_bytes32(recipient)
    return [
        sender.send_call(app.functions.send(destination, target, body), DISPATCH_GAS, fees) for body in bodies
    ]


def dispatched_ids(receipt: Any, gateway: str) -> list[bytes]:
    """Message ids of the Dispatch events of `gateway` in a receipt."""
    from adapters.evm.rpc import DISPATCH_TOPIC

    return [
        bytes(entry["topics"][1])
        for entry in receipt["logs"]
        if str(entry["address"]).lower() == gateway.lower()
        and entry["topics"]
        and bytes(entry["topics"][0]) == DISPATCH_TOPIC
    ]


# --- reads the devnet and the tests use ---------------------------------------------------------


def counter_received(rpc_url: str, counter: str) -> int:
    """How many messages the example app at `counter` has received."""
    endpoint = EvmEndpoint(rpc_url)
    app = contract(endpoint.web3, "Counter", counter)
    return int(endpoint.read("eth_call", lambda: app.functions.received().call()))


def set_counter_failing(rpc_url: str, owner_key: str, counter: str, failing: bool) -> None:
    """Make the example app's `handle` revert (True) or work again (False); waits until mined."""
    sender = TransactionSender(rpc_url, owner_key)
    app = contract(sender.web3, "Counter", counter)
    sender.wait([sender.send_call(app.functions.setFailing(failing), 100_000)])


def gas_used_by(rpc_url: str, transaction_hashes: Sequence[bytes]) -> dict[bytes, int]:
    """gasUsed of each mined transaction (missing ones are left out)."""
    from web3.exceptions import TransactionNotFound

    endpoint = EvmEndpoint(rpc_url)
    eth = endpoint.web3.eth
    used = {}
    for transaction_hash in transaction_hashes:
        try:
            receipt = endpoint.read(
                "eth_getTransactionReceipt",
                functools.partial(eth.get_transaction_receipt, HexBytes(transaction_hash)),
            )
        except TransactionNotFound:
            continue
        if receipt is not None:
            used[transaction_hash] = int(receipt["gasUsed"])
    return used


def rpc_request(rpc_url: str, method: str, params: Sequence[Any] = ()) -> Any:
    """One raw JSON-RPC call (anvil's `evm_*` / `anvil_*` methods); raises on an error answer."""
    endpoint = EvmEndpoint(rpc_url)
    response = endpoint.call(method, lambda: endpoint.web3.provider.make_request(method, list(params)))  # type: ignore[arg-type]
    if "error" in response:
        raise TransactionFailed("JSON-RPC call failed", method=method, error=str(response["error"]))
    return response.get("result")
