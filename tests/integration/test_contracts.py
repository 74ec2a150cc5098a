"""The contracts on a real anvil chain.

- BLS: hash-to-G2 and verification against py_ecc.
- Sending: message ids and Merkle roots against a Python recomputation of docs/protocol.md.
- Delivering: quorum, aggregate signature, Merkle proof and replay checks, each failed check with
  its custom error; failing, absent, gas-burning and re-entrant recipients; committee hand-over.

The off-chain side is `relay.verify` (message encoding, Merkle tree, digests, committee hash):
the point is that both verifiers agree byte for byte. Committees sign with the default BLS backend
(blst where installed); hash-to-curve and one delivery's certificate come straight from py_ecc.
One anvil serves the module; each test deploys its own contracts.
"""

from __future__ import annotations

import pytest
from py_ecc.bls import G2ProofOfPossession
from py_ecc.bls.hash import expand_message_xmd
from py_ecc.bls.hash_to_curve import hash_to_G2
from py_ecc.fields import optimized_bls12_381_FQ as FQ
from py_ecc.optimized_bls12_381 import curve_order, field_modulus, is_inf, multiply
from web3 import Web3
from web3.contract import Contract

from adapters.evm.anvil import ANVIL_PATH
from adapters.evm.bls_encoding import (
    encode_g1_point,
    encode_g2_point,
    public_key_to_eip2537,
    signature_to_eip2537,
)
from adapters.evm.build import SOLCJS_PATH
from adapters.evm.calldata import compress_branch
from adapters.evm.deploy import committee_struct
from adapters.evm.gas import SigningCommittee, deploy_contract
from relay.chains import DEFAULT_HANDLE_GAS_LIMIT
from relay.verify.bls import SIGNATURE_DST, keygen
from relay.verify.committee import (
    CHECKPOINT_TAG,
    COMMITTEE_TAG,
    HANDOVER_TAG,
    compute_handover_digest,
    encode_bitfield,
)
from relay.verify.hashing import keccak256
from relay.verify.merkle import MerkleTree
from relay.verify.message import Message, address_to_bytes32
from tests.integration.gateway_bridge import (
    DESTINATION,
    NO_SIGNATURE,
    ORIGIN,
    SHA256,
    Bridge,
    account,
    assert_reverts,
    checkpoint_digest,
    decode_error,
    events,
    transact,
)

pytestmark = [pytest.mark.anvil]


@pytest.fixture(autouse=True, scope="module")
def _tools_installed() -> None:
    """Fail (never skip) without the chain tools: a skipped contract suite would hide a broken setup."""
    if not (ANVIL_PATH.exists() and SOLCJS_PATH.exists()):
        pytest.fail("anvil/solcjs missing: run `make tools` (scripts/install-tools.sh)")


# ---------------------------------------------------------------- BLS


@pytest.fixture(scope="module")
def harness(w3: Web3) -> Contract:
    return deploy_contract(w3, "BLSHarness")


@pytest.mark.parametrize("message", [b"", b"abc", bytes(range(32)), b"q128_" + b"q" * 128])
def test_hash_to_g2_matches_py_ecc(harness: Contract, message: bytes) -> None:
    uniform = b"".join(harness.functions.expandMessageXmd(message).call())
    assert uniform == expand_message_xmd(message, SIGNATURE_DST, 256, SHA256)
    expected = encode_g2_point(hash_to_G2(message, SIGNATURE_DST, SHA256))
    assert harness.functions.hashToG2(message).call() == expected


def test_bls_verify_accepts_a_signature_and_rejects_the_identity_key(harness: Contract) -> None:
    secret_key = keygen(b"a single py_ecc key for BLS.verify")
    message = b"checkpoint digest stand-in......"
    public_key = public_key_to_eip2537(G2ProofOfPossession.SkToPk(secret_key))
    signature = signature_to_eip2537(G2ProofOfPossession.Sign(secret_key, message))
    assert harness.functions.verify(public_key, message, signature).call()
    assert not harness.functions.verify(public_key, message[:-1] + b"!", signature).call()
    # e(O, H(m)) = 1 = e(G1, O): without an explicit check the identity key "verifies" the identity signature.
    assert not harness.functions.verify(bytes(128), message, bytes(256)).call()


