"""The Gateway's trust layer on a real anvil chain (issue 9): proofs of possession checked on-chain
against a real rogue key, the hand-over digest bound to the current committee, epochs that only
increase, the two-thirds threshold rule, two-step ownership, and the guardian's pauses.

The off-chain half of each rule (relay.verify.committee) is tested here too where the point is
that both sides agree.
"""

from __future__ import annotations

import pytest
from web3 import Web3
from web3.exceptions import ContractCustomError

from adapters.evm.admin import AdminCallRefused, GatewayAdmin
from adapters.evm.anvil import DEV_PRIVATE_KEYS
from adapters.evm.bls_encoding import public_key_to_eip2537, signature_to_eip2537
from adapters.evm.deploy import committee_struct
from adapters.evm.errors import decode_contract_error, error_for_revert
from adapters.evm.gas import SigningCommittee, deploy_contract
from relay.errors import DeliveryPaused, InvalidCommittee, InvalidProofOfPossession
from relay.verify.bls import keygen
from relay.verify.committee import Committee, Member, compute_handover_digest
from relay.verify.hashing import keccak256
from tests.integration.gateway_bridge import (
    DESTINATION,
    ORIGIN,
    Bridge,
    account,
    assert_reverts,
    checkpoint_digest,
    events,
    transact,
)
from tests.rogue_key import make_rogue_key

pytestmark = [pytest.mark.anvil]

ZERO_ADDRESS = "0x" + "00" * 20


def rogue_members(signing: SigningCommittee) -> tuple[list[tuple[bytes, bytes, int]], int]:
    """Three members of `signing` (already proven on the bridge's Gateway, so no proofs) plus a
    rogue key without a proof; returns the struct members and the attacker's secret x."""
    bls = signing.backend
    honest = list(signing.committee.members[:3])
    rogue = make_rogue_key([m.public_key for m in honest], keygen(keccak256(b"attacker's own secret x")))
    # The construction is real: a signature by x alone verifies for all four keys together.
    digest = keccak256(b"a checkpoint the attacker made up")
    bls.verify_fast_aggregate_bytes(
        [*[m.public_key for m in honest], rogue.public_key], digest, bls.sign(rogue.secret, digest)
    )
    members = [(public_key_to_eip2537(m.public_key), b"", m.weight) for m in honest]
    return [*members, (rogue.eip2537, b"", 1)], rogue.secret


# ---------------------------------------------------------------- proofs of possession


def test_possession_proofs_match_py_ecc(w3: Web3, signing: SigningCommittee) -> None:
    harness = deploy_contract(w3, "BLSHarness")
    bls = signing.backend
    for secret in signing.secret_keys:
        public_key = bls.secret_to_public_key(secret)
        point = public_key_to_eip2537(public_key)
        assert harness.functions.compressG1(point).call() == public_key  # both sign bits occur below
        proof = signature_to_eip2537(bls.prove_possession(secret))
        assert harness.functions.verifyPossession(point, proof).call()
    signs = {bls.secret_to_public_key(s)[0] & 0x20 for s in signing.secret_keys}
    assert signs == {0, 0x20}, "the keys should cover both y sign bits"
    first, second = signing.secret_keys[:2]
    point = public_key_to_eip2537(bls.secret_to_public_key(first))
    # Another key's proof, a signature of the key under the signing DST, and garbage all fail.
    assert not harness.functions.verifyPossession(
        point, signature_to_eip2537(bls.prove_possession(second))
    ).call()
    wrong_dst = bls.sign(first, bls.secret_to_public_key(first))
    assert not harness.functions.verifyPossession(point, signature_to_eip2537(wrong_dst)).call()
    assert not harness.functions.verifyPossession(point, bytes(256)).call()
    assert not harness.functions.verifyPossession(bytes(128), bytes(256)).call()


