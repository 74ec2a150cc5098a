"""Builders shared by the relayer stage tests: a real BLS committee, messages, sources and states.

Every stage test runs on a real SQLite store; only the peers (attestors, submitters) and the
source watchers are fakes. Time is a `Clock` the test advances.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.evm.config import EvmChainConfig as ChainConfig
from relay.chains import Cursor, ObservedMessage, SourceWatcher, WatchUpdate
from relay.lifecycle import MessageState
from relay.peers import PartialSignature
from relay.relayer.config import RelayerConfig, SourceConfig
from relay.relayer.ingest import DeferredCursors
from relay.relayer.state import SourceState
from relay.relayer.tree import OriginTree
from relay.store import Store, Transition
from relay.verify.bls import get_backend, keygen
from relay.verify.committee import Checkpoint, Committee, Member, QuorumCertificate
from relay.verify.merkle import MerkleTree
from relay.verify.message import Message, address_to_bytes32

S = MessageState
ORIGIN, DESTINATION, EPOCH = 1, 2, 1
GATEWAY_ADDRESS = "0x" + "42" * 20
GATEWAY = address_to_bytes32(GATEWAY_ADDRESS)
BLS = get_backend("blst")
SECRETS = [keygen(bytes([i + 1]) * 32) for i in range(4)]
OUTSIDER = keygen(b"\x99" * 32)
OUTSIDER_KEY = BLS.secret_to_public_key(OUTSIDER)
MEMBERS = [Member(BLS.secret_to_public_key(s), BLS.prove_possession(s), 1) for s in SECRETS]
COMMITTEE = Committee.create(EPOCH, MEMBERS, backend=BLS)  # threshold 3 of 4
START = 1_000.0


class Clock:
    """An injectable clock: `clock()` is the time, `clock.advance(s)` moves it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def make_message(
    nonce: int, *, origin: int = ORIGIN, destination: int = DESTINATION, body: bytes = b""
) -> Message:
    return Message.create(
        nonce=nonce,
        origin=origin,
        sender=b"\x01" * 32,
        destination=destination,
        recipient=b"\x02" * 32,
        body=body or f"message {nonce}".encode(),
    )


def block_hash(number: int, fork: int = 0) -> bytes:
    return bytes([fork]) + number.to_bytes(31, "big")


def observe(message: Message, block: int | None = None, *, fork: int = 0) -> ObservedMessage:
    """The Dispatch event of `message`, by default in block nonce + 1 (one message per block)."""
    number = message.nonce + 1 if block is None else block
    return ObservedMessage(message, number, block_hash(number, fork), number.to_bytes(32, "big")[::-1], 0)


def chain_config(domain: int = ORIGIN, name: str = "alpha") -> ChainConfig:
    return ChainConfig.model_validate(
        {"name": name, "domain": domain, "rpc_urls": ["http://unused"], "gateway": GATEWAY_ADDRESS}
    )


def committee_config() -> dict[str, Any]:
    return {
        "epoch": EPOCH,
        "members": [
            {"public_key": m.public_key.hex(), "proof_of_possession": m.proof_of_possession.hex()}
            for m in MEMBERS
        ],
    }


def source_config(domain: int = ORIGIN, name: str = "alpha") -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "chain": chain_config(domain, name).model_dump(),
            "committee": committee_config(),
            "attestors": ["attestor-0"],
        }
    )


def relayer_config(**overrides: Any) -> RelayerConfig:
    data: dict[str, Any] = {
        "store": "unused.db",
        "insecure_plaintext": True,  # no server, no peers: transport is not under test
        "sources": [source_config().model_dump()],
        "destinations": [{"domain": DESTINATION, "submitter": "submitter"}],
        "gas_policy": {"mode": "allow_all"},  # no source chain to read payments from
    }
    data.update(overrides)
    return RelayerConfig.model_validate(data)


class IdleWatcher:
    """A `SourceWatcher` that reports nothing new and knows no block hashes."""

    def __init__(self, domain: int = ORIGIN) -> None:
        self.domain = domain

    def poll(self) -> WatchUpdate:
        return WatchUpdate()

    def block_hash(self, number: int) -> bytes | None:
        return None


