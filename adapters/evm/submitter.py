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

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_typing import ChecksumAddress
from web3 import exceptions as web3_errors

from adapters.evm.calldata import (
    PROCESS_BATCH_SELECTOR,
    PROCESS_BATCH_TYPES,
    PROCESS_SELECTOR,
    PROCESS_TYPES,
    PreparedCall,
    compress_branch,
)
from adapters.evm.committees import EvmCommitteeReader, submit_handover
from adapters.evm.config import EvmCompatibleChainConfig
from adapters.evm.delivery import read_delivered
from adapters.evm.errors import (
    DeliveryReverted,
    GatewayRejected,
    OutOfGas,
    RecipientGasUnavailable,
    TransactionLost,
    classify_send_error,
    decode_contract_error,
    error_for_revert,
    first_bytes32,
    revert_data,
)
from adapters.evm.fees import compute_estimate_ceiling, compute_gas_limit, compute_minimum_gas_limit
from adapters.evm.rpc import (
    DELIVERED_TOPIC,
    DELIVERY_FAILED_TOPIC,
    EvmEndpoint,
    checksum_address,
    endpoints_for,
    gateway_abi,
)
from adapters.evm.transactions import AccountTransactions, SentTransaction
from relay import errors
from relay.chains import DeliveryItem, SubmittedBatch
from relay.chains.lightclient import HeaderUpdate, ReceiptDelivery, ReceiptProof, StoredHeaders
from relay.errors import ConfigurationError, RelayError
from relay.handover import HandoverCertificate
from relay.handover_ecdsa import EcdsaHandoverCertificate
from relay.metrics import RelayMetrics
from relay.verify.bls import signature_to_eip2537
from relay.verify.committee import Checkpoint, QuorumCertificate
from relay.verify.ecdsa_quorum import is_ecdsa_certificate

log = logging.getLogger(__name__)

