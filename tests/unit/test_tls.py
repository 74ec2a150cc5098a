"""relay.rpc.tls without a network: validation of TLS files, and naming a failed handshake's cause."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from relay.config import TlsConfig
from relay.errors import ConfigurationError
from relay.rpc.tls import (
    ClientTls,
    ReloadingChannel,
    describe_handshake_failure,
    first_subject_name,
    load_tls_material,
)
from tests.pki import Pki

FILES = ClientTls("ca.crt", "tls.crt", "tls.key")
PREFIX = "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "


@pytest.mark.parametrize(
    "details, cause",
    [
        (PREFIX + "Tls handshake failed: CERTIFICATE_VERIFY_FAILED: certificate has expired", "has expired"),
        (
            PREFIX + "Tls handshake failed: CERTIFICATE_VERIFY_FAILED: unable to get local issuer",
            "our CA (ca.crt)",
        ),
        (PREFIX + "Tls handshake failed: WRONG_VERSION_NUMBER", "does not speak TLS"),
        (PREFIX + "Peer name 10.0.0.1 is not in peer certificate", "does not name the address"),
        ("failed to connect to all addresses; last error: UNAVAILABLE: x: Socket closed", "tls.crt"),
        ("failed to connect to all addresses; last error: UNAVAILABLE: x: Connection refused", None),
        ("Deadline Exceeded", None),
    ],
)
def test_a_failed_handshake_is_named_by_its_likely_cause(details: str, cause: str | None) -> None:
    described = describe_handshake_failure(details, FILES)
    assert (described is None) if cause is None else (described is not None and cause in described)


def test_a_plaintext_client_names_a_tls_server_as_the_likely_cause() -> None:
    closed = "failed to connect to all addresses; last error: UNAVAILABLE: x: Socket closed"
    assert "requires TLS" in (describe_handshake_failure(closed, None) or "")
    assert describe_handshake_failure("Connection refused", None) is None


def test_client_files_need_a_key_with_a_certificate() -> None:
    with pytest.raises(ConfigurationError, match="needs its key"):
        ClientTls("ca.crt", "tls.crt")
    with pytest.raises(ConfigurationError, match="needs its key"):
        ClientTls("ca.crt", key="tls.key")
    assert ClientTls("ca.crt").cert is None


def test_tls_files_are_checked_when_loaded(pki: Pki, tmp_path: Path) -> None:
    good = pki.issue("role")
    assert load_tls_material(good).key is not None
    assert first_subject_name(good) == "localhost"  # DNS names first: the probe's server name
    other = pki.issue("other")
    with pytest.raises(ConfigurationError, match="does not match"):
        load_tls_material(TlsConfig(ca=good.ca, cert=good.cert, key=other.key))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="no PEM certificate") as caught:
        load_tls_material(TlsConfig(ca=str(garbage), cert=good.cert, key=good.key))
    assert caught.value.file == str(garbage)
    with pytest.raises(ConfigurationError, match="unreadable"):
        load_tls_material(TlsConfig(ca=str(tmp_path / "missing"), cert=good.cert, key=good.key))
    os.chmod(good.key, 0o640)
    with pytest.raises(ConfigurationError, match=f"chmod 600 {good.key}"):
        load_tls_material(good)


def test_a_channel_reads_its_files_again_at_most_once_per_interval(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    tls = pki.issue("client")
    now = [100.0]
    channel = ReloadingChannel("127.0.0.1:1", tls, clock=lambda: now[0], check_interval=1.0)
    caplog.set_level(logging.INFO, logger="relay.rpc.tls")
    try:
        assert channel.current()[0] == 0
        renewed = pki.issue("renewed")
        shutil.copyfile(renewed.cert, tls.cert)
        shutil.copyfile(renewed.key, tls.key)
        now[0] += 0.5
        assert channel.current()[0] == 0  # not checked yet: within the interval
        now[0] += 0.6
        assert channel.current()[0] == 1  # checked, changed, usable: a new channel
        assert "TLS files reloaded" in caplog.text
        shutil.copyfile(pki.issue("half").cert, tls.cert)  # a certificate without its key
        now[0] += 1.1
        assert channel.current()[0] == 1 and "not usable" in caplog.text
    finally:
        channel.close()


def test_a_certificate_that_expires_while_in_use_is_logged_once(
    pki: Pki, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime

    import relay.rpc.tls as module
    from relay.rpc.tls import ReloadingServerCertificates

    tls = pki.issue("server")
    certificates = ReloadingServerCertificates(tls)
    caplog.set_level(logging.ERROR, logger="relay.rpc.tls")
    assert certificates.fetch() is None and caplog.text == ""  # valid: nothing to say
    expiry = certificates.material.not_after
    assert expiry is not None
    monkeypatch.setattr(module, "_now", lambda: expiry + datetime.timedelta(seconds=1))
    assert certificates.fetch() is None and certificates.fetch() is None  # still served, said once
    assert caplog.text.count(f"certificate {tls.cert} expired at {expiry.isoformat()}") == 1
