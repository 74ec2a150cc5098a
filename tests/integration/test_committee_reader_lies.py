"""The committee read from a real Gateway on anvil, through a destination RPC that lies: the hash
is computed from the members read, so a tampered member or a forged `committeeOf` hash is a typed
`RpcUnavailable`, never a committee; an attestor following its committee through that RPC keeps
its place; and a relayer with one lying destination RPC among two keeps the committee the honest
Gateway holds, and drops a lie once it stops."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_abi import decode, encode
from web3 import Web3

from adapters.evm.committees import EvmCommitteeReader
from adapters.evm.config import EvmChainConfig
from adapters.evm.gas import SigningCommittee
from relay.errors import RpcUnavailable
from relay.roles.ledger import AttestorIdentity, CheckpointLedger
from relay.roles.membership import CommitteeMembership
from tests.integration.gateway_bridge import DESTINATION, ORIGIN, Bridge
from tests.rpc_proxy import RpcProxy

COMMITTEE_OF = Web3.keccak(text="committeeOf(uint32)")[:4].hex()
CURRENT_COMMITTEE = Web3.keccak(text="currentCommittee(uint32)")[:4].hex()
COMMITTEE_TYPE = "(uint64,uint64,(bytes,bytes,uint64)[])"


@pytest.fixture
def proxy(bridge: Bridge) -> Iterator[RpcProxy]:
    with RpcProxy(bridge.w3.provider.endpoint_uri) as lying:  # type: ignore[attr-defined]
        yield lying


def reader_through(proxy: RpcProxy, bridge: Bridge) -> EvmCommitteeReader:
    chain = EvmChainConfig(
        name="destination", domain=DESTINATION, rpc_urls=[proxy.url], gateway=bridge.destination.address
    )
    return EvmCommitteeReader(chain)


def lie_about(selector: str, change: Callable[[bytes], bytes]) -> Callable[[str, list[Any], Any], Any]:
    def rewrite(method: str, params: list[Any], result: Any) -> Any:
        data = str(params[0].get("data") or params[0].get("input") or "") if method == "eth_call" else ""
        if not data.removeprefix("0x").startswith(selector.removeprefix("0x")):
            return result
        return "0x" + change(bytes.fromhex(str(result).removeprefix("0x"))).hex()

    return rewrite


def heavier_first_member(answer: bytes) -> bytes:
    """`currentCommittee` with member 0's weight raised: the members no longer hash to committeeOf."""
    ((epoch, threshold, members),) = decode([COMMITTEE_TYPE], answer)
    key, proof, weight = members[0]
    return encode([COMMITTEE_TYPE], [(epoch, threshold, [(key, proof, weight + 5), *members[1:]])])


def test_the_committee_hash_is_computed_from_the_members_read(
    bridge: Bridge, signing: SigningCommittee, proxy: RpcProxy
) -> None:
    reader = reader_through(proxy, bridge)
    honest = reader.current_committee(ORIGIN)
    assert honest is not None and honest.committee_hash == signing.committee.hash()

    proxy.rewrite = lie_about(CURRENT_COMMITTEE, heavier_first_member)
    with pytest.raises(RpcUnavailable, match="do not hash to committeeOf"):
        reader.current_committee(ORIGIN)

    proxy.rewrite = lie_about(COMMITTEE_OF, lambda answer: answer[:32] + b"\x22" * 32)
    with pytest.raises(RpcUnavailable, match="do not hash to committeeOf"):
        reader.current_committee(ORIGIN)


