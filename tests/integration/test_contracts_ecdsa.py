"""The Gateway's ECDSA committee mode on a real anvil chain (docs/protocol.md, "ECDSA committee").

- Enrollment: every committee rule refused with its custom error; the contract's
  ecdsa_committee_hash equals `EcdsaCommittee.hash()`; the scheme is per origin.
- Delivery: 1-of-1, 3-of-5 (a low threshold, allowed by the owner) and 13-of-19 committees
  deliver; forged, tampered, malleable, malformed, reordered and short certificates, BLS
  certificates for ECDSA origins and the reverse are refused, each with its typed error.
- Hand-over: ECDSA to ECDSA, signed by the current committee; forged, replayed and stale ones are
  refused; the old committee and the old epoch stop being accepted.

Certificates come from `EcdsaSigningCommittee` (coincurve keys); the expected addresses in the
errors come from `relay.verify.ecdsa.recover_address`, so the two verifiers are checked against
each other. Refusals are `eth_call`s on one module-wide bridge (they change nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from web3 import Web3
from web3.exceptions import ContractCustomError

from adapters.evm.deploy import committee_struct, ecdsa_committee_struct
from adapters.evm.ecdsa_gas import EcdsaSigningCommittee, address_of
from adapters.evm.errors import decode_contract_error, error_for_revert
from adapters.evm.gas import SigningCommittee, deploy_contract
from relay.errors import InvalidSignature
from relay.verify.committee import compute_handover_digest, encode_bitfield
from relay.verify.ecdsa import (
    ECDSA_COMMITTEE_TAG,
    SECP256K1_ORDER,
    EcdsaCommittee,
    compute_eth_signed_message_hash,
    recover_address,
    sign_digest,
)
from relay.verify.hashing import keccak256
from relay.verify.merkle import MerkleTree
from relay.verify.message import address_to_bytes32
from tests.integration.gateway_bridge import (
    ORIGIN,
    Bridge,
    account,
    assert_reverts,
    checkpoint_digest,
    events,
    transact,
)

pytestmark = [pytest.mark.anvil]

SCHEME_BLS, SCHEME_ECDSA = 1, 2
OUTSIDER_KEY = keccak256(b"not a member of the ECDSA committee, ever")


def make_ecdsa_bridge(w3: Web3, signing: EcdsaSigningCommittee) -> Bridge:
    """Source and destination Gateways and the Counter; the source enrolled with `signing`."""
    source = deploy_contract(w3, "Gateway", ORIGIN)
    destination = deploy_contract(w3, "Gateway", 2)
    counter = deploy_contract(w3, "Counter", destination.address)
    for call in signing.enrollment_calls(destination.functions, ORIGIN, address_to_bytes32(source.address)):
        transact(w3, call)
    return Bridge(w3, signing, source, destination, counter, MerkleTree())  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ecdsa_signing() -> EcdsaSigningCommittee:
    return EcdsaSigningCommittee.generate(4, epoch=1, seed=b"ecdsa test committee")


@pytest.fixture(scope="module")
def ecdsa_bridge(w3: Web3, ecdsa_signing: EcdsaSigningCommittee) -> Bridge:
    """One bridge for the views and the refusals (which change nothing)."""
    return make_ecdsa_bridge(w3, ecdsa_signing)


@pytest.fixture(scope="module")
def undelivered(ecdsa_bridge: Bridge) -> tuple[bytes, int]:
    """The second of two messages sent on the module's bridge: (message, nonce)."""
    ecdsa_bridge.send(b"first")
    return ecdsa_bridge.send(b"second")


def _signature(bridge: Bridge, index: int, digest: bytes) -> bytes:
    return sign_digest(bridge.signing.secret_keys[index], digest)


def _recovered(digest: bytes, signature: bytes) -> str:
    return Web3.to_checksum_address(recover_address(compute_eth_signed_message_hash(digest), signature))


def _member(bridge: Bridge, index: int) -> str:
    return Web3.to_checksum_address(bridge.signing.committee.signers[index])


# ---------------------------------------------------------------- enrollment and views


