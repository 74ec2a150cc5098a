"""What the relay core needs from a chain, as protocols named after roles.

Chain specifics live in `adapters/<family>/`; the registry (`relay.chains.registry`) maps a config
`kind` (e.g. "evm") to the family's config model and factories. Nothing in `relay/` imports an
adapter or web3.

- `ChainConfigBase`: the fields every chain's config has; each family's model (in its adapter's
  `config.py`) extends it, fixes `kind`, and says what its gateway's bytes are.

- `SourceWatcher`: reads a source gateway's Dispatch events by block range, tracks finality, keeps
  a cursor (block number + hash) in a `CursorStore`, detects reorgs before finality.
- `FinalitySource`: what an attestor believes final: the gateway's (root, index) at the finalized
  block; `TreeHistory` (optional): the leaves and frontier behind it, to check that a new root
  extends the tree signed before.
- `DestinationChain`: what a submitter does to a destination gateway; `DestinationStatus` what it
  reports about its account.
- `DeliveryReader`: the relayer's read-only, keyless view of a destination gateway, to confirm
  deliveries on the chain itself instead of on a submitter's word.
- `PaymentReader`: the relayer's read-only view of a source gateway's gas payments (`gasPaid`).
- `GasMarketReader`: the relayer's read-only view of a destination's gas price and block gas limit.
- `CommitteeReader`: a destination gateway's current committee of an origin (`committeeOf`,
  `currentCommittee`), read without a key by the relayer and the attestors that follow it;
  `HandoverDestination` (optional on a `DestinationChain`): submits a hand-over certificate.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pydantic import model_validator

from relay.config import StrictModel
from relay.handover import HandoverCertificate
from relay.handover_ecdsa import EcdsaHandoverCertificate
from relay.verify.committee import Checkpoint, QuorumCertificate
from relay.verify.message import Message


class ChainConfigBase(StrictModel):
    """One chain the relay talks to: the fields every chain family shares.

    A family's model (`adapters/<family>/config.py`) narrows `kind` to its own literal, validates
    `gateway` in its own address format, and implements `gateway_bytes32`. Role configs annotate
    their chain fields with `relay.chains.registry.ChainConfig`, the union of every registered
    family's model, discriminated by `kind`.
    """

    name: str
    domain: int
    kind: str
    rpc_urls: list[str]
    gateway: str
    # 0: use the chain's `finalized` block tag; N > 0: N confirmations below the head.
    confirmations: int = 0
    start_block: int = 0
    poll_interval: float = 0.5
    max_block_range: int = 2000

    @model_validator(mode="after")
    def _check_common(self) -> ChainConfigBase:
        if not self.rpc_urls:
            raise ValueError("rpc_urls needs at least one endpoint")
        if not 0 <= self.domain < 2**32:
            raise ValueError("domain must be a u32")
        if self.confirmations < 0 or self.max_block_range <= 0 or self.poll_interval <= 0:
            raise ValueError("confirmations >= 0, max_block_range > 0 and poll_interval > 0")
        return self

    @abstractmethod
    def gateway_bytes32(self) -> bytes:
        """The gateway's address as the 32 bytes checkpoints and messages carry."""


@dataclass(frozen=True)
class Cursor:
    """The last block a watcher processed, with its hash (for reorg detection)."""

    block_number: int
    block_hash: bytes


@dataclass(frozen=True)
class ObservedMessage:
    """A Dispatch event seen on a source chain: one leaf of the source gateway's tree.

    A leaf whose message does not decode (a body over the verifier's limit, an unknown version)
    is still a leaf: the gateway inserted its id, so the relayer's tree needs it to stay
    gapless. Such a leaf has `malformed_reason` set and `leaf_id` the id the log names; its
    `message` is then a stand-in carrying only what could be read (nonce, origin, and the
    destination, sender and recipient when the header decoded; empty body), whose own `id` is
    not the leaf's. Always use `id`.
    """

    message: Message
    block_number: int
    block_hash: bytes
    transaction_hash: bytes
    log_index: int
    malformed_reason: str = ""
    leaf_id: bytes = b""

    @property
    def id(self) -> bytes:
        """The leaf id: the message id, or for a malformed leaf the id its log names."""
        return self.leaf_id or self.message.id

    @property
    def is_malformed(self) -> bool:
        """Whether the leaf's message did not decode (it can only ever be rejected)."""
        return bool(self.malformed_reason)


