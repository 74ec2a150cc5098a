"""Strict, layered configuration: unknown keys with their path, RELAY_* overrides, secrets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from relay.chains.registry import ChainConfig
from relay.config import CommitteeConfig, SecretRef, StrictModel, apply_environment, load_config
from relay.errors import ConfigurationError, InvalidProofOfPossession


class Section(StrictModel):
    chain: ChainConfig
    key: SecretRef
    batch: int = 50


BASE = {
    "chain": {
        "name": "alpha",
        "domain": 31337,
        "rpc_urls": ["http://127.0.0.1:8545"],
        "gateway": "0x" + "11" * 20,
    },
    "key": {"env": "RELAY_TEST_KEY"},
}


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "chain:\n  name: alpha\n  domain: 1\n  rpc_urls: [http://127.0.0.1:1]\n"
        "  gateway: '0x" + "11" * 20 + "'\nkey: {env: SOME_KEY}\nbatch: 10\n",
    )
    assert load_config(Section, path, {}).batch == 10
    env = {"RELAY_BATCH": "20", "RELAY_CHAIN__CONFIRMATIONS": "3", "RELAY_BLS_BACKEND": "py_ecc"}
    config = load_config(Section, path, env)
    assert (config.batch, config.chain.confirmations) == (20, 3)  # RELAY_BLS_BACKEND is not a config key
    assert load_config(Section, path, env, {"batch": 30}).batch == 30


def test_unknown_keys_are_errors_with_their_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_config(Section, None, {}, {**BASE, "chain": {**BASE["chain"], "confirmation": 2}})
    assert "chain.confirmation" in str(caught.value) and "Extra inputs" in str(caught.value)
    with pytest.raises(ConfigurationError, match="typo"):
        load_config(Section, None, {"RELAY_TYPO": "1"}, BASE)


def test_invalid_values_and_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="rpc_urls"):
        load_config(Section, None, {}, {**BASE, "chain": {**BASE["chain"], "rpc_urls": []}})
    with pytest.raises(ConfigurationError, match="domain"):
        load_config(Section, None, {}, {**BASE, "chain": {**BASE["chain"], "domain": 2**32}})
    with pytest.raises(ConfigurationError, match="unreadable"):
        load_config(Section, tmp_path / "missing.yaml", {})
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_config(Section, write(tmp_path, "chain: [unclosed"), {})
    with pytest.raises(ConfigurationError, match="mapping"):
        load_config(Section, write(tmp_path, "- a list"), {})


def test_secrets_come_from_exactly_one_place_and_are_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = write(tmp_path, "0xsecret-from-file\n", "key")
    key_file.chmod(0o600)
    assert SecretRef(file=str(key_file)).reveal() == "0xsecret-from-file"
    config = load_config(Section, None, {"RELAY_KEY__VALUE": "s3cret-value"}, {**BASE, "key": {}})
    assert config.key.reveal() == "s3cret-value"
    logging.getLogger("test").warning("config %s %r", config, config)
    assert "s3cret-value" not in caplog.text and "s3cret-value" not in repr(config) + str(config)
    with pytest.raises(ConfigurationError, match="exactly one"):
        load_config(Section, None, {}, {**BASE, "key": {"env": "A", "file": "b"}})
    with pytest.raises(ConfigurationError, match="not set") as caught:
        SecretRef(env="RELAY_TEST_UNSET_VARIABLE").reveal()
    assert caught.value.variable == "RELAY_TEST_UNSET_VARIABLE"
    with pytest.raises(ConfigurationError, match="unreadable"):
        SecretRef(file=str(tmp_path / "nope")).reveal()


def test_environment_override_cannot_cross_a_scalar() -> None:
    with pytest.raises(ConfigurationError, match="crosses a scalar"):
        apply_environment({"batch": 5}, {"RELAY_BATCH__DEEPER": "1"})


def test_committee_config_builds_a_verified_committee() -> None:
    from relay.verify.bls import get_backend

    bls = get_backend("blst")
    members = [
        {
            "public_key": bls.secret_to_public_key(k).hex(),
            "proof_of_possession": bls.prove_possession(k).hex(),
        }
        for k in (3, 5, 7, 11)
    ]
    committee = CommitteeConfig.model_validate({"epoch": 2, "members": members}).build(bls)
    assert (committee.epoch, committee.threshold, len(committee)) == (2, 3, 4)
    members[1]["proof_of_possession"] = bls.prove_possession(13).hex()
    with pytest.raises(InvalidProofOfPossession):
        CommitteeConfig.model_validate({"epoch": 2, "members": members}).build(bls)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666, 0o620])
def test_a_secret_file_readable_by_group_or_others_is_refused_naming_the_file_and_the_fix(
    tmp_path: Path, mode: int
) -> None:
    key_file = write(tmp_path, "0xsecret-from-file\n", "key")
    key_file.chmod(mode)
    with pytest.raises(ConfigurationError) as refused:
        SecretRef(file=str(key_file)).reveal()
    message = str(refused.value)
    assert str(key_file) in message and f"chmod 600 {key_file}" in message and f"{mode:04o}" in message
    assert "secret-from-file" not in message  # the value never appears in the error


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_secret_file_only_its_owner_can_read_is_accepted(tmp_path: Path, mode: int) -> None:
    key_file = write(tmp_path, "0xsecret-from-file\n", "key")
    key_file.chmod(mode)
    assert SecretRef(file=str(key_file)).reveal() == "0xsecret-from-file"


def test_a_root_owned_secret_may_be_group_readable_for_a_kubernetes_fs_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kubernetes mounts a Secret root-owned with mode 0440 for a pod's fsGroup: PostgreSQL's rule
    (root-owned: u=rw,g=r at most) accepts it; others may still never read it."""
    import os

    from relay import config as config_module

    key_file = write(tmp_path, "0xsecret\n", "key")
    real_stat = os.stat

    def stat_as(mode: int, uid: int, gid: int = 2000) -> object:
        def fake(path: object, *args: object, **kwargs: object) -> object:
            result = real_stat(path, *args, **kwargs)  # type: ignore[arg-type]
            values = list(result)
            values[0] = (result.st_mode & ~0o7777) | mode
            values[4] = uid
            values[5] = gid
            return os.stat_result(values)

        return fake

    monkeypatch.setattr(config_module.os, "geteuid", lambda: 10001)
    monkeypatch.setattr(config_module.os, "getegid", lambda: 10001)
    monkeypatch.setattr(config_module.os, "getgroups", lambda: [2000])  # the pod's fsGroup
    monkeypatch.setattr(config_module.os, "stat", stat_as(0o440, 0))
    config_module.verify_private_file(key_file)  # root-owned, readable by our group: accepted
    monkeypatch.setattr(config_module.os, "stat", stat_as(0o440, 0, gid=100))
    with pytest.raises(ConfigurationError, match="chmod 600"):
        config_module.verify_private_file(key_file)  # readable by a group we are not in: refused
    monkeypatch.setattr(config_module.os, "stat", stat_as(0o444, 0))
    with pytest.raises(ConfigurationError, match="chmod 600"):
        config_module.verify_private_file(key_file)  # readable by others: refused even so
    monkeypatch.setattr(config_module.os, "stat", stat_as(0o440, 10001))
    with pytest.raises(ConfigurationError, match="chmod 600"):
        config_module.verify_private_file(key_file)  # our own file: group must not read it
    monkeypatch.setattr(config_module.os, "stat", stat_as(0o600, 4242))
    with pytest.raises(ConfigurationError, match="owned by another user"):
        config_module.verify_private_file(key_file)  # another user's file: it can read and replace it


