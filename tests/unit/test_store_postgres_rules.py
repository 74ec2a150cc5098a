"""The PostgreSQL store's pure rules: which DSNs are accepted, how they are shown, how state
changes are announced (NOTIFY payloads) and what a received payload may hold; the relayer's
`store` / `store_password_file` settings. The store itself is tested against a real server in
tests/integration/test_postgres_store.py and tests/conformance/."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.errors import ConfigurationError
from relay.store import is_postgres_dsn
from relay.store.postgres_connect import describe_dsn, parse_dsn
from relay.store.postgres_rows import NOTIFY_PAYLOAD_LIMIT, notification_payloads, parse_notification
from tests.unit.relayer.helpers import relayer_config


def test_postgres_dsns_are_told_apart_by_scheme() -> None:
    assert is_postgres_dsn("postgresql://relay@db/relay") and is_postgres_dsn("POSTGRES://db/relay")
    assert not is_postgres_dsn("relayer.db") and not is_postgres_dsn("sqlite:///var/relay/relayer.db")


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://relay:pw@db/relay",
        "postgresql://relay@db/relay?password=pw",
        "host=db dbname=relay password=pw",
    ],
)
def test_a_password_in_the_dsn_is_refused(dsn: str) -> None:
    with pytest.raises(ConfigurationError, match="store_password_file") as refused:
        parse_dsn(dsn)
    assert "pw" not in str(refused.value).replace("password", "")


def test_an_unparsable_dsn_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="does not parse"):
        parse_dsn("postgresql://relay@db/relay?nonsense_option=1")


def test_a_dsn_is_shown_without_its_password() -> None:
    assert describe_dsn("postgresql://relay@db:5432/relay") == "postgresql://relay@db:5432/relay"
    shown = describe_dsn("postgresql://relay:hunter2@db:5432/relay")
    assert "hunter2" not in shown and "db" in shown


def test_notification_payloads_stay_under_the_limit_and_round_trip() -> None:
    ids = [i.to_bytes(32, "big") for i in range(1000)]
    payloads = notification_payloads(ids)
    assert len(payloads) > 1 and all(len(p) <= NOTIFY_PAYLOAD_LIMIT for p in payloads)
    assert [i for p in payloads for i in parse_notification(p)] == ids
    assert notification_payloads([]) == []


@pytest.mark.parametrize(
    "payload", ["", "junk", "ab" * 31, "ab" * 33, "zz" * 32, "ab" * 32 + ",", ",".join(["ab" * 32] * 200)]
)
def test_a_notification_that_is_not_a_list_of_ids_is_refused(payload: str) -> None:
    with pytest.raises(ValueError):
        parse_notification(payload)


def test_the_relayer_takes_a_dsn_with_a_private_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "pg-password"
    secret.write_text("hunter2\n")
    secret.chmod(0o600)
    config = relayer_config(store="postgresql://relay@db:5432/relay", store_password_file=str(secret))
    assert config.store_password() == "hunter2"
    assert relayer_config().store_password() is None
    secret.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        config.store_password()
    with pytest.raises(ValueError, match="store_password_file"):
        relayer_config(store="postgresql://relay:hunter2@db/relay")
    with pytest.raises(ValueError, match="for a PostgreSQL store"):
        relayer_config(store="relayer.db", store_password_file=str(secret))
