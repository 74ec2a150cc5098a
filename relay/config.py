"""Strict, layered configuration: file, then `RELAY_*` environment, then flags.

Each role declares its config as a `StrictModel` (pydantic, unknown keys rejected with their
path). `load_config(Model, path, environ, overrides)` reads a YAML or JSON file, applies
environment overrides (`RELAY_SECTION__KEY=value`, double underscore between levels, values parsed
as YAML scalars), then explicit overrides, and validates. Secrets are `SecretRef`s: read from a
file (`key_file`) or an environment variable (`key_env`), never logged (`SecretStr`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, model_validator

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
            try:
                return Path(self.file).read_text().strip()
            except OSError as error:
                raise ConfigurationError("secret file unreadable", file=self.file, cause=error.strerror) from error
        assert self.env is not None  # noqa: S101 - guaranteed by the validator
        if self.env not in os.environ:
            raise ConfigurationError("secret environment variable not set", variable=self.env)
        return os.environ[self.env].strip()


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
        raise ConfigurationError("config file is not valid YAML/JSON", path=str(file), cause=str(error)) from error
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
        path = name[len(ENV_PREFIX):].lower().split("__")
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


def load_config(
    model: type[Model], path: str | Path | None = None, environ: Mapping[str, str] | None = None,
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
            f"{'.'.join(str(p) for p in issue['loc']) or '<root>'}: {issue['msg']}" for issue in error.errors()
        )
        raise ConfigurationError(f"invalid configuration: {problems}", path=str(path) if path else None) from None


# --- sections shared by the roles ------------------------------------------------------------


class LightClientConfig(StrictModel):
    """`kind: ethereum` attestors: where the light client starts and which nodes it asks (untrusted).

    `trusted_block_root` is the only thing trusted: a finalized beacon block root the operator
    checked out of band. `replay_file` answers from a recording instead of live nodes (offline checks).
    """

    trusted_block_root: str
    beacon_url: str = "http://127.0.0.1:5052"
    execution_url: str | None = None
    network: str = "mainnet"
    network_config: str | None = None
    genesis_validators_root: str | None = None
    allow_force_update: bool = False
    bls_backend: str | None = None
    replay_file: str | None = None
    fixed_time: float | None = None


class ChainConfig(StrictModel):
    """One chain the relay talks to. `kind` picks the adapter (see relay.adapters_registry)."""

    name: str
    domain: int
    kind: str = "evm"
    rpc_urls: list[str]
    gateway: str
    # 0: use the chain's `finalized` block tag; N > 0: N confirmations below the head.
    confirmations: int = 0
    start_block: int = 0
    poll_interval: float = 0.5
    max_block_range: int = 2000
    light_client: LightClientConfig | None = None

    @model_validator(mode="after")
    def _check(self) -> ChainConfig:
        if self.kind == "ethereum" and self.light_client is None:
            raise ValueError("kind ethereum needs a light_client section (trusted_block_root, beacon_url)")
        if not self.rpc_urls:
            raise ValueError("rpc_urls needs at least one endpoint")
        if not 0 <= self.domain < 2**32:
            raise ValueError("domain must be a u32")
        if self.confirmations < 0 or self.max_block_range <= 0 or self.poll_interval <= 0:
            raise ValueError("confirmations >= 0, max_block_range > 0 and poll_interval > 0")
        return self


class MemberConfig(StrictModel):
    """A committee member: hex-encoded BLS public key and proof of possession, and weight."""

    public_key: str
    proof_of_possession: str
    weight: int = 1


class CommitteeConfig(StrictModel):
    """The trusted committee of one origin: where a relayer's and gateway's trust starts."""

    epoch: int
    threshold: int | None = None
    members: list[MemberConfig]

    def build(self, backend: Any = None) -> Any:
        """Return the validated `relay.verify.committee.Committee` (checks every proof of possession)."""
        from relay.verify.committee import Committee, Member

        members = [
            Member(bytes.fromhex(m.public_key.removeprefix("0x")),
                   bytes.fromhex(m.proof_of_possession.removeprefix("0x")), m.weight)
            for m in self.members
        ]
        return Committee.create(self.epoch, members, self.threshold, backend=backend)
