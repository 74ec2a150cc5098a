"""Attestation committees: who may sign checkpoints, with what weight, and how they hand over.

A `Committee` is an epoch, members (BLS public key, proof of possession, weight) and a threshold.
Every member's proof of possession is verified when the committee is built (rogue-key defence), so
a committee object in hand is always well-formed. Public keys are decoded once per backend and
cached, as a long-running relayer needs.

A `Checkpoint` commits to the source gateway's Merkle root at some leaf index; a
`QuorumCertificate` (signer bitfield + aggregate signature) proves the committee signed it.
`verify_checkpoint` checks all of it; `verify_handover` checks the move to the next epoch.
Byte layouts: docs/protocol.md.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.errors import (
    DuplicateSigner,
    EpochMismatch,
    GatewayMismatch,
    InvalidCommittee,
    InvalidHandover,
    InvalidProof,
    InvalidSignature,
    MalformedEncoding,
    OriginMismatch,
    QuorumNotReached,
    UnknownSigner,
)
from relay.verify.bls import BlsBackend, get_backend, public_key_to_eip2537
from relay.verify.hashing import keccak256, tag

CHECKPOINT_TAG = tag("RELAY/CHECKPOINT/V1")
COMMITTEE_TAG = tag("RELAY/COMMITTEE/V1")
HANDOVER_TAG = tag("RELAY/HANDOVER/V2")
_UINT64_MAX = 2**64 - 1


def compute_default_threshold(total_weight: int) -> int:
    """The least weight strictly greater than two thirds of `total_weight`."""
    return total_weight * 2 // 3 + 1


# --- signer bitfields -------------------------------------------------------------------------


def encode_bitfield(indices: Iterable[int], size: int) -> bytes:
    """Return the ceil(size/8)-byte bitfield with bit i set for each index (little-endian bits)."""
    bits = bytearray((size + 7) // 8)
    for index in indices:
        if not 0 <= index < size:
            raise UnknownSigner("signer index outside the committee", index=index, size=size)
        mask = 1 << (index % 8)
        if bits[index // 8] & mask:
            raise DuplicateSigner("signer listed twice", index=index)
        bits[index // 8] |= mask
    return bytes(bits)


def decode_bitfield(bitfield: bytes, size: int) -> list[int]:
    """Return the set indices; raise `UnknownSigner` for a wrong length or bits past `size`."""
    expected = (size + 7) // 8
    if len(bitfield) != expected:
        raise UnknownSigner("signer bitfield has the wrong length", length=len(bitfield), expected=expected)
    indices = [i for i in range(size) if bitfield[i // 8] >> (i % 8) & 1]
    if size % 8 and bitfield[-1] >> (size % 8):
        raise UnknownSigner("signer bitfield sets bits past the committee", bitfield=bitfield, size=size)
    return indices


# --- committee ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """One committee member: its BLS public key, proof of possession and signing weight."""

    public_key: bytes
    proof_of_possession: bytes
    weight: int = 1


class Committee:
    """A validated committee of one epoch. Build with `Committee.create`, which checks every PoP."""

    def __init__(self, epoch: int, members: Sequence[Member], threshold: int, *, _validated: bool = False):
        if not _validated:
            raise TypeError("build committees with Committee.create(), which verifies proofs of possession")
        self.epoch = epoch
        self.members: tuple[Member, ...] = tuple(members)
        self.threshold = threshold
        self.total_weight = sum(m.weight for m in self.members)
        self._keys: dict[str, list[Any]] = {}
        self._negated: dict[str, list[Any]] = {}
        self._total_key: dict[str, Any] = {}
        self._hash: bytes | None = None

    @classmethod
    def create(
        cls,
        epoch: int,
        members: Sequence[Member],
        threshold: int | None = None,
        backend: BlsBackend | None = None,
        *,
        allow_low_threshold: bool = False,
    ) -> Committee:
        """Validate and build a committee; raise `InvalidCommittee` / `InvalidProofOfPossession`.

        A threshold below two thirds of the total weight (3 * threshold < 2 * total) is refused
        unless `allow_low_threshold`, as the Gateway refuses it unless `setLowThresholdAllowed`.
        """
        bls = backend or get_backend()
        if not 0 <= epoch <= _UINT64_MAX:
            raise InvalidCommittee("epoch out of range", epoch=epoch)
        if not members:
            raise InvalidCommittee("a committee needs at least one member", epoch=epoch)
        seen: set[bytes] = set()
        for index, member in enumerate(members):
            if not isinstance(member.weight, int) or not 0 < member.weight <= _UINT64_MAX:
                raise InvalidCommittee(
                    "member weight must be a positive u64", index=index, weight=member.weight
                )
            if member.public_key in seen:
                raise InvalidCommittee("public key appears twice", index=index, public_key=member.public_key)
            seen.add(member.public_key)
        total = sum(m.weight for m in members)
        chosen = compute_default_threshold(total) if threshold is None else threshold
        if not 0 < chosen <= total or chosen > _UINT64_MAX:
            raise InvalidCommittee("threshold must be in 1..total weight", threshold=chosen, total=total)
        if 3 * chosen < 2 * total and not allow_low_threshold:
            raise InvalidCommittee(
                "threshold below two thirds of the total weight (allow_low_threshold to accept it)",
                threshold=chosen,
                total=total,
            )
        keys = []
        for index, member in enumerate(members):
            key = bls.decode_public_key(member.public_key)
            try:
                bls.verify_possession_with_key(key, member.proof_of_possession)
            except InvalidProof as error:
                error.fields["member_index"] = index
                raise
            keys.append(key)
        committee = cls(epoch, members, chosen, _validated=True)
        committee._keys[bls.name] = keys
        return committee

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"Committee(epoch={self.epoch}, members={len(self)}, threshold={self.threshold})"

    # --- cached keys --------------------------------------------------------------------------

    def keys(self, backend: BlsBackend) -> list[Any]:
        """Decoded public keys for `backend`, decoded once (PoPs were checked at creation)."""
        keys = self._keys.get(backend.name)
        if keys is None:
            keys = [backend.decode_public_key(m.public_key) for m in self.members]
            self._keys[backend.name] = keys
        return keys

    def _aggregate_key(self, backend: BlsBackend, signers: Sequence[int]) -> Any:
        """Sum of the signers' keys; from the cached total minus non-signers when that is shorter."""
        keys = self.keys(backend)
        if len(signers) * 2 <= len(keys):
            return backend.aggregate_public_keys([keys[i] for i in signers])
        if backend.name not in self._total_key:
            self._total_key[backend.name] = backend.aggregate_public_keys(keys)
            self._negated[backend.name] = [backend.negate_public_key(k) for k in keys]
        signer_set = set(signers)
        negated = self._negated[backend.name]
        missing = [negated[i] for i in range(len(keys)) if i not in signer_set]
        return backend.aggregate_public_keys([self._total_key[backend.name], *missing])

    # --- hashing ------------------------------------------------------------------------------

    def hash(self) -> bytes:
        """committee_hash of docs/protocol.md (over the EIP-2537 uncompressed keys)."""
        if self._hash is None:
            parts = [COMMITTEE_TAG, struct.pack(">QQI", self.epoch, self.threshold, len(self.members))]
            for member in self.members:
                parts.append(public_key_to_eip2537(member.public_key))
                parts.append(struct.pack(">Q", member.weight))
            self._hash = keccak256(b"".join(parts))
        return self._hash

    # --- certificates -------------------------------------------------------------------------

    def signed_weight(self, signers: Sequence[int]) -> int:
        """Total weight of the signer indices."""
        return sum(self.members[i].weight for i in signers)

    def verify_certificate(
        self, digest: bytes, certificate: QuorumCertificate, backend: BlsBackend | None = None
    ) -> int:
        """Check quorum and aggregate signature over `digest`; return the signed weight."""
        bls = backend or get_backend()
        signers = decode_bitfield(certificate.signers, len(self.members))
        weight = self.signed_weight(signers)
        if weight < self.threshold:
            raise QuorumNotReached(
                "signers' weight below the threshold",
                signed=weight,
                threshold=self.threshold,
                epoch=self.epoch,
            )
        bls.verify_with_key(self._aggregate_key(bls, signers), digest, certificate.signature)
        return weight

    def aggregate(
        self,
        digest: bytes,
        signatures: Iterable[tuple[int, bytes]] | Mapping[int, bytes],
        backend: BlsBackend | None = None,
        *,
        verify_each: bool = True,
    ) -> QuorumCertificate:
        """Combine members' signatures over `digest` into a certificate.

        With `verify_each` every partial signature is checked first, so one bad attestor cannot
        spoil the aggregate; raises `DuplicateSigner`, `UnknownSigner`, `InvalidSignature`.
        """
        bls = backend or get_backend()
        pairs = list(signatures.items()) if isinstance(signatures, Mapping) else list(signatures)
        indices = [index for index, _ in pairs]
        bitfield = encode_bitfield(indices, len(self.members))
        if verify_each:
            keys = self.keys(bls)
            for index, signature in pairs:
                try:
                    bls.verify_with_key(keys[index], digest, signature)
                except InvalidSignature as error:
                    error.fields["member_index"] = index
                    raise
        aggregate = bls.aggregate_signatures([signature for _, signature in pairs])
        return QuorumCertificate(bitfield, aggregate)


