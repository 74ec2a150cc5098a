"""One account's delivery transactions on an EVM chain: nonces, sending, replacing, confirming.

`AccountTransactions` owns the nonce of the submitter's account and everything that makes a sent
transaction land (hyperlane's "submit / confirm" with geth's replacement rules):

- **Nonces.** Counted locally under a lock, so several batches can be in flight with consecutive
  nonces. They are read again from the chain (`eth_getTransactionCount` "pending", and "latest"
  to log how many are in the pool) after any transaction that was lost, unknown, replaced by
  another or never confirmed, so a stale nonce never makes later deliveries wait out a receipt
  timeout: a gap left by a dropped transaction is filled by the next send.
- **Replacement.** A transaction without a receipt `stuck_after` seconds after it was (re)sent is
  looked at: if the account's mined nonce passed it without one of our versions, its nonce was
  used by another transaction (`TransactionLost`); if the node no longer knows any version, it was
  dropped (`TransactionLost`); otherwise it is replaced under the same nonce with both fees
  bumped (`adapters.evm.fees.compute_replacement_fees`), never past `max_fee_per_gas_cap`. At the
  cap it keeps waiting, and a delivery that still has no receipt at `receipt_timeout` fails with
  the transient `FeeCapReached` (else `ReceiptTimeout`).
- **Confirmation.** Every version's receipt is polled, and the one that was mined is reported
  (its hash and receipt), whichever it is.
- **Reads.** Every read is retried under `relay.retry.SUBMITTER_READ` (`submitter_read`); a
  signed transaction is re-sent only as the identical bytes (same hash), and "already known" then
  means it arrived.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from eth_account.signers.local import LocalAccount
from web3 import exceptions as web3_errors

from adapters.evm.config import SubmissionConfig
from adapters.evm.errors import (
    FeeCapReached,
    FeeTooLow,
    NonceConflict,
    ReceiptTimeout,
    TransactionLost,
    classify_send_error,
)
from adapters.evm.fees import Fees, compute_initial_fees, compute_replacement_fees, read_fees
from adapters.evm.rpc import EvmEndpoint
from relay import errors
from relay.retry import SUBMITTER_READ

log = logging.getLogger(__name__)

T = TypeVar("T")

RECEIPT_POLL_SECONDS = 0.1  # how often the chain head is looked at while deliveries wait
RECEIPT_RECHECK_SECONDS = 2.0  # a waiting delivery's receipt is polled at least this often


def submitter_read(endpoint: EvmEndpoint, method: str, operation: Callable[[], T]) -> T:
    """Run the idempotent read `operation` once per attempt of `SUBMITTER_READ`.

    Transport failures (HTTP 5xx, 429, dropped connections, timeouts) are `RpcUnavailable` and
    retried; a JSON-RPC error answer (a revert, say) is not transient and goes to the caller.
    """
    on_retry = None
    if endpoint.metrics is not None:
        counter = endpoint.metrics.retries.labels(SUBMITTER_READ.name)
        on_retry = lambda _state: counter.inc()  # noqa: E731
    return SUBMITTER_READ.retrying(on_retry=on_retry)(endpoint.call, method, operation)


@dataclass
class SentTransaction:
    """Every version sent for one nonce (oldest first), the last one's fields and when it was sent."""

    nonce: int
    transaction: dict[str, Any]
    fees: Fees
    hashes: list[bytes] = field(default_factory=list)
    sent_at: float = 0.0  # monotonic time of the last (re)send or look
    capped: bool = False  # the next bump would pass the fee cap