@dataclass
class WatchUpdate:
    """What one `SourceWatcher.poll()` found.

    `observed`: new Dispatch events (not yet final unless `block_number <= finalized_block`).
    `orphaned_ids`: ids of messages previously reported whose blocks were reorganised away
    (only ever before finality). `finalized_block`/`head_block`: the chain's view at poll time.
    """

    observed: list[ObservedMessage] = field(default_factory=list)
    orphaned_ids: list[bytes] = field(default_factory=list)
    head_block: int = 0
    finalized_block: int = 0
    cursor: Cursor | None = None


class CursorStore(Protocol):
    """Durable cursors per chain (the relayer's store implements it)."""

    def load_cursor(self, domain: int) -> Cursor | None: ...

    def save_cursor(self, domain: int, cursor: Cursor) -> None: ...


class SourceWatcher(Protocol):
    """Watches one source gateway. Both methods are required: the relayer settles a conflicting
    observation (another message at a stored nonce) by the canonical block hash."""

    domain: int

    def poll(self) -> WatchUpdate:
        """Scan from the cursor to the head (bounded range), persist the cursor, report."""
        ...

    def block_hash(self, number: int) -> bytes | None:
        """The canonical block hash at `number` now, or None if there is no such block yet."""
        ...


class FinalitySource(Protocol):
    """An attestor's view of what is final on its source chain."""

    domain: int
    gateway: bytes

    def finalized_checkpoint_state(self) -> tuple[bytes, int] | None:
        """(root, count) of the source gateway's tree at the finalized block; None if empty."""
        ...


@runtime_checkable
class TreeHistory(Protocol):
    """A finality source that can show how its tree grew, so an attestor can check extension.

    Both methods describe the tree of the state `finalized_checkpoint_state` returned last.
    """

    def leaves(self, first: int, end: int) -> Sequence[bytes]:
        """The ids of leaves `first` to `end - 1` (the tree's message ids, in nonce order)."""
        ...

    def frontier(self) -> Sequence[bytes]:
        """The tree's 32 frontier nodes (the incremental tree's `branch`), which rebuild its root."""
        ...


# Gas for a recipient's `handle` when nothing else names one (until payments set it per message).
DEFAULT_HANDLE_GAS_LIMIT = 200_000


@dataclass(frozen=True)
class DeliveryItem:
    """One message with its Merkle branch under the batch's checkpoint root.

    `gas_limit`: the exact gas the destination Gateway gives the recipient's `handle`.
    """

    message: Message
    branch: Sequence[bytes]
    gas_limit: int = DEFAULT_HANDLE_GAS_LIMIT


@dataclass(frozen=True)
class SubmittedBatch:
    """The receipt-level outcome of one delivery transaction."""

    transaction_hash: bytes
    block_number: int
    gas_used: int
    delivered: list[bytes]
    failed: dict[bytes, str]  # id -> recipient revert reason
    effective_gas_price: int = 0  # smallest native unit per gas the transaction paid (0: none sent)


class DestinationChain(Protocol):
    """A submitter's hold on one destination gateway, sending from `account` (the chain's own
    address format, for logs and `GetStatus`)."""

    domain: int

    @property
    def account(self) -> str:
        """The sending account."""
        ...

    def delivered(self, keys: Sequence[tuple[int, int]]) -> list[bool]:
        """Whether each (origin, nonce) was delivered."""
        ...

    def submit(
        self, checkpoint: Checkpoint, certificate: QuorumCertificate, items: Sequence[DeliveryItem]
    ) -> SubmittedBatch:
        """Send one delivery transaction, wait for the receipt, report per message."""
        ...

    def status(self) -> DestinationStatus:
        """Head, the account's next nonce and its balance in the chain's smallest native unit."""
        ...