def make_source(
    store: Store, *, watcher: SourceWatcher | None = None, attestors: Sequence[Any] = (), domain: int = ORIGIN
) -> SourceState:
    return SourceState(
        config=source_config(domain),
        committee=COMMITTEE,
        gateway=GATEWAY,
        cursors=DeferredCursors(store),
        watcher=watcher or IdleWatcher(domain),
        attestors=list(attestors),
        tree=OriginTree(store, domain, "alpha"),
    )


# --- checkpoints and signatures ------------------------------------------------------------


def checkpoint_over(
    messages: Sequence[Message],
    index: int | None = None,
    *,
    origin: int = ORIGIN,
    gateway: bytes = GATEWAY,
    epoch: int = EPOCH,
    root: bytes | None = None,
) -> Checkpoint:
    """The checkpoint of the tree of `messages` (by nonce) after leaf `index` (default: the last)."""
    last = len(messages) - 1 if index is None else index
    tree = MerkleTree([m.id for m in sorted(messages, key=lambda m: m.nonce)])
    return Checkpoint(origin, gateway, epoch, root if root is not None else tree.root_at(last + 1), last)


def sign(member: int, checkpoint: Checkpoint) -> bytes:
    return BLS.sign(SECRETS[member], checkpoint.digest())


def partial(
    member: int, checkpoint: Checkpoint, *, secret: int | None = None, public_key: bytes | None = None
) -> PartialSignature:
    """Member `member`'s signature on `checkpoint` (or a forgery through `secret` / `public_key`)."""
    signing_key = SECRETS[member] if secret is None else secret
    key = public_key if public_key is not None else MEMBERS[member].public_key
    return PartialSignature(checkpoint, member, key, BLS.sign(signing_key, checkpoint.digest()))


def certify(checkpoint: Checkpoint, signers: Sequence[int] = (0, 1, 2)) -> QuorumCertificate:
    return COMMITTEE.aggregate(checkpoint.digest(), [(i, sign(i, checkpoint)) for i in signers], BLS)


# --- putting messages into a state -----------------------------------------------------------


def store_final(store: Store, source: SourceState, messages: Sequence[Message], now: float = START) -> None:
    """Store `messages` (one per block) and finalize them; the tree follows."""
    store.insert_observed([observe(m) for m in messages], now)
    store.mark_final(source.domain, max(m.nonce for m in messages) + 1, now)
    source.tree.extend()


def store_attested(
    store: Store,
    source: SourceState,
    messages: Sequence[Message],
    checkpoint: Checkpoint,
    signers: Sequence[int] = (0, 1, 2),
    now: float = START,
) -> int:
    """Store and finalize `messages`, then attest them under `checkpoint`; return its id."""
    store_final(store, source, messages, now)
    return store.attest_messages(checkpoint, certify(checkpoint, signers), [m.id for m in messages], now)


def store_verified(
    store: Store, source: SourceState, messages: Sequence[Message], checkpoint: Checkpoint, now: float = START
) -> int:
    """Messages VERIFIED under `checkpoint` with their branches from the source tree."""
    checkpoint_id = store_attested(store, source, messages, checkpoint, now=now)
    store.apply_transitions(
        [
            Transition(
                m.id,
                S.ATTESTED,
                S.VERIFIED,
                {"branch": tuple(source.tree.branch(m.nonce, checkpoint.index + 1))},
            )
            for m in messages
        ],
        now,
    )
    return checkpoint_id


def walk(store: Store, message_id: bytes, *states: MessageState, now: float = START) -> None:
    """Move a stored message through `states`, one transition each."""
    record = store.get(message_id)
    assert record is not None
    old = record.state
    for new in states:
        store.apply_transition(Transition(message_id, old, new), now)
        old = new


def state_of(store: Store, message_id: bytes) -> MessageState:
    record = store.get(message_id)
    assert record is not None, "message not stored"
    return record.state


def cursor_at(block: int) -> Cursor:
    return Cursor(block, block_hash(block))
