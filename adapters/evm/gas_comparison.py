"""Our Gateway against Hyperlane's Mailbox, gas per delivered message, side by side on one chain.

`measure_against_hyperlane(rpc_url)` deploys on the chain at `rpc_url`:

- our destination Gateway twice (one for BLS committees, one for ECDSA committees, so both
  schemes can use the same origin domains) with a source Gateway per (committee, scheme), the
  same `DeliveryBench` as `adapters.evm.gas` (compressed branches, 32-byte bodies);
- Hyperlane's origin Mailbox + MerkleTreeHook and destination Mailbox, with a
  StaticMessageIdMultisigIsm per validator set (`adapters.evm.hyperlane`);
- one example `Counter` per destination, so every recipient does the same storage work
  (`received`, `receivedFrom`, `lastBodyHash`, `lastBodyLength`).

For each committee (size, threshold) the three are warmed with one message, then each batch size
is delivered: ours in one `process` (batch 1: a lone message under its own checkpoint and
certificate) or `processBatch` transaction under a real certificate of the threshold's signers;
Hyperlane's as one `Mailbox.process` per message with `threshold` real validator signatures over
that message's own checkpoint. The bodies are the same on every side. Gas per delivered message
is the receipts' gasUsed summed and divided by the messages; each delivery is checked on the
recipient (its `received` count grows by the batch).

Thresholds below two thirds (3 of 5, 13 of 19, 43 of 64: Hyperlane's settings) are enrolled on
our Gateway after `setLowThresholdAllowed(origin, true)`, for both schemes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.contract import Contract

from adapters.evm.ecdsa_gas import EcdsaSigningCommittee
from adapters.evm.gas import DESTINATION_DOMAIN, DeliveryBench, SigningCommittee, deploy_contract
from adapters.evm.hyperlane import HyperlaneRoute, ValidatorSet
from relay.errors import RelayError
from relay.verify.bls import get_backend, keygen
from relay.verify.committee import Committee, Member
from relay.verify.hashing import keccak256

# (committee size, threshold): Hyperlane's MessageIdMultisigIsm settings 1/1, 3/5, 13/19, 43/64.
COMMITTEES = ((1, 1), (5, 3), (19, 13), (64, 43))
BATCH_SIZES = (1, 2, 5, 10, 50)
HYPERLANE_ORIGIN = 3000  # the origin Mailbox's domain (our origins are 1000 + committee size)


class MessagesNotReceived(RelayError):
    """A measured delivery did not reach the recipient with every message (the row would lie)."""


@dataclass(frozen=True)
class ComparisonRow:
    """Gas per delivered message for one (committee, threshold, batch size)."""

    committee: int
    threshold: int
    batch: int
    ours_bls: int
    ours_ecdsa: int
    hyperlane: int

    @property
    def scheme(self) -> str:
        """The cheaper of our two schemes ("ecdsa" on a tie: fewer moving parts)."""
        return "ecdsa" if self.ours_ecdsa <= self.ours_bls else "bls"

    @property
    def ours(self) -> int:
        """Our gas per message with the cheaper scheme."""
        return min(self.ours_bls, self.ours_ecdsa)

    @property
    def ratio(self) -> float:
        """Ours over Hyperlane's (below 1: we are cheaper)."""
        return self.ours / self.hyperlane

    def as_json(self) -> dict[str, Any]:
        """The JSON row: committee, threshold, batch, ours, hyperlane, scheme, ours_bls, ours_ecdsa."""
        return {
            "committee": self.committee,
            "threshold": self.threshold,
            "batch": self.batch,
            "ours": self.ours,
            "hyperlane": self.hyperlane,
            "scheme": self.scheme,
            "ours_bls": self.ours_bls,
            "ours_ecdsa": self.ours_ecdsa,
        }


@dataclass(frozen=True)
class BlsSigningCommittee(SigningCommittee):
    """A BLS `SigningCommittee` with an explicit threshold, low ones enrolled after
    `setLowThresholdAllowed` (as `EcdsaSigningCommittee` does)."""

    @classmethod
    def with_threshold(
        cls, size: int, threshold: int, seed: bytes = b"relay gas comparison"
    ) -> BlsSigningCommittee:
        """`size` members of weight 1, keys derived from `seed`, quorum `threshold`."""
        bls = get_backend()
        keys = tuple(keygen(keccak256(seed + index.to_bytes(4, "big"))) for index in range(size))
        members = [Member(bls.secret_to_public_key(k), bls.prove_possession(k), 1) for k in keys]
        committee = Committee.create(1, members, threshold, backend=bls, allow_low_threshold=True)
        return cls(committee, keys, bls)

    def enrollment_calls(self, functions: Any, origin: int, source_word: bytes) -> list[Any]:
        """`setLowThresholdAllowed` first when the threshold is below two thirds, then `enrollOrigin`."""
        low = 3 * self.committee.threshold < 2 * self.committee.total_weight
        allow = [functions.setLowThresholdAllowed(origin, True)] if low else []
        return [*allow, *super().enrollment_calls(functions, origin, source_word)]


