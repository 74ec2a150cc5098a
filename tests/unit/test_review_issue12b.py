"""Second security review of issue 12's merged changes (ECDSA committees, pipelined deliveries).

Each test states an attack on a trust boundary and the behaviour the code must keep under it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.evm.committees import EvmCommitteeReader
from adapters.evm.config import EvmChainConfig
from relay.errors import RpcUnavailable
from relay.verify.ecdsa import EcdsaCommittee

ORIGIN = 7
GATEWAY = "0x" + "11" * 20
SIGNERS = ["0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20]


def lying_reader(answers: dict[str, Any]) -> EvmCommitteeReader:
    """A reader whose Gateway answers come from `answers` (what a lying RPC can return: the ABI
    decodes `address[]` and `uint64[]` with independent lengths)."""
    chain = EvmChainConfig(name="destination", domain=2, rpc_urls=["http://127.0.0.1:9"], gateway=GATEWAY)
    reader = EvmCommitteeReader(chain)
    reader._call = lambda name, origin: answers[name]  # type: ignore[method-assign]
    return reader


@pytest.mark.parametrize("weights", [[1, 1], [1, 1, 1, 1], []])
def test_a_lying_rpc_with_signers_and_weights_of_different_lengths_is_an_rpc_outage(
    weights: list[int],
) -> None:
    """currentEcdsaCommittee answering 3 signers and 2 (or 4, or 0) weights: a typed
    `RpcUnavailable` (the relayer's committee stage and the attestor's membership catch
    `RelayError`), never a bare ValueError out of `zip(strict=True)`."""
    honest = EcdsaCommittee(3, tuple(bytes.fromhex(s[2:]) for s in SIGNERS), (1, 1, 1), 3)
    reader = lying_reader(
        {
            "committeeOf": (3, honest.hash()),
            "currentEcdsaCommittee": (3, 3, SIGNERS, weights),
        }
    )
    with pytest.raises(RpcUnavailable):
        reader.current_ecdsa_committee(ORIGIN)


# --- pipelined deliveries --------------------------------------------------------------------


@pytest.fixture
def delivery_world(tmp_path: Path) -> Iterator[Any]:
    """The delivery stage's unit world (tests/unit/relayer/test_deliver.py) on a real SQLite store."""
    from prometheus_client import CollectorRegistry

    from relay.metrics import RelayMetrics
    from relay.store import open_store
    from tests.unit.relayer.helpers import Clock
    from tests.unit.relayer.test_deliver import World

    store = open_store(str(tmp_path / "relayer.db"))
    yield World(store, RelayMetrics(CollectorRegistry()), Clock(), max_batch=2)
    store.close()


def test_no_batch_is_launched_once_shutdown_was_requested(delivery_world: Any) -> None:
    """`Relayer.stop` joins the delivery loops with a timeout, then `Deliverer.close()` waits for
    the batches in flight. A loop that outlives its join (stuck in a probe or a store call) runs
    one more pass: it must not start batches in a fresh pool nobody waits for, which would claim
    messages, mark them SUBMITTED and call a submitter whose channel `stop` is closing."""
    from tests.unit.relayer.helpers import S as St

    w = delivery_world
    w.verify(4)
    w.stopping = True
    w.deliverer.close()
    w.deliverer.deliver(w.destination, flush=True, wait=False)
    w.deliverer.close()  # waits for whatever the pass started
    assert w.submitter.calls == []
    assert w.states(4) == [St.VERIFIED] * 4


# --- ECDSA hand-overs: collecting the members' signatures -----------------------------------


