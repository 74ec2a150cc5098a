"""`relay committee identity|propose|handover`: rotate an origin's committee (docs/operations.md).

- `identity`: a member's identity document (public key, proof of possession, weight), from a
  running attestor (`--attestor ADDR`, its GetIdentity) or from its BLS key file.
- `propose`: the next committee of an origin as a proposal JSON (epoch = the chain's + 1 unless
  `--epoch`; threshold more than 2/3 of the weight unless `--threshold`; below 2/3 refused unless
  `--allow-low-threshold`).
- `handover`: every current attestor checks and signs the proposal; the signatures are aggregated
  and verified into a certificate (written with `--out`); `--submit` hands it to the relayer,
  which submits it to every destination gateway whose committee lags.

For an origin whose committee is ECDSA, `propose --ecdsa` reads `currentEcdsaCommittee` and takes
members as `{"address", "weight"}` documents (`identity --ecdsa` prints them); `handover` sees the
proposal's `"scheme": "ecdsa"` and collects EIP-191 signatures into an ECDSA certificate;
`--submit` hands it to the relayer like a BLS one, and `--send-with-key FILE` sends
`handoverEcdsa` to `--gateway` from that transaction key itself (anyone may: the certificate is
the authority).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from relay.cli.tls_options import add_tls_arguments, client_tls
from relay.errors import ConfigurationError


def register(subparsers: Any) -> None:
    """Add `relay committee` and its subcommands."""
    parser = subparsers.add_parser(
        "committee", help="rotate an origin's committee (propose, sign, hand over)"
    )
    commands = parser.add_subparsers(dest="committee_command", metavar="SUBCOMMAND", required=True)

    identity = commands.add_parser("identity", help="print a member's identity document (public key and PoP)")
    source = identity.add_mutually_exclusive_group(required=True)
    source.add_argument("--attestor", help="a running attestor's gRPC address (asks its GetIdentity)")
    source.add_argument(
        "--key-file", type=Path, help="a BLS (or, with --ecdsa, secp256k1) secret key file (hex)"
    )
    identity.add_argument("--weight", type=int, default=1, help="the member's weight (default 1)")
    identity.add_argument(
        "--ecdsa",
        action="store_true",
        help="--key-file is a member of an ECDSA committee: print its address (a committees' members entry)",
    )
    add_tls_arguments(identity)
    identity.set_defaults(handler=run_identity)

    propose = commands.add_parser("propose", help="write the proposal of the next committee")
    _chain_arguments(propose)
    propose.add_argument(
        "--member",
        action="append",
        default=[],
        type=Path,
        help="an identity document (JSON object, or a list of them); repeat for each member, in signer order",
    )
    propose.add_argument("--threshold", type=int, default=None, help="signing weight of a quorum")
    propose.add_argument(
        "--allow-low-threshold", action="store_true", help="accept a threshold below 2/3 of the weight"
    )
    propose.add_argument("--epoch", type=int, default=None, help="the next epoch (default: the chain's + 1)")
    propose.add_argument(
        "--ecdsa",
        action="store_true",
        help="the origin's committee is ECDSA: members are {address, weight} documents",
    )
    propose.add_argument("--out", type=Path, default=None, help="write the proposal here (default: print it)")
    propose.set_defaults(handler=run_propose)

    handover = commands.add_parser(
        "handover", help="collect the attestors' signatures and certify the hand-over"
    )
    _chain_arguments(handover)
    handover.add_argument("--proposal", type=Path, required=True, help="the proposal file (from `propose`)")
    handover.add_argument(
        "--attestor",
        action="append",
        default=[],
        required=True,
        metavar="ADDRESS[=TOKEN_FILE]",
        help="a current attestor's gRPC address, optionally with its member's own operator token "
        "file (ADDRESS=FILE); repeat",
    )
    handover.add_argument(
        "--attestor-token-file",
        type=Path,
        default=None,
        help="the operator token of every --attestor given without its own TOKEN_FILE",
    )
    handover.add_argument(
        "--out", type=Path, default=None, help="write the certificate here (default: print it)"
    )
    handover.add_argument("--submit", action="store_true", help="hand the certificate to the relayer")
    handover.add_argument(
        "--relay",
        default="127.0.0.1:50052",
        help="the relayer's operator port (operator_listen: mutual TLS), with --submit",
    )
    handover.add_argument(
        "--operator-token-file", type=Path, help="the relayer's operator token (with --submit)"
    )
    handover.add_argument(
        "--send-with-key",
        type=Path,
        default=None,
        help="ECDSA hand-overs: send handoverEcdsa to --gateway from this transaction key file (0600, hex)",
    )
    add_tls_arguments(handover)
    handover.set_defaults(handler=run_handover)


def _chain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--origin", type=int, required=True, help="the origin domain whose committee rotates")
    parser.add_argument(
        "--rpc", required=True, help="JSON-RPC URL of a destination chain where the origin is enrolled"
    )
    parser.add_argument("--gateway", required=True, help="that destination's Gateway address")


def _read_token(path: Path) -> str:
    """A token or key file's content; refused if unreadable or readable by group or others."""
    from relay.config import SecretRef

    return SecretRef(file=str(path)).reveal()


