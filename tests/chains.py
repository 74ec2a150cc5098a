"""Two real anvil chains with the Gateway deployed and a committee enrolled, for the tests that
need real chains (tests/integration and tests/conformance; the `chains` fixture in tests/conftest.py).

The chains mine one block per transaction (no block time), so every block is caused by a test
and "N confirmations" is exact.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from adapters.evm import deploy
from adapters.evm.anvil import DEV_PRIVATE_KEYS, AnvilProcess
from relay.chains import ChainConfigBase as ChainConfig
from relay.chains import Cursor, SourceWatcher
from relay.chains.registry import parse_chain_config
from relay.verify.bls import get_backend, keygen
from relay.verify.committee import Checkpoint, Committee, Member, QuorumCertificate, sign_checkpoint
from relay.verify.merkle import MerkleTree
from relay.verify.message import Message, address_to_bytes32

SOURCE, DESTINATION = 31337, 31338
DEPLOYER, SUBMITTER, USER = DEV_PRIVATE_KEYS[0], DEV_PRIVATE_KEYS[1], DEV_PRIVATE_KEYS[2]


class MemoryCursors:
    """A `CursorStore` in memory."""

    def __init__(self) -> None:
        self.cursors: dict[int, Cursor] = {}
        self.saves = 0

    def load_cursor(self, domain: int) -> Cursor | None:
        return self.cursors.get(domain)

    def save_cursor(self, domain: int, cursor: Cursor) -> None:
        self.cursors[domain] = cursor
        self.saves += 1


@dataclass
class Chains:
    """A source and a destination chain, their Gateways and example apps, and the committee."""

    source: AnvilProcess
    destination: AnvilProcess
    source_gateway: str
    source_counter: str
    gateway: str
    counter: str
    secrets: list[int]
    committee: Committee

    def source_chain(self, confirmations: int = 2, **extra: Any) -> ChainConfig:
        """The source chain's config; `extra` adds or overrides fields (kind, rpc_urls, ...)."""
        fields = {
            "name": "source",
            "domain": SOURCE,
            "rpc_urls": [self.source.rpc_url],
            "gateway": self.source_gateway,
            "confirmations": confirmations,
        }
        return parse_chain_config({**fields, **extra})

    def destination_chain(self, **extra: Any) -> ChainConfig:
        """The destination chain's config; `extra` adds or overrides fields."""
        fields = {
            "name": "destination",
            "domain": DESTINATION,
            "rpc_urls": [self.destination.rpc_url],
            "gateway": self.gateway,
        }
        return parse_chain_config({**fields, **extra})

    def send(self, count: int, prefix: str = "m") -> list[bytes]:
        """Send `count` messages source -> destination app (each mined in its block); their ids."""
        sender = deploy.TransactionSender(self.source.rpc_url, USER)
        hashes = deploy.send_counter_messages(
            sender,
            self.source_counter,
            DESTINATION,
            self.counter,
            [f"{prefix}{i}".encode() for i in range(count)],
        )
        return [
            i for receipt in sender.wait(hashes) for i in deploy.dispatched_ids(receipt, self.source_gateway)
        ]

    def mine(self, blocks: int) -> None:
        deploy.rpc_request(self.source.rpc_url, "anvil_mine", [hex(blocks)])

    def head(self) -> int:
        return int(deploy.rpc_request(self.source.rpc_url, "eth_blockNumber"), 16)


@contextmanager
def running_chains() -> Iterator[Chains]:
    """Start both anvil chains, deploy, enroll the source with a fresh 4-member committee."""
    bls = get_backend()
    keys = [keygen(secrets.token_bytes(32)) for _ in range(4)]
    committee = Committee.create(
        1, [Member(bls.secret_to_public_key(k), bls.prove_possession(k)) for k in keys]
    )
    with AnvilProcess(SOURCE) as source, AnvilProcess(DESTINATION) as destination:
        source_deployment = deploy.deploy(source.rpc_url, DEPLOYER, SOURCE, destinations=[DESTINATION])
        target = deploy.deploy(destination.rpc_url, DEPLOYER, DESTINATION)
        deploy.enroll_origin(
            destination.rpc_url, DEPLOYER, target.gateway, SOURCE, source_deployment.gateway, committee
        )
        yield Chains(
            source,
            destination,
            source_deployment.gateway,
            source_deployment.counter,
            target.gateway,
            target.counter,
            keys,
            committee,
        )


def observe_all(watcher: SourceWatcher) -> list[Message]:
    """Poll until the watcher reached the head; return every message it reported."""
    messages: list[Message] = []
    while True:
        update = watcher.poll()
        messages.extend(o.message for o in update.observed)
        if update.cursor is not None and update.cursor.block_number >= update.head_block:
            return messages


def all_source_messages(chains: Chains) -> list[Message]:
    """Every message the source Gateway dispatched, from a fresh watcher."""
    from adapters.evm.watcher import EvmWatcher

    return observe_all(EvmWatcher(chains.source_chain(), MemoryCursors()))


def certify(
    chains: Chains, messages: list[Message], signers: range = range(3)
) -> tuple[Checkpoint, QuorumCertificate, MerkleTree]:
    """A checkpoint over `messages` (all of the source's, from nonce 0) certified by `signers`."""
    tree = MerkleTree([m.id for m in messages])
    checkpoint = Checkpoint(
        origin=SOURCE,
        gateway=address_to_bytes32(chains.source_gateway),
        epoch=1,
        root=tree.root(),
        index=len(messages) - 1,
    )
    certificate = chains.committee.aggregate(
        checkpoint.digest(), [(i, sign_checkpoint(chains.secrets[i], checkpoint)) for i in signers]
    )
    return checkpoint, certificate, tree
