"""Whole-path runs on a real devnet: invariants, not implementation details.

Nothing lost (every message sent ends DELIVERED, or is provably held back), nothing twice (the
recipient's counter grows by exactly the number sent, and the Gateway emitted exactly one
`Delivered` per id), across a relayer crash, attestors going down, a forging attestor, a
reverting recipient and a source reorg before finality.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager

import grpc
import pytest

from adapters.evm import deploy
from adapters.evm.anvil import DEV_PRIVATE_KEYS
from adapters.evm.config import EvmChainConfig as ChainConfig
from adapters.evm.errors import decode_contract_error
from adapters.evm.finality import EvmFinalitySource
from adapters.evm.rpc import DELIVERED_TOPIC, EvmEndpoint
from adapters.evm.submitter import EvmDestination
from adapters.evm.watcher import EvmWatcher
from relay import errors
from relay.chains import Cursor, DeliveryItem
from relay.client import MessageView, RelayClient
from relay.roles.attestor import AttestationServicer, AttestorIdentity, CheckpointLedger
from relay.rpc.server import bind
from relay.tools.devnet import Devnet, DevnetChain, send_paid_counter_messages
from relay.v1 import attestation_pb2_grpc
from relay.verify.bls import get_backend, keygen
from relay.verify.committee import Checkpoint, QuorumCertificate, sign_checkpoint
from relay.verify.merkle import MerkleTree
from relay.verify.message import Message, address_to_bytes32
from tests.waiting import eventually, metric_value

pytestmark = [pytest.mark.anvil, pytest.mark.timeout(300)]

MESSAGES_EACH_WAY = 200

PAID_GAS_LIMIT = 200_000  # what the e2e messages pay for: the relayer's default policy is `paid`


# --- helpers -------------------------------------------------------------------------------------


def chain_config(devnet: Devnet, chain: DevnetChain) -> ChainConfig:
    return ChainConfig(
        name=chain.name,
        domain=chain.domain,
        rpc_urls=[chain.rpc_url],
        gateway=chain.gateway,
        confirmations=devnet.options.confirmations,
    )


def delivered_events(chain: DevnetChain) -> Counter[bytes]:
    """How many `Delivered` events the chain's Gateway emitted per message id."""
    endpoint = EvmEndpoint(chain.rpc_url)
    logs = endpoint.web3.eth.get_logs(
        {
            "address": endpoint.web3.to_checksum_address(chain.gateway),
            "topics": ["0x" + DELIVERED_TOPIC.hex()],
            "fromBlock": 0,
            "toBlock": "latest",
        }
    )
    return Counter(bytes(entry["topics"][1]) for entry in logs)


def wait_states(
    client: RelayClient, ids: Sequence[bytes], states: set[str], timeout: float
) -> dict[bytes, MessageView]:
    """Poll until every id is in one of `states`; fail with the stragglers otherwise."""
    deadline = time.monotonic() + timeout
    views: dict[bytes, MessageView] = {}
    while True:
        try:
            views.update(client.get_many(ids))
        except errors.RpcUnavailable:
            pass  # the relayer is restarting
        missing = [i for i in ids if i not in views or views[i].state not in states]
        if not missing:
            return views
        if time.monotonic() > deadline:
            summary = Counter(views[i].state if i in views else "unseen" for i in missing)
            errors_seen = {views[i].last_error for i in missing if i in views and views[i].last_error}
            pytest.fail(
                f"{len(missing)} messages not in {states} after {timeout}s: {dict(summary)} {errors_seen}"
            )
        time.sleep(0.5)


def scrape(devnet: Devnet, name: str) -> str:
    """The /metrics text of the devnet process `name`."""
    import urllib.request

    address = devnet.metrics_addresses[name]
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        return str(response.read().decode())


def attestor_metric(devnet: Devnet, name: str, metric: str) -> float:
    """One metric of attestor `name` (summed over its series)."""
    return metric_value(scrape(devnet, name), metric)


