"""Strict, layered configuration: file, then `RELAY_*` environment, then flags.

Each role declares its config as a `StrictModel` (pydantic, unknown keys rejected with their
path). `load_config(Model, path, environ, overrides)` reads a YAML or JSON file, applies
environment overrides (`RELAY_SECTION__KEY=value`, double underscore between levels, values parsed
as YAML scalars), then explicit overrides, and validates. Secrets are `SecretRef`s: read from a
file (`key_file`) or an environment variable (`key_env`), never logged (`SecretStr`). A secret file
(and a TLS private key) readable by anyone but its owner is refused (`verify_private_file`).

Every role that serves or dials gRPC has a `GrpcRoleConfig`: `tls` (file paths of the CA, the
role's certificate and its key) or, for development only, `insecure_plaintext: true`; neither is a
configuration error, so plaintext is never the silent default.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator, model_validator

from relay.errors import ConfigurationError

ENV_PREFIX = "RELAY_"
Model = TypeVar("Model", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(StrictModel):
    """Where a secret comes from: exactly one of `file` or `env` (or an inline `value` for devnets)."""

    file: str | None = None
    env: str | None = None
    value: SecretStr | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [name for name in ("file", "env", "value") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a secret needs exactly one of file, env, value (got {given or 'none'})")
        return self

    def reveal(self) -> str:
        """Read the secret now; raise `ConfigurationError` (without the value) if unavailable."""
        if self.value is not None:
            return self.value.get_secret_value().strip()
        if self.file is not None:
            verify_private_file(self.file)
            try:
                return Path(self.file).read_text().strip()
            except OSError as error:
                raise ConfigurationError(
                    "secret file unreadable", file=self.file, cause=error.strerror
                ) from error
        assert self.env is not None  # noqa: S101 - guaranteed by the validator
        if self.env not in os.environ:
            raise ConfigurationError("secret environment variable not set", variable=self.env)
        return os.environ[self.env].strip()


def verify_private_file(path: str | Path) -> None:
    """Raise `ConfigurationError` if the secret file at `path` can be read by others than its owner.

    The rule is PostgreSQL's for its TLS key: a file owned by the process's user must not be
    readable by group or others (0600 or stricter); a file owned by root may also be read by its
    group (0640 or stricter) when that group is one of the process's own groups, which is how
    Kubernetes mounts a Secret for a pod with an `fsGroup`. A file owned by another user is
    refused: that user can read (and replace) the secret. A file that does not exist is left to
    the read that follows (it reports it).
    """
    try:
        info = os.stat(path)
    except OSError:
        return
    mode = stat.S_IMODE(info.st_mode)
    user = os.geteuid()
    if info.st_uid not in (user, 0):
        raise ConfigurationError(
            f"secret file {path} is owned by another user (uid {info.st_uid}); "
            f"run `chown {user} {path}` and `chmod 600 {path}`",
            file=str(path),
            owner=info.st_uid,
        )
    own_groups = {os.getegid(), *os.getgroups()}
    root_owned_for_our_group = info.st_uid == 0 and user != 0 and info.st_gid in own_groups
    allowed_extra = 0o040 if root_owned_for_our_group else 0
    if mode & 0o077 & ~allowed_extra:
        raise ConfigurationError(
            f"secret file {path} is readable by group or others (mode {mode:04o}); run `chmod 600 {path}`",
            file=str(path),
            mode=f"{mode:04o}",
        )


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or JSON config file into a mapping."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as error:
        raise ConfigurationError("config file unreadable", path=str(file), cause=error.strerror) from error
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ConfigurationError(
            "config file is not valid YAML/JSON", path=str(file), cause=str(error)
        ) from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError("config file must hold a mapping at the top", path=str(file))
    return data


def apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Overlay `RELAY_A__B=value` variables as data["a"]["b"] = value (YAML scalar)."""
    result = json.loads(json.dumps(data))
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in _RESERVED:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        if path == [""]:
            continue
        node = result
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigurationError("environment override crosses a scalar", variable=name)
            node = child
        try:
            node[path[-1]] = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            node[path[-1]] = raw
    return result