def _attestor_tokens(attestors: list[str], default_file: Path | None) -> dict[str, str]:
    """Address -> operator token, from `ADDRESS=TOKEN_FILE` or the shared `--attestor-token-file`."""
    tokens = {}
    for given in attestors:
        address, separator, token_file = given.partition("=")
        if separator:
            tokens[address] = _read_token(Path(token_file))
        elif default_file is not None:
            tokens[address] = _read_token(default_file)
        else:
            raise ConfigurationError(
                "no operator token for an attestor: give ADDRESS=TOKEN_FILE or --attestor-token-file",
                attestor=address,
            )
    return tokens


def _write(document: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        print(f"written to {out}", file=sys.stderr)


def run_identity(args: argparse.Namespace) -> int:
    """Print `{"public_key", "proof_of_possession", "weight"}` for one member (for a member of an
    ECDSA committee `{"address", "weight"}`, its entry of a `scheme: ecdsa` committee's members)."""
    if args.attestor:
        from relay.rpc.clients import GrpcAttestorClient

        tls, _insecure = client_tls(args)
        client = GrpcAttestorClient(args.attestor, tls)
        try:
            answer = client.get_identity(timeout=10.0)
        finally:
            client.close()
        public_key, proof = answer.public_key, answer.proof_of_possession
    elif args.ecdsa:
        from relay.roles.attestor import compute_ecdsa_address, parse_ecdsa_secret_key

        public_key, proof = compute_ecdsa_address(parse_ecdsa_secret_key(_read_token(args.key_file))), b""
    else:
        from relay.roles.attestor import parse_secret_key
        from relay.verify.bls import get_backend

        secret = parse_secret_key(_read_token(args.key_file))
        backend = get_backend()
        public_key, proof = backend.secret_to_public_key(secret), backend.prove_possession(secret)
    if len(public_key) == 20:  # a member of an ECDSA committee is named by its address
        _write({"address": to_checksum_address(public_key), "weight": args.weight}, None)
        return 0
    _write(
        {
            "public_key": "0x" + public_key.hex(),
            "proof_of_possession": "0x" + proof.hex(),
            "weight": args.weight,
        },
        None,
    )
    return 0


def to_checksum_address(address: bytes) -> str:
    """EIP-55 mixed-case form of a 20-byte address (what `relay.config.parse_address` checks)."""
    from relay.verify.hashing import keccak256

    digits = address.hex()
    hashed = keccak256(digits.encode()).hex()
    return "0x" + "".join(
        c.upper() if int(h, 16) >= 8 else c for c, h in zip(digits, hashed[:40], strict=True)
    )


def _read_members(paths: list[Path]) -> list[Any]:
    from relay.handover import members_from_identities, parse_json_document

    identities: list[Any] = []
    for path in paths:
        data = parse_json_document(path.read_bytes(), f"member file {path}")
        identities.extend(data if isinstance(data, list) else [data])
    if not identities:
        raise ConfigurationError("name the next members with --member FILE")
    return members_from_identities(identities)


def _read_ecdsa_members(paths: list[Path]) -> list[tuple[bytes, int]]:
    from relay.handover import parse_json_document
    from relay.handover_ecdsa import ecdsa_members_from_identities

    identities: list[Any] = []
    for path in paths:
        data = parse_json_document(path.read_bytes(), f"member file {path}")
        identities.extend(data if isinstance(data, list) else [data])
    if not identities:
        raise ConfigurationError("name the next members with --member FILE")
    return ecdsa_members_from_identities(identities)


def run_propose(args: argparse.Namespace) -> int:
    """Read the current committee from the chain, write the proposal."""
    from relay.handover import proposal_to_dict
    from relay.tools.rotation import propose, read_committee, read_source_gateway

    if args.ecdsa:
        from relay.handover_ecdsa import ecdsa_proposal_to_dict
        from relay.tools.rotation_ecdsa import propose_ecdsa, read_ecdsa_committee

        ecdsa_proposal = propose_ecdsa(
            args.origin,
            read_source_gateway(args.rpc, args.gateway, args.origin),
            read_ecdsa_committee(args.rpc, args.gateway, args.origin),
            _read_ecdsa_members(args.member),
            threshold=args.threshold,
            epoch=args.epoch,
            allow_low_threshold=args.allow_low_threshold,
        )
        _write(ecdsa_proposal_to_dict(ecdsa_proposal), args.out)
        return 0

    current = read_committee(args.rpc, args.gateway, args.origin)
    proposal = propose(
        args.origin,
        read_source_gateway(args.rpc, args.gateway, args.origin),
        current,
        _read_members(args.member),
        threshold=args.threshold,
        epoch=args.epoch,
        allow_low_threshold=args.allow_low_threshold,
    )
    _write(proposal_to_dict(proposal), args.out)
    return 0


def run_handover(args: argparse.Namespace) -> int:
    """Collect, aggregate, verify, write; with --submit hand it to the relayer."""
    from relay.handover import certificate_to_dict, parse_json_document, proposal_from_dict
    from relay.handover_ecdsa import is_ecdsa_document
    from relay.tools.rotation import certify, collect_signatures, read_committee

    document = parse_json_document(args.proposal.read_bytes(), "proposal")
    if is_ecdsa_document(document):
        return _run_ecdsa_handover(args, document)
    if args.send_with_key is not None:
        raise ConfigurationError("--send-with-key is for ECDSA hand-overs; use --submit (the relayer)")
    if args.submit and args.operator_token_file is None:
        raise ConfigurationError("--submit needs --operator-token-file (the relayer's operator token)")
    proposal = proposal_from_dict(document)
    if proposal.origin != args.origin:
        raise ConfigurationError(
            "the proposal is for another origin", proposal=proposal.origin, origin=args.origin
        )
    tls, _insecure = client_tls(args)
    current = read_committee(args.rpc, args.gateway, args.origin)
    tokens = _attestor_tokens(args.attestor, args.attestor_token_file)
    results = collect_signatures(proposal, list(tokens), tokens, tls)
    for result in results:
        if result.signature is None:
            print(f"{result.address}: refused: {result.error}", file=sys.stderr)
        else:
            print(f"{result.address}: signed as member {result.signature.signer_index}", file=sys.stderr)
    certificate = certify(proposal, current, results)
    _write(certificate_to_dict(certificate), args.out)
    if args.submit:
        _submit_via_relayer(args, certificate, tls)
    return 0


def _submit_via_relayer(args: argparse.Namespace, certificate: Any, tls: Any) -> None:
    """`--submit`: hand the certificate (either scheme) to the relayer; print what it did."""
    from relay.tools.rotation import submit_to_relayer

    answer = submit_to_relayer(args.relay, _read_token(args.operator_token_file), certificate, tls)
    for submission in answer.submissions:
        outcome = (
            f"error: {submission.error}"
            if submission.error
            else (
                f"submitted in 0x{bytes(submission.transaction_hash).hex()}"
                if submission.transaction_hash
                else "already there"
            )
        )
        print(f"destination {submission.destination}: epoch {submission.epoch}: {outcome}", file=sys.stderr)
    print(f"relayer follows origin {args.origin} at epoch {answer.epoch}", file=sys.stderr)


def _run_ecdsa_handover(args: argparse.Namespace, document: Any) -> int:
    """`handover` of an ECDSA proposal: collect, combine, verify, write; `--send-with-key` sends it."""
    from relay.handover_ecdsa import ecdsa_certificate_to_dict, ecdsa_proposal_from_dict
    from relay.tools.rotation_ecdsa import (
        certify_ecdsa,
        collect_ecdsa_signatures,
        read_ecdsa_committee,
        submit_ecdsa_handover,
    )

    if args.submit and args.operator_token_file is None:
        raise ConfigurationError("--submit needs --operator-token-file (the relayer's operator token)")
    proposal = ecdsa_proposal_from_dict(document)
    if proposal.origin != args.origin:
        raise ConfigurationError(
            "the proposal is for another origin", proposal=proposal.origin, origin=args.origin
        )
    tls, _insecure = client_tls(args)
    current = read_ecdsa_committee(args.rpc, args.gateway, args.origin)
    tokens = _attestor_tokens(args.attestor, args.attestor_token_file)
    results = collect_ecdsa_signatures(proposal, list(tokens), tokens, tls)
    for result in results:
        if result.signature is None:
            print(f"{result.address}: refused: {result.error}", file=sys.stderr)
        else:
            print(f"{result.address}: signed as member {result.signature.signer_index}", file=sys.stderr)
    certificate = certify_ecdsa(proposal, current, results)
    _write(ecdsa_certificate_to_dict(certificate), args.out)
    if args.send_with_key is not None:
        transaction, epoch = submit_ecdsa_handover(
            args.rpc, args.gateway, _read_token(args.send_with_key), certificate
        )
        outcome = f"submitted in 0x{transaction.hex()}" if transaction else "already there"
        print(f"gateway {args.gateway}: epoch {epoch}: {outcome}", file=sys.stderr)
    if args.submit:
        _submit_via_relayer(args, certificate, tls)
    return 0
