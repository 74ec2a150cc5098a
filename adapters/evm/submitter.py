"""`EvmDestination`: delivers verified messages to a destination Gateway.

One `submit` is one transaction: the messages not yet delivered (asked first with
`delivered(origin, nonce)`, so restarts and competing relayers never pay twice) go in a single
`process` (one message) or `processBatch` call under one checkpoint and certificate, each message
with the gas limit its `DeliveryItem` names (the Gateway gives the recipient exactly that). The
transaction is simulated first (`eth_estimateGas`), so a proof the Gateway would reject costs
nothing and comes back as a typed error; then it is signed with EIP-1559 fees and a locally
managed nonce, sent, and its receipt awaited and parsed into `Delivered` / `DeliveryFailed`.

Failures, by what the caller must do:

- the Gateway rejected the proof (custom errors such as `InvalidSignature`, `QuorumNotReached`,
  `InvalidMerkleProof`, `WrongGateway`): the matching `relay.errors.InvalidProof` subclass, with
  the contract error's name and arguments as fields. Never retried.
- the Gateway is not ready for it (`UnknownOrigin`, `WrongEpoch` during a hand-over) or reverted
  without naming a proof check (`Error`, `Panic`, empty data): `PermanentError`, parked.
- a competing delivery (`AlreadyDelivered` in the simulation): the delivered flags are read again
  and the rest is sent. A message whose gas limit no transaction can give its recipient
  (`InsufficientGasForRecipient(id, ...)` even in the simulation): that message is reported failed
  (parked) and the rest of the batch is delivered.
- nonce races, fee or gas problems, RPC failures, receipts that do not come: `TransientError`
  subclasses (`NonceConflict`, `FeeTooLow`, `OutOfGas`, `ReceiptTimeout`, `RpcUnavailable`).
- a recipient whose `handle` reverts or runs out of its gas limit does not fail the transaction:
  its id is reported in `SubmittedBatch.failed` with the decoded reason (`RecipientOutOfGas(limit)`
  for the latter), and the message stays deliverable.

This module keeps the sending and the nonce; the error types and revert decoding are in
`adapters.evm.errors`, the calldata encodings in `adapters.evm.calldata`, and the gas-limit and
fee policy in `adapters.evm.fees`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_typing import ChecksumAddress
from web3 import exceptions as web3_errors

from adapters.evm.calldata import (
    DELIVERED_SELECTOR,
    PROCESS_BATCH_SELECTOR,
    PROCESS_BATCH_TYPES,
    PROCESS_SELECTOR,
    PROCESS_TYPES,
    PreparedCall,
    compress_branch,
)
from adapters.evm.config import EvmCompatibleChainConfig
from adapters.evm.errors import (
    DeliveryReverted,
    GatewayRejected,
    OutOfGas,
    ReceiptTimeout,
    RecipientGasUnavailable,
    classify_send_error,
    decode_contract_error,
    error_for_revert,
    first_bytes32,
    revert_data,
)
from adapters.evm.fees import (
    compute_gas_limit,
    compute_max_fee_per_gas,
    compute_minimum_gas_limit,
    read_fees,
)
from adapters.evm.rpc import (
    DELIVERED_TOPIC,
    DELIVERY_FAILED_TOPIC,
    EvmEndpoint,
    checksum_address,
    endpoints_for,
    gateway_abi,
)
from relay import errors
from relay.chains import DeliveryItem, SubmittedBatch
from relay.errors import ConfigurationError, RelayError, TransientError
from relay.metrics import RelayMetrics
from relay.verify.bls import signature_to_eip2537
from relay.verify.committee import Checkpoint, QuorumCertificate

log = logging.getLogger(__name__)

TREE_DEPTH = 32
MAX_HANDLE_GAS_LIMIT = 2**64 - 1  # the gRPC field's range; the chain's block gas limit is lower
RECEIPT_TIMEOUT_SECONDS = 60.0
RECEIPT_POLL_SECONDS = 0.1
MAX_SIMULATION_ROUNDS = 8  # re-simulations after a competing delivery or an undeliverable gas limit


@dataclass(frozen=True)
class EvmDestinationStatus:
    """What `GetStatus` reports (a `relay.chains.DestinationStatus`): head, next nonce, balance in wei."""

    domain: int
    head: int
    nonce: int
    balance: int
    account: bytes


class EvmDestination:
    """A submitter's hold on one destination Gateway (`relay.chains.DestinationChain`).

    Thread-safe: transactions are built, signed and sent one at a time (the nonce manager's
    lock); receipts are awaited outside the lock, so batches can be in flight together.
    """

    def __init__(
        self,
        chain: EvmCompatibleChainConfig,
        private_key: str,
        *,
        endpoint: EvmEndpoint | None = None,
        metrics: RelayMetrics | None = None,
        receipt_timeout: float = RECEIPT_TIMEOUT_SECONDS,
    ) -> None:
        self.chain = chain
        self.domain = chain.domain
        self.metrics = metrics
        try:
            self._signer = Account.from_key(private_key.strip())
        except (ValueError, TypeError) as error:
            raise ConfigurationError("submitter key is not a secp256k1 private key") from error
        self.account: ChecksumAddress = self._signer.address
        self.endpoint = endpoint or endpoints_for(chain, metrics)[0]
        self.address = checksum_address(chain.gateway, "gateway address")
        self.gateway = self.endpoint.web3.eth.contract(address=self.address, abi=gateway_abi())
        self.receipt_timeout = receipt_timeout
        self._lock = threading.Lock()
        self._nonce: int | None = None
        self._chain_id: int | None = None

    # --- reads --------------------------------------------------------------------------------

    def delivered(self, keys: Sequence[tuple[int, int]]) -> list[bool]:
        """Whether each (origin, nonce) was delivered (one batched JSON-RPC request)."""
        if not keys:
            return []
        web3 = self.endpoint.web3

        def read() -> list[bool]:
            # Calldata by hand and one raw JSON-RPC batch: web3's contract layer and request
            # middleware cost milliseconds of Python per call, seconds for a large batch.
            requests = [
                (
                    "eth_call",
                    [
                        {
                            "to": self.address,
                            "data": "0x"
                            + (DELIVERED_SELECTOR + abi_encode(["uint32", "uint32"], [origin, nonce])).hex(),
                        },
                        "latest",
                    ],
                )
                for origin, nonce in keys
            ]
            provider: Any = web3.provider
            responses = provider.make_batch_request(requests)
            if not isinstance(responses, list) or len(responses) != len(keys):
                raise errors.RpcUnavailable("malformed batch answer to eth_call", answer=str(responses)[:200])
            flags = []
            for response in responses:
                if "error" in response or "result" not in response:
                    raise errors.RpcUnavailable(
                        "eth_call failed in a batch", error=str(response.get("error"))[:200]
                    )
                flags.append(int(str(response["result"]), 16) != 0)
            return flags

        return self.endpoint.read("eth_call", read)

    def status(self) -> EvmDestinationStatus:
        """Chain head, the account's pending nonce and balance."""
        eth = self.endpoint.web3.eth
        head = self.endpoint.block_number()
        nonce = int(
            self.endpoint.read(
                "eth_getTransactionCount", lambda: eth.get_transaction_count(self.account, "pending")
            )
        )
        balance = int(self.endpoint.read("eth_getBalance", lambda: eth.get_balance(self.account)))
        if self.metrics is not None:
            self.metrics.submitter_balance.labels(self.chain.name, self.account).set(balance)
            self.metrics.submitter_nonce.labels(self.chain.name, self.account).set(nonce)
        return EvmDestinationStatus(self.domain, head, nonce, balance, bytes.fromhex(self.account[2:]))

    # --- delivering ---------------------------------------------------------------------------

    def submit(
        self, checkpoint: Checkpoint, certificate: QuorumCertificate, items: Sequence[DeliveryItem]
    ) -> SubmittedBatch:
        """Send one delivery transaction for the undelivered `items`, wait for it, report each."""
        if not items:
            raise errors.MalformedEncoding("a delivery needs at least one message")
        for item in items:
            validate_item(item, self.domain, checkpoint)
        failed_early: dict[bytes, str] = {}
        pending = list(items)
        for _ in range(MAX_SIMULATION_ROUNDS):
            flags = self.delivered([(item.message.origin, item.message.nonce) for item in pending])
            pending = [item for item, done in zip(pending, flags, strict=True) if not done]
            if not pending:
                return SubmittedBatch(b"", 0, 0, [], failed_early)
            call = self._delivery_call(checkpoint, certificate, pending)
            try:
                floor = compute_minimum_gas_limit([item.gas_limit for item in pending])
                transaction_hash = self._send(call, len(pending), floor)
                break
            except RecipientGasUnavailable as error:
                # One message names more gas than a transaction can give: leave it out (reported
                # as failed, so it is parked) and deliver the rest, instead of failing the batch.
                culprit = first_bytes32(error)
                if culprit is None or all(item.message.id != culprit for item in pending):
                    raise
                failed_early[culprit] = str(error.fields.get("arguments", "InsufficientGasForRecipient"))
                pending = [item for item in pending if item.message.id != culprit]
            except GatewayRejected as error:
                if error.fields.get("contract_error") != "AlreadyDelivered":
                    raise
                # Another transaction delivered some of them since we read the flags: read again.
                continue
        else:
            raise DeliveryReverted("delivery simulation kept changing", rounds=MAX_SIMULATION_ROUNDS)
        receipt = self._wait_for_receipt(transaction_hash)
        if int(receipt["status"]) != 1:
            raise self._explain_failure(call, receipt)
        delivered, failed = parse_delivery_logs(receipt["logs"], self.address)
        failed.update(failed_early)
        gas_used = int(receipt["gasUsed"])
        if self.metrics is not None:
            price = int(receipt.get("effectiveGasPrice", 0) or 0)
            self.metrics.gas_spent.labels(self.chain.name, self.account).inc(gas_used * price)
        return SubmittedBatch(transaction_hash, int(receipt["blockNumber"]), gas_used, delivered, failed)

    def _delivery_call(
        self, checkpoint: Checkpoint, certificate: QuorumCertificate, items: Sequence[DeliveryItem]
    ) -> PreparedCall:
        point = (checkpoint.origin, checkpoint.gateway, checkpoint.epoch, checkpoint.root, checkpoint.index)
        signature = signature_to_eip2537(certificate.signature)
        branches = [compress_branch(item.branch) for item in items]
        if len(items) == 1:
            item = items[0]
            data = PROCESS_SELECTOR + abi_encode(
                PROCESS_TYPES,
                [point, certificate.signers, signature, item.message.encode(), branches[0], item.gas_limit],
            )
        else:
            data = PROCESS_BATCH_SELECTOR + abi_encode(
                PROCESS_BATCH_TYPES,
                [
                    point,
                    certificate.signers,
                    signature,
                    [item.message.encode() for item in items],
                    branches,
                    [item.gas_limit for item in items],
                ],
            )
        return PreparedCall(self.endpoint.web3, self.address, data)

    def _simulate(self, call: Any) -> int:
        """eth_estimateGas; a revert becomes the typed error of its custom error."""

        def estimate() -> int:
            return int(call.estimate_gas({"from": self.account}))

        try:
            return self.endpoint.call("eth_estimateGas", estimate)
        except (web3_errors.ContractLogicError, web3_errors.ContractCustomError) as error:
            raise error_for_revert(decode_contract_error(revert_data(error))) from error
        except web3_errors.Web3RPCError as error:
            typed = classify_send_error(error, self.account)
            if typed is not None:
                raise typed from error
            raise

    def _send(self, call: Any, size: int, floor: int) -> bytes:
        gas = self._simulate(call)
        limit = max(compute_gas_limit(gas), floor)
        eth = self.endpoint.web3.eth
        with self._lock:
            if self._chain_id is None:
                self._chain_id = int(self.endpoint.read("eth_chainId", lambda: eth.chain_id))
            if self._nonce is None:
                self._nonce = int(
                    self.endpoint.read(
                        "eth_getTransactionCount", lambda: eth.get_transaction_count(self.account, "pending")
                    )
                )
            base_fee, tip = read_fees(self.endpoint)
            transaction = call.build_transaction(
                {
                    "from": self.account,
                    "nonce": self._nonce,
                    "gas": limit,
                    "chainId": self._chain_id,
                    "maxFeePerGas": compute_max_fee_per_gas(base_fee, tip),
                    "maxPriorityFeePerGas": tip,
                }
            )
            signed = self._signer.sign_transaction(transaction)
            try:
                transaction_hash = self.endpoint.call(
                    "eth_sendRawTransaction", lambda: eth.send_raw_transaction(signed.raw_transaction)
                )
            except web3_errors.Web3RPCError as error:
                self._nonce = None  # re-read from the chain next time
                typed = classify_send_error(error, self.account)
                if typed is not None:
                    raise typed from error
                raise TransientError(
                    "node refused the delivery transaction", cause=str(error)[:200]
                ) from error
            except errors.RpcUnavailable:
                self._nonce = None  # the transaction may or may not have arrived
                raise
            self._nonce += 1
        log.info(
            "delivery sent",
            extra={
                "transaction": bytes(transaction_hash).hex(),
                "messages": size,
                "gas_limit": limit,
                "destination": self.domain,
            },
        )
        return bytes(transaction_hash)

    def _wait_for_receipt(self, transaction_hash: bytes) -> Any:
        eth = self.endpoint.web3.eth
        deadline = time.monotonic() + self.receipt_timeout

        def fetch() -> Any:
            try:
                return eth.get_transaction_receipt(transaction_hash)  # type: ignore[arg-type]
            except web3_errors.TransactionNotFound:
                return None

        while time.monotonic() < deadline:
            receipt = self.endpoint.read("eth_getTransactionReceipt", fetch)
            if receipt is not None:
                return receipt
            time.sleep(RECEIPT_POLL_SECONDS)
        with self._lock:
            self._nonce = None
        raise ReceiptTimeout(
            "no receipt for the delivery transaction",
            transaction="0x" + transaction_hash.hex(),
            seconds=self.receipt_timeout,
        )

    def _explain_failure(self, call: Any, receipt: Any) -> RelayError:
        """Why a mined delivery reverted: replay it on the state before its block."""
        block = int(receipt["blockNumber"])
        if int(receipt["gasUsed"]) >= int(self._gas_limit_of(receipt)):
            return OutOfGas(
                "delivery transaction ran out of gas", transaction=bytes(receipt["transactionHash"]).hex()
            )
        try:
            self.endpoint.call(
                "eth_call", lambda: call.call({"from": self.account}, block_identifier=block - 1)
            )
        except (web3_errors.ContractLogicError, web3_errors.ContractCustomError) as error:
            decoded = decode_contract_error(revert_data(error))
            if decoded.name == "AlreadyDelivered":
                return DeliveryReverted(
                    "message delivered by a competing transaction", reason=decoded.describe()
                )
            return error_for_revert(decoded)
        except RelayError as error:
            return error
        return DeliveryReverted(
            "delivery transaction reverted; the replay did not",
            transaction=bytes(receipt["transactionHash"]).hex(),
        )

    def _gas_limit_of(self, receipt: Any) -> int:
        eth = self.endpoint.web3.eth
        transaction = self.endpoint.read(
            "eth_getTransactionByHash", lambda: eth.get_transaction(receipt["transactionHash"])
        )
        return int(transaction["gas"])