def test_a_rogue_key_cannot_be_enrolled_or_handed_over_to(bridge: Bridge, signing: SigningCommittee) -> None:
    gateway = bridge.destination
    members, secret = rogue_members(signing)
    # Without a proof, and with the only proof the attacker can make (for x*G1, not the rogue key).
    forged_proof = signature_to_eip2537(signing.backend.prove_possession(secret))
    with_forged = [*members[:3], (members[3][0], forged_proof, 1)]
    for epoch_committee, error in (
        ((2, 3, members), "ProofOfPossessionMissing"),
        ((2, 3, with_forged), "InvalidProofOfPossession"),
    ):
        assert_reverts(
            gateway, gateway.functions.enrollOrigin(ORIGIN, bridge.source_word, epoch_committee), error, 3
        )
        assert_reverts(
            gateway, gateway.functions.enrollOrigin(7, bridge.source_word, epoch_committee), error, 3
        )

    # A hand-over the current quorum signed (committee_hash has no proofs in it) is refused too.
    rogue_hash = gateway.functions.computeCommitteeHash((2, 3, members)).call()
    digest = compute_handover_digest(ORIGIN, bridge.source_word, 1, signing.committee.hash(), rogue_hash)
    bitfield, signature = bridge.certify(digest, signers=(0, 1, 2))
    for committee, error in (
        ((2, 3, members), "ProofOfPossessionMissing"),
        ((2, 3, with_forged), "InvalidProofOfPossession"),
    ):
        assert_reverts(gateway, gateway.functions.handover(ORIGIN, committee, bitfield, signature), error, 3)
    assert gateway.functions.committeeOf(ORIGIN).call() == [1, signing.committee.hash()]


def test_a_rogue_key_cannot_join_a_committee_off_chain(signing: SigningCommittee) -> None:
    bls = signing.backend
    honest = list(signing.committee.members[:3])
    rogue = make_rogue_key([m.public_key for m in honest], keygen(keccak256(b"attacker's own secret x")))
    for proof in (bls.prove_possession(rogue.secret), bls.sign(rogue.secret, rogue.public_key)):
        with pytest.raises(InvalidProofOfPossession) as caught:
            Committee.create(2, [*honest, Member(rogue.public_key, proof)], backend=bls)
        assert caught.value.fields["member_index"] == 3


def test_proven_keys_are_remembered(bridge: Bridge, signing: SigningCommittee) -> None:
    gateway = bridge.destination
    for member in signing.committee.members:
        assert gateway.functions.possessionProven(keccak256(public_key_to_eip2537(member.public_key))).call()
    # Already proven keys need no proof again; a new key still does.
    epoch, threshold, members = committee_struct(signing.committee)
    without_proofs = [(key, b"", weight) for key, _, weight in members]
    receipt = transact(
        bridge.w3, gateway.functions.enrollOrigin(ORIGIN, bridge.source_word, (2, threshold, without_proofs))
    )
    assert events(gateway, "PossessionProven", receipt) == []
    newcomer = SigningCommittee.generate(1, seed=b"newcomer")
    ((key, proof, _),) = committee_struct(newcomer.committee)[2]
    five = [*without_proofs, (key, b"", 1)]
    assert_reverts(
        gateway,
        gateway.functions.enrollOrigin(ORIGIN, bridge.source_word, (3, 4, five)),
        "ProofOfPossessionMissing",
        4,
    )
    receipt = transact(
        bridge.w3,
        gateway.functions.enrollOrigin(
            ORIGIN, bridge.source_word, (3, 4, [*without_proofs, (key, proof, 1)])
        ),
    )
    (proven,) = events(gateway, "PossessionProven", receipt)
    assert bytes(proven["keyHash"]) == keccak256(key)


# ---------------------------------------------------------------- epochs and hand-over replay


def test_epochs_only_increase_through_enrollment(bridge: Bridge, signing: SigningCommittee) -> None:
    gateway = bridge.destination
    argument = committee_struct(signing.committee)
    assert_reverts(
        gateway,
        gateway.functions.enrollOrigin(ORIGIN, bridge.source_word, argument),
        "EpochNotIncreasing",
        1,
        1,
    )
    lower = committee_struct(SigningCommittee.generate(4, epoch=0, seed=b"test committee").committee)
    assert_reverts(
        gateway, gateway.functions.enrollOrigin(ORIGIN, bridge.source_word, lower), "EpochNotIncreasing", 1, 0
    )
    later = committee_struct(SigningCommittee.generate(4, epoch=9, seed=b"test committee").committee)
    transact(bridge.w3, gateway.functions.enrollOrigin(ORIGIN, bridge.source_word, later))
    assert gateway.functions.committeeOf(ORIGIN).call()[0] == 9