def checkpoint_requests(devnet: Devnet, name: str) -> float:
    """How many GetCheckpoint requests attestor `name` has served."""
    return metric_value(
        scrape(devnet, name),
        "relay_grpc_server_requests_total",
        {"method": "/relay.v1.AttestationService/GetCheckpoint"},
    )


def all_messages(devnet: Devnet, chain: DevnetChain) -> list[Message]:
    """Every message the chain's Gateway dispatched (nonce order), from a fresh watcher."""

    class Memory:
        cursor: Cursor | None = None

        def load_cursor(self, domain: int) -> Cursor | None:
            return self.cursor

        def save_cursor(self, domain: int, cursor: Cursor) -> None:
            self.cursor = cursor

    watcher = EvmWatcher(chain_config(devnet, chain).model_copy(update={"confirmations": 1}), Memory())
    messages: list[Message] = []
    while True:
        update = watcher.poll()
        messages.extend(o.message for o in update.observed)
        if update.cursor is not None and update.cursor.block_number >= update.head_block:
            return sorted(messages, key=lambda m: m.nonce)


def certify(
    devnet: Devnet, origin: DevnetChain, messages: list[Message], signers: Sequence[int] = (0, 1, 2)
) -> tuple[Checkpoint, QuorumCertificate, MerkleTree]:
    """A checkpoint over `messages` signed by the devnet committee members `signers`."""
    tree = MerkleTree([m.id for m in messages])
    checkpoint = Checkpoint(
        origin=origin.domain,
        gateway=address_to_bytes32(origin.gateway),
        epoch=devnet.committee.epoch,
        root=tree.root(),
        index=len(messages) - 1,
    )
    certificate = devnet.committee.aggregate(
        checkpoint.digest(), [(i, sign_checkpoint(devnet.bls_secrets[i], checkpoint)) for i in signers]
    )
    return checkpoint, certificate, tree


@contextmanager
def stopped(devnet: Devnet, *names: str) -> Iterator[None]:
    """Processes `names` killed (-9) for the block, started again (and serving) after it."""
    for name in names:
        devnet.kill(name)
    try:
        yield
    finally:
        for name in names:
            devnet.restart(name, wait=False)
        devnet.wait_ready(names)


# --- the tests ------------------------------------------------------------------------------------


def test_messages_both_ways_are_delivered_exactly_once_across_a_relayer_crash(devnet: Devnet) -> None:
    alpha, beta = devnet.chains
    client = devnet.client()
    before = {chain.domain: devnet.received(chain.domain) for chain in devnet.chains}
    sent: dict[str, list[bytes]] = {}
    senders = [
        threading.Thread(target=lambda s=s, d=d: sent.__setitem__(s, devnet.send(s, d, MESSAGES_EACH_WAY)))
        for s, d in (("alpha", "beta"), ("beta", "alpha"))
    ]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    ids = sent["alpha"] + sent["beta"]
    assert len(set(ids)) == 2 * MESSAGES_EACH_WAY

    # Crash the relayer in the middle of the run: some delivered, some in flight.
    sample = ids[::10]

    def mid_run() -> Counter[str] | None:
        try:
            states = Counter(v.state for v in client.get_many(sample).values())
        except errors.RpcUnavailable:
            return None
        return states if 3 <= states["delivered"] < len(sample) else None

    eventually(mid_run, 120, "some but not all sampled messages delivered")
    devnet.kill("relayer")  # returns once the process is gone (SIGKILL, then wait)
    devnet.restart("relayer")

    views = wait_states(client, ids, {"delivered"}, timeout=180)
    assert all(view.state == "delivered" for view in views.values())
    assert devnet.processes["relayer"].starts == 2
    # Nothing twice: the apps counted exactly what was sent, and each id was delivered once.
    assert devnet.received(beta.domain) - before[beta.domain] == MESSAGES_EACH_WAY
    assert devnet.received(alpha.domain) - before[alpha.domain] == MESSAGES_EACH_WAY
    for chain, chain_ids in ((beta, sent["alpha"]), (alpha, sent["beta"])):
        events = delivered_events(chain)
        assert all(events[i] == 1 for i in chain_ids)