TREE_DEPTH = 32
MAX_HANDLE_GAS_LIMIT = 2**64 - 1  # the gRPC field's range; the chain's block gas limit is lower
MAX_SIMULATION_ROUNDS = 8  # re-simulations after a competing delivery or an undeliverable gas limit
MAX_RESENDS = 3  # deliveries sent again in one submit after their transaction was lost


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

    Thread-safe: transactions are built, signed and sent one at a time (`AccountTransactions`
    keeps the nonce under its lock); receipts are awaited outside the lock, so batches can be in
    flight together. Every chain read is retried under `relay.retry.SUBMITTER_READ`.
    """

    def __init__(
        self,
        chain: EvmCompatibleChainConfig,
        private_key: str,
        *,
        endpoint: EvmEndpoint | None = None,
        metrics: RelayMetrics | None = None,
        receipt_timeout: float | None = None,
    ) -> None:
        self.chain = chain
        self.domain = chain.domain
        self.metrics = metrics
        try:
            signer = Account.from_key(private_key.strip())
        except (ValueError, TypeError) as error:
            raise ConfigurationError("submitter key is not a secp256k1 private key") from error
        self.account: ChecksumAddress = signer.address
        self.endpoint = endpoint or endpoints_for(chain, metrics)[0]
        self.address = checksum_address(chain.gateway, "gateway address")
        self.gateway = self.endpoint.web3.eth.contract(address=self.address, abi=gateway_abi())
        settings = chain.submission
        if receipt_timeout is not None:
            settings = settings.model_copy(update={"receipt_timeout": receipt_timeout})
        self.transactions = AccountTransactions(self.endpoint, signer, settings)

    # --- reads --------------------------------------------------------------------------------

    def delivered(self, keys: Sequence[tuple[int, int]]) -> list[bool]:
        """Whether each (origin, nonce) was delivered (batched JSON-RPC requests)."""
        if not keys:
            return []
        return read_delivered(self.endpoint, self.address, keys, self.transactions.read)

    def status(self) -> EvmDestinationStatus:
        """Chain head, the account's pending nonce and balance."""
        eth = self.endpoint.web3.eth
        head = self.endpoint.block_number()
        nonce = self.transactions.transaction_count("pending")
        balance = int(self.endpoint.read("eth_getBalance", lambda: eth.get_balance(self.account)))
        if self.metrics is not None:
            self.metrics.submitter_balance.labels(self.chain.name, self.account).set(balance)
            self.metrics.submitter_nonce.labels(self.chain.name, self.account).set(nonce)
        return EvmDestinationStatus(self.domain, head, nonce, balance, bytes.fromhex(self.account[2:]))

    # --- hand-overs ---------------------------------------------------------------------------

    @functools.cached_property
    def committee_reader(self) -> EvmCommitteeReader:
        """This Gateway's committees, read through the submitter's endpoint."""
        return EvmCommitteeReader(self.chain, self.metrics)

    def submit_handover(
        self, certificate: HandoverCertificate | EcdsaHandoverCertificate
    ) -> tuple[bytes, int]:
        """Send `handover` for `certificate` unless not needed (`relay.chains.HandoverDestination`)."""
        return submit_handover(self, certificate)

    # --- light-client origins (adapters.evm.lightclient_submit) --------------------------------

    def submit_light_client_update(self, origin: int, update: HeaderUpdate) -> tuple[bytes, StoredHeaders]:
        """`EthereumLightClient.submitUpdate` of `origin` (`relay.chains.lightclient.LightClientDestination`)."""
        from adapters.evm.lightclient_submit import submit_light_client_update

        return submit_light_client_update(self, origin, update)

    def deliver_by_receipt(
        self, origin: int, proofs: Sequence[ReceiptProof], deliveries: Sequence[ReceiptDelivery]
    ) -> SubmittedBatch:
        """`EthereumInbox.deliverFromEthereumBatch` of `origin` (`LightClientDestination`)."""
        from adapters.evm.lightclient_submit import deliver_by_receipt

        return deliver_by_receipt(self, origin, proofs, deliveries, parse_delivery_logs)

    # --- delivering ---------------------------------------------------------------------------

    def submit(
        self, checkpoint: Checkpoint, certificate: QuorumCertificate, items: Sequence[DeliveryItem]
    ) -> SubmittedBatch:
        """Send one delivery transaction for the undelivered `items`, wait for it, report each.

        A transaction that is lost on the way (dropped by the node, or its nonce used by another
        transaction) is sent again, after the delivered flags are read again, up to `MAX_RESENDS`
        times within this call.
        """
        if not items:
            raise errors.MalformedEncoding("a delivery needs at least one message")
        for item in items:
            validate_item(item, self.domain, checkpoint)
        failed_early: dict[bytes, str] = {}
        pending = list(items)
        resends = 0
        while True:
            sent = self._simulate_and_send(checkpoint, certificate, pending, failed_early)
            if sent is None:
                return SubmittedBatch(b"", 0, 0, [], failed_early)
            call, transaction, pending = sent
            try:
                transaction_hash, receipt = self.transactions.wait(transaction)
            except TransactionLost as error:
                resends += 1
                if resends > MAX_RESENDS:
                    raise
                log.warning(
                    "delivery transaction lost; sending again",
                    extra={"destination": self.domain, "reason": str(error), "messages": len(pending)},
                )
                continue
            break
        if int(receipt["status"]) != 1:
            # A competing delivery mined first (another submitter, or our own concurrent call) makes
            # this one revert: if every message is delivered now, that is success, not a failure.
            flags = self.delivered([(item.message.origin, item.message.nonce) for item in pending])
            if all(flags):
                log.info(
                    "delivery reverted: a competing transaction delivered every message first",
                    extra={"destination": self.domain, "transaction": transaction_hash.hex()},
                )
                return SubmittedBatch(b"", 0, 0, [], failed_early)
            raise self._explain_failure(call, receipt)
        delivered, failed = parse_delivery_logs(receipt["logs"], self.address)
        failed.update(failed_early)
        gas_used = int(receipt["gasUsed"])
        price = int(receipt.get("effectiveGasPrice", 0) or 0)
        if self.metrics is not None:
            self.metrics.gas_spent.labels(self.chain.name, self.account).inc(gas_used * price)
        return SubmittedBatch(
            transaction_hash,
            int(receipt["blockNumber"]),
            gas_used,
            delivered,
            failed,
            effective_gas_price=price,
        )

    def _simulate_and_send(
        self,
        checkpoint: Checkpoint,
        certificate: QuorumCertificate,
        items: Sequence[DeliveryItem],
        failed_early: dict[bytes, str],
    ) -> tuple[PreparedCall, SentTransaction, list[DeliveryItem]] | None:
        """Send one transaction for the items not yet delivered; None if none is left.

        Adds to `failed_early` the recipients left out because they burn every gas limit.
        """
        pending = list(items)
        for _ in range(MAX_SIMULATION_ROUNDS):
            flags = self.delivered([(item.message.origin, item.message.nonce) for item in pending])
            pending = [item for item, done in zip(pending, flags, strict=True) if not done]
            if not pending:
                return None
            call = self._delivery_call(checkpoint, certificate, pending)
            try:
                floor = compute_minimum_gas_limit([item.gas_limit for item in pending])
                return call, self._send(call, len(pending), floor), pending
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
        raise DeliveryReverted("delivery simulation kept changing", rounds=MAX_SIMULATION_ROUNDS)

    def _delivery_call(
        self, checkpoint: Checkpoint, certificate: QuorumCertificate, items: Sequence[DeliveryItem]
    ) -> PreparedCall:
        point = (checkpoint.origin, checkpoint.gateway, checkpoint.epoch, checkpoint.root, checkpoint.index)
        # A BLS aggregate goes in EIP-2537 form (256 bytes); an ECDSA committee's concatenated
        # 65-byte signatures go unchanged (the Gateway dispatches on the origin's scheme).
        signature = (
            certificate.signature
            if is_ecdsa_certificate(certificate)
            else signature_to_eip2537(certificate.signature)
        )
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
        """eth_estimateGas (retried if the node does not answer); a revert becomes its typed error."""

        def estimate() -> int:
            return int(call.estimate_gas({"from": self.account}))

        try:
            return self.transactions.read("eth_estimateGas", estimate)
        except (web3_errors.ContractLogicError, web3_errors.ContractCustomError) as error:
            raise error_for_revert(decode_contract_error(revert_data(error))) from error
        except web3_errors.Web3RPCError as error:
            typed = classify_send_error(error, self.account)
            if typed is not None:
                raise typed from error
            raise

    def _send(self, call: Any, size: int, floor: int) -> SentTransaction:
        # Most batches are sent with the floor (their recipients' gas limits dominate): one eth_call
        # at the estimate the floor covers proves that, for one execution instead of the ~7 of
        # eth_estimateGas's search. Otherwise (any revert), the estimate decides and explains.
        if self._succeeds_with(call, compute_estimate_ceiling(floor)):
            limit = floor
        else:
            limit = max(compute_gas_limit(self._simulate(call)), floor)
        sent = self.transactions.send(call, limit)
        log.info(
            "delivery sent",
            extra={
                "transaction": sent.hashes[0].hex(),
                "nonce": sent.nonce,
                "messages": size,
                "gas_limit": limit,
                "destination": self.domain,
            },
        )
        return sent

    def _succeeds_with(self, call: Any, gas: int) -> bool:
        """Whether `call` runs without reverting on `gas` (eth_call at the latest block)."""
        try:
            self.transactions.read("eth_call", lambda: call.call({"from": self.account, "gas": gas}))
        except (web3_errors.Web3Exception, ValueError):
            # A revert, an RPC error or an answer that does not decode: not proven at the floor,
            # so the gas estimate (which types its own errors) decides instead.
            return False
        return True

    def _explain_failure(self, call: Any, receipt: Any) -> RelayError:
        """Why a mined delivery reverted: replay it on the state before its block."""
        block = int(receipt["blockNumber"])
        if int(receipt["gasUsed"]) >= int(self._gas_limit_of(receipt)):
            return OutOfGas(
                "delivery transaction ran out of gas", transaction=bytes(receipt["transactionHash"]).hex()
            )
        try:
            self.transactions.read(
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
        transaction = self.transactions.read(
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