# Variables with the prefix that are not config overrides.
_RESERVED = {"RELAY_BLS_BACKEND", "RELAY_VECTORS", "RELAY_LOG_LEVEL", "RELAY_CONFIG"}


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def key_path(data: Any, location: tuple[int | str, ...]) -> list[int | str]:
    """The path of keys in `data` that a pydantic error `location` points at.

    A tagged union (a chain config, by `kind`) inserts its tag into the location
    (`chain.evm.gateway`); the operator wrote no such key, so a segment that is not in the
    input, and is not the last one (a missing key), is left out: `chain.gateway`.
    """
    path: list[int | str] = []
    node = data
    for position, segment in enumerate(location):
        last = position == len(location) - 1
        if isinstance(node, Mapping) and segment in node:
            node = node[segment]
        elif isinstance(node, list) and isinstance(segment, int) and 0 <= segment < len(node):
            node = node[segment]
        elif not last and isinstance(node, Mapping):
            continue  # a union's tag, not a key
        else:
            node = None
        path.append(segment)
    return path


def load_config(
    model: type[Model],
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Model:
    """Build `model` from file, environment and overrides; raise `ConfigurationError` naming the key path."""
    data = read_config_file(path) if path is not None else {}
    data = apply_environment(data, os.environ if environ is None else environ)
    if overrides:
        data = _merge(data, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in key_path(data, issue['loc'])) or '<root>'}: {issue['msg']}"
            for issue in error.errors()
        )
        raise ConfigurationError(
            f"invalid configuration: {problems}", path=str(path) if path else None
        ) from None


# --- sections shared by the roles ------------------------------------------------------------


class MemberConfig(StrictModel):
    """A committee member and its weight: for a `bls` committee its hex-encoded public key and proof
    of possession; for an `ecdsa` committee its 20-byte Ethereum address (0x + 40 hex digits; in
    mixed case the EIP-55 checksum must hold)."""

    public_key: str | None = None
    proof_of_possession: str | None = None
    address: str | None = None
    weight: int = 1

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str | None) -> str | None:
        if value is not None:
            parse_address(value)  # a ConfigurationError is a ValueError: reported at members.N.address
        return value


COMMITTEE_SCHEMES = ("bls", "ecdsa")


def parse_address(text: str) -> bytes:
    """A 20-byte address from `0x` + 40 hex digits; `ConfigurationError` for anything else.

    All-lower or all-upper case is taken as is; mixed case must be the EIP-55 checksum (a typo
    in a checksummed address is refused, not enrolled). The zero address is refused.
    """
    from relay.verify.hashing import keccak256

    digits = text.removeprefix("0x") if text.startswith("0x") else None
    if digits is None or len(digits) != 40 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise ConfigurationError(f"an address is 0x and 40 hex digits, got {text!r}", address=text)
    if digits != digits.lower() and digits != digits.upper():
        hashed = keccak256(digits.lower().encode()).hex()
        checksummed = "".join(
            c.upper() if c.isalpha() and int(hashed[i], 16) >= 8 else c.lower() for i, c in enumerate(digits)
        )
        if checksummed != digits:
            raise ConfigurationError(
                f"address {text!r} fails its EIP-55 checksum (expected 0x{checksummed})", address=text
            )
    address = bytes.fromhex(digits)
    if address == bytes(20):
        raise ConfigurationError("the zero address cannot be a committee member", address=text)
    return address