def test_ecdsa_views_match_the_off_chain_encodings(
    ecdsa_bridge: Bridge, ecdsa_signing: EcdsaSigningCommittee
) -> None:
    gateway = ecdsa_bridge.destination.functions
    assert gateway.ECDSA_COMMITTEE_TAG().call() == ECDSA_COMMITTEE_TAG
    weighted = EcdsaCommittee.create(
        7, [address_of(keccak256(bytes([i]))) for i in range(3)], [5, 1, 2**64 - 1], threshold=2**64 - 2
    )
    for committee in (ecdsa_signing.committee, weighted):
        assert gateway.computeEcdsaCommitteeHash(ecdsa_committee_struct(committee)).call() == committee.hash()
    assert gateway.committeeOf(ORIGIN).call() == [1, ecdsa_signing.committee.hash()]
    assert gateway.committeeScheme(ORIGIN).call() == SCHEME_ECDSA
    assert gateway.committeeScheme(99).call() == 0
    epoch, threshold, signers, weights = gateway.currentEcdsaCommittee(ORIGIN).call()
    assert (epoch, threshold, signers, weights) == ecdsa_committee_struct(ecdsa_signing.committee)
    assert gateway.sourceGatewayOf(ORIGIN).call() == ecdsa_bridge.source_word
    destination = ecdsa_bridge.destination
    assert_reverts(
        destination, gateway.currentCommittee(ORIGIN), "WrongCommitteeScheme", ORIGIN, SCHEME_ECDSA
    )
    assert_reverts(destination, gateway.currentEcdsaCommittee(99), "UnknownOrigin", 99)


def test_ecdsa_enrollment_rules(ecdsa_bridge: Bridge, ecdsa_signing: EcdsaSigningCommittee) -> None:
    destination = ecdsa_bridge.destination
    gateway = destination.functions
    source = ecdsa_bridge.source_word
    stranger = account(ecdsa_bridge.w3, 1)
    _, _, signers, weights = ecdsa_committee_struct(ecdsa_signing.committee)
    struct = (5, 3, signers, weights)
    assert_reverts(
        destination, gateway.enrollOriginEcdsa(5, source, struct), "NotOwner", stranger, sender=stranger
    )
    zero = "0x" + "00" * 20
    many = [Web3.to_checksum_address(address_of(keccak256(b"m" + bytes([i])))) for i in range(129)]
    invalid: dict[str, tuple[Any, tuple[Any, ...]]] = {
        "EmptyCommittee": ((5, 1, [], []), ()),
        "CommitteeTooLarge": ((5, 1, many, [1] * 129), (129, 128)),
        "EcdsaSignersWeightsMismatch": ((5, 1, signers, weights[:3]), (4, 3)),
        "EcdsaZeroSigner": ((5, 1, [signers[0], zero], [1, 1]), (1,)),
        "EcdsaDuplicateSigner": ((5, 1, [signers[0], signers[1], signers[0]], [1, 1, 1]), (2, signers[0])),
        "ZeroWeight": ((5, 1, signers[:2], [1, 0]), (1,)),
        "InvalidThreshold": ((5, 5, signers, weights), (5, 4)),
        "ThresholdBelowTwoThirds": ((5, 2, signers, weights), (2, 4)),
    }
    for error, (committee, arguments) in invalid.items():
        assert_reverts(destination, gateway.enrollOriginEcdsa(5, source, committee), error, *arguments)
    assert_reverts(
        destination, gateway.enrollOriginEcdsa(5, source, (5, 0, signers, weights)), "InvalidThreshold", 0, 4
    )
    # Re-enrolling needs a higher epoch (a lower or equal one could replay old hand-overs).
    again = ecdsa_committee_struct(ecdsa_signing.committee)
    assert_reverts(destination, gateway.enrollOriginEcdsa(ORIGIN, source, again), "EpochNotIncreasing", 1, 1)
    # The last epoch has no successor: a typed refusal, not an arithmetic panic.
    last = 2**64 - 1
    transact(ecdsa_bridge.w3, gateway.enrollOriginEcdsa(6, source, (last, 3, signers, weights)))
    handover = gateway.handoverEcdsa(6, (last, 3, signers, weights), b"\x07", bytes(195))
    assert_reverts(destination, handover, "EpochNotIncreasing", last, last)
    other_source = address_to_bytes32(ecdsa_bridge.counter.address)
    assert_reverts(
        destination,
        gateway.enrollOriginEcdsa(ORIGIN, other_source, (2, 3, signers, weights)),
        "OriginAlreadyEnrolled",
        ORIGIN,
        source,
    )


