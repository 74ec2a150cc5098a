"""The devnet's committees: BLS (the default) or ECDSA (`relay devnet --committee-scheme ecdsa`).

`build_devnet_committee` makes the throw-away keys and the committee of either scheme,
`committee_config` its `CommitteeConfig` mapping, `send_committee_enrollment` its enrollment.

With the BLS scheme, each origin's committee is 4 BLS keys (threshold 3 by default), enrolled
with `enrollOrigin`, plus any spare keys a rotation adds (`relay.tools.devnet_rotation`).

Each origin's committee is enrolled on the other chain's Gateway with `enrollOriginEcdsa`: the
members are the Ethereum addresses of throw-away secp256k1 keys (one per attestor, 0600 files in
the run folder's `keys/`), the threshold the same rule as BLS (3 of 4 by default). Attestors sign
checkpoints with `ecdsa_key` (EIP-191 over the checkpoint digest), the relayer's source committee
is `scheme: ecdsa`, and deliveries carry the 65-byte signatures concatenated. Attestors and the
relayer follow an owner's re-enrollment from the chain, and `--rotate-after` hands an ECDSA
committee over to the next ECDSA committee (`handoverEcdsa`) with spare keys, as for BLS.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.errors import ConfigurationError
from relay.verify.ecdsa import SECP256K1_ORDER
from relay.verify.ecdsa_quorum import EcdsaCheckpointCommittee, EcdsaMember
from relay.verify.hashing import keccak256

COMMITTEE_SCHEMES = ("bls", "ecdsa")


def validate_scheme_choice(scheme: str, spare_members: int) -> None:
    """Raise `ConfigurationError` for an unknown scheme or a negative number of spare members."""
    if scheme not in COMMITTEE_SCHEMES:
        raise ConfigurationError(
            f"committee scheme must be one of {', '.join(COMMITTEE_SCHEMES)}, got {scheme!r}", scheme=scheme
        )
    if spare_members < 0:
        raise ConfigurationError("spare members cannot be negative", spare_members=spare_members)


def generate_ecdsa_secret() -> bytes:
    """A fresh secp256k1 secret key (32 bytes, in 1..n-1)."""
    while True:
        secret = secrets.token_bytes(32)
        if 0 < int.from_bytes(secret, "big") < SECP256K1_ORDER:
            return secret


def compute_address(secret: bytes) -> bytes:
    """The 20-byte Ethereum address of a secp256k1 secret key."""
    from coincurve import PrivateKey

    return keccak256(PrivateKey(secret).public_key.format(compressed=False)[1:])[12:]


def build_ecdsa_committee(
    epoch: int, secret_keys: Sequence[bytes], threshold: int | None
) -> EcdsaCheckpointCommittee:
    """The committee of these keys' addresses, weight 1 each."""
    return EcdsaCheckpointCommittee.create(
        epoch, [EcdsaMember(compute_address(secret), 1) for secret in secret_keys], threshold
    )


def ecdsa_committee_config(committee: EcdsaCheckpointCommittee) -> dict[str, Any]:
    """The committee as a `CommitteeConfig` mapping (`scheme: ecdsa`, 0x addresses)."""
    return {
        "epoch": committee.epoch,
        "threshold": committee.threshold,
        "scheme": "ecdsa",
        "members": [{"address": "0x" + m.address.hex(), "weight": m.weight} for m in committee.members],
    }


@dataclass
class DevnetCommittee:
    """The trusted committee of each devnet origin and its members' secret keys."""

    committee: Any  # relay.verify.committee.Committee or relay.verify.ecdsa_quorum.EcdsaCheckpointCommittee
    bls_secrets: list[int] = field(default_factory=list)  # members first, then the spare keys
    ecdsa_secrets: list[bytes] = field(default_factory=list)  # members first, then the spare keys


def build_devnet_committee(
    scheme: str, size: int, spare_members: int, threshold: int | None
) -> DevnetCommittee:
    """Fresh keys and the epoch-1 committee of `size` members, weight 1 each, of `scheme`."""
    if scheme == "ecdsa":
        ecdsa_secrets = [generate_ecdsa_secret() for _ in range(size + spare_members)]
        return DevnetCommittee(
            build_ecdsa_committee(1, ecdsa_secrets[:size], threshold), ecdsa_secrets=ecdsa_secrets
        )
    from relay.verify.bls import get_backend, keygen
    from relay.verify.committee import Committee, Member

    bls = get_backend()
    bls_secrets = [keygen(secrets.token_bytes(32)) for _ in range(size + spare_members)]
    members = [Member(bls.secret_to_public_key(s), bls.prove_possession(s), 1) for s in bls_secrets[:size]]
    return DevnetCommittee(Committee.create(1, members, threshold, backend=bls), bls_secrets=bls_secrets)


def committee_config(committee: Any) -> dict[str, Any]:
    """`committee` as a `CommitteeConfig` mapping: hex keys and proofs of possession, or for an
    ECDSA committee (`scheme: ecdsa`) the members' addresses."""
    if isinstance(committee, EcdsaCheckpointCommittee):
        return ecdsa_committee_config(committee)
    return {
        "epoch": committee.epoch,
        "threshold": committee.threshold,
        "members": [
            {
                "public_key": m.public_key.hex(),
                "proof_of_possession": m.proof_of_possession.hex(),
                "weight": m.weight,
            }
            for m in committee.members
        ],
    }


def send_committee_enrollment(
    sender: Any, gateway: str, origin: int, source_gateway: str, committee: Any
) -> bytes:
    """Send the enrollment of `committee` for `origin` on `gateway` (not awaited): `enrollOrigin`
    for BLS, `enrollOriginEcdsa` for ECDSA."""
    from adapters.evm import deploy

    if isinstance(committee, EcdsaCheckpointCommittee):
        return deploy.send_ecdsa_enrollment(sender, gateway, origin, source_gateway, committee)
    return deploy.send_enrollment(sender, gateway, origin, source_gateway, committee)


__all__ = [
    "DevnetCommittee",
    "build_devnet_committee",
    "committee_config",
    "send_committee_enrollment",
    "COMMITTEE_SCHEMES",
    "build_ecdsa_committee",
    "compute_address",
    "ecdsa_committee_config",
    "generate_ecdsa_secret",
    "validate_scheme_choice",
]