def test_an_attestor_keeps_its_place_when_its_committee_chain_rpc_lies(
    bridge: Bridge, signing: SigningCommittee, proxy: RpcProxy
) -> None:
    secret = signing.secret_keys[1]
    member = signing.committee.members[1]
    identity = AttestorIdentity(
        ORIGIN, bridge.source_word, 1, 1, member.public_key, member.proof_of_possession
    )
    ledger = CheckpointLedger(identity, secret, signing.backend, history=4)
    membership = CommitteeMembership(ledger, reader_through(proxy, bridge), poll_interval=0.0)
    assert not membership.refresh(time.monotonic())  # in step with the Gateway

    # The worst epoch, in committeeOf only: the real currentCommittee does not match it.
    proxy.rewrite = lie_about(COMMITTEE_OF, lambda answer: (2**64 - 1).to_bytes(32, "big") + answer[32:])
    with pytest.raises(RpcUnavailable):
        membership.refresh(time.monotonic())
    # Tampered members under the real epoch and hash: refused, typed.
    proxy.rewrite = lie_about(CURRENT_COMMITTEE, heavier_first_member)
    membership.committee_hash = b""  # make it read the committee again
    with pytest.raises(RpcUnavailable):
        membership.refresh(time.monotonic())
    assert ledger.identity == identity and ledger.signing and membership.member


def fake_committee_answers(epoch: int) -> tuple[bytes, bytes]:
    """A self-consistent lie: `committeeOf` and `currentCommittee` answers for a committee of keys
    the liar holds, at `epoch`, hashing to what it claims."""
    from adapters.evm.bls_encoding import public_key_to_eip2537
    from relay.verify.committee import Committee

    liar = SigningCommittee.generate(4, epoch=epoch, seed=b"the liar's committee")
    committee = Committee.create(epoch, liar.committee.members, backend=liar.backend)
    members = [(public_key_to_eip2537(m.public_key), b"", m.weight) for m in committee.members]
    return (
        encode(["uint64", "bytes32"], [epoch, committee.hash()]),
        encode([COMMITTEE_TYPE], [(epoch, committee.threshold, members)]),
    )


def test_one_lying_destination_rpc_does_not_move_the_relayers_committee(
    bridge: Bridge, signing: SigningCommittee, proxy: RpcProxy, tmp_path: Any
) -> None:
    """Two destinations' readers (the honest one direct, the other through the lying proxy): the
    relayer keeps attesting under the committee whose signatures the honest Gateway accepts, and
    drops a lie one epoch ahead once the lie stops."""
    from prometheus_client import CollectorRegistry

    from relay.metrics import RelayMetrics
    from relay.relayer.committees import CommitteeFollower
    from relay.store import open_store
    from tests.unit.relayer.helpers import Clock, make_source

    honest_chain = EvmChainConfig(
        name="honest",
        domain=DESTINATION,
        rpc_urls=[bridge.w3.provider.endpoint_uri],  # type: ignore[attr-defined]
        gateway=bridge.destination.address,
    )
    readers: dict[int, Any] = {
        DESTINATION: EvmCommitteeReader(honest_chain),
        99: reader_through(proxy, bridge),
    }
    store = open_store(str(tmp_path / "relayer.db"))
    follower = CommitteeFollower(
        store, RelayMetrics(CollectorRegistry()), Clock(), signing.backend, {}, readers, sync_interval=0.0
    )
    source = make_source(store, domain=ORIGIN)
    source.committee = signing.committee
    source.committees = {1: signing.committee}

    def lie(epoch: int | None) -> None:
        if epoch is None:
            proxy.rewrite = None
            return
        summary, full = fake_committee_answers(epoch)

        def rewrite(method: str, params: list[Any], result: Any) -> Any:
            result = lie_about(COMMITTEE_OF, lambda _: summary)(method, params, result)
            return lie_about(CURRENT_COMMITTEE, lambda _: full)(method, params, result)

        proxy.rewrite = rewrite

    try:
        lie(2**64 - 1)
        assert not follower.follow(source)
        assert source.destination_epochs == {DESTINATION: 1, 99: 2**64 - 1}
        assert source.committee is signing.committee  # the honest Gateway's proofs still verify

        lie(2)  # one epoch ahead: followed from one gateway (someone else's hand-over looks like this)
        assert follower.follow(source) and source.committee.epoch == 2
        lie(None)  # the lie stops: the relayer is back on the committee the Gateways hold
        assert follower.follow(source)
        assert source.committee is signing.committee
    finally:
        store.close()