@dataclass(frozen=True, slots=True)
class QuorumCertificate:
    """A signer bitfield and the aggregate BLS signature of those signers."""

    signers: bytes
    signature: bytes

    def signer_indices(self, size: int) -> list[int]:
        """The indices of the signers in a committee of `size` members."""
        return decode_bitfield(self.signers, size)


# --- checkpoints ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The source gateway's Merkle root after leaf `index`, for one committee epoch."""

    origin: int
    gateway: bytes
    epoch: int
    root: bytes
    index: int
    _digest: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.gateway) != 32 or len(self.root) != 32:
            raise MalformedEncoding(
                "checkpoint gateway and root are 32 bytes", gateway=self.gateway, root=self.root
            )
        if not 0 <= self.origin < 2**32 or not 0 <= self.index < 2**32 or not 0 <= self.epoch <= _UINT64_MAX:
            raise MalformedEncoding(
                "checkpoint field out of range", origin=self.origin, index=self.index, epoch=self.epoch
            )

    def digest(self) -> bytes:
        """checkpoint_digest of docs/protocol.md: what the committee signs."""
        if not self._digest:
            packed = (
                CHECKPOINT_TAG
                + struct.pack(">I", self.origin)
                + self.gateway
                + struct.pack(">Q", self.epoch)
                + self.root
                + struct.pack(">I", self.index)
            )
            object.__setattr__(self, "_digest", keccak256(packed))
        return self._digest