# ---------------------------------------------------------------- delivering


@pytest.mark.parametrize(("size", "threshold"), [(1, 1), (5, 3), (19, 13)])
def test_ecdsa_committees_deliver_once(w3: Web3, size: int, threshold: int) -> None:
    signing = EcdsaSigningCommittee.generate(size, threshold=threshold, seed=b"deliver" + bytes([size]))
    bridge = make_ecdsa_bridge(w3, signing)
    gateway = bridge.destination
    message, nonce = bridge.send(b"lone")
    checkpoint = bridge.checkpoint()
    certificate = signing.certify(checkpoint_digest(checkpoint), signing.quorum_signers())
    receipt = transact(w3, bridge.process(message, nonce, checkpoint, certificate))
    assert [e["nonce"] for e in events(gateway, "Delivered", receipt)] == [0]
    assert bridge.counter.functions.received().call() == 1
    replay = bridge.process(message, nonce, checkpoint, certificate)
    assert_reverts(gateway, replay, "AlreadyDelivered", keccak256(message))


def test_an_ecdsa_batch_shares_one_certificate_and_skips_delivered(w3: Web3) -> None:
    signing = EcdsaSigningCommittee.generate(5, threshold=3, seed=b"ecdsa batch")
    bridge = make_ecdsa_bridge(w3, signing)
    gateway = bridge.destination
    sent = [bridge.send(f"batch {i}".encode()) for i in range(3)]
    checkpoint = bridge.checkpoint()
    bitfield, signature = signing.certify(checkpoint_digest(checkpoint), signing.quorum_signers())
    transact(w3, bridge.process(sent[0][0], sent[0][1], checkpoint, (bitfield, signature)))
    call = gateway.functions.processBatch(
        checkpoint,
        bitfield,
        signature,
        [m for m, _ in sent],
        [bridge.tree.branch(n) for _, n in sent],
        [200_000] * len(sent),
    )
    receipt = transact(w3, call)
    assert [e["nonce"] for e in events(gateway, "Delivered", receipt)] == [1, 2]
    assert [bytes(e["id"]) for e in events(gateway, "DeliverySkipped", receipt)] == [keccak256(sent[0][0])]
    assert bridge.counter.functions.received().call() == 3


Certificate = tuple[bytes, bytes]
Case = Callable[[Bridge, bytes], tuple[Any, Certificate, tuple[Any, ...]]]


def _signed(bridge: Bridge, digest: bytes, order: tuple[int, ...] = (0, 1, 2)) -> bytes:
    return b"".join(_signature(bridge, i, digest) for i in order)


def _case_tampered(field: str, value: Any) -> Case:
    """The members sign the real checkpoint; the delivery names a tampered one."""

    def case(bridge: Bridge, digest: bytes) -> tuple[Any, Certificate, tuple[Any, ...]]:
        checkpoint = bridge.checkpoint(**{field: value})
        signature = _signed(bridge, digest)
        tampered = checkpoint_digest(checkpoint)
        recovered = _recovered(tampered, signature[:65])
        return checkpoint, (b"\x07", signature), ("EcdsaSignerMismatch", 0, _member(bridge, 0), recovered)

    return case


def _case_signature(edit: Callable[[bytes], bytes], error: tuple[Any, ...]) -> Case:
    """Member 0's signature edited; members 1 and 2 sign correctly."""

    def case(bridge: Bridge, digest: bytes) -> tuple[Any, Certificate, tuple[Any, ...]]:
        signature = edit(_signature(bridge, 0, digest)) + _signed(bridge, digest, (1, 2))
        return bridge.checkpoint(), (b"\x07", signature), error

    return case


def _high_s(signature: bytes) -> bytes:
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_ORDER - s).to_bytes(32, "big") + bytes([55 - signature[64]])


def _outsider(bridge: Bridge, digest: bytes) -> tuple[Any, Certificate, tuple[Any, ...]]:
    forged = sign_digest(OUTSIDER_KEY, digest)
    signature = _signed(bridge, digest, (0, 1)) + forged
    error = ("EcdsaSignerMismatch", 2, _member(bridge, 2), Web3.to_checksum_address(address_of(OUTSIDER_KEY)))
    return bridge.checkpoint(), (b"\x07", signature), error