def test_one_hostile_answer_cannot_block_or_shadow_an_ecdsa_handover_certificate() -> None:
    """`relay committee handover` (and the devnet rotation) ask every listed attestor for its
    signature and combine them with `certify_ecdsa`. Three honest members of a 3-of-4 committee
    answered; a fourth answer is hostile (a compromised attestor, or a wrong address in the
    operator's list): it claims honest member 0's address with a signature of its own key, or
    names an outsider address. The honest quorum must still certify: the hostile answer is
    neither fatal (InvalidSignature / NotACommitteeMember for the whole hand-over) nor able to
    replace member 0's genuine signature in the address-keyed map."""
    from dataclasses import replace

    from adapters.evm.ecdsa_gas import EcdsaSigningCommittee
    from relay.chains import OnChainEcdsaCommittee
    from relay.handover_ecdsa import compute_ecdsa_proposal_digest, verify_ecdsa_handover_certificate
    from relay.tools.rotation_ecdsa import EcdsaSigningResult, certify_ecdsa, propose_ecdsa
    from relay.verify.ecdsa import sign_digest
    from tests.unit.test_handover_ecdsa import CURRENT, GATEWAY, NEXT, ORIGIN, signer

    current = OnChainEcdsaCommittee(
        3, CURRENT.committee.hash(), 3, tuple((a, 1) for a in CURRENT.committee.signers)
    )
    proposal = propose_ecdsa(ORIGIN, GATEWAY, current, [(a, 1) for a in NEXT.committee.signers])
    honest = [EcdsaSigningResult(f"attestor-{i}", signer(i).sign(proposal)) for i in range(3)]
    outsider = EcdsaSigningCommittee.generate(1, epoch=3, seed=b"outsider")
    digest = compute_ecdsa_proposal_digest(
        ORIGIN, GATEWAY, 3, CURRENT.committee.hash(), proposal.build_committee().hash()
    )
    # The outsider's own valid EIP-191 signature of the hand-over: recovers to no member.
    forged = replace(signer(3).sign(proposal), signature=sign_digest(outsider.secret_keys[0], digest))
    hostile = {
        "member 0's address, another key's signature": replace(
            forged, signer_address=CURRENT.committee.signers[0], signer_index=0
        ),
        "an outsider's address": replace(forged, signer_address=outsider.committee.signers[0]),
    }
    for name, answer in hostile.items():
        results = [*honest, EcdsaSigningResult("attestor-hostile", answer)]
        certificate = certify_ecdsa(proposal, current, results)
        assert verify_ecdsa_handover_certificate(CURRENT.committee, certificate) == NEXT.committee, name
        assert certificate.certificate.signer_indices(4) == [0, 1, 2], name


# --- receipts polled once per head -----------------------------------------------------------


def test_a_chain_head_answered_with_garbage_does_not_escape_the_receipt_wait() -> None:
    """The submitter's endpoint answers `eth_blockNumber` with a non-number (a broken or lying
    RPC). `_head` promises None then ("the waiter polls its receipt anyway"): the delivery's
    receipt is still found. Escaping as a bare ValueError, it would end the Deliver call after
    the transaction was sent, so the relayer would retry and send the same messages again."""
    from eth_account import Account
    from web3 import Web3
    from web3.providers.base import BaseProvider

    from adapters.evm.config import SubmissionConfig
    from adapters.evm.rpc import EvmEndpoint
    from adapters.evm.transactions import AccountTransactions, SentTransaction

    class GarbageHead(BaseProvider):
        def make_request(self, method: Any, params: Any) -> Any:
            return {"jsonrpc": "2.0", "id": 1, "result": "not a block number"}

        def is_connected(self, show_traceback: bool = False) -> bool:
            return True

    endpoint = EvmEndpoint("http://127.0.0.1:9", "destination")
    endpoint.web3 = Web3(GarbageHead())
    now = [0.0]
    transactions = AccountTransactions(
        endpoint, Account.create(), SubmissionConfig(), clock=lambda: now[0], sleep=lambda s: None
    )
    receipt = {"status": 1, "blockNumber": 5}
    transactions._mined = lambda sent: (b"\x01" * 32, receipt)  # type: ignore[method-assign]
    sent = SentTransaction(nonce=0, transaction={}, fees=None, hashes=[b"\x01" * 32])  # type: ignore[arg-type]
    assert transactions.wait(sent) == (b"\x01" * 32, receipt)