class DeliveryReader(Protocol):
    """Whether messages are delivered on one destination gateway, read from the chain (no key)."""

    domain: int

    def delivered(self, keys: Sequence[tuple[int, int]]) -> list[bool]:
        """Whether each (origin, nonce) is marked delivered, in order; `TransientError` if unread."""
        ...


class PaymentReader(Protocol):
    """What senders paid on one source gateway for their messages' gas, read from the chain (no key)."""

    domain: int

    def gas_paid(self, ids: Sequence[bytes]) -> list[tuple[int, int]]:
        """(paid gas limit, payment in the source's smallest native unit) of each message id, in
        order; (0, 0) for an id nothing was paid for. `TransientError` if it could not be read."""
        ...


class GasMarketReader(Protocol):
    """One destination chain's gas market, read from the chain (no key)."""

    domain: int

    def gas_price(self) -> int:
        """The current gas price in the smallest native unit per gas; `TransientError` if unread."""
        ...

    def block_gas_limit(self) -> int:
        """The gas limit of the latest block; `TransientError` if unread."""
        ...


class DestinationStatus(Protocol):
    """What a destination reports about itself and its sending account (gRPC `GetStatus`)."""

    @property
    def domain(self) -> int:
        """The destination's domain."""
        ...

    @property
    def head(self) -> int:
        """The chain's head block (or height)."""
        ...

    @property
    def nonce(self) -> int:
        """The account's next transaction nonce (or sequence)."""
        ...

    @property
    def balance(self) -> int:
        """The account's balance in the chain's smallest native unit (wei on EVM chains)."""
        ...

    @property
    def account(self) -> bytes:
        """The sending account's address, as the chain encodes it."""
        ...


@dataclass(frozen=True)
class OnChainCommittee:
    """An origin's current committee as a destination gateway holds it.

    `members`: (48-byte compressed public key, weight) in signer order. The gateway keeps no
    proofs of possession: it checked them when the members entered (docs/protocol.md).
    """

    epoch: int
    committee_hash: bytes
    threshold: int
    members: tuple[tuple[bytes, int], ...]


@dataclass(frozen=True)
class OnChainEcdsaCommittee:
    """An origin's current ECDSA committee as a destination gateway holds it.

    `members`: (20-byte address, weight) in signer order; `committee_hash` the
    ecdsa_committee_hash computed from them (docs/protocol.md), equal to `committeeOf`'s.
    """

    epoch: int
    committee_hash: bytes
    threshold: int
    members: tuple[tuple[bytes, int], ...]


@runtime_checkable
class EcdsaCommitteeReader(Protocol):
    """A `CommitteeReader` that also reads an origin's ECDSA committee (`currentEcdsaCommittee`)."""

    def current_ecdsa_committee(self, origin: int) -> OnChainEcdsaCommittee | None:
        """`origin`'s current ECDSA committee, its hash computed from the members read and checked
        against `committee_of`; None if not enrolled; `TransientError` if unread or inconsistent
        (also for an origin whose committee is BLS)."""
        ...


class CommitteeReader(Protocol):
    """The committees one destination gateway trusts, read from the chain (no key)."""

    domain: int

    def committee_of(self, origin: int) -> tuple[int, bytes] | None:
        """(epoch, committee_hash) of `origin`'s current committee; None if `origin` is not enrolled.
        `TransientError` if it could not be read."""
        ...

    def current_committee(self, origin: int) -> OnChainCommittee | None:
        """`origin`'s current committee in full; None if not enrolled; `TransientError` if unread."""
        ...


@runtime_checkable
class HandoverDestination(Protocol):
    """A destination that can submit hand-overs (the submitter's `DestinationChain`s do)."""

    def submit_handover(
        self, certificate: HandoverCertificate | EcdsaHandoverCertificate
    ) -> tuple[bytes, int]:
        """Send the gateway's `handover` for the certificate unless its committee is already at
        the proposal's epoch or later; wait for the receipt. Returns (transaction hash or b"",
        the gateway's epoch of that origin afterwards). The gateway's refusal is `InvalidProof`
        (never retried); RPC trouble `TransientError`."""
        ...