def test_a_role_needs_tls_or_the_development_flag() -> None:
    from relay.config import GrpcRoleConfig

    with pytest.raises(ValidationError, match="plaintext gRPC is refused"):
        GrpcRoleConfig.model_validate({})
    with pytest.raises(ValidationError, match="not both"):
        GrpcRoleConfig.model_validate(
            {"tls": {"ca": "a", "cert": "b", "key": "c"}, "insecure_plaintext": True}
        )
    assert GrpcRoleConfig.model_validate({"insecure_plaintext": True}).tls is None
    with pytest.raises(ValidationError, match="Field required"):
        GrpcRoleConfig.model_validate({"tls": {"ca": "a"}})


def test_a_committee_below_two_thirds_needs_allow_low_threshold() -> None:
    from relay.config import CommitteeConfig
    from relay.errors import InvalidCommittee
    from relay.verify.bls import get_backend, keygen

    bls = get_backend()
    secrets = [keygen(bytes([i + 1]) * 32) for i in range(4)]
    members = [
        {
            "public_key": bls.secret_to_public_key(s).hex(),
            "proof_of_possession": bls.prove_possession(s).hex(),
        }
        for s in secrets
    ]
    with pytest.raises(InvalidCommittee, match="two thirds"):
        CommitteeConfig(epoch=1, threshold=2, members=members).build(bls)
    allowed = CommitteeConfig(epoch=1, threshold=2, members=members, allow_low_threshold=True).build(bls)
    assert allowed.threshold == 2
    assert CommitteeConfig(epoch=1, members=members).build(bls).threshold == 3
