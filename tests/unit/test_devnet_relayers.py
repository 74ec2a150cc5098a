"""The devnet's relayer replicas: which store can hold how many, their names, what each is told,
and what the operator is shown (no process is started here; tests/e2e runs them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.cli import main
from relay.errors import ConfigurationError
from relay.tools.devnet import Devnet, DevnetChain, DevnetOptions
from relay.tools.devnet_relayers import (
    DevnetDatabase,
    relayer_names,
    relayer_store_settings,
    replica_settings,
    validate_relayer_choice,
)


@pytest.mark.parametrize(("store", "relayers"), [("sqlite", 1), ("postgres", 1), ("postgres", 3)])
def test_a_store_that_can_hold_the_replicas_is_accepted(store: str, relayers: int) -> None:
    validate_relayer_choice(store, relayers)


@pytest.mark.parametrize(
    ("store", "relayers", "says"),
    [
        ("sqlite", 2, "cannot share a SQLite store: use --store postgres"),
        ("postgres", 0, "at least one relayer"),
        ("sqlite", -1, "at least one relayer"),
        ("mysql", 1, "unknown store 'mysql'"),
    ],
)
def test_a_store_that_cannot_hold_the_replicas_is_refused(store: str, relayers: int, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        validate_relayer_choice(store, relayers)


def test_several_relayers_on_sqlite_are_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["devnet", "--relayers", "3", "--run-root", str(tmp_path)]) == 2
    assert "use --store postgres" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no run folder, no chain, no process


def test_devnet_refuses_replicas_on_sqlite_at_start(tmp_path: Path) -> None:
    devnet = Devnet(DevnetOptions(relayers=2, run_root=tmp_path))
    with pytest.raises(ConfigurationError, match="SQLite"):
        devnet.start()
    assert devnet.processes == {} and devnet.chains == []


def test_a_lone_relayer_keeps_its_name_and_replicas_are_numbered() -> None:
    assert relayer_names(1) == ["relayer"]
    assert relayer_names(3) == ["relayer-1", "relayer-2", "relayer-3"]
    assert Devnet(DevnetOptions()).relayer == "relayer"
    assert Devnet(DevnetOptions(store="postgres", relayers=2)).relayer_names == ["relayer-1", "relayer-2"]


def test_each_replica_gets_its_own_id_and_the_shared_lease_time() -> None:
    accepted = frozenset({"replica_id", "lease_seconds"})
    assert replica_settings(2, 5.0, accepted) == {"replica_id": "relayer-2", "lease_seconds": 5.0}
    assert replica_settings(1, None, accepted) == {"replica_id": "relayer-1"}  # the relayer's default
    assert replica_settings(1, 5.0, frozenset()) == {}  # a relayer without replicas takes neither


def test_the_store_setting_names_the_database_never_the_password(tmp_path: Path) -> None:
    assert relayer_store_settings("sqlite", tmp_path, None) == {"store": str(tmp_path / "relayer.db")}
    database = DevnetDatabase(tmp_path / "postgres", tmp_path / "keys")
    database.dsn = "postgresql://relay_devnet@127.0.0.1:5432/relay"
    database.password_file = tmp_path / "keys" / "store-password"
    database._password = "s3cret"
    settings = relayer_store_settings("postgres", tmp_path, database)
    assert settings == {"store": database.dsn, "store_password_file": str(database.password_file)}
    assert "s3cret" not in repr(settings) and "s3cret" not in repr(database)
    with pytest.raises(ConfigurationError, match="not started"):
        relayer_store_settings("postgres", tmp_path, None)


def test_describe_lists_every_replica_and_send_goes_through_the_first(tmp_path: Path) -> None:
    devnet = Devnet(DevnetOptions(store="postgres", relayers=3, tls=False), run_dir=tmp_path)
    devnet.chains = [
        DevnetChain("alpha", 31337, "http://127.0.0.1:1", "0x" + "11" * 20, "0x" + "12" * 20),
        DevnetChain("beta", 31338, "http://127.0.0.1:2", "0x" + "21" * 20, "0x" + "22" * 20),
    ]
    for index, name in enumerate(devnet.relayer_names):
        devnet.addresses[name] = f"127.0.0.1:{7000 + index}"
        devnet.metrics_addresses[name] = f"127.0.0.1:{8000 + index}"
    devnet.addresses["submitter-alpha"] = "127.0.0.1:9000"
    text = devnet.describe()
    for index, name in enumerate(devnet.relayer_names):
        assert f"relayer replica {name} (RelayService gRPC): 127.0.0.1:{7000 + index}" in text
        assert f"status page: http://127.0.0.1:{8000 + index}/" in text
    assert "submitter-alpha: gRPC 127.0.0.1:9000" in text
    assert "relayer-2: gRPC" not in text  # replicas are listed once, as replicas
    assert "--relay 127.0.0.1:7000" in devnet.send_command()