def test_delivery_continues_with_one_attestor_down(devnet: Devnet) -> None:
    client = devnet.client()
    before = devnet.received("beta")
    with stopped(devnet, "attestor-alpha-0"):
        ids = devnet.send("alpha", "beta", 5, "one-down")
        wait_states(client, ids, {"delivered"}, timeout=60)
    assert devnet.received("beta") - before == 5


def test_two_attestors_down_nothing_delivered_nothing_lost_then_everything_delivered(devnet: Devnet) -> None:
    client = devnet.client()
    before = devnet.received("beta")
    with stopped(devnet, "attestor-alpha-1", "attestor-alpha-2"):
        ids = devnet.send("alpha", "beta", 5, "two-down")
        # Final on the source (2 confirmations at 1 s blocks), but no quorum: held back, not lost.
        views = wait_states(client, ids, {"final"}, timeout=30)
        # Held back even after the relayer had every signature it can get: the attestors still up
        # signed a checkpoint covering the messages, and the relayer asked them again after that.
        covering = max(view.nonce for view in views.values())
        up = ["attestor-alpha-0", "attestor-alpha-3"]
        eventually(
            lambda: all(
                attestor_metric(devnet, name, "relay_attestor_last_signed_index") >= covering for name in up
            ),
            30,
            f"attestors still up signed index {covering}",
        )
        asked = {name: checkpoint_requests(devnet, name) for name in up}
        eventually(
            lambda: all(checkpoint_requests(devnet, name) > asked[name] for name in up),
            30,
            "the relayer asked the attestors still up again after they signed",
        )
        views = {i: client.get(i) for i in ids}
        assert all(view is not None and view.state == "final" for view in views.values())
        assert devnet.received("beta") == before
    wait_states(client, ids, {"delivered"}, timeout=60)
    assert devnet.received("beta") - before == 5


class ForgingAttestor:
    """An attestor in member `member`'s place that signs with a key that is not that member's.

    `outsider=False`: it claims the member's public key (the signature cannot verify under it);
    `outsider=True`: it presents its own key, one outside the committee.
    """

    def __init__(
        self, devnet: Devnet, chain: DevnetChain, member: int, name: str, *, outsider: bool = False
    ) -> None:
        address = devnet.addresses[name]
        backend = get_backend()
        finality = EvmFinalitySource(chain_config(devnet, chain))
        secret = keygen(secrets.token_bytes(32))
        real = devnet.committee.members[member]
        public_key, proof = (
            (backend.secret_to_public_key(secret), backend.prove_possession(secret))
            if outsider
            else (real.public_key, real.proof_of_possession)
        )
        identity = AttestorIdentity(
            chain.domain, finality.gateway, devnet.committee.epoch, member, public_key, proof
        )
        self.ledger = CheckpointLedger(identity, secret, backend, 256)
        self.finality = finality
        self.stopping = threading.Event()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        attestation_pb2_grpc.add_AttestationServiceServicer_to_server(
            AttestationServicer(self.ledger, self.stopping), self.server
        )
        # The member's own certificate: a compromised member's pod, not an outsider to the PKI.
        assert bind(self.server, address, devnet.tls_config(name)) != 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                state = self.finality.finalized_checkpoint_state()
                if state is not None:
                    self.ledger.apply_final_state(*state)
            except errors.RelayError:
                pass
            self.stopping.wait(0.25)

    def __enter__(self) -> ForgingAttestor:
        self.server.start()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.stop(0).wait()
        self.thread.join(2)


def rejected_signatures(devnet: Devnet, origin: int) -> list[tuple[int, str]]:
    """(signer index, reason) of the signatures the relayer stored as rejected."""
    assert devnet.run_dir is not None
    with sqlite3.connect(f"file:{devnet.run_dir / 'relayer.db'}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute(
            "SELECT signer_index, rejected_reason FROM signatures WHERE origin = ? AND rejected_reason != ''",
            (origin,),
        ).fetchall()
    return [(int(index), str(reason)) for index, reason in rows]