class CommitteeConfig(StrictModel):
    """The trusted committee of one origin: where a relayer's and gateway's trust starts.

    `scheme` is how the destination Gateways verify the origin: `bls` (the default: members are
    BLS keys with proofs of possession; verification flat in committee size) or `ecdsa` (members
    are Ethereum addresses, one `ecrecover` per signer: cheaper for small committees and lone
    messages). The threshold rule is the same for both. Every member must be of the scheme: a
    BLS key in an `ecdsa` committee, or an address in a `bls` one, is a configuration error.
    """

    epoch: int
    threshold: int | None = None
    scheme: str = "bls"
    members: list[MemberConfig]
    # A threshold below two thirds of the total weight is refused unless this says so (the
    # Gateway needs the same from its owner: setLowThresholdAllowed).
    allow_low_threshold: bool = False

    @model_validator(mode="after")
    def _check_scheme(self) -> CommitteeConfig:
        if self.scheme not in COMMITTEE_SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(COMMITTEE_SCHEMES)} (got {self.scheme!r})")
        for index, member in enumerate(self.members):
            if self.scheme == "ecdsa":
                if (
                    member.address is None
                    or member.public_key is not None
                    or member.proof_of_possession is not None
                ):
                    raise ValueError(
                        f"members[{index}]: an ecdsa committee's member has an address (and a weight), "
                        "not a BLS public_key or proof_of_possession; schemes cannot be mixed"
                    )
            elif (
                member.address is not None or member.public_key is None or member.proof_of_possession is None
            ):
                raise ValueError(
                    f"members[{index}]: a bls committee's member has a public_key and a "
                    "proof_of_possession, not an address (set scheme: ecdsa for an ECDSA committee); "
                    "schemes cannot be mixed"
                )
        if self.scheme == "ecdsa":
            addresses = [parse_address(m.address or "") for m in self.members]
            for index, address in enumerate(addresses):
                if address in addresses[:index]:
                    raise ValueError(f"members[{index}]: address 0x{address.hex()} appears twice")
        return self

    def build(self, backend: Any = None) -> Any:
        """Return the validated committee: a `relay.verify.committee.Committee` for `bls` (every
        proof of possession checked) or a `relay.verify.ecdsa_quorum.EcdsaCheckpointCommittee`."""
        if self.scheme == "ecdsa":
            from relay.verify.ecdsa_quorum import EcdsaCheckpointCommittee, EcdsaMember

            return EcdsaCheckpointCommittee.create(
                self.epoch,
                [EcdsaMember(parse_address(m.address or ""), m.weight) for m in self.members],
                self.threshold,
                allow_low_threshold=self.allow_low_threshold,
            )
        from relay.verify.committee import Committee, Member

        members = [
            Member(
                bytes.fromhex((m.public_key or "").removeprefix("0x")),
                bytes.fromhex((m.proof_of_possession or "").removeprefix("0x")),
                m.weight,
            )
            for m in self.members
        ]
        return Committee.create(
            self.epoch, members, self.threshold, backend=backend, allow_low_threshold=self.allow_low_threshold
        )


class TlsConfig(StrictModel):
    """A role's TLS files (PEM): the CA that signs its peers, its certificate (chain) and its key.

    One certificate per role process serves its server side and its client side, so it needs the
    serverAuth and clientAuth extended key usages, and subject alternative names for every address
    it is dialled at. The names follow cert-manager's Secret keys (`ca.crt`, `tls.crt`, `tls.key`).
    The files are read again when they change (`relay.rpc.tls`), so a renewed certificate is used
    without a restart.
    """

    ca: str
    cert: str
    key: str


PLAINTEXT_REFUSED = (
    "plaintext gRPC is refused; set tls (ca, cert, key) or, for development only, insecure_plaintext"
)


class GrpcRoleConfig(StrictModel):
    """What every role that serves or dials gRPC shares: its TLS files, or the development flag.

    Exactly one of `tls` and `insecure_plaintext: true` must be set: neither is refused (plaintext
    is never the silent default), both is ambiguous.
    """

    tls: TlsConfig | None = None
    insecure_plaintext: bool = False

    @model_validator(mode="after")
    def _check_transport(self) -> GrpcRoleConfig:
        if self.tls is None and not self.insecure_plaintext:
            raise ValueError(PLAINTEXT_REFUSED)
        if self.tls is not None and self.insecure_plaintext:
            raise ValueError("set either tls or insecure_plaintext, not both")
        return self