def validate_item(item: DeliveryItem, domain: int, checkpoint: Checkpoint) -> None:
    """Raise before spending gas on an item the Gateway would reject for its shape."""
    message = item.message
    if message.destination != domain:
        raise errors.DestinationMismatch(
            "message addressed to another domain",
            destination=message.destination,
            expected=domain,
            id=message.id,
        )
    if message.origin != checkpoint.origin:
        raise errors.OriginMismatch(
            "message of another origin than the checkpoint",
            origin=message.origin,
            expected=checkpoint.origin,
            id=message.id,
        )
    if message.nonce > checkpoint.index:
        raise errors.IndexOutOfRange(
            "message not covered by the checkpoint",
            nonce=message.nonce,
            index=checkpoint.index,
            id=message.id,
        )
    if len(item.branch) != TREE_DEPTH or any(len(node) != 32 for node in item.branch):
        raise errors.MalformedEncoding(
            "a Merkle branch is 32 hashes of 32 bytes", id=message.id, length=len(item.branch)
        )
    gas_limit = item.gas_limit
    if (
        not isinstance(gas_limit, int)
        or isinstance(gas_limit, bool)
        or not 0 < gas_limit <= MAX_HANDLE_GAS_LIMIT
    ):
        raise errors.MalformedEncoding(
            "a handle gas limit is a positive u64", id=message.id, gas_limit=gas_limit
        )


def parse_delivery_logs(logs: Sequence[Any], gateway: str) -> tuple[list[bytes], dict[bytes, str]]:
    """Delivered ids and {id: recipient revert reason} from a delivery receipt's logs."""
    delivered: list[bytes] = []
    failed: dict[bytes, str] = {}
    for entry in logs:
        if str(entry["address"]).lower() != gateway.lower() or not entry["topics"]:
            continue
        topic = bytes(entry["topics"][0])
        if topic == DELIVERED_TOPIC:
            delivered.append(bytes(entry["topics"][1]))
        elif topic == DELIVERY_FAILED_TOPIC:
            (reason,) = abi_decode(["bytes"], bytes(entry["data"]))
            failed[bytes(entry["topics"][1])] = decode_contract_error(reason).describe()
    return delivered, failed