def test_a_submitter_stopped_with_sigterm_exits_cleanly_and_deliveries_resume(devnet: Devnet) -> None:
    client = devnet.client()
    before = devnet.received("beta")
    assert devnet.terminate("submitter-beta") == 0  # SIGTERM: clean shutdown, exit code 0
    assert devnet.terminate("attestor-alpha-3") == 0
    try:
        ids = devnet.send("alpha", "beta", 3, "submitter-down")
        # Verified, but the destination's submitter is away: retried with backoff, not lost.
        wait_states(client, ids, {"retrying", "verified", "submitted"}, timeout=30)
        assert devnet.received("beta") == before
    finally:
        devnet.restart("submitter-beta", wait=False)
        devnet.restart("attestor-alpha-3", wait=False)
        devnet.wait_ready(["submitter-beta", "attestor-alpha-3"])
    wait_states(client, ids, {"delivered"}, timeout=60)
    assert devnet.received("beta") - before == 3


def rejections_counted(devnet: Devnet, origin: int, reason: str) -> float:
    """relay_proof_rejections_total{origin, reason} as the relayer's /metrics shows it."""
    return metric_value(
        scrape(devnet, "relayer"), "relay_proof_rejections_total", {"origin": str(origin), "reason": reason}
    )


@pytest.mark.parametrize(
    "outsider, reason",
    [(False, "InvalidSignature"), (True, "UnknownSigner")],
    ids=["member-key-wrong-secret", "key-outside-the-committee"],
)
def test_a_forged_attestor_signature_is_rejected_stored_and_counted(
    devnet: Devnet, outsider: bool, reason: str
) -> None:
    alpha, beta = devnet.chains
    client = devnet.client()
    before = devnet.received("alpha")
    counted_before = rejections_counted(devnet, beta.domain, reason)
    name = "attestor-beta-3"
    devnet.kill(name)
    sent = 0

    def forgeries() -> list[tuple[int, str]]:
        return [(i, r) for i, r in rejected_signatures(devnet, beta.domain) if r.startswith(reason)]

    try:
        with ForgingAttestor(devnet, beta, 3, name, outsider=outsider):
            # The relayer asks every member in one pass; when the three honest ones answer before
            # the forger has signed that far (it polls the chain like them), their quorum moves
            # the checkpoint on without it. So send again, a few times, until the forger is heard.
            for attempt in range(4):
                ids = devnet.send("beta", "alpha", 3, f"forged-{reason}-{attempt}")
                sent += 3
                # The three honest members still make a quorum; the forgery is stored with its reason.
                wait_states(client, ids, {"delivered"}, timeout=60)
                try:
                    rejected = eventually(forgeries, 5, f"a signature rejected as {reason}")
                    break
                except pytest.fail.Exception:
                    continue
            else:
                pytest.fail(f"no signature rejected as {reason} stored by the relayer after {sent} messages")
    finally:
        devnet.restart(name)
    assert rejected and all(index == 3 for index, _ in rejected)
    assert devnet.received("alpha") - before == sent
    assert rejections_counted(devnet, beta.domain, reason) > counted_before  # and counted in the metrics