def sign_checkpoint(secret_key: int, checkpoint: Checkpoint, backend: BlsBackend | None = None) -> bytes:
    """An attestor's BLS signature over the checkpoint digest."""
    return (backend or get_backend()).sign(secret_key, checkpoint.digest())


def verify_checkpoint(
    committee: Committee,
    checkpoint: Checkpoint,
    certificate: QuorumCertificate,
    *,
    origin: int,
    gateway: bytes,
    backend: BlsBackend | None = None,
) -> int:
    """Raise unless `certificate` proves `committee` signed `checkpoint` of (origin, gateway).

    Checks, in order: origin, gateway, epoch, signer bitfield, quorum by weight, BLS aggregate
    signature. Returns the signed weight.
    """
    if checkpoint.origin != origin:
        raise OriginMismatch("checkpoint of another origin", origin=checkpoint.origin, expected=origin)
    if checkpoint.gateway != gateway:
        raise GatewayMismatch("checkpoint of another gateway", gateway=checkpoint.gateway, expected=gateway)
    if checkpoint.epoch != committee.epoch:
        raise EpochMismatch(
            "checkpoint signed for another committee epoch", epoch=checkpoint.epoch, expected=committee.epoch
        )
    return committee.verify_certificate(checkpoint.digest(), certificate, backend)


# --- hand-over ------------------------------------------------------------------------------


def compute_handover_digest(
    origin: int, gateway: bytes, epoch: int, current_committee_hash: bytes, next_committee_hash: bytes
) -> bytes:
    """handover_digest of docs/protocol.md: what the current committee (epoch `epoch`, hash
    `current_committee_hash`) of `origin`'s source Gateway `gateway` (32 bytes) signs to hand
    over. Binding the current hash means a hand-over signed by a committee that was later replaced
    by a re-enrollment never applies again; binding the gateway, that it never applies to another
    deployment with the same origin domain id and an identical committee."""
    if len(gateway) != 32:
        raise MalformedEncoding("the source gateway is 32 bytes", gateway=gateway)
    if len(current_committee_hash) != 32 or len(next_committee_hash) != 32:
        raise MalformedEncoding(
            "committee hashes are 32 bytes",
            current=current_committee_hash,
            next=next_committee_hash,
        )
    if not 0 <= origin < 2**32 or not 0 <= epoch <= _UINT64_MAX:
        raise MalformedEncoding("hand-over field out of range", origin=origin, epoch=epoch)
    return keccak256(
        HANDOVER_TAG
        + struct.pack(">I", origin)
        + gateway
        + struct.pack(">Q", epoch)
        + current_committee_hash
        + next_committee_hash
    )


@dataclass(frozen=True, slots=True)
class Handover:
    """The next committee and the current committee's certificate over it."""

    next_committee: Committee
    certificate: QuorumCertificate


def verify_handover(
    current: Committee,
    handover: Handover,
    *,
    origin: int,
    gateway: bytes,
    backend: BlsBackend | None = None,
) -> Committee:
    """Raise `InvalidHandover` unless `current` handed over to `handover.next_committee`; return it.

    The next committee's proofs of possession were verified when it was built.
    """
    following = handover.next_committee
    if following.epoch != current.epoch + 1:
        raise InvalidHandover(
            "hand-over must go to the next epoch", epoch=following.epoch, expected=current.epoch + 1
        )
    digest = compute_handover_digest(origin, gateway, current.epoch, current.hash(), following.hash())
    try:
        current.verify_certificate(digest, handover.certificate, backend)
    except InvalidProof as error:
        raise InvalidHandover(
            f"hand-over certificate rejected: {error.reason}", epoch=current.epoch, cause=str(error)
        ) from error
    return following


def follow_handovers(
    trusted: Committee,
    handovers: Iterable[Handover],
    *,
    origin: int,
    gateway: bytes,
    backend: BlsBackend | None = None,
) -> Committee:
    """Walk a chain of hand-overs from a trusted committee; return the latest committee."""
    committee = trusted
    for handover in handovers:
        committee = verify_handover(committee, handover, origin=origin, gateway=gateway, backend=backend)
    return committee
