"""A full committee hand-over on a running devnet (`relay devnet --rotate-after N`).

For each origin (both chains), against the committee its destination gateway holds: remove one
member (the first), add the devnet's spare members (their attestors run from the start and learn
from the chain that they are not members yet), and hand over: `relay.tools.rotation` proposes,
has every current attestor check and sign (`SignHandover`), certifies, and gives the certificate
to the relayer (`RelayService.SubmitHandover`), which submits it to the destination. The
attestors and the relayer then follow the new committee from the chain.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relay.errors import RelayError
from relay.tools.devnet import Devnet, DevnetError
from relay.tools.devnet_relayers import operator_name
from relay.verify.bls import get_backend
from relay.verify.committee import Member

REMOVED_MEMBER = 0  # the member of the first committee that a devnet rotation removes


@dataclass
class RotationResult:
    """What a devnet rotation did, per origin domain."""

    epochs: dict[int, int] = field(default_factory=dict)  # the destination gateway's epoch afterwards
    removed_key: bytes = b""
    added_keys: list[bytes] = field(default_factory=list)
    error: str = ""


def next_members(devnet: Devnet) -> list[Member]:
    """The committee a devnet rotation hands over to: the first one minus one member plus the spares."""
    bls = get_backend()
    size = devnet.options.committee_size
    kept = [s for i, s in enumerate(devnet.bls_secrets[:size]) if i != REMOVED_MEMBER]
    added = devnet.bls_secrets[size:]
    return [Member(bls.secret_to_public_key(s), bls.prove_possession(s), 1) for s in (*kept, *added)]


@dataclass(frozen=True)
class _Scheme:
    """What a hand-over needs from one committee scheme (`relay.tools.rotation`, `rotation_ecdsa`)."""

    label: str  # "" for BLS, "ECDSA " for ECDSA (in the progress lines)
    identities: list[bytes]  # the member identity (public key, address) of each devnet secret
    read: Callable[[str, str, int], Any]  # the committee a destination gateway holds
    propose: Callable[..., Any]
    collect: Callable[..., Any]
    certify: Callable[..., Any]


def _bls_scheme(devnet: Devnet) -> _Scheme:
    from relay.tools.rotation import certify, collect_signatures, propose, read_committee

    bls = get_backend()
    identities = [bls.secret_to_public_key(secret) for secret in devnet.bls_secrets]
    return _Scheme("", identities, read_committee, propose, collect_signatures, certify)


def _ecdsa_scheme(devnet: Devnet) -> _Scheme:
    from relay.tools.devnet_committee import compute_address
    from relay.tools.rotation_ecdsa import (
        certify_ecdsa,
        collect_ecdsa_signatures,
        propose_ecdsa,
        read_ecdsa_committee,
    )

    identities = [compute_address(secret) for secret in devnet.ecdsa_secrets]
    return _Scheme(
        "ECDSA ", identities, read_ecdsa_committee, propose_ecdsa, collect_ecdsa_signatures, certify_ecdsa
    )


def rotate(devnet: Devnet, say: Callable[[str], None] = lambda _text: None) -> RotationResult:
    """Hand both origins over to the first committee minus one member plus the spares (BLS:
    `next_members(devnet)`; ECDSA: the same members by address, signed with EIP-191 and submitted
    as `handoverEcdsa`); return the epochs the gateways hold afterwards."""
    if not devnet.options.spare_members:
        raise DevnetError("a rotation needs spare members (DevnetOptions.spare_members)")
    if not devnet.options.tls:
        raise DevnetError("a rotation needs mutual TLS: operator tokens are refused over plaintext")
    size = devnet.options.committee_size
    if devnet.options.committee_scheme == "ecdsa":
        scheme = _ecdsa_scheme(devnet)
        members: list[Any] = [(a, 1) for i, a in enumerate(scheme.identities[:size]) if i != REMOVED_MEMBER]
        members += [(a, 1) for a in scheme.identities[size:]]
    else:
        scheme = _bls_scheme(devnet)
        members = next_members(devnet)
    result = RotationResult(
        removed_key=scheme.identities[REMOVED_MEMBER], added_keys=list(scheme.identities[size:])
    )
    _hand_over(devnet, scheme, members, result, say)
    return result


def _hand_over(
    devnet: Devnet, scheme: _Scheme, members: list[Any], result: RotationResult, say: Callable[[str], None]
) -> None:
    """Propose, collect the current attestors' signatures, certify and submit through the relayer,
    for each origin against the committee its destination gateway holds."""
    from relay.tools.rotation import read_source_gateway, submit_to_relayer

    for index, origin in enumerate(devnet.chains):
        destination = devnet.chains[1 - index]
        current = scheme.read(destination.rpc_url, destination.gateway, origin.domain)
        source_gateway = read_source_gateway(destination.rpc_url, destination.gateway, origin.domain)
        proposal = scheme.propose(origin.domain, source_gateway, current, members)
        current_identities = {identity for identity, _ in current.members}
        attestors = [
            devnet.addresses[f"attestor-{origin.name}-{i}"]
            for i, identity in enumerate(scheme.identities)
            if identity in current_identities
        ]
        signatures = scheme.collect(proposal, attestors, devnet.attestor_token, devnet.client_tls())
        refused = [f"{r.address}: {r.error}" for r in signatures if r.signature is None]
        if refused:
            say(f"origin {origin.domain}: attestors refused: {'; '.join(refused)}")
        certificate = scheme.certify(proposal, current, signatures)
        answer = submit_to_relayer(
            devnet.addresses[operator_name(devnet.relayer)],
            devnet.operator_token,
            certificate,
            devnet.client_tls(),
        )
        for submission in answer.submissions:
            if submission.error:
                say(f"origin {origin.domain} -> {submission.destination}: {submission.error}")
        result.epochs[origin.domain] = scheme.read(
            destination.rpc_url, destination.gateway, origin.domain
        ).epoch
        say(
            f"origin {origin.domain}: handed over to {scheme.label}epoch {proposal.epoch} "
            f"({len(members)} members, threshold {proposal.threshold}) on {destination.name}"
        )


class RotationAfter:
    """Runs `rotate` in a thread once the recipients together received `after` messages."""

    def __init__(
        self, devnet: Devnet, after: int, baseline: int, say: Callable[[str], None] = lambda _text: None
    ) -> None:
        self.devnet = devnet
        self.after = after
        self.baseline = baseline
        self.say = say
        self.result = RotationResult()
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="devnet-rotation", daemon=True)

    def start(self) -> RotationAfter:
        """Start watching the recipients' counters."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 120.0) -> RotationResult:
        """Stop watching (a rotation under way finishes first); the result."""
        self._stop.set()
        self._thread.join(timeout)
        return self.result

    def _received(self) -> int:
        return sum(self.devnet.received(chain.domain) for chain in self.devnet.chains) - self.baseline

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._received() >= self.after:
                    self.say(f"{self.after} messages delivered: rotating both committees")
                    self.result = rotate(self.devnet, self.say)
                    return
                self._stop.wait(0.2)
        except RelayError as error:
            self.result.error = f"{error.reason}: {error}"
            self.say(f"rotation failed: {self.result.error}")
        finally:
            self.done.set()
