"""An origin verified by an ECDSA committee, end to end on real chains and real processes.

A devnet with `committee_scheme="ecdsa"`: both Gateways enroll the other chain's committee with
`enrollOriginEcdsa` (4 addresses, threshold 3), 8 attestor processes sign with `ecdsa_key`, the
relayer (source committees `scheme: ecdsa`) builds certificates of concatenated 65-byte
signatures and the submitters send them unchanged. One member of alpha's committee is replaced
by a forger that signs under the member's address with another key: its signatures are rejected,
stored with the reason and counted, and delivery goes on with the three honest members. Every
message is delivered exactly once (recipient counters and one `Delivered` event per id).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from adapters.evm import deploy
from adapters.evm.anvil import ANVIL_PATH
from adapters.evm.build import SOLCJS_PATH
from adapters.evm.finality import EvmFinalitySource
from relay import errors
from relay.roles.attestor import AttestationServicer, AttestorIdentity, CheckpointLedger
from relay.rpc.server import bind
from relay.tools.devnet import Devnet, DevnetChain, DevnetOptions
from relay.tools.devnet_committee import generate_ecdsa_secret
from relay.v1 import attestation_pb2_grpc
from relay.verify.bls import get_backend
from tests.waiting import eventually

from .test_devnet import chain_config, delivered_events, rejected_signatures, rejections_counted, wait_states

pytestmark = [pytest.mark.anvil, pytest.mark.timeout(300)]

MESSAGES_EACH_WAY = 3
FORGED_MEMBER = 0
SCHEME_ECDSA = 2  # Gateway.committeeScheme: 0 not enrolled, 1 BLS, 2 ECDSA


@pytest.fixture(scope="module")
def ecdsa_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    if not (ANVIL_PATH.exists() and SOLCJS_PATH.exists()):
        pytest.fail("anvil/solcjs missing: run `make tools` (scripts/install-tools.sh)")
    options = DevnetOptions(
        run_root=tmp_path_factory.mktemp("ecdsa-devnet"), committee_scheme="ecdsa", block_time=1.0
    )
    network = Devnet(options).start()
    try:
        yield network
    finally:
        network.stop()


class ForgingEcdsaAttestor:
    """In member `member`'s place: claims the member's address, signs with a key that is not its own.

    It polls the chain faster than the honest attestors, so that the relayer hears its forgery
    in the same pass as their signatures.
    """

    def __init__(self, devnet: Devnet, chain: DevnetChain, member: int, name: str) -> None:
        finality = EvmFinalitySource(chain_config(devnet, chain))
        address = devnet.committee.members[member].address
        identity = AttestorIdentity(
            chain.domain, finality.gateway, devnet.committee.epoch, member, address, b""
        )
        self.ledger = CheckpointLedger(identity, 0, get_backend(), 256, ecdsa_key=generate_ecdsa_secret())
        self.finality = finality
        self.stopping = threading.Event()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        attestation_pb2_grpc.add_AttestationServiceServicer_to_server(
            AttestationServicer(self.ledger, self.stopping), self.server
        )
        # The member's own certificate: a compromised member's pod, not an outsider to the PKI.
        assert bind(self.server, devnet.addresses[name], devnet.tls_config(name)) != 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                state = self.finality.finalized_checkpoint_state()
                if state is not None:
                    self.ledger.apply_final_state(*state)
            except errors.RelayError:
                pass
            self.stopping.wait(0.05)

    def __enter__(self) -> ForgingEcdsaAttestor:
        self.server.start()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.stop(0).wait()
        self.thread.join(2)


def stored_certificate_lengths(devnet: Devnet, origin: int) -> set[int]:
    """The lengths of the certificates' signatures the relayer aggregated for `origin`."""
    assert devnet.run_dir is not None
    with sqlite3.connect(f"file:{devnet.run_dir / 'relayer.db'}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT signature FROM checkpoints WHERE origin = ?", (origin,)).fetchall()
    return {len(signature) for (signature,) in rows}