def point_outside_subgroup() -> bytes:
    """A G1 point on the curve y^2 = x^3 + 4 that is not in the prime-order subgroup."""
    for x in range(1, 100):
        rhs = (x**3 + 4) % field_modulus
        y = pow(rhs, (field_modulus + 1) // 4, field_modulus)
        if y * y % field_modulus == rhs:
            point = (FQ(x), FQ(y), FQ.one())
            if not is_inf(multiply(point, curve_order)):
                return encode_g1_point(point)
    raise AssertionError("no point found")


def test_subgroup_check_rejects_a_point_outside_the_subgroup(
    harness: Contract, signing: SigningCommittee
) -> None:
    _, _, members = committee_struct(signing.committee)
    assert harness.functions.areValidG1Points(b"".join(key for key, _, _ in members)).call()
    assert not harness.functions.areValidG1Points(point_outside_subgroup()).call()


# ---------------------------------------------------------------- sending


def test_dispatch_ids_and_roots_match_the_off_chain_encodings(w3: Web3) -> None:
    gateway = deploy_contract(w3, "Gateway", 7)
    assert_reverts(gateway, gateway.functions.latestCheckpoint(), "NoMessagesDispatched")
    sender = address_to_bytes32(account(w3, 0))
    recipient = bytes(12) + b"\x22" * 20
    tree = MerkleTree()
    for nonce, body in enumerate([b"", b"\x12\x34", b"hello" * 20, bytes(32), b"x"]):
        receipt = transact(w3, gateway.functions.dispatch(9, recipient, body))
        (event,) = events(gateway, "Dispatch", receipt)
        expected = Message.create(
            nonce=nonce, origin=7, sender=sender, destination=9, recipient=recipient, body=body
        )
        assert bytes(event["message"]) == expected.encode()
        assert bytes(event["id"]) == expected.id == keccak256(expected.encode())
        assert (event["nonce"], event["destination"]) == (nonce, 9)
        tree.insert(expected.id)
        assert gateway.functions.count().call() == nonce + 1
        assert gateway.functions.root().call() == tree.root()
        assert gateway.functions.latestCheckpoint().call() == [tree.root(), nonce]


def test_counter_sends_with_its_own_address_as_sender(bridge: Bridge) -> None:
    recipient = bytes(12) + b"\x01" * 20
    receipt = transact(bridge.w3, bridge.counter.functions.send(DESTINATION, recipient, b"hi"))
    # The Counter sends through its own Gateway, the destination one (domain 2).
    (event,) = events(bridge.destination, "Dispatch", receipt)
    sender = address_to_bytes32(bridge.counter.address)
    expected = Message.create(
        nonce=0, origin=DESTINATION, sender=sender, destination=DESTINATION, recipient=recipient, body=b"hi"
    )
    assert bytes(event["message"]) == expected.encode()


# ---------------------------------------------------------------- views


def test_views_match_the_off_chain_encodings(bridge: Bridge, signing: SigningCommittee) -> None:
    gateway = bridge.destination
    assert gateway.functions.CHECKPOINT_TAG().call() == CHECKPOINT_TAG
    assert gateway.functions.COMMITTEE_TAG().call() == COMMITTEE_TAG
    assert gateway.functions.HANDOVER_TAG().call() == HANDOVER_TAG
    checkpoint = (ORIGIN, bridge.source_word, 5, b"\xab" * 32, 17)
    assert gateway.functions.checkpointDigest(checkpoint).call() == checkpoint_digest(checkpoint)
    expected_handover = compute_handover_digest(ORIGIN, b"\x77" * 32, 5, b"\xab" * 32, b"\xcd" * 32)
    assert (
        gateway.functions.handoverDigest(ORIGIN, b"\x77" * 32, 5, b"\xab" * 32, b"\xcd" * 32).call()
        == expected_handover
    )
    argument = committee_struct(signing.committee)
    assert gateway.functions.computeCommitteeHash(argument).call() == signing.committee.hash()
    assert gateway.functions.committeeOf(ORIGIN).call() == [1, signing.committee.hash()]
    epoch, threshold, members = gateway.functions.currentCommittee(ORIGIN).call()
    # Proofs of possession are not stored (the keys are remembered as proven instead).
    stored = (argument[0], argument[1], [(key, b"", weight) for key, _, weight in argument[2]])
    assert (epoch, threshold, [tuple(member) for member in members]) == stored
    assert gateway.functions.sourceGatewayOf(ORIGIN).call() == bridge.source_word
    assert gateway.functions.localDomain().call() == DESTINATION


# ---------------------------------------------------------------- delivering


def test_process_delivers_once(bridge: Bridge) -> None:
    message, nonce = bridge.send(b"first")
    checkpoint = bridge.checkpoint()
    # This certificate comes straight from py_ecc: three members sign, the signatures are aggregated.
    digest = checkpoint_digest(checkpoint)
    signatures = [G2ProofOfPossession.Sign(bridge.signing.secret_keys[i], digest) for i in (0, 1, 2)]
    certificate = (
        encode_bitfield((0, 1, 2), 4),
        signature_to_eip2537(G2ProofOfPossession.Aggregate(signatures)),
    )
    receipt = transact(bridge.w3, bridge.process(message, nonce, checkpoint, certificate))
    (delivered,) = events(bridge.destination, "Delivered", receipt)
    assert (bytes(delivered["id"]), delivered["origin"], delivered["nonce"]) == (
        keccak256(message),
        ORIGIN,
        0,
    )
    sender = address_to_bytes32(account(bridge.w3, 0))
    assert bridge.counter.functions.received().call() == 1
    assert bridge.counter.functions.receivedFrom(ORIGIN, sender).call() == 1
    assert bridge.counter.functions.lastBodyHash().call() == keccak256(b"first")
    assert bridge.destination.functions.delivered(ORIGIN, 0).call()
    assert bridge.destination.functions.isDelivered(message).call()
    replay = bridge.process(message, nonce, checkpoint, certificate)
    assert_reverts(bridge.destination, replay, "AlreadyDelivered", keccak256(message))


def test_process_batch_shares_one_signature_and_skips_delivered(bridge: Bridge) -> None:
    sent = [bridge.send(f"batch {i}".encode()) for i in range(5)]
    transact(bridge.w3, bridge.process(*sent[1]))
    checkpoint = bridge.checkpoint()
    bitfield, signature = bridge.certify(checkpoint_digest(checkpoint))
    # Compressed and full branches both verify.
    branches = [compress_branch(bridge.tree.branch(n)) if n % 2 else bridge.tree.branch(n) for _, n in sent]
    gas_limits = [DEFAULT_HANDLE_GAS_LIMIT] * len(sent)
    call = bridge.destination.functions.processBatch(
        checkpoint, bitfield, signature, [m for m, _ in sent], branches, gas_limits
    )
    receipt = transact(bridge.w3, call)
    assert [event["nonce"] for event in events(bridge.destination, "Delivered", receipt)] == [0, 2, 3, 4]
    skipped = [bytes(event["id"]) for event in events(bridge.destination, "DeliverySkipped", receipt)]
    assert skipped == [keccak256(sent[1][0])]
    assert bridge.counter.functions.received().call() == 5
    assert bridge.counter.functions.lastBodyHash().call() == keccak256(b"batch 4")
    assert bridge.counter.functions.lastBodyLength().call() == len(b"batch 4")
    functions = bridge.destination.functions
    mismatched = functions.processBatch(checkpoint, bitfield, signature, [sent[0][0]], [], [1])
    assert_reverts(bridge.destination, mismatched, "BatchLengthMismatch", 1, 0)
    no_gas_limits = functions.processBatch(
        checkpoint, bitfield, signature, [sent[0][0]], [bridge.tree.branch(0)], []
    )
    assert_reverts(bridge.destination, no_gas_limits, "BatchLengthMismatch", 1, 0)


def outsider_certificate(bridge: Bridge, digest: bytes) -> tuple[bytes, bytes]:
    """Members 0 and 1 sign, plus a key outside the committee claiming to be member 2."""
    bls = bridge.signing.backend
    outsider = keygen(b"not a member of the committee, ever")
    keys = [bridge.signing.secret_keys[0], bridge.signing.secret_keys[1], outsider]
    aggregate = bls.aggregate_signatures([bls.sign(key, digest) for key in keys])
    return encode_bitfield((0, 1, 2), 4), signature_to_eip2537(aggregate)


REJECTIONS = {
    "forged signature": lambda b, m, n: (
        b.process(m, n, certificate=outsider_certificate(b, checkpoint_digest(b.checkpoint()))),
        ("InvalidSignature",),
    ),
    "root tampered after signing": lambda b, m, n: (
        b.process(m, n, b.checkpoint(root=b"\x01" * 32), b.certify(checkpoint_digest(b.checkpoint()))),
        ("InvalidSignature",),
    ),
    "signed root without the message": lambda b, m, n: (
        b.process(m, n, b.checkpoint(root=b"\x01" * 32)),
        ("InvalidMerkleProof", keccak256(m)),
    ),
    "quorum short": lambda b, m, n: (
        b.process(m, n, certificate=b.certify(checkpoint_digest(b.checkpoint()), signers=(0, 1))),
        ("QuorumNotReached", 2, 3),
    ),
    "wrong epoch": lambda b, m, n: (
        b.process(m, n, b.checkpoint(epoch=2), (b"\x07", NO_SIGNATURE)),
        ("WrongEpoch", 1, 2),
    ),
    "wrong gateway": lambda b, m, n: (
        b.process(m, n, b.checkpoint(gateway=address_to_bytes32(b.counter.address)), (b"\x07", NO_SIGNATURE)),
        ("WrongGateway", b.source_word, address_to_bytes32(b.counter.address)),
    ),
    "unknown origin": lambda b, m, n: (
        b.process(m, n, b.checkpoint(origin=99), (b"\x07", NO_SIGNATURE)),
        ("UnknownOrigin", 99),
    ),
    "signer bit beyond the committee": lambda b, m, n: (
        b.process(m, n, certificate=(b"\x17", NO_SIGNATURE)),
        ("BitfieldOutOfRange",),
    ),
    "bitfield too long": lambda b, m, n: (
        b.process(m, n, certificate=(b"\x07\x00", NO_SIGNATURE)),
        ("BitfieldLengthMismatch", 1, 2),
    ),
    "tampered body": lambda b, m, n: (
        b.process(m[:-1] + b"!", n),
        ("InvalidMerkleProof", keccak256(m[:-1] + b"!")),
    ),
    "nonce after the checkpoint": lambda b, m, n: (
        b.process(m, n, b.checkpoint(index=0, root=b.tree.root_at(1))),
        ("NonceAfterCheckpoint", 1, 0),
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_process_rejects(bridge: Bridge, case: str) -> None:
    bridge.send(b"first")
    message, nonce = bridge.send(b"second")
    call, (error, *arguments) = REJECTIONS[case](bridge, message, nonce)
    assert_reverts(bridge.destination, call, str(error), *arguments)
    assert not bridge.destination.functions.delivered(ORIGIN, nonce).call()


def test_quorum_counts_weight_not_members(bridge: Bridge) -> None:
    # Re-enrolling the same source Gateway with a later epoch replaces the committee (the owner's
    # recovery path).
    weighted = SigningCommittee.generate(4, epoch=2, seed=b"weighted committee", weights=(5, 1, 1, 1))
    assert weighted.committee.threshold == 6
    enroll = bridge.destination.functions.enrollOrigin(
        ORIGIN, bridge.source_word, committee_struct(weighted.committee)
    )
    transact(bridge.w3, enroll)
    message, nonce = bridge.send(b"weighed")
    checkpoint = bridge.checkpoint(epoch=2)
    digest = checkpoint_digest(checkpoint)
    three_light_members = bridge.process(message, nonce, checkpoint, weighted.certify(digest, (1, 2, 3)))
    assert_reverts(bridge.destination, three_light_members, "QuorumNotReached", 3, 6)
    two_members = bridge.process(message, nonce, checkpoint, weighted.certify(digest, (0, 3)))
    assert len(events(bridge.destination, "Delivered", transact(bridge.w3, two_members))) == 1


def test_process_rejects_a_message_for_another_chain(bridge: Bridge) -> None:
    message, nonce = bridge.send(b"elsewhere", destination=3)
    assert_reverts(bridge.destination, bridge.process(message, nonce), "WrongDestination", DESTINATION, 3)


# ---------------------------------------------------------------- recipients


def test_failing_recipient_leaves_the_message_deliverable(bridge: Bridge) -> None:
    w3, counter = bridge.w3, bridge.counter
    transact(w3, counter.functions.setFailing(True))
    message, nonce = bridge.send(b"retry me")
    checkpoint = bridge.checkpoint()
    certificate = bridge.certify(checkpoint_digest(checkpoint))
    receipt = transact(w3, bridge.process(message, nonce, checkpoint, certificate))
    (failed,) = events(bridge.destination, "DeliveryFailed", receipt)
    sender = address_to_bytes32(account(w3, 0))
    assert bytes(failed["id"]) == keccak256(message)
    assert decode_error(counter, bytes(failed["reason"])) == ("FailingOnPurpose", (ORIGIN, sender))
    assert not bridge.destination.functions.delivered(ORIGIN, nonce).call()
    assert counter.functions.received().call() == 0

    transact(w3, counter.functions.setFailing(False))
    receipt = transact(w3, bridge.process(message, nonce, checkpoint, certificate))
    assert len(events(bridge.destination, "Delivered", receipt)) == 1
    assert counter.functions.received().call() == 1
    assert bridge.destination.functions.delivered(ORIGIN, nonce).call()


def test_only_the_counter_owner_can_make_it_fail(bridge: Bridge) -> None:
    stranger = account(bridge.w3, 1)
    assert_reverts(
        bridge.counter, bridge.counter.functions.setFailing(True), "NotOwner", stranger, sender=stranger
    )


def test_recipient_without_code_fails_softly(bridge: Bridge) -> None:
    nobody = account(bridge.w3, 2)
    message, nonce = bridge.send(b"to an account", recipient=nobody)
    receipt = transact(bridge.w3, bridge.process(message, nonce))
    (failed,) = events(bridge.destination, "DeliveryFailed", receipt)
    assert decode_error(bridge.destination, bytes(failed["reason"])) == ("RecipientNotContract", (nobody,))
    assert not bridge.destination.functions.delivered(ORIGIN, nonce).call()


def test_reentrant_recipient_cannot_deliver_twice(bridge: Bridge) -> None:
    hostile = deploy_contract(bridge.w3, "HostileRecipient", bridge.destination.address)
    message, nonce = bridge.send(b"again and again", recipient=hostile.address)
    # Enough gas for the recipient to re-enter with a whole delivery (a checkpoint check).
    call = bridge.process(message, nonce, gas_limit=1_000_000)
    transact(bridge.w3, hostile.functions.arm(call._encode_transaction_data()))
    receipt = transact(bridge.w3, call)
    assert len(events(bridge.destination, "Delivered", receipt)) == 1
    assert hostile.functions.handled().call() == 1
    assert not hostile.functions.reentrySucceeded().call()
    reentry = bytes(hostile.functions.reentryResult().call())
    assert decode_error(bridge.destination, reentry) == ("AlreadyDelivered", (keccak256(message),))


# ---------------------------------------------------------------- committees


def test_handover_to_the_next_epoch(bridge: Bridge) -> None:
    gateway = bridge.destination
    following = SigningCommittee.generate(4, epoch=2, seed=b"next committee")
    argument = committee_struct(following.committee)
    digest = compute_handover_digest(
        ORIGIN, bridge.source_word, 1, bridge.signing.committee.hash(), following.committee.hash()
    )
    bitfield, signature = bridge.certify(digest, signers=(0, 1))
    assert_reverts(
        gateway, gateway.functions.handover(ORIGIN, argument, bitfield, signature), "QuorumNotReached", 2, 3
    )
    skipping = committee_struct(SigningCommittee.generate(4, epoch=3, seed=b"next committee").committee)
    assert_reverts(
        gateway, gateway.functions.handover(ORIGIN, skipping, bitfield, signature), "WrongEpoch", 2, 3
    )

    bitfield, signature = bridge.certify(digest, signers=(1, 2, 3))
    receipt = transact(bridge.w3, gateway.functions.handover(ORIGIN, argument, bitfield, signature))
    (event,) = events(gateway, "CommitteeHandedOver", receipt)
    assert (event["origin"], event["epoch"], bytes(event["committeeHash"])) == (
        ORIGIN,
        2,
        following.committee.hash(),
    )
    assert gateway.functions.committeeOf(ORIGIN).call() == [2, following.committee.hash()]

    message, nonce = bridge.send(b"after the handover")
    assert_reverts(gateway, bridge.process(message, nonce, bridge.checkpoint(epoch=1)), "WrongEpoch", 2, 1)
    checkpoint = bridge.checkpoint(epoch=2)
    digest = checkpoint_digest(checkpoint)
    assert_reverts(
        gateway, bridge.process(message, nonce, checkpoint, bridge.certify(digest)), "InvalidSignature"
    )
    receipt = transact(
        bridge.w3, bridge.process(message, nonce, checkpoint, bridge.certify(digest, signing=following))
    )
    assert len(events(gateway, "Delivered", receipt)) == 1


def test_enrollment_rules(bridge: Bridge, signing: SigningCommittee) -> None:
    gateway = bridge.destination
    stranger = account(bridge.w3, 1)
    argument = committee_struct(signing.committee)
    enroll = gateway.functions.enrollOrigin(5, bridge.source_word, argument)
    assert_reverts(gateway, enroll, "NotOwner", stranger, sender=stranger)
    other_gateway = address_to_bytes32(bridge.counter.address)
    enroll_elsewhere = gateway.functions.enrollOrigin(ORIGIN, other_gateway, argument)
    assert_reverts(gateway, enroll_elsewhere, "OriginAlreadyEnrolled", ORIGIN, bridge.source_word)
    epoch, _, members = argument
    keys = [key for key, _, _ in members]
    proofs = [proof for _, proof, _ in members]
    outside = point_outside_subgroup()
    invalid = {
        "EmptyCommittee": ((epoch, 1, []), ()),
        "InvalidThreshold": ((epoch, 5, members), (5, 4)),
        "ThresholdBelowTwoThirds": ((epoch, 2, members), (2, 4)),
        "ZeroWeight": ((epoch, 1, [(keys[0], proofs[0], 1), (keys[1], proofs[1], 0)]), (1,)),
        "InvalidPublicKey": ((epoch, 1, [(keys[0], proofs[0], 1), (bytes(128), proofs[1], 1)]), (1,)),
        "PublicKeysNotInSubgroup": ((epoch, 2, [(keys[0], proofs[0], 1), (outside, proofs[1], 1)]), ()),
    }
    for error, (committee, arguments) in invalid.items():
        assert_reverts(
            gateway, gateway.functions.enrollOrigin(5, bridge.source_word, committee), error, *arguments
        )