def test_forged_certificates_are_refused_by_the_contract(devnet: Devnet) -> None:
    alpha, beta = devnet.chains
    client = devnet.client()
    # Straight at the destination Gateway, a forged certificate is refused by the contract.
    (message_id,) = devnet.send("beta", "alpha", 1, "forged-direct")
    messages = all_messages(devnet, beta)
    checkpoint, certificate, tree = certify(devnet, beta, messages)
    forged = QuorumCertificate(
        certificate.signers, get_backend().sign(keygen(secrets.token_bytes(32)), checkpoint.digest())
    )
    item = next(DeliveryItem(m, tree.branch(m.nonce)) for m in messages if m.id == message_id)
    destination = EvmDestination(chain_config(devnet, alpha), DEV_PRIVATE_KEYS[3])
    with pytest.raises(errors.InvalidSignature):
        destination.submit(checkpoint, forged, [item])
    # A quorum of real members over a tampered root: the message's branch no longer reaches it.
    tampered = Checkpoint(
        origin=checkpoint.origin,
        gateway=checkpoint.gateway,
        epoch=checkpoint.epoch,
        root=bytes(32),
        index=checkpoint.index,
    )
    quorum_over_tampered = devnet.committee.aggregate(
        tampered.digest(), [(i, sign_checkpoint(devnet.bls_secrets[i], tampered)) for i in (0, 1, 2)]
    )
    with pytest.raises(errors.InvalidMerkleProof):
        destination.submit(tampered, quorum_over_tampered, [item])
    wait_states(client, [message_id], {"delivered"}, timeout=60)  # the real one still goes through


def test_a_reverting_recipient_is_parked_then_delivered_after_an_operator_retry(devnet: Devnet) -> None:
    beta = devnet.chain("beta")
    client = devnet.client()
    deploy.set_counter_failing(beta.rpc_url, devnet.deployer_key, beta.counter, True)
    try:
        (message_id,) = devnet.send("alpha", "beta", 1, "parked")
        parked = wait_states(client, [message_id], {"parked"}, timeout=60)[message_id]
        assert "RecipientReverted" in parked.last_error and "FailingOnPurpose" in parked.last_error
    finally:
        deploy.set_counter_failing(beta.rpc_url, devnet.deployer_key, beta.counter, False)
    before = devnet.received("beta")
    # The public port (server TLS, no client certificate) refuses operator calls, token or not.
    with pytest.raises(grpc.RpcError) as public:
        client.retry(message_id, devnet.operator_token)
    assert public.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "operator port" in (public.value.details() or "")
    with devnet.operator_client() as operator:
        with pytest.raises(grpc.RpcError) as denied:
            operator.retry(message_id, "not-the-token")
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        operator.retry(message_id, devnet.operator_token)
    wait_states(client, [message_id], {"delivered"}, timeout=60)
    assert devnet.received("beta") - before == 1
    assert delivered_events(beta)[message_id] == 1


def test_a_reorg_before_finality_drops_the_orphan_and_delivers_its_replacement(devnet: Devnet) -> None:
    """Also: the relayer's own watcher metrics move (its adapters get the relayer's metrics)."""
    alpha, beta = devnet.chains
    client = devnet.client()
    before = devnet.received("beta")
    watched = {"chain": alpha.name}
    reorgs_before = metric_value(scrape(devnet, "relayer"), "relay_reorgs_total", watched)
    calls_before = metric_value(scrape(devnet, "relayer"), "relay_rpc_calls_total", watched)
    deploy.rpc_request(alpha.rpc_url, "evm_setIntervalMining", [0])
    try:
        snapshot = deploy.rpc_request(alpha.rpc_url, "evm_snapshot")
        sender = deploy.TransactionSender(alpha.rpc_url, devnet.user_key)
        hashes = send_paid_counter_messages(sender, alpha, beta, [b"orphan"], gas_limit=PAID_GAS_LIMIT)
        deploy.rpc_request(alpha.rpc_url, "evm_mine")
        (orphan,) = deploy.dispatched_ids(sender.wait(hashes)[0], alpha.gateway)
        # The relayer saw it, but it is not final (no block has been mined on top of it).
        wait_states(client, [orphan], {"observed"}, timeout=20)
        assert deploy.rpc_request(alpha.rpc_url, "evm_revert", [snapshot]) is True
        sender = deploy.TransactionSender(alpha.rpc_url, devnet.user_key)
        hashes = send_paid_counter_messages(sender, alpha, beta, [b"replacement"], gas_limit=PAID_GAS_LIMIT)
        deploy.rpc_request(alpha.rpc_url, "evm_mine")
        (replacement,) = deploy.dispatched_ids(sender.wait(hashes)[0], alpha.gateway)
    finally:
        deploy.rpc_request(alpha.rpc_url, "evm_setIntervalMining", [1])
    assert replacement != orphan
    wait_states(client, [replacement], {"delivered"}, timeout=60)
    assert client.get(orphan) is None  # rolled back: the relayer forgot it
    assert delivered_events(beta)[orphan] == 0
    assert devnet.received("beta") - before == 1
    relayer_metrics = scrape(devnet, "relayer")
    assert metric_value(relayer_metrics, "relay_reorgs_total", watched) >= reorgs_before + 1
    assert metric_value(relayer_metrics, "relay_rpc_calls_total", watched) > calls_before


