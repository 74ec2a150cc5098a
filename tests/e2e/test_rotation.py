"""A committee rotation on a live devnet (`relay devnet --rotate-after N`): both origins hand over
to 5 members (one removed, two added) while messages keep flowing.

Invariants: nothing lost and nothing twice across the rotation (every message delivered, each
recipient's counter grew by exactly the number sent, the Gateway emitted one `Delivered` per id),
both gateways end at epoch 2, the attestors follow it, and the removed member's signatures no
longer count: on-chain (a hand-over signed by the old quorum with the removed key is refused) and
off-chain (a checkpoint certificate with the removed key does not verify under the new committee).

This test runs its own devnet (with spare members): the session's shared one keeps its committee.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.evm import deploy
from adapters.evm.anvil import ANVIL_PATH
from adapters.evm.config import EvmChainConfig
from adapters.evm.rpc import EvmEndpoint
from adapters.evm.submitter import EvmDestination
from relay import errors
from relay.handover import (
    HandoverCertificate,
    HandoverProposal,
    build_committee_from_chain,
    compute_proposal_digest,
)
from relay.rpc.clients import GrpcAttestorClient
from relay.tools.devnet import Devnet, DevnetOptions
from relay.tools.devnet_rotation import REMOVED_MEMBER, next_members
from relay.tools.devnet_run import run_messages
from relay.tools.rotation import read_committee
from relay.verify.bls import get_backend
from relay.verify.committee import Checkpoint, QuorumCertificate, encode_bitfield, verify_checkpoint
from tests.e2e.test_devnet import delivered_events

pytestmark = [pytest.mark.anvil, pytest.mark.timeout(420)]

MESSAGES_EACH_WAY = 30
ROTATE_AFTER = 10


@pytest.fixture(scope="module")
def rotating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    if not ANVIL_PATH.exists():
        pytest.fail("anvil missing: run `make tools`")
    options = DevnetOptions(
        run_root=tmp_path_factory.mktemp("rotation"),
        spare_members=2,
        retry_base_delay=0.1,
        retry_max_delay=5.0,
    )
    network = Devnet(options).start()
    try:
        yield network
    finally:
        network.stop()


def test_a_rotation_under_traffic_loses_nothing_and_the_removed_member_no_longer_counts(
    rotating: Devnet,
) -> None:
    devnet = rotating
    result = run_messages(devnet, MESSAGES_EACH_WAY, timeout=300, rotate_after=ROTATE_AFTER)
    assert result.rotation_error == ""
    assert result.delivered == result.sent == 2 * MESSAGES_EACH_WAY, result.counts
    assert result.received_ok  # each recipient counted exactly what was sent to it
    assert result.epochs == {chain.domain: 2 for chain in devnet.chains}
    for chain in devnet.chains:
        events = delivered_events(chain)
        assert sum(events.values()) == MESSAGES_EACH_WAY and set(events.values()) == {1}

    bls = get_backend()
    removed_secret = devnet.bls_secrets[REMOVED_MEMBER]
    removed_key = bls.secret_to_public_key(removed_secret)
    for index, origin in enumerate(devnet.chains):
        destination = devnet.chains[1 - index]
        current = read_committee(destination.rpc_url, destination.gateway, origin.domain)
        committee = build_committee_from_chain(current)
        assert [m.public_key for m in committee.members] == [m.public_key for m in next_members(devnet)]
        assert removed_key not in {m.public_key for m in committee.members}

        # The attestors follow the chain: the removed one says so, the others sign under epoch 2.
        for member in range(devnet.options.committee_size + devnet.options.spare_members):
            client = GrpcAttestorClient(
                devnet.addresses[f"attestor-{origin.name}-{member}"], devnet.client_tls()
            )
            identity = client.get_identity(timeout=5)
            client.close()
            assert identity.epoch == 2 and identity.member == (member != REMOVED_MEMBER), (member, identity)

        # Off-chain: a checkpoint signed by the removed key and three current members does not verify.
        root, count = (
            deploy.contract(EvmEndpoint(origin.rpc_url).web3, "Gateway", origin.gateway)
            .functions.latestCheckpoint()
            .call()
        )
        checkpoint = Checkpoint(origin.domain, bytes(12) + bytes.fromhex(origin.gateway[2:]), 2, root, count)
        kept = [s for i, s in enumerate(devnet.bls_secrets) if i != REMOVED_MEMBER]
        signatures = [bls.sign(s, checkpoint.digest()) for s in (removed_secret, *kept[:3])]
        forged = QuorumCertificate(
            encode_bitfield(range(4), len(committee)), bls.aggregate_signatures(signatures)
        )
        with pytest.raises(errors.InvalidSignature):
            verify_checkpoint(committee, checkpoint, forged, origin=origin.domain, gateway=checkpoint.gateway)
        # ... and the old quorum's certificate (removed member included) is for an epoch that ended.
        old = Checkpoint(origin.domain, checkpoint.gateway, 1, root, count)
        old_quorum = QuorumCertificate(
            encode_bitfield(range(3), 5),
            bls.aggregate_signatures([bls.sign(s, old.digest()) for s in devnet.bls_secrets[:3]]),
        )
        with pytest.raises(errors.EpochMismatch):
            verify_checkpoint(committee, old, old_quorum, origin=origin.domain, gateway=checkpoint.gateway)

        # On-chain: the removed key signing in a member's place does not count toward a hand-over.
        proposal = HandoverProposal(
            origin.domain, checkpoint.gateway, 3, 4, tuple(next_members(devnet)), current.committee_hash
        )
        digest = compute_proposal_digest(
            origin.domain, checkpoint.gateway, 2, current.committee_hash, proposal.build_committee().hash()
        )
        forged_handover = HandoverCertificate(
            proposal,
            QuorumCertificate(
                encode_bitfield(range(4), 5),
                bls.aggregate_signatures([bls.sign(s, digest) for s in (removed_secret, *kept[:3])]),
            ),
        )
        chain = EvmChainConfig(
            name=destination.name,
            domain=destination.domain,
            rpc_urls=[destination.rpc_url],
            gateway=destination.gateway,
        )
        with pytest.raises(errors.InvalidHandover) as refused:
            EvmDestination(chain, devnet.user_key).submit_handover(forged_handover)
        assert "InvalidSignature" in str(refused.value)
        assert read_committee(destination.rpc_url, destination.gateway, origin.domain).epoch == 2