def _reordered(order: tuple[int, ...], failing: int, recovered: int) -> Case:
    def case(bridge: Bridge, digest: bytes) -> tuple[Any, Certificate, tuple[Any, ...]]:
        error = ("EcdsaSignerMismatch", failing, _member(bridge, failing), _member(bridge, recovered))
        return bridge.checkpoint(), (b"\x07", _signed(bridge, digest, order)), error

    return case


def _plain(
    certificate: Callable[[Bridge, bytes], Certificate], error: Callable[[Bridge], tuple[Any, ...]]
) -> Case:
    return lambda bridge, digest: (bridge.checkpoint(), certificate(bridge, digest), error(bridge))


ECDSA_REJECTIONS: dict[str, Case] = {
    "signature of a non-member": _outsider,
    "root tampered after signing": _case_tampered("root", b"\x01" * 32),
    "index tampered after signing": _case_tampered("index", 7),
    "epoch tampered": lambda b, d: (b.checkpoint(epoch=2), (b"\x07", _signed(b, d)), ("WrongEpoch", 1, 2)),
    "origin tampered": lambda b, d: (
        b.checkpoint(origin=99),
        (b"\x07", _signed(b, d)),
        ("UnknownOrigin", 99),
    ),
    "gateway tampered": lambda b, d: (
        b.checkpoint(gateway=b"\x05" * 32),
        (b"\x07", _signed(b, d)),
        ("WrongGateway", b.source_word, b"\x05" * 32),
    ),
    "high s": _case_signature(_high_s, ("EcdsaSignatureMalleable", 0)),
    "v of 29": _case_signature(lambda s: s[:64] + b"\x1d", ("EcdsaInvalidRecoveryId", 0, 29)),
    "v of 0": _case_signature(lambda s: s[:64] + b"\x00", ("EcdsaInvalidRecoveryId", 0, 0)),
    "zero r": _case_signature(lambda s: bytes(32) + s[32:], ("EcdsaSignatureUnrecoverable", 0)),
    "r not below n": _case_signature(
        lambda s: SECP256K1_ORDER.to_bytes(32, "big") + s[32:], ("EcdsaSignatureUnrecoverable", 0)
    ),
    "zero s": _case_signature(lambda s: s[:32] + bytes(32) + s[64:], ("EcdsaSignatureUnrecoverable", 0)),
    "a byte short": _plain(
        lambda b, d: (b"\x07", _signed(b, d)[:-1]), lambda b: ("EcdsaSignaturesLengthMismatch", 195, 194)
    ),
    "a byte too many": _plain(
        lambda b, d: (b"\x07", _signed(b, d) + b"\x00"), lambda b: ("EcdsaSignaturesLengthMismatch", 195, 196)
    ),
    "signatures out of order": _reordered((1, 0, 2), 0, 1),
    "a signature twice": _reordered((0, 0, 2), 1, 0),
    "bit beyond the committee": _plain(
        lambda b, d: (b"\x17", _signed(b, d)), lambda b: ("BitfieldOutOfRange",)
    ),
    "bitfield too long": _plain(
        lambda b, d: (b"\x07\x00", _signed(b, d)), lambda b: ("BitfieldLengthMismatch", 1, 2)
    ),
    "weight below the threshold": _plain(
        lambda b, d: (b"\x03", _signed(b, d, (0, 1))), lambda b: ("QuorumNotReached", 2, 3)
    ),
    "BLS certificate": _plain(
        lambda b, d: (b"\x07", b"\x01" * 256), lambda b: ("EcdsaSignaturesLengthMismatch", 195, 256)
    ),
}


@pytest.mark.parametrize("case", sorted(ECDSA_REJECTIONS))
def test_ecdsa_delivery_rejects(ecdsa_bridge: Bridge, undelivered: tuple[bytes, int], case: str) -> None:
    message, nonce = undelivered
    digest = checkpoint_digest(ecdsa_bridge.checkpoint())
    checkpoint, certificate, (error, *arguments) = ECDSA_REJECTIONS[case](ecdsa_bridge, digest)
    call = ecdsa_bridge.process(message, nonce, checkpoint, certificate)
    assert_reverts(ecdsa_bridge.destination, call, str(error), *arguments)
    assert not ecdsa_bridge.destination.functions.delivered(ORIGIN, nonce).call()