def test_an_old_handover_is_not_replayed_after_a_recovery(
    w3: Web3, bridge: Bridge, signing: SigningCommittee
) -> None:
    """Two destinations follow one origin. On the first, the owner recovers by enrolling committee
    R at epoch 2 (the same keys as B, a stricter threshold). B's hand-over to C, valid on the
    second destination, must not apply to R: the digest names B's hash, not R's."""
    first = bridge.destination
    second = deploy_contract(w3, "Gateway", DESTINATION)
    transact(
        w3, second.functions.enrollOrigin(ORIGIN, bridge.source_word, committee_struct(signing.committee))
    )
    b = SigningCommittee.generate(4, epoch=2, seed=b"committee B")
    digest = compute_handover_digest(
        ORIGIN, bridge.source_word, 1, signing.committee.hash(), b.committee.hash()
    )
    bitfield, signature = bridge.certify(digest, signers=(0, 1, 2))
    transact(w3, second.functions.handover(ORIGIN, committee_struct(b.committee), bitfield, signature))

    recovery = Committee.create(2, b.committee.members, threshold=4, backend=b.backend)
    transact(w3, first.functions.enrollOrigin(ORIGIN, bridge.source_word, committee_struct(recovery)))
    c = SigningCommittee.generate(4, epoch=3, seed=b"committee C")
    b_to_c = compute_handover_digest(ORIGIN, bridge.source_word, 2, b.committee.hash(), c.committee.hash())
    bitfield, signature = b.certify(b_to_c, (0, 1, 2, 3))  # all four: R's threshold is reached
    argument = committee_struct(c.committee)
    assert_reverts(first, first.functions.handover(ORIGIN, argument, bitfield, signature), "InvalidSignature")
    transact(w3, second.functions.handover(ORIGIN, argument, bitfield, signature))
    assert second.functions.committeeOf(ORIGIN).call() == [3, c.committee.hash()]
    assert first.functions.committeeOf(ORIGIN).call() == [2, recovery.hash()]
    # Replaying the first hand-over on the second destination: epoch 1 is long gone.
    old = committee_struct(b.committee)
    assert_reverts(second, second.functions.handover(ORIGIN, old, bitfield, signature), "WrongEpoch", 4, 2)


# ---------------------------------------------------------------- two-thirds threshold


def test_a_threshold_below_two_thirds_needs_the_owner_s_permission(
    bridge: Bridge, signing: SigningCommittee
) -> None:
    gateway = bridge.destination
    stranger = account(bridge.w3, 1)
    epoch, _, members = committee_struct(signing.committee)
    low = (2, 2, members)  # 2 of 4: 3 * 2 < 2 * 4
    assert_reverts(
        gateway,
        gateway.functions.enrollOrigin(ORIGIN, bridge.source_word, low),
        "ThresholdBelowTwoThirds",
        2,
        4,
    )
    digest = compute_handover_digest(
        ORIGIN,
        bridge.source_word,
        1,
        signing.committee.hash(),
        gateway.functions.computeCommitteeHash(low).call(),
    )
    bitfield, signature = bridge.certify(digest)
    assert_reverts(
        gateway, gateway.functions.handover(ORIGIN, low, bitfield, signature), "ThresholdBelowTwoThirds", 2, 4
    )
    assert_reverts(
        gateway, gateway.functions.setLowThresholdAllowed(ORIGIN, True), "NotOwner", stranger, sender=stranger
    )
    receipt = transact(bridge.w3, gateway.functions.setLowThresholdAllowed(ORIGIN, True))
    assert [(e["origin"], e["allowed"]) for e in events(gateway, "LowThresholdAllowedSet", receipt)] == [
        (ORIGIN, True)
    ]
    transact(bridge.w3, gateway.functions.handover(ORIGIN, low, bitfield, signature))
    assert gateway.functions.committeeOf(ORIGIN).call()[0] == 2
    # Exactly two thirds is enough without permission (3 * 2 == 2 * 3).
    assert_reverts(
        gateway,
        gateway.functions.enrollOrigin(5, bridge.source_word, (1, 2, members[:3])),
        "NotOwner",
        stranger,
        sender=stranger,
    )
    transact(bridge.w3, gateway.functions.enrollOrigin(5, bridge.source_word, (1, 2, members[:3])))

    # Off-chain, the same rule: refused unless allowed.
    with pytest.raises(InvalidCommittee, match="two thirds"):
        Committee.create(2, signing.committee.members, threshold=2, backend=signing.backend)
    allowed = Committee.create(
        2, signing.committee.members, threshold=2, backend=signing.backend, allow_low_threshold=True
    )
    assert allowed.hash() == gateway.functions.computeCommitteeHash(low).call()