class AccountTransactions:
    """Sends, replaces and confirms the transactions of one account on one chain (thread-safe)."""

    def __init__(
        self,
        endpoint: EvmEndpoint,
        signer: LocalAccount,
        settings: SubmissionConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.account = signer.address
        self._signer = signer
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._nonce: int | None = None
        self._chain_id: int | None = None
        self._lost_nonces: set[int] = set()  # nonces of lost transactions, maybe gaps to fill
        self._head_lock = threading.Lock()
        self._head_number: int | None = None
        self._head_read_at = float("-inf")

    def read(self, method: str, operation: Callable[[], T]) -> T:
        """`submitter_read` on this account's endpoint."""
        return submitter_read(self.endpoint, method, operation)

    def transaction_count(self, block: Literal["pending", "latest"]) -> int:
        """The account's transaction count at `block` ("pending" or "latest")."""
        eth = self.endpoint.web3.eth
        return int(
            self.read("eth_getTransactionCount", lambda: eth.get_transaction_count(self.account, block))
        )

    def forget_nonce(self, lost: int | None = None) -> None:
        """Read the nonce from the chain again before the next send; `lost`: a nonce whose
        transaction is gone, which the next send fills if the chain still has a gap there."""
        with self._lock:
            self._nonce = None
            if lost is not None:
                self._lost_nonces.add(lost)

    # --- sending ------------------------------------------------------------------------------

    def send(self, call: Any, gas_limit: int) -> SentTransaction:
        """Sign and send `call` with the next nonce and fresh fees; raise typed errors if refused."""
        with self._lock:
            if self._chain_id is None:
                self._chain_id = int(self.read("eth_chainId", lambda: self.endpoint.web3.eth.chain_id))
            if self._nonce is None:
                self._nonce, fills_gap = self._read_nonce()
            else:
                fills_gap = False
            base_fee, tip = read_fees(self.read, self.endpoint.web3)
            try:
                fees = compute_initial_fees(base_fee, tip, self.settings.max_fee_per_gas_cap)
            except FeeCapReached:
                self._count(self.endpoint.chain_name, "fee_cap")
                raise
            transaction = call.build_transaction(
                {
                    "from": self.account,
                    "nonce": self._nonce,
                    "gas": gas_limit,
                    "chainId": self._chain_id,
                    "maxFeePerGas": fees.max_fee_per_gas,
                    "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
                }
            )
            try:
                transaction_hash = self._broadcast(transaction)
            except errors.RelayError:
                self._nonce = None  # refused, or it may or may not have arrived: ask the chain
                raise
            # After filling a gap, the nonces above it are taken by transactions in the pool.
            self._nonce = None if fills_gap else self._nonce + 1
        return SentTransaction(
            int(transaction["nonce"]), transaction, fees, [transaction_hash], self._clock()
        )

    def _read_nonce(self) -> tuple[int, bool]:
        """The next nonce, and whether it fills a gap below transactions waiting in the pool.

        "pending" counts the pool; a lost transaction's nonce between "latest" (mined) and
        "pending" is a gap that holds back every transaction above it, so it is used first.
        """
        pending = self.transaction_count("pending")
        latest = self.transaction_count("latest")
        gaps = sorted(n for n in self._lost_nonces if latest <= n < pending)
        self._lost_nonces = set(gaps[1:])
        nonce = gaps[0] if gaps else pending
        log.info(
            "account nonce read from the chain",
            extra={"account": self.account, "pending": pending, "latest": latest, "nonce": nonce},
        )
        return nonce, bool(gaps)

    def _broadcast(self, transaction: dict[str, Any]) -> bytes:
        """Sign and send; the same signed bytes may be sent again on a transport failure."""
        signed = self._signer.sign_transaction(transaction)
        eth = self.endpoint.web3.eth

        def send() -> bytes:
            try:
                return bytes(eth.send_raw_transaction(signed.raw_transaction))
            except web3_errors.Web3RPCError as error:
                if "already known" in str(error).lower():
                    return bytes(signed.hash)  # an earlier attempt of these same bytes arrived
                raise

        try:
            return self.read("eth_sendRawTransaction", send)
        except web3_errors.Web3RPCError as error:
            typed = classify_send_error(error, self.account)
            if typed is not None:
                raise typed from error
            raise errors.TransientError(
                "node refused the delivery transaction", cause=str(error)[:200]
            ) from error

    # --- confirming ---------------------------------------------------------------------------

    def wait(self, sent: SentTransaction) -> tuple[bytes, Any]:
        """The hash and receipt of whichever version of `sent` was mined.

        Replaces a stuck version with higher fees as it goes; raises `TransactionLost` (the caller
        sends again), or at `receipt_timeout` `FeeCapReached` / `ReceiptTimeout`.
        """
        deadline = self._clock() + self.settings.receipt_timeout
        looked_at: int | None = None  # the chain head at this waiter's last receipt poll
        looked_when = float("-inf")
        while True:
            # A receipt can only appear with a new block: poll it once per head (and at least every
            # RECEIPT_RECHECK_SECONDS), not every slice, however many deliveries wait at once.
            head = self._head()
            if head is None or head != looked_at or self._clock() - looked_when >= RECEIPT_RECHECK_SECONDS:
                looked_at, looked_when = head, self._clock()
                mined = self._mined(sent)
                if mined is not None:
                    return mined
            now = self._clock()
            if now >= deadline:
                self.forget_nonce()
                hashes = ["0x" + h.hex() for h in sent.hashes]
                if sent.capped:
                    raise FeeCapReached(
                        "no receipt, and the fees may not rise above the cap",
                        transactions=hashes,
                        max_fee_per_gas=sent.fees.max_fee_per_gas,
                        cap=self.settings.max_fee_per_gas_cap,
                    )
                raise ReceiptTimeout(
                    "no receipt for the delivery transaction",
                    transactions=hashes,
                    seconds=self.settings.receipt_timeout,
                )
            if now - sent.sent_at >= self.settings.stuck_after:
                self._unstick(sent)
            self._sleep(RECEIPT_POLL_SECONDS)

    def _head(self) -> int | None:
        """The chain head, read at most once per `RECEIPT_POLL_SECONDS` for every waiting thread
        (None if it cannot be read now: the waiter then polls its receipt anyway)."""
        with self._head_lock:
            if self._clock() - self._head_read_at < RECEIPT_POLL_SECONDS:
                return self._head_number
            try:  # one attempt: a waiter that cannot see the head polls its receipt instead
                self._head_number = int(
                    self.endpoint.call("eth_blockNumber", lambda: self.endpoint.web3.eth.block_number)
                )
            except Exception as error:  # noqa: BLE001 - any unusable answer (an error, a non-number) is "unknown"
                log.debug("chain head unreadable; receipts polled anyway", extra={"error": str(error)[:200]})
                self._head_number = None
            self._head_read_at = self._clock()
            return self._head_number

    def _mined(self, sent: SentTransaction) -> tuple[bytes, Any] | None:
        eth = self.endpoint.web3.eth
        for transaction_hash in reversed(sent.hashes):

            def fetch(transaction_hash: bytes = transaction_hash) -> Any:
                try:
                    return eth.get_transaction_receipt(transaction_hash)  # type: ignore[arg-type]
                except web3_errors.TransactionNotFound:
                    return None

            receipt = self.read("eth_getTransactionReceipt", fetch)
            if receipt is not None:
                return transaction_hash, receipt
        return None

    def _known(self, transaction_hash: bytes) -> bool:
        eth = self.endpoint.web3.eth

        def fetch() -> bool:
            try:
                return eth.get_transaction(transaction_hash) is not None  # type: ignore[arg-type]
            except web3_errors.TransactionNotFound:
                return False

        return bool(self.read("eth_getTransactionByHash", fetch))

    def _unstick(self, sent: SentTransaction) -> None:
        """A version has waited `stuck_after`: find out why, replace it or give it up."""
        sent.sent_at = self._clock()
        chain = self.endpoint.chain_name
        if self.transaction_count("latest") > sent.nonce:
            if self._mined(sent) is not None:
                return  # mined meanwhile: the next poll reports it
            self._count(chain, "nonce_taken")
            self.forget_nonce()
            raise TransactionLost(
                "another transaction used the delivery's nonce", nonce=sent.nonce, account=self.account
            )
        if not any(self._known(h) for h in sent.hashes):
            if self._mined(sent) is not None:
                return
            self._count(chain, "dropped")
            self.forget_nonce(lost=sent.nonce)
            raise TransactionLost(
                "the node no longer knows the delivery transaction",
                nonce=sent.nonce,
                transactions=["0x" + h.hex() for h in sent.hashes],
            )
        base_fee, tip = read_fees(self.read, self.endpoint.web3)
        fees = compute_replacement_fees(
            sent.fees, base_fee, tip, self.settings.fee_bump_percent, self.settings.max_fee_per_gas_cap
        )
        if fees is None:
            if not sent.capped:
                sent.capped = True
                self._count(chain, "fee_cap")
                log.warning(
                    "delivery transaction stuck at the fee cap; waiting",
                    extra={
                        "nonce": sent.nonce,
                        "max_fee_per_gas": sent.fees.max_fee_per_gas,
                        "base_fee": base_fee,
                        "cap": self.settings.max_fee_per_gas_cap,
                    },
                )
            return
        replacement = {
            **sent.transaction,
            "maxFeePerGas": fees.max_fee_per_gas,
            "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
        }
        try:
            transaction_hash = self._broadcast(replacement)
        except FeeTooLow:
            # The node wants more than this bump: remember it, so the next one starts higher.
            sent.fees = fees
            return
        except NonceConflict:
            return  # "nonce too low": one version was mined; the next poll finds its receipt
        sent.transaction, sent.fees = replacement, fees
        sent.hashes.append(transaction_hash)
        self._count(chain, "fee_bump")
        log.info(
            "stuck delivery transaction replaced",
            extra={
                "nonce": sent.nonce,
                "transaction": transaction_hash.hex(),
                "replaces": sent.hashes[-2].hex(),
                "max_fee_per_gas": fees.max_fee_per_gas,
                "max_priority_fee_per_gas": fees.max_priority_fee_per_gas,
                "base_fee": base_fee,
            },
        )

    def _count(self, chain: str, event: str) -> None:
        if self.endpoint.metrics is not None:
            self.endpoint.metrics.submitter_transactions.labels(chain, event).inc()