def test_one_hostile_answer_cannot_block_a_bls_handover_certificate() -> None:
    from adapters.evm.gas import SigningCommittee
    from relay.chains import OnChainCommittee
    from relay.handover import HandoverSignature, compute_proposal_digest
    from relay.tools.rotation import SigningResult, certify, propose

    current = SigningCommittee.generate(4, epoch=3, seed=b"current bls committee")
    following = SigningCommittee.generate(4, epoch=4, seed=b"next bls committee")
    gateway = bytes(12) + b"\x42" * 20
    members = current.committee.members
    on_chain = OnChainCommittee(
        3,
        current.committee.hash(),
        current.committee.threshold,
        tuple((m.public_key, m.weight) for m in members),
    )
    proposal = propose(7, gateway, on_chain, following.committee.members)
    digest = compute_proposal_digest(
        7, gateway, 3, current.committee.hash(), proposal.build_committee().hash()
    )

    def answer(index: int, public_key: bytes, secret: int) -> SigningResult:
        signature = current.backend.sign(secret, digest)
        return SigningResult(
            f"attestor-{index}",
            HandoverSignature(7, 3, index, public_key, signature, current.committee.hash(), b"\x00" * 32),
        )

    honest = [answer(i, members[i].public_key, current.secret_keys[i]) for i in range(3)]
    # Member 3's attestor (compromised) answers under member 0's key with its own signature.
    hostile = answer(0, members[0].public_key, current.secret_keys[3])
    certificate = certify(proposal, on_chain, [*honest, hostile])
    assert certificate.certificate.signer_indices(4) == [0, 1, 2]


# --- one eth_call at the floor instead of eth_estimateGas -------------------------------------


@pytest.mark.parametrize("handle_gas", [[0], [1], [21_000], [200_000] * 50, [10_000_000], [0] * 1000])
def test_a_call_proven_at_the_ceiling_is_sent_with_at_least_the_estimates_margin(
    handle_gas: list[int],
) -> None:
    """`EvmDestination._send` sends with the floor when one eth_call succeeds at
    `compute_estimate_ceiling(floor)`. The Gateway reverts the whole call when a recipient cannot
    get its full limit (InsufficientGasForRecipient) and gives each recipient exactly its limit
    whatever the outer gas, so success is monotonic in gas: the minimal estimate is at most the
    ceiling, and the floor must hold what eth_estimateGas's path would have sent
    (`compute_gas_limit(estimate)`), i.e. the same margin against gas used differing between
    eth_call and the mined transaction (a recipient that fails only in simulation)."""
    from adapters.evm.fees import compute_estimate_ceiling, compute_gas_limit, compute_minimum_gas_limit

    floor = compute_minimum_gas_limit(handle_gas)
    ceiling = compute_estimate_ceiling(floor)
    assert 0 < ceiling < floor
    assert compute_gas_limit(ceiling) <= floor
    # What a recipient can change on the Gateway's side by succeeding in eth_call and failing
    # on-chain: clearing its replay bit again (the bit is set before the call) and DeliveryFailed
    # with a reason of up to 256 bytes instead of Delivered, under 5,000 gas a message, plus a
    # fresh bitmap word's 22,100 in at most two words: inside the margin the floor keeps.
    assert floor - ceiling >= 2 * 22_100 + len(handle_gas) * 5_000


@pytest.mark.parametrize("garbage", ["bad output", "value error"])
def test_an_eth_call_answer_that_does_not_decode_is_not_proof_and_stays_typed(garbage: str) -> None:
    """`_succeeds_with` once let an undecodable eth_call answer escape untyped (before any send)."""
    from types import SimpleNamespace

    from web3.exceptions import BadFunctionCallOutput

    from adapters.evm.submitter import EvmDestination

    error: Exception = BadFunctionCallOutput("0x01") if garbage == "bad output" else ValueError("junk")

    def call(options: object) -> object:
        raise error

    destination = EvmDestination.__new__(EvmDestination)
    destination.account = "0x" + "11" * 20
    destination.transactions = SimpleNamespace(read=lambda name, function: function())
    assert destination._succeeds_with(SimpleNamespace(call=call), 100_000) is False