# ---------------------------------------------------------------- ownership


def test_two_step_ownership_refuses_the_zero_address(w3: Web3) -> None:
    gateway = deploy_contract(w3, "Gateway", DESTINATION)
    owner, heir, stranger = account(w3, 0), account(w3, 1), account(w3, 2)
    assert_reverts(gateway, gateway.functions.transferOwnership(ZERO_ADDRESS), "ZeroAddress")
    assert_reverts(gateway, gateway.functions.transferOwnership(heir), "NotOwner", stranger, sender=stranger)
    receipt = transact(w3, gateway.functions.transferOwnership(heir))
    (started,) = events(gateway, "OwnershipTransferStarted", receipt)
    assert (started["previousOwner"], started["newOwner"]) == (owner, heir)
    assert events(gateway, "OwnershipTransferred", receipt) == []
    assert (gateway.functions.owner().call(), gateway.functions.pendingOwner().call()) == (owner, heir)
    assert_reverts(gateway, gateway.functions.acceptOwnership(), "NotPendingOwner", stranger, sender=stranger)
    receipt = w3.eth.wait_for_transaction_receipt(
        gateway.functions.acceptOwnership().transact({"from": heir})
    )
    (transferred,) = events(gateway, "OwnershipTransferred", receipt)
    assert (transferred["previousOwner"], transferred["newOwner"]) == (owner, heir)
    assert (gateway.functions.owner().call(), gateway.functions.pendingOwner().call()) == (heir, ZERO_ADDRESS)
    assert_reverts(gateway, gateway.functions.setGuardian(owner), "NotOwner", owner, sender=owner)
    assert_reverts(gateway, gateway.functions.acceptOwnership(), "NotPendingOwner", heir, sender=heir)


def test_the_admin_adapter_names_the_refusal(w3: Web3) -> None:
    gateway = deploy_contract(w3, "Gateway", DESTINATION)
    provider = w3.provider
    rpc_url = str(getattr(provider, "endpoint_uri", ""))
    owner = GatewayAdmin(rpc_url, DEV_PRIVATE_KEYS[0], gateway.address)
    heir = GatewayAdmin(rpc_url, DEV_PRIVATE_KEYS[3], gateway.address)
    with pytest.raises(AdminCallRefused) as caught:
        owner.transfer_ownership(ZERO_ADDRESS)
    assert caught.value.fields["contract_error"] == "ZeroAddress"
    with pytest.raises(AdminCallRefused, match="NotPendingOwner"):
        heir.accept_ownership()
    owner.transfer_ownership(heir.address)
    heir.accept_ownership()
    assert heir.roles().owner == heir.address
    with pytest.raises(AdminCallRefused, match="NotGuardian"):
        owner.pause_delivery(ORIGIN)
    heir.set_guardian(owner.address)
    owner.pause_delivery(ORIGIN)
    owner.pause_dispatch(7)
    assert owner.delivery_paused(ORIGIN) and owner.dispatch_paused(7)
    with pytest.raises(AdminCallRefused, match="NotOwner"):
        owner.unpause_delivery(ORIGIN)
    heir.unpause_delivery(ORIGIN)
    heir.unpause_dispatch(7)
    heir.set_low_threshold_allowed(ORIGIN, True)
    assert not owner.delivery_paused(ORIGIN) and not owner.dispatch_paused(7)
    assert owner.low_threshold_allowed(ORIGIN)
    assert owner.roles().guardian == owner.address


# ---------------------------------------------------------------- guardian and pauses


