"""Gas per delivered message, measured on a real anvil chain.

`measure_delivery_gas(rpc_url)` deploys a source and a destination Gateway and the example
Counter app, enrolls committees of 4 and 64 members, dispatches messages and delivers them with
`process` (one message) and `processBatch` (10 and 50), each message naming
`DEFAULT_HANDLE_GAS_LIMIT` for the recipient, and reports the gas each delivery
transaction used (receipt `gasUsed`: the 21,000 base, calldata and execution). Each committee
first delivers one warm-up message, so the rows show the steady state in which the recipient's
counters and the replay bitmap word already exist. `python -m adapters.evm.gas` runs it on its
own anvil and prints the table; `relay bench e2e` is meant to print the same rows.

`measure_committee_gas(rpc_url)` measures committee changes instead: `enrollOrigin` of a committee
of fresh keys, `handover` to another committee of fresh keys, and an `enrollOrigin` of keys the
Gateway has already proven (each key's proof of possession is verified on-chain once, then
remembered), for committees of 4, 5, 19 and 64 members (`--committees`).

The helpers (deployment, branch compression, a committee that knows its secret keys) are also
what the contract tests use; the protocol encodings themselves come from `relay.verify`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from web3 import Web3
from web3.contract import Contract

from adapters.evm.anvil import AnvilProcess
from adapters.evm.build import load_artifact
from adapters.evm.calldata import compress_branch
from adapters.evm.deploy import committee_struct
from relay.chains import DEFAULT_HANDLE_GAS_LIMIT
from relay.verify.bls import BlsBackend, get_backend, keygen, signature_to_eip2537
from relay.verify.committee import Committee, Member
from relay.verify.hashing import keccak256
from relay.verify.merkle import MerkleTree
from relay.verify.message import address_to_bytes32

SOURCE_DOMAIN_BASE = 1000  # origin domain = base + committee size, one source Gateway per committee
DESTINATION_DOMAIN = 2
BENCH_CHAIN_ID = 31337
BODY_LENGTH = 32


def deploy_contract(w3: Web3, name: str, *constructor_args: Any) -> Contract:
    """Deploy artifact `name` from the node's default (unlocked) account; return the bound contract."""
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor(*constructor_args).transact())
    if receipt["status"] != 1 or receipt["contractAddress"] is None:
        raise RuntimeError(f"deploying {name} failed: {receipt}")
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])


@dataclass(frozen=True)
class SigningCommittee:
    """A committee together with its members' secret keys: throw-away keys for tests and benches."""

    committee: Committee
    secret_keys: tuple[int, ...]
    backend: BlsBackend

    @classmethod
    def generate(
        cls,
        size: int,
        epoch: int = 1,
        seed: bytes = b"relay dev committee",
        weights: Sequence[int] | None = None,
        backend: BlsBackend | None = None,
    ) -> SigningCommittee:
        """`size` members (weight 1 unless `weights`), the default threshold, keys derived from `seed`."""
        bls = backend or get_backend()
        keys = tuple(keygen(keccak256(seed + index.to_bytes(4, "big"))) for index in range(size))
        member_weights = weights or [1] * size
        members = [
            Member(bls.secret_to_public_key(key), bls.prove_possession(key), weight)
            for key, weight in zip(keys, member_weights, strict=True)
        ]
        return cls(Committee.create(epoch, members, backend=bls), keys, bls)

    def enrollment_calls(self, functions: Any, origin: int, source_word: bytes) -> list[Any]:
        """The Gateway calls that enroll this committee for `origin` (`functions`: the Gateway's)."""
        return [functions.enrollOrigin(origin, source_word, committee_struct(self.committee))]

    def quorum_signers(self) -> list[int]:
        """The lowest signer indices whose weight reaches the threshold."""
        signers, weight = [], 0
        for index, member in enumerate(self.committee.members):
            if weight >= self.committee.threshold:
                break
            signers.append(index)
            weight += member.weight
        return signers

    def certify(self, digest: bytes, signers: Iterable[int]) -> tuple[bytes, bytes]:
        """(signer bitfield, aggregate signature as 256-byte EIP-2537 G2) of `signers` over `digest`."""
        signatures = [(index, self.backend.sign(self.secret_keys[index], digest)) for index in signers]
        certificate = self.committee.aggregate(digest, signatures, self.backend, verify_each=False)
        return certificate.signers, signature_to_eip2537(certificate.signature)