def test_the_valid_certificate_of_the_refusals_delivers(
    ecdsa_bridge: Bridge, undelivered: tuple[bytes, int]
) -> None:
    """The refusals above edit this certificate: it is the edit that they refuse."""
    message, nonce = undelivered
    checkpoint = ecdsa_bridge.checkpoint()
    certificate = (b"\x07", _signed(ecdsa_bridge, checkpoint_digest(checkpoint)))
    assert ecdsa_bridge.process(message, nonce, checkpoint, certificate).call() == []


def test_an_ecdsa_certificate_is_refused_by_a_bls_origin(bridge: Bridge) -> None:
    message, nonce = bridge.send(b"to a BLS origin")
    checkpoint = bridge.checkpoint()
    signing = EcdsaSigningCommittee.generate(4, seed=b"ecdsa for a BLS origin")
    certificate = signing.certify(checkpoint_digest(checkpoint), (0, 1, 2))
    call = bridge.process(message, nonce, checkpoint, certificate)
    assert_reverts(bridge.destination, call, "InvalidSignatureLength", 195)
    gateway = bridge.destination.functions
    assert gateway.committeeScheme(ORIGIN).call() == SCHEME_BLS
    next_struct = ecdsa_committee_struct(EcdsaSigningCommittee.generate(4, epoch=2).committee)
    handover = gateway.handoverEcdsa(ORIGIN, next_struct, *certificate)
    assert_reverts(bridge.destination, handover, "WrongCommitteeScheme", ORIGIN, SCHEME_BLS)
    assert_reverts(
        bridge.destination, gateway.currentEcdsaCommittee(ORIGIN), "WrongCommitteeScheme", ORIGIN, SCHEME_BLS
    )


# ---------------------------------------------------------------- hand-over and scheme switch


def test_ecdsa_handover(w3: Web3, ecdsa_signing: EcdsaSigningCommittee) -> None:
    bridge = make_ecdsa_bridge(w3, ecdsa_signing)
    destination = bridge.destination
    gateway = destination.functions
    following = EcdsaSigningCommittee.generate(5, epoch=2, seed=b"next ecdsa committee")
    argument = ecdsa_committee_struct(following.committee)
    current_hash = ecdsa_signing.committee.hash()
    digest = compute_handover_digest(ORIGIN, bridge.source_word, 1, current_hash, following.committee.hash())
    # Signed over another "current" committee hash: recovers to other addresses.
    stale = compute_handover_digest(ORIGIN, bridge.source_word, 1, b"\x09" * 32, following.committee.hash())
    stale_signature = _signed(bridge, stale)
    assert_reverts(
        destination,
        gateway.handoverEcdsa(ORIGIN, argument, b"\x07", stale_signature),
        "EcdsaSignerMismatch",
        0,
        _member(bridge, 0),
        _recovered(digest, stale_signature[:65]),
    )
    forged = _signed(bridge, digest, (0, 1)) + sign_digest(OUTSIDER_KEY, digest)
    assert_reverts(
        destination,
        gateway.handoverEcdsa(ORIGIN, argument, b"\x07", forged),
        "EcdsaSignerMismatch",
        2,
        _member(bridge, 2),
        Web3.to_checksum_address(address_of(OUTSIDER_KEY)),
    )
    short = gateway.handoverEcdsa(ORIGIN, argument, b"\x03", _signed(bridge, digest, (0, 1)))
    assert_reverts(destination, short, "QuorumNotReached", 2, 3)
    bls_next = committee_struct(SigningCommittee.generate(4, epoch=2, seed=b"bls next").committee)
    assert_reverts(
        destination,
        gateway.handover(ORIGIN, bls_next, b"\x07", bytes(256)),
        "WrongCommitteeScheme",
        ORIGIN,
        SCHEME_ECDSA,
    )

    good = _signed(bridge, digest, (1, 2, 3))
    receipt = transact(w3, gateway.handoverEcdsa(ORIGIN, argument, encode_bitfield((1, 2, 3), 4), good))
    (event,) = events(destination, "CommitteeHandedOver", receipt)
    assert (event["epoch"], bytes(event["committeeHash"])) == (2, following.committee.hash())
    assert gateway.committeeOf(ORIGIN).call() == [2, following.committee.hash()]
    replay = gateway.handoverEcdsa(ORIGIN, argument, encode_bitfield((1, 2, 3), 4), good)
    assert_reverts(destination, replay, "WrongEpoch", 3, 2)

    message, nonce = bridge.send(b"after the hand-over")
    old_epoch = bridge.checkpoint(epoch=1)
    old_certificate = ecdsa_signing.certify(checkpoint_digest(old_epoch), (0, 1, 2))
    assert_reverts(
        destination, bridge.process(message, nonce, old_epoch, old_certificate), "WrongEpoch", 2, 1
    )
    checkpoint = bridge.checkpoint(epoch=2)
    checkpoint_hash = checkpoint_digest(checkpoint)
    # The old committee's signatures over the new epoch's checkpoint name no current member.
    old_members = (encode_bitfield((0, 1, 2, 3), 5), _signed(bridge, checkpoint_hash, (0, 1, 2, 3)))
    assert_reverts(
        destination,
        bridge.process(message, nonce, checkpoint, old_members),
        "EcdsaSignerMismatch",
        0,
        Web3.to_checksum_address(following.committee.signers[0]),
        _member(bridge, 0),
    )
    certificate = following.certify(checkpoint_hash, following.quorum_signers())
    receipt = transact(w3, bridge.process(message, nonce, checkpoint, certificate))
    assert len(events(destination, "Delivered", receipt)) == 1


