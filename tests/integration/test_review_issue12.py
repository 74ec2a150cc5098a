"""Review of issue 12's ECDSA committee mode, on a real anvil chain: worst cases and edges.

- A 128-member committee where every member signs (the largest certificate the Gateway accepts:
  128 ecrecovers, 8,320 bytes of signatures) delivers, and a bad last signature is refused by name.
- The off-chain verifier (`verify_ecdsa_checkpoint`) and the contract agree on every edited
  signature, including an r below n that is the x of no curve point.
- Stale hand-over signatures stay dead across scheme switches by re-enrolment.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from web3 import Web3
from web3.exceptions import ContractCustomError

from adapters.evm.deploy import committee_struct, ecdsa_committee_struct
from adapters.evm.ecdsa_gas import EcdsaSigningCommittee
from adapters.evm.gas import SigningCommittee, deploy_contract
from relay.errors import InvalidProof
from relay.verify.committee import Checkpoint, compute_handover_digest, encode_bitfield
from relay.verify.ecdsa import SECP256K1_ORDER, EcdsaCertificate, verify_ecdsa_checkpoint
from relay.verify.merkle import MerkleTree
from relay.verify.message import address_to_bytes32
from tests.integration.gateway_bridge import (
    ORIGIN,
    Bridge,
    assert_reverts,
    checkpoint_digest,
    events,
    transact,
)

pytestmark = [pytest.mark.anvil]

SECP256K1_P = 2**256 - 2**32 - 977


def _bridge(w3: Web3, signing: EcdsaSigningCommittee) -> Bridge:
    source = deploy_contract(w3, "Gateway", ORIGIN)
    destination = deploy_contract(w3, "Gateway", 2)
    counter = deploy_contract(w3, "Counter", destination.address)
    for call in signing.enrollment_calls(destination.functions, ORIGIN, address_to_bytes32(source.address)):
        transact(w3, call)
    return Bridge(w3, signing, source, destination, counter, MerkleTree())  # type: ignore[arg-type]


def _not_an_x_coordinate() -> int:
    """The smallest r > 0 below n with no curve point of x = r (r^3 + 7 not a square mod p)."""
    r = 1
    while pow(r**3 + 7, (SECP256K1_P - 1) // 2, SECP256K1_P) == 1:
        r += 1
    return r


def test_a_128_member_certificate_signed_by_all_delivers_and_names_a_bad_last_signer(w3: Web3) -> None:
    signing = EcdsaSigningCommittee.generate(128, seed=b"review 128")
    bridge = _bridge(w3, signing)
    message, nonce = bridge.send(b"worst case")
    checkpoint = bridge.checkpoint()
    digest = checkpoint_digest(checkpoint)
    everyone = tuple(range(128))
    bitfield, signature = signing.certify(digest, everyone)
    assert len(signature) == 128 * 65
    bad = signature[:-65] + signing.sign(0, digest)
    assert_reverts(
        bridge.destination,
        bridge.process(message, nonce, checkpoint, (bitfield, bad)),
        "EcdsaSignerMismatch",
        127,
        Web3.to_checksum_address(signing.committee.signers[127]),
        Web3.to_checksum_address(signing.committee.signers[0]),
    )
    receipt = transact(w3, bridge.process(message, nonce, checkpoint, (bitfield, signature)))
    assert len(events(bridge.destination, "Delivered", receipt)) == 1
    assert receipt["gasUsed"] < w3.eth.get_block("latest")["gasLimit"]


Edit = Callable[[bytes], bytes]

EDITS: dict[str, Edit] = {
    "unchanged": lambda s: s,
    "high s twin": lambda s: (
        s[:32] + (SECP256K1_ORDER - int.from_bytes(s[32:64], "big")).to_bytes(32, "big") + bytes([55 - s[64]])
    ),
    "v 0": lambda s: s[:64] + b"\x00",
    "v 1": lambda s: s[:64] + b"\x01",
    "v flipped": lambda s: s[:64] + bytes([55 - s[64]]),
    "r zero": lambda s: bytes(32) + s[32:],
    "r = n": lambda s: SECP256K1_ORDER.to_bytes(32, "big") + s[32:],
    "r = n - 1": lambda s: (SECP256K1_ORDER - 1).to_bytes(32, "big") + s[32:],
    "r no curve point": lambda s: _not_an_x_coordinate().to_bytes(32, "big") + s[32:],
    "s zero": lambda s: s[:32] + bytes(32) + s[64:],
    "s = n / 2": lambda s: s[:32] + (SECP256K1_ORDER // 2).to_bytes(32, "big") + s[64:],
    "s = n / 2 + 1": lambda s: s[:32] + (SECP256K1_ORDER // 2 + 1).to_bytes(32, "big") + s[64:],
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_the_off_chain_verifier_agrees_with_the_contract(w3: Web3, edit: str) -> None:
    signing = EcdsaSigningCommittee.generate(3, seed=b"review parity")
    bridge = _bridge(w3, signing)
    message, nonce = bridge.send(b"parity")
    checkpoint = bridge.checkpoint()
    digest = checkpoint_digest(checkpoint)
    bitfield, signature = signing.certify(digest, (0, 1, 2))
    edited = signature[:65] + EDITS[edit](signature[65:130]) + signature[130:]
    try:
        bridge.process(message, nonce, checkpoint, (bitfield, edited)).call()
        on_chain = True
    except ContractCustomError:
        on_chain = False
    try:
        verify_ecdsa_checkpoint(
            signing.committee,
            Checkpoint(*checkpoint),
            EcdsaCertificate(bitfield, edited),
            origin=ORIGIN,
            gateway=bridge.source_word,
        )
        off_chain = True
    except InvalidProof:
        off_chain = False
    assert on_chain == off_chain == (edit == "unchanged")


def test_stale_handover_signatures_stay_dead_across_scheme_switches(w3: Web3) -> None:
    """ECDSA A (epoch 1) signs a hand-over to B; the owner switches to BLS (2), then back to A (3)."""
    first = EcdsaSigningCommittee.generate(4, epoch=1, seed=b"review A")
    bridge = _bridge(w3, first)
    gateway = bridge.destination.functions
    following = EcdsaSigningCommittee.generate(4, epoch=2, seed=b"review B")
    digest = compute_handover_digest(
        ORIGIN, bridge.source_word, 1, first.committee.hash(), following.committee.hash()
    )
    certificate = first.certify(digest, (0, 1, 2))
    handover = gateway.handoverEcdsa(ORIGIN, ecdsa_committee_struct(following.committee), *certificate)
    handover.call()  # valid now
    bls = SigningCommittee.generate(4, epoch=2, seed=b"review bls")
    transact(w3, gateway.enrollOrigin(ORIGIN, bridge.source_word, committee_struct(bls.committee)))
    assert_reverts(bridge.destination, handover, "WrongCommitteeScheme", ORIGIN, 1)
    again = EcdsaSigningCommittee.generate(4, epoch=3, seed=b"review A")
    assert again.committee.signers == first.committee.signers
    stale = ecdsa_committee_struct(first.committee)  # epoch 1 again: refused
    assert_reverts(
        bridge.destination,
        gateway.enrollOriginEcdsa(ORIGIN, bridge.source_word, stale),
        "EpochNotIncreasing",
        2,
        1,
    )
    transact(
        w3, gateway.enrollOriginEcdsa(ORIGIN, bridge.source_word, ecdsa_committee_struct(again.committee))
    )
    assert_reverts(bridge.destination, handover, "WrongEpoch", 4, 2)
    # The same members' old checkpoint certificate (epoch 1) is refused too.
    message, nonce = bridge.send(b"after the switches")
    old = bridge.checkpoint(epoch=1)
    old_certificate = first.certify(checkpoint_digest(old), (0, 1, 2))
    assert_reverts(
        bridge.destination, bridge.process(message, nonce, old, old_certificate), "WrongEpoch", 3, 1
    )
    current = bridge.checkpoint(epoch=3)
    bitfield = encode_bitfield((0, 1, 2), 4)
    _, signature = again.certify(checkpoint_digest(current), (0, 1, 2))
    transact(w3, bridge.process(message, nonce, current, (bitfield, signature)))
    assert gateway.delivered(ORIGIN, nonce).call()