class RecipientCheck:
    """A Counter and the check that a delivery reached it."""

    def __init__(self, counter: Contract) -> None:
        self.counter = counter

    def received(self) -> int:
        return int(self.counter.functions.received().call())

    def measure(self, what: str, deliver: Callable[[int], int], messages: int) -> int:
        """Run `deliver(messages)` (returns total gasUsed), check that `messages` more arrived, and
        return the gas per message."""
        before = self.received()
        total_gas = deliver(messages)
        arrived = self.received() - before
        if arrived != messages:
            raise MessagesNotReceived(
                f"{what}: not every message reached the recipient", arrived=arrived, sent=messages
            )
        return total_gas // messages


def measure_against_hyperlane(
    rpc_url: str,
    committees: Sequence[tuple[int, int]] = COMMITTEES,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    progress: Callable[[str], None] = lambda line: None,
) -> list[ComparisonRow]:
    """Deploy both protocols on the chain at `rpc_url` and measure every (committee, batch) row."""
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    w3.eth.default_account = w3.eth.accounts[0]
    progress("deploying our Gateways and Hyperlane's Mailboxes")
    return GasComparison(w3).measure(committees, batch_sizes, progress)


class GasComparison:
    """The three destinations (our Gateway for BLS, for ECDSA, Hyperlane's Mailbox), each with its
    own Counter, deployed from the node's default account; `measure` adds committees to them."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self.bls_gateway = deploy_contract(w3, "Gateway", DESTINATION_DOMAIN)
        self.bls_recipient = RecipientCheck(deploy_contract(w3, "Counter", self.bls_gateway.address))
        self.ecdsa_gateway = deploy_contract(w3, "Gateway", DESTINATION_DOMAIN)
        self.ecdsa_recipient = RecipientCheck(deploy_contract(w3, "Counter", self.ecdsa_gateway.address))
        self.route = HyperlaneRoute(w3, HYPERLANE_ORIGIN, DESTINATION_DOMAIN)
        mailbox = self.route.destination_mailbox.address
        self.hyperlane_recipient = RecipientCheck(deploy_contract(w3, "Counter", mailbox))
        self.route.set_recipient(self.hyperlane_recipient.counter)

    def measure(
        self,
        committees: Sequence[tuple[int, int]] = COMMITTEES,
        batch_sizes: Sequence[int] = BATCH_SIZES,
        progress: Callable[[str], None] = lambda line: None,
    ) -> list[ComparisonRow]:
        """For each (size, threshold): enroll, warm up with one message each, then measure every
        batch size on the three destinations."""
        rows = []
        for size, threshold in committees:
            progress(f"committee {size}, threshold {threshold}: enrolling and warming up")
            rows += self._measure_committee(size, threshold, batch_sizes, progress)
        return rows

    def _measure_committee(
        self, size: int, threshold: int, batch_sizes: Sequence[int], progress: Callable[[str], None]
    ) -> list[ComparisonRow]:
        bls_signing = BlsSigningCommittee.with_threshold(size, threshold)
        bls = DeliveryBench(self.w3, self.bls_gateway, self.bls_recipient.counter, bls_signing, True)
        ecdsa_signing = EcdsaSigningCommittee.generate(size, threshold=threshold)
        ecdsa = DeliveryBench(self.w3, self.ecdsa_gateway, self.ecdsa_recipient.counter, ecdsa_signing, True)
        self.route.use_validators(
            ValidatorSet(tuple(ecdsa_signing.committee.signers), ecdsa_signing.secret_keys, threshold)
        )
        hyperlane = _HyperlaneSequence(self.route)
        sides = (
            ("ours, BLS", self.bls_recipient, bls.deliver),
            ("ours, ECDSA", self.ecdsa_recipient, ecdsa.deliver),
            ("Hyperlane", self.hyperlane_recipient, hyperlane.deliver),
        )
        for name, recipient, deliver in sides:
            recipient.measure(f"{name} warm-up", deliver, 1)
        rows = []
        for batch in batch_sizes:
            bls_gas, ecdsa_gas, hyperlane_gas = (
                recipient.measure(name, deliver, batch) for name, recipient, deliver in sides
            )
            row = ComparisonRow(size, threshold, batch, bls_gas, ecdsa_gas, hyperlane_gas)
            progress(
                f"committee {size}, threshold {threshold}, batch {batch}: BLS {row.ours_bls:,}, "
                f"ECDSA {row.ours_ecdsa:,}, Hyperlane {row.hyperlane:,} gas per message"
            )
            rows.append(row)
        return rows


class _HyperlaneSequence:
    """Hyperlane deliveries of the same bodies our `DeliveryBench` sends (keccak of the count)."""

    def __init__(self, route: HyperlaneRoute) -> None:
        self.route = route
        self.count = 0

    def deliver(self, messages: int) -> int:
        """Dispatch `messages` messages (each with its own signed checkpoint), then process each
        with its own transaction; return the summed gasUsed of the `process` receipts."""
        prepared = []
        for _ in range(messages):
            body = keccak256(self.count.to_bytes(8, "big"))[:32]
            self.count += 1
            prepared.append(self.route.dispatch(body))
        return sum(int(self.route.process(metadata, message)["gasUsed"]) for metadata, message in prepared)