def test_the_guardian_pauses_delivery_and_only_the_owner_unpauses(
    bridge: Bridge, signing: SigningCommittee
) -> None:
    w3, gateway = bridge.w3, bridge.destination
    guardian, stranger = account(w3, 1), account(w3, 2)
    message, nonce = bridge.send(b"held by the pause")
    assert_reverts(gateway, gateway.functions.pauseDelivery(ORIGIN), "NotGuardian", stranger, sender=stranger)
    receipt = transact(w3, gateway.functions.setGuardian(guardian))
    (event,) = events(gateway, "GuardianSet", receipt)
    assert (event["previousGuardian"], event["newGuardian"]) == (ZERO_ADDRESS, guardian)
    receipt = w3.eth.wait_for_transaction_receipt(
        gateway.functions.pauseDelivery(ORIGIN).transact({"from": guardian})
    )
    (paused,) = events(gateway, "DeliveryPaused", receipt)
    assert (paused["origin"], paused["by"]) == (ORIGIN, guardian)
    assert gateway.functions.deliveryPaused(ORIGIN).call()
    assert_reverts(gateway, bridge.process(message, nonce), "DeliveryIsPaused", ORIGIN)
    # The submitter's reading of that revert: a typed wait, neither transient nor permanent.
    with pytest.raises(ContractCustomError) as raised:
        bridge.process(message, nonce).call()
    assert isinstance(error_for_revert(decode_contract_error(str(raised.value.data))), DeliveryPaused)
    checkpoint = bridge.checkpoint()
    bitfield, signature = bridge.certify(checkpoint_digest(checkpoint))
    batch = gateway.functions.processBatch(
        checkpoint, bitfield, signature, [message], [bridge.tree.branch(nonce)], [100_000]
    )
    assert_reverts(gateway, batch, "DeliveryIsPaused", ORIGIN)
    assert_reverts(gateway, gateway.functions.unpauseDelivery(ORIGIN), "NotOwner", guardian, sender=guardian)

    # A hand-over (the way out) still works while paused, and the pause survives it.
    following = SigningCommittee.generate(4, epoch=2, seed=b"next committee")
    digest = compute_handover_digest(
        ORIGIN, bridge.source_word, 1, signing.committee.hash(), following.committee.hash()
    )
    transact(
        w3, gateway.functions.handover(ORIGIN, committee_struct(following.committee), *bridge.certify(digest))
    )
    assert gateway.functions.deliveryPaused(ORIGIN).call()
    checkpoint = bridge.checkpoint(epoch=2)
    certificate = bridge.certify(checkpoint_digest(checkpoint), signing=following)
    assert_reverts(
        gateway, bridge.process(message, nonce, checkpoint, certificate), "DeliveryIsPaused", ORIGIN
    )
    assert not gateway.functions.delivered(ORIGIN, nonce).call()

    receipt = transact(w3, gateway.functions.unpauseDelivery(ORIGIN))
    assert [e["origin"] for e in events(gateway, "DeliveryUnpaused", receipt)] == [ORIGIN]
    receipt = transact(w3, bridge.process(message, nonce, checkpoint, certificate))
    assert len(events(gateway, "Delivered", receipt)) == 1


def test_the_guardian_pauses_dispatch_per_destination(bridge: Bridge) -> None:
    w3, source = bridge.w3, bridge.source
    guardian = account(w3, 1)
    transact(w3, source.functions.setGuardian(guardian))
    receipt = w3.eth.wait_for_transaction_receipt(
        source.functions.pauseDispatch(DESTINATION).transact({"from": guardian})
    )
    (paused,) = events(source, "DispatchPaused", receipt)
    assert (paused["destination"], paused["by"]) == (DESTINATION, guardian)
    recipient = bytes(32)
    assert_reverts(
        source, source.functions.dispatch(DESTINATION, recipient, b"x"), "DispatchIsPaused", DESTINATION
    )
    assert_reverts(
        source,
        source.functions.dispatchWithGas(DESTINATION, recipient, b"x", 1000),
        "DispatchIsPaused",
        DESTINATION,
    )
    transact(w3, source.functions.dispatch(DESTINATION + 1, recipient, b"another destination still works"))
    assert_reverts(
        source, source.functions.unpauseDispatch(DESTINATION), "NotOwner", guardian, sender=guardian
    )
    receipt = transact(w3, source.functions.unpauseDispatch(DESTINATION))
    assert [e["destination"] for e in events(source, "DispatchUnpaused", receipt)] == [DESTINATION]
    assert not source.functions.dispatchPaused(DESTINATION).call()
    bridge.send(b"open again")