def test_the_owner_switches_an_origin_between_schemes(bridge: Bridge) -> None:
    """BLS -> ECDSA -> BLS by re-enrollment with a higher epoch; the pause flag survives."""
    w3, destination = bridge.w3, bridge.destination
    gateway = destination.functions
    ecdsa = EcdsaSigningCommittee.generate(4, epoch=2, seed=b"switch to ecdsa")
    transact(w3, gateway.pauseDelivery(ORIGIN))
    transact(
        w3, gateway.enrollOriginEcdsa(ORIGIN, bridge.source_word, ecdsa_committee_struct(ecdsa.committee))
    )
    assert gateway.committeeScheme(ORIGIN).call() == SCHEME_ECDSA
    message, nonce = bridge.send(b"switched")
    checkpoint = bridge.checkpoint(epoch=2)
    certificate = ecdsa.certify(checkpoint_digest(checkpoint), (0, 1, 2))
    assert_reverts(
        destination, bridge.process(message, nonce, checkpoint, certificate), "DeliveryIsPaused", ORIGIN
    )
    transact(w3, gateway.unpauseDelivery(ORIGIN))
    transact(w3, bridge.process(message, nonce, checkpoint, certificate))
    assert gateway.delivered(ORIGIN, nonce).call()
    back = SigningCommittee.generate(4, epoch=3, seed=b"test committee")
    transact(w3, gateway.enrollOrigin(ORIGIN, bridge.source_word, committee_struct(back.committee)))
    assert gateway.committeeScheme(ORIGIN).call() == SCHEME_BLS
    assert gateway.committeeOf(ORIGIN).call() == [3, back.committee.hash()]


def test_the_submitter_reads_ecdsa_refusals_as_invalid_signatures(
    ecdsa_bridge: Bridge, undelivered: tuple[bytes, int]
) -> None:
    """A relayer never retries a refused certificate: the adapter maps the ECDSA errors to InvalidSignature."""
    message, nonce = undelivered
    checkpoint, certificate, _ = ECDSA_REJECTIONS["signature of a non-member"](
        ecdsa_bridge, checkpoint_digest(ecdsa_bridge.checkpoint())
    )
    with pytest.raises(ContractCustomError) as raised:
        ecdsa_bridge.process(message, nonce, checkpoint, certificate).call()
    error = error_for_revert(decode_contract_error(str(raised.value.data)))
    assert isinstance(error, InvalidSignature)
    assert error.fields["contract_error"] == "EcdsaSignerMismatch"