def test_a_reorg_while_the_relayer_is_down_drops_the_orphan_and_delivers_its_replacement(
    devnet: Devnet,
) -> None:
    """The relayer stored the orphan before it went down; after the restart the re-scan finds the
    replacement at the same nonce, and the relayer settles the conflict by the canonical block hash."""
    alpha, beta = devnet.chains
    client = devnet.client()
    before = devnet.received("beta")
    deploy.rpc_request(alpha.rpc_url, "evm_setIntervalMining", [0])
    try:
        snapshot = deploy.rpc_request(alpha.rpc_url, "evm_snapshot")
        sender = deploy.TransactionSender(alpha.rpc_url, devnet.user_key)
        hashes = send_paid_counter_messages(sender, alpha, beta, [b"orphan-down"], gas_limit=PAID_GAS_LIMIT)
        deploy.rpc_request(alpha.rpc_url, "evm_mine")
        (orphan,) = deploy.dispatched_ids(sender.wait(hashes)[0], alpha.gateway)
        wait_states(client, [orphan], {"observed"}, timeout=20)
        with stopped(devnet, "relayer"):
            assert deploy.rpc_request(alpha.rpc_url, "evm_revert", [snapshot]) is True
            sender = deploy.TransactionSender(alpha.rpc_url, devnet.user_key)
            hashes = send_paid_counter_messages(
                sender, alpha, beta, [b"replacement-down"], gas_limit=PAID_GAS_LIMIT
            )
            deploy.rpc_request(alpha.rpc_url, "evm_mine")
            (replacement,) = deploy.dispatched_ids(sender.wait(hashes)[0], alpha.gateway)
    finally:
        deploy.rpc_request(alpha.rpc_url, "evm_setIntervalMining", [1])
    assert replacement != orphan
    wait_states(client, [replacement], {"delivered"}, timeout=60)
    assert client.get(orphan) is None  # the restarted relayer dropped it for the canonical replacement
    assert delivered_events(beta)[orphan] == 0
    assert devnet.received("beta") - before == 1


def test_replaying_a_delivered_message_on_chain_reverts(devnet: Devnet) -> None:
    alpha, beta = devnet.chains
    client = devnet.client()
    (message_id,) = devnet.send("alpha", "beta", 1, "replay")
    wait_states(client, [message_id], {"delivered"}, timeout=60)
    messages = all_messages(devnet, alpha)
    checkpoint, certificate, tree = certify(devnet, alpha, messages)
    message = next(m for m in messages if m.id == message_id)
    item = DeliveryItem(message, tree.branch(message.nonce))
    destination = EvmDestination(chain_config(devnet, beta), DEV_PRIVATE_KEYS[3])
    # The submitter's own check skips it: nothing is sent.
    assert destination.submit(checkpoint, certificate, [item]).transaction_hash == b""
    # Forced straight at the Gateway, the valid proof of a delivered message reverts.
    call = destination._delivery_call(checkpoint, certificate, [item])
    with pytest.raises(Exception) as replay:
        call.estimate_gas({"from": destination.account})
    assert decode_contract_error(getattr(replay.value, "data", None)).name == "AlreadyDelivered"
    assert delivered_events(beta)[message_id] == 1


def test_every_process_is_still_running(devnet: Devnet) -> None:
    assert devnet.check_alive() == []