class GasRow(NamedTuple):
    committee_size: int
    batch_size: int
    total_gas: int
    gas_per_message: int


def measure_delivery_gas(
    rpc_url: str,
    committee_sizes: Sequence[int] = (4, 64),
    batch_sizes: Sequence[int] = (1, 10, 50),
    compress_branches: bool = True,
) -> list[GasRow]:
    """Deploy everything on the chain at `rpc_url` and measure one delivery per (committee, batch).

    `compress_branches=False` sends every Merkle sibling in full, as a submitter that does not use
    `compress_branch` would.
    """
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    w3.eth.default_account = w3.eth.accounts[0]
    destination = deploy_contract(w3, "Gateway", DESTINATION_DOMAIN)
    counter = deploy_contract(w3, "Counter", destination.address)
    rows = []
    for committee_size in committee_sizes:
        committee = SigningCommittee.generate(committee_size)
        bench = DeliveryBench(w3, destination, counter, committee, compress_branches)
        bench.deliver(1)  # warm-up: first writes of the counters and of the bitmap word
        for batch_size in batch_sizes:
            total_gas = bench.deliver(batch_size)
            rows.append(GasRow(committee_size, batch_size, total_gas, total_gas // batch_size))
    return rows


class DeliveryBench:
    """One origin (its own source Gateway and committee) delivering into the shared destination.

    `signing` is a `SigningCommittee`, or any committee with its secret keys that offers the same
    `committee.epoch`, `enrollment_calls`, `quorum_signers` and `certify` (the ECDSA one of
    adapters/evm/ecdsa_gas.py).
    """

    def __init__(
        self,
        w3: Web3,
        destination: Contract,
        counter: Contract,
        signing: Any,
        compress_branches: bool,
    ) -> None:
        self.w3 = w3
        self.destination = destination
        self.counter = counter
        self.signing = signing
        self.compress_branches = compress_branches
        self.origin = SOURCE_DOMAIN_BASE + len(signing.committee)
        self.source = deploy_contract(w3, "Gateway", self.origin)
        self.tree = MerkleTree()
        source_word = address_to_bytes32(self.source.address)
        for call in signing.enrollment_calls(destination.functions, self.origin, source_word):
            self._transact(call)

    def deliver(self, batch_size: int) -> int:
        """Dispatch `batch_size` messages, deliver them in one transaction, return its gasUsed."""
        messages = [self._dispatch() for _ in range(batch_size)]
        root, index = self.source.functions.latestCheckpoint().call()
        checkpoint = (
            self.origin,
            address_to_bytes32(self.source.address),
            self.signing.committee.epoch,
            root,
            index,
        )
        digest = self.destination.functions.checkpointDigest(checkpoint).call()
        bitfield, signature = self.signing.certify(digest, self.signing.quorum_signers())
        branches = [self.tree.branch(nonce) for nonce, _ in messages]
        if self.compress_branches:
            branches = [compress_branch(branch) for branch in branches]
        functions = self.destination.functions
        gas_limits = [DEFAULT_HANDLE_GAS_LIMIT] * batch_size
        if batch_size == 1:
            call = functions.process(
                checkpoint, bitfield, signature, messages[0][1], branches[0], gas_limits[0]
            )
        else:
            bodies = [m for _, m in messages]
            call = functions.processBatch(checkpoint, bitfield, signature, bodies, branches, gas_limits)
        receipt = self._transact(call)
        delivered = self.destination.events.Delivered().process_receipt(receipt)
        if len(delivered) != batch_size:
            raise RuntimeError(f"{len(delivered)} of {batch_size} messages were delivered")
        return int(receipt["gasUsed"])

    def _dispatch(self) -> tuple[int, bytes]:
        body = keccak256(self.tree.count.to_bytes(8, "big"))[:BODY_LENGTH]
        recipient = address_to_bytes32(self.counter.address)
        receipt = self._transact(self.source.functions.dispatch(DESTINATION_DOMAIN, recipient, body))
        (event,) = self.source.events.Dispatch().process_receipt(receipt)
        self.tree.insert(bytes(event["args"]["id"]))
        return int(event["args"]["nonce"]), bytes(event["args"]["message"])

    def _transact(self, call: Any) -> Any:
        receipt = self.w3.eth.wait_for_transaction_receipt(call.transact())
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction failed: {receipt}")
        return receipt


class CommitteeGasRow(NamedTuple):
    committee_size: int
    enroll_gas: int  # enrollOrigin, every key new (proofs of possession verified)
    handover_gas: int  # handover to a committee of as many new keys
    reenroll_gas: int  # enrollOrigin (next epoch) of keys already proven

    @property
    def enroll_gas_per_member(self) -> int:
        return self.enroll_gas // self.committee_size

    @property
    def proof_gas_per_member(self) -> int:
        """What verifying and remembering one proof of possession adds to an enrollment."""
        return (self.enroll_gas - self.reenroll_gas) // self.committee_size


def measure_committee_gas(
    rpc_url: str, committee_sizes: Sequence[int] = (4, 5, 19, 64)
) -> list[CommitteeGasRow]:
    """Enroll, hand over and re-enroll one origin per committee size on a fresh destination Gateway."""
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    w3.eth.default_account = w3.eth.accounts[0]
    destination = deploy_contract(w3, "Gateway", DESTINATION_DOMAIN)
    functions = destination.functions
    rows = []
    for size in committee_sizes:
        origin = SOURCE_DOMAIN_BASE + size
        source_word = b"\x11" * 32  # any source Gateway: nothing is delivered here
        first = SigningCommittee.generate(size, epoch=1, seed=b"gas first" + bytes([size]))
        second = SigningCommittee.generate(size, epoch=2, seed=b"gas second" + bytes([size]))
        enroll = _gas_of(w3, functions.enrollOrigin(origin, source_word, committee_struct(first.committee)))
        digest = functions.handoverDigest(
            origin, source_word, 1, first.committee.hash(), second.committee.hash()
        ).call()
        bitfield, signature = first.certify(digest, first.quorum_signers())
        handover = _gas_of(
            w3, functions.handover(origin, committee_struct(second.committee), bitfield, signature)
        )
        again = SigningCommittee.generate(size, epoch=3, seed=b"gas first" + bytes([size]))
        reenroll = _gas_of(w3, functions.enrollOrigin(origin, source_word, committee_struct(again.committee)))
        rows.append(CommitteeGasRow(size, enroll, handover, reenroll))
    return rows


def _gas_of(w3: Web3, call: Any) -> int:
    receipt = w3.eth.wait_for_transaction_receipt(call.transact({"gas": 29_000_000}))
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction failed: {receipt}")
    return int(receipt["gasUsed"])


def format_committee_gas_table(rows: Iterable[CommitteeGasRow]) -> str:
    """The committee rows as an aligned text table."""
    lines = [
        f"{'committee':>9}  {'enroll':>11}  {'/member':>8}  {'handover':>11}  {'re-enroll':>10}  {'PoP/member':>10}"
    ]
    lines += [
        f"{r.committee_size:>9}  {r.enroll_gas:>11,}  {r.enroll_gas_per_member:>8,}  {r.handover_gas:>11,}"
        f"  {r.reenroll_gas:>10,}  {r.proof_gas_per_member:>10,}"
        for r in rows
    ]
    return "\n".join(lines)


def format_gas_table(rows: Iterable[GasRow]) -> str:
    """The rows as an aligned text table."""
    lines = [f"{'committee':>9}  {'batch':>5}  {'total gas':>10}  {'gas/message':>11}"]
    lines += [
        f"{row.committee_size:>9}  {row.batch_size:>5}  {row.total_gas:>10,}  {row.gas_per_message:>11,}"
        for row in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapters.evm.gas", description=__doc__.splitlines()[0])
    parser.add_argument("--rpc-url", help="use this chain instead of starting an anvil")
    parser.add_argument("--full-branches", action="store_true", help="do not compress Merkle branches")
    parser.add_argument(
        "--committees", action="store_true", help="measure enrollOrigin/handover (proofs of possession)"
    )
    arguments = parser.parse_args(argv)
    compress = not arguments.full_branches

    def run(rpc_url: str) -> str:
        if arguments.committees:
            return format_committee_gas_table(measure_committee_gas(rpc_url))
        return format_gas_table(measure_delivery_gas(rpc_url, compress_branches=compress))

    if arguments.rpc_url:
        print(run(arguments.rpc_url))
    else:
        with AnvilProcess(chain_id=BENCH_CHAIN_ID) as anvil:
            print(run(anvil.rpc_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