def test_an_ecdsa_origin_delivers_exactly_once_and_a_forged_signature_does_not_stall_it(
    ecdsa_devnet: Devnet,
) -> None:
    devnet = ecdsa_devnet
    alpha, beta = devnet.chains
    for chain, other in ((alpha, beta), (beta, alpha)):
        gateway = deploy.contract(
            deploy.TransactionSender(chain.rpc_url, devnet.user_key).web3, "Gateway", chain.gateway
        )
        assert gateway.functions.committeeScheme(other.domain).call() == SCHEME_ECDSA
    client = devnet.client()
    before = {chain.name: devnet.received(chain.name) for chain in devnet.chains}
    counted_before = rejections_counted(devnet, alpha.domain, "InvalidSignature")
    name = f"attestor-alpha-{FORGED_MEMBER}"
    devnet.kill(name)
    sent = {"alpha": 0, "beta": 0}
    ids: list[bytes] = []

    def forgeries() -> list[tuple[int, str]]:
        return [
            (i, r) for i, r in rejected_signatures(devnet, alpha.domain) if r.startswith("InvalidSignature")
        ]

    try:
        with ForgingEcdsaAttestor(devnet, alpha, FORGED_MEMBER, name):
            ids += devnet.send("beta", "alpha", MESSAGES_EACH_WAY, "ecdsa back")
            sent["alpha"] += MESSAGES_EACH_WAY
            for attempt in range(4):  # until the forger is heard (it normally is at once)
                ids += devnet.send("alpha", "beta", MESSAGES_EACH_WAY, f"ecdsa forth {attempt}")
                sent["beta"] += MESSAGES_EACH_WAY
                # The three honest members still make the quorum: the forgery never stalls delivery.
                wait_states(client, ids, {"delivered"}, timeout=60)
                if rejected_signatures(devnet, alpha.domain):
                    break
            rejected = eventually(forgeries, 5, "the forged signature stored as rejected")
    finally:
        devnet.restart(name)
    assert all(index == FORGED_MEMBER for index, _ in rejected)
    assert rejections_counted(devnet, alpha.domain, "InvalidSignature") > counted_before
    # Exactly once: each recipient counted exactly what was sent to it, one Delivered per id.
    for chain in devnet.chains:
        assert devnet.received(chain.name) - before[chain.name] == sent[chain.name]
    events = {**delivered_events(alpha), **delivered_events(beta)}
    assert all(events.get(message_id) == 1 for message_id in ids)
    # Certificates of concatenated 65-byte signatures, stopped at the threshold (3 of 4).
    for chain in devnet.chains:
        assert stored_certificate_lengths(devnet, chain.domain) == {3 * 65}


def stored_checkpoints(devnet: Devnet, origin: int) -> list[tuple[int, int]]:
    """(epoch, signature length) of every certificate the relayer aggregated for `origin`."""
    assert devnet.run_dir is not None
    with sqlite3.connect(f"file:{devnet.run_dir / 'relayer.db'}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT epoch, signature FROM checkpoints WHERE origin = ?", (origin,)).fetchall()
    return [(int(epoch), len(signature)) for epoch, signature in rows]


def test_an_owner_re_enrollment_of_an_ecdsa_committee_is_followed_by_attestors_and_relayer(
    ecdsa_devnet: Devnet,
) -> None:
    from relay.tools.devnet_committee import send_committee_enrollment
    from relay.verify.ecdsa_quorum import EcdsaCheckpointCommittee, EcdsaMember

    devnet = ecdsa_devnet
    alpha, beta = devnet.chains
    owner = deploy.TransactionSender(beta.rpc_url, devnet.deployer_key)
    gateway = deploy.contract(owner.web3, "Gateway", beta.gateway)
    epoch = int(gateway.functions.committeeOf(alpha.domain).call()[0])
    # The owner re-enrolls alpha's committee on beta with the members in reverse order: every
    # attestor's signer index changes, and so does the committee hash.
    reversed_members = [EcdsaMember(m.address, m.weight) for m in reversed(devnet.committee.members)]
    following = EcdsaCheckpointCommittee.create(epoch + 1, reversed_members)
    owner.wait([send_committee_enrollment(owner, beta.gateway, alpha.domain, alpha.gateway, following)])
    assert tuple(gateway.functions.committeeOf(alpha.domain).call()) == (epoch + 1, following.hash())
    client = devnet.client()
    before = devnet.received("beta")
    ids = devnet.send("alpha", "beta", MESSAGES_EACH_WAY, "after re-enrollment")
    wait_states(client, ids, {"delivered"}, timeout=60)
    assert devnet.received("beta") - before == MESSAGES_EACH_WAY
    events = delivered_events(beta)
    assert all(events[message_id] == 1 for message_id in ids)
    # Attested under the new epoch by the attestors at their new indices, 3 signatures each.
    assert (epoch + 1, 3 * 65) in stored_checkpoints(devnet, alpha.domain)
    assert {length for _, length in stored_checkpoints(devnet, alpha.domain)} == {3 * 65}
