"""Mutual TLS between roles, attacked: real gRPC servers on loopback (a real role, and a server in
its own process), real certificates from throw-away CAs (tests/pki.py).

- a client whose certificate another CA signed, a client without a certificate and a plaintext
  client are refused by a mutual-TLS role; a TLS client names the cause when the server is plaintext;
- an expired certificate is refused, with a log line on both sides (our own files are checked
  when loaded; the server process logs the handshake failure, the client names the likely cause);
- certificate files replaced on disk are used by new connections of the server and of the client,
  without a restart; unusable new files are refused and the previous certificate stays in use;
- the operator token is refused over plaintext and on the relayer's public port;
- a role configured with neither tls nor insecure_plaintext does not start.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from relay.config import TlsConfig, load_config
from relay.errors import ConfigurationError
from relay.metrics import RelayMetrics
from relay.rpc.limits import CallLimits
from relay.rpc.server import GrpcServer, start_grpc_server
from relay.rpc.tls import ClientTls, open_channel
from relay.v1 import relay_service_pb2, relay_service_pb2_grpc
from tests.integration.test_relayer import TOKEN, World, tls_world, world  # noqa: F401 - fixtures
from tests.pki import Pki
from tests.waiting import eventually

HEALTH = health_pb2.HealthCheckRequest()


def check(channel: grpc.Channel, timeout: float = 3.0) -> grpc.StatusCode:
    """The status code of one health check over `channel` (OK when it answers)."""
    try:
        health_pb2_grpc.HealthStub(channel).Check(HEALTH, timeout=timeout)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def serve(tls: TlsConfig | None, **options: Any) -> GrpcServer:
    """A server like every role's (health only), on a free loopback port."""
    return start_grpc_server(
        "127.0.0.1:0",
        RelayMetrics(CollectorRegistry()),
        lambda server: None,
        [],
        limits=CallLimits(streams=2, unary=4),
        thread_prefix="tls-test",
        tls=tls,
        **options,
    )


@pytest.fixture
def mtls_server(pki: Pki) -> Iterator[GrpcServer]:
    served = serve(pki.issue("server"))
    yield served
    served.stop(0)


def address(server: GrpcServer) -> str:
    return f"127.0.0.1:{server.port}"


# --- who may connect --------------------------------------------------------------------------


def test_a_real_submitter_accepts_only_clients_with_a_certificate_of_its_ca(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from adapters.evm.config import EvmChainConfig as ChainConfig
    from relay.config import SecretRef
    from relay.roles.submitter import Submitter, SubmitterConfig

    dead = ChainConfig(name="dead", domain=2, rpc_urls=["http://127.0.0.1:9"], gateway="0x" + "42" * 20)
    submitter = Submitter(
        SubmitterConfig(
            chain=dead,
            key=SecretRef(value="0x" + "11" * 32),
            listen="127.0.0.1:0",
            tls=pki.issue("submitter"),
        )
    ).start()
    target = f"127.0.0.1:{submitter.grpc_port}"
    other = Pki(tmp_path / "other", "another CA")
    caplog.set_level(logging.WARNING, logger="relay.rpc.tls")
    try:
        with open_channel(target, pki.client("relayer")) as good:
            assert check(good) == grpc.StatusCode.OK
        # A certificate from another CA (trusting our CA for the server, so only the client side fails).
        foreign = other.client("intruder")
        with open_channel(target, ClientTls(pki.client().ca, foreign.cert, foreign.key)) as intruder:
            assert check(intruder) == grpc.StatusCode.UNAVAILABLE
        assert "most likely refused our client certificate" in caplog.text
        with open_channel(target, pki.client()) as anonymous:  # server TLS only: no certificate
            assert check(anonymous) == grpc.StatusCode.UNAVAILABLE
        caplog.clear()
        with open_channel(target, None) as plaintext:
            assert check(plaintext) == grpc.StatusCode.UNAVAILABLE
        assert "it most likely requires TLS" in caplog.text
        # And our client refuses a server whose certificate another CA signed.
        caplog.clear()
        with open_channel(target, other.client("relayer")) as misled:
            assert check(misled) == grpc.StatusCode.UNAVAILABLE
        assert "not signed by our CA" in caplog.text
    finally:
        submitter.stop(0)


def test_a_tls_client_names_a_plaintext_server_as_the_cause(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    plaintext = serve(None)
    caplog.set_level(logging.WARNING, logger="relay.rpc.tls")
    try:
        with open_channel(address(plaintext), pki.client("relayer")) as channel:
            assert check(channel) == grpc.StatusCode.UNAVAILABLE
        assert "does not speak TLS" in caplog.text
    finally:
        plaintext.stop(0)


# --- expiry -----------------------------------------------------------------------------------

SERVER_PROCESS = """
import sys
from prometheus_client import CollectorRegistry
from relay.config import TlsConfig
from relay.metrics import RelayMetrics
from relay.rpc.limits import CallLimits
from relay.rpc.server import start_grpc_server

served = start_grpc_server(
    "127.0.0.1:0", RelayMetrics(CollectorRegistry()), lambda server: None, [],
    limits=CallLimits(streams=2, unary=4), thread_prefix="tls-process",
    tls=TlsConfig(ca=sys.argv[1], cert=sys.argv[2], key=sys.argv[3]),
)
print(served.port, flush=True)
sys.stdin.read()  # until the test closes our stdin
served.stop(0)
"""


@pytest.fixture
def server_process(pki: Pki, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A mutual-TLS server in its own process: (address, its stderr log)."""
    tls = pki.issue("server")
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVER_PROCESS, tls.ca, tls.cert, tls.key],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        try:
            assert process.stdout is not None
            port = int(process.stdout.readline().decode().strip() or 0)
            assert port, log_path.read_text()
            yield f"127.0.0.1:{port}", log_path
        finally:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=10)


def test_an_expired_client_certificate_is_refused_with_clear_log_lines(
    pki: Pki, server_process: tuple[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    target, server_log = server_process
    expired = pki.expired("relayer")
    caplog.set_level(logging.WARNING, logger="relay.rpc.tls")
    with open_channel(target, ClientTls(expired.ca, expired.cert, expired.key)) as channel:
        # Loading our own files says it before any connection is tried.
        assert f"certificate {expired.cert} expired at" in caplog.text
        assert check(channel) == grpc.StatusCode.UNAVAILABLE
    assert "most likely refused our client certificate" in caplog.text
    # The server's side: its log names the cause of the failed handshake.
    eventually(lambda: "certificate has expired" in server_log.read_text(), 10, "the server's log line")
    with open_channel(target, pki.client("relayer")) as channel:
        assert check(channel) == grpc.StatusCode.OK  # the server is unharmed


def test_an_expired_server_certificate_is_logged_at_start_and_refused_by_clients(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    expired = pki.expired("server")
    caplog.set_level(logging.WARNING, logger="relay.rpc.tls")
    served = serve(expired)
    try:
        assert f"certificate {expired.cert} expired at" in caplog.text
        caplog.clear()
        with open_channel(address(served), pki.client("relayer")) as channel:
            assert check(channel) == grpc.StatusCode.UNAVAILABLE
        assert "the server's certificate has expired" in caplog.text
    finally:
        served.stop(0)


# --- rotation without a restart ---------------------------------------------------------------


def replace_files(target: TlsConfig, source: TlsConfig) -> None:
    """Overwrite `target`'s files with `source`'s (a renewal written in place, keys 0600)."""
    for name in ("ca", "cert", "key"):
        shutil.copyfile(getattr(source, name), getattr(target, name))


def test_replaced_certificate_files_are_used_by_new_connections_without_a_restart(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A move to a new CA, the hardest rotation: the server's and the client's files change on
    disk; neither is restarted nor rebuilt, and each new connection uses the new files."""
    new_pki = Pki(tmp_path / "new", "the new CA")
    server_tls = pki.issue("server")
    served = serve(server_tls)
    client_tls = pki.client("relayer")
    caplog.set_level(logging.INFO, logger="relay.rpc.tls")
    try:
        kept = open_channel(address(served), client_tls)  # one connection open across the rotation
        assert check(kept) == grpc.StatusCode.OK
        replace_files(server_tls, new_pki.issue("server"))
        # New connections get the new certificate: a client of the old CA is refused now...
        with open_channel(address(served), pki.client("old-client")) as old:
            assert check(old) == grpc.StatusCode.UNAVAILABLE
        assert "TLS files reloaded" in caplog.text
        # ...while the connection opened before the rotation keeps working.
        assert check(kept) == grpc.StatusCode.OK
        kept.close()

        # The client side: one channel, its files replaced on disk, reconnects with the new ones.
        channel = open_channel(address(served), client_tls)
        assert check(channel) == grpc.StatusCode.UNAVAILABLE
        renewed = new_pki.client("relayer")
        for name in ("ca", "cert", "key"):
            source, destination = getattr(renewed, name), getattr(client_tls, name)
            assert source is not None and destination is not None
            shutil.copyfile(source, destination)
        eventually(lambda: check(channel) == grpc.StatusCode.OK, 10, "the channel reloaded its files")
        assert channel.generation >= 1
        channel.close()
    finally:
        served.stop(0)


def test_unusable_new_files_are_refused_and_the_previous_certificate_stays_in_use(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    server_tls = pki.issue("server")
    served = serve(server_tls)
    caplog.set_level(logging.ERROR, logger="relay.rpc.tls")
    try:
        # Half a rotation: a new certificate whose key is not there yet.
        shutil.copyfile(pki.issue("other").cert, server_tls.cert)
        with open_channel(address(served), pki.client("relayer")) as channel:
            assert check(channel) == grpc.StatusCode.OK  # still the previous certificate
        assert "not usable" in caplog.text and "does not match" in caplog.text
    finally:
        served.stop(0)


def test_a_tls_key_readable_by_others_is_refused_at_start(pki: Pki) -> None:
    tls = pki.issue("server")
    os.chmod(tls.key, 0o644)
    with pytest.raises(ConfigurationError, match=f"chmod 600 {tls.key}"):
        serve(tls)


# --- the operator token -----------------------------------------------------------------------


def retry_details(channel: grpc.Channel) -> tuple[grpc.StatusCode, str]:
    request = relay_service_pb2.RetryMessageRequest(id=b"\x05" * 32, operator_token=TOKEN)
    try:
        relay_service_pb2_grpc.RelayServiceStub(channel).RetryMessage(request, timeout=5)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def test_the_operator_token_is_refused_over_plaintext_even_in_development_mode(world: World) -> None:  # noqa: F811
    relayer = world.relayer().open()
    relayer.serve()
    try:
        with open_channel(relayer.address, None) as channel:
            code, details = retry_details(channel)
        assert code == grpc.StatusCode.PERMISSION_DENIED and "plaintext" in details
    finally:
        relayer.stop()


def test_the_operator_token_is_refused_on_the_public_port_and_accepted_on_the_operator_port(
    tls_world: World,  # noqa: F811
    pki: Pki,
) -> None:
    relayer = tls_world.relayer().open()
    relayer.serve()
    try:
        assert relayer.operator_port and relayer.operator_port != relayer.port
        # The public port: server TLS for dApps (no client certificate), and a clear refusal.
        with open_channel(relayer.address, pki.client()) as public:
            assert check(public) == grpc.StatusCode.OK
            code, details = retry_details(public)
        assert code == grpc.StatusCode.PERMISSION_DENIED and "operator port (operator_listen)" in details
        # Even a client that has a certificate: the public port never asks for it.
        with open_channel(relayer.address, pki.client("operator")) as public:
            assert retry_details(public)[0] == grpc.StatusCode.PERMISSION_DENIED
            # The other operator call, SubmitHandover, is refused there before its body is read.
            stub = relay_service_pb2_grpc.RelayServiceStub(public)
            with pytest.raises(grpc.RpcError) as refused:
                stub.SubmitHandover(
                    relay_service_pb2.SubmitHandoverRelayRequest(operator_token="x"), timeout=10
                )
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "operator port (operator_listen)" in (refused.value.details() or "")
        # The operator port wants a client certificate of the relayer's CA...
        with open_channel(relayer.operator_address, pki.client()) as anonymous:
            assert check(anonymous) == grpc.StatusCode.UNAVAILABLE
        # ...and with one, the token is checked: the unknown id is NOT_FOUND, past the permission.
        with open_channel(relayer.operator_address, pki.client("operator")) as operator:
            assert retry_details(operator)[0] == grpc.StatusCode.NOT_FOUND
    finally:
        relayer.stop()


def test_the_relayer_probes_itself_over_tls(tls_world: World) -> None:  # noqa: F811
    relayer = tls_world.relayer().open()
    relayer.serve()
    try:
        detail = relayer.readiness()[1]
        assert "does not answer" not in detail, detail
    finally:
        relayer.stop()


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["attestor", "submitter", "relayer"])
def test_a_role_without_tls_or_the_development_flag_does_not_start(role: str, tmp_path: Path) -> None:
    from relay.relayer import RelayerConfig
    from relay.roles.attestor import AttestorConfig
    from relay.roles.submitter import SubmitterConfig

    chain = {"name": "a", "domain": 1, "rpc_urls": ["http://127.0.0.1:1"], "gateway": "0x" + "42" * 20}
    configs: dict[str, tuple[Any, dict[str, Any]]] = {
        "attestor": (
            AttestorConfig,
            {"chain": chain, "bls_key": {"value": "0x1"}, "signer_index": 0, "epoch": 1},
        ),
        "submitter": (SubmitterConfig, {"chain": chain, "key": {"value": "0x1"}}),
        "relayer": (
            RelayerConfig,
            {
                "sources": [
                    {"chain": chain, "committee": {"epoch": 1, "members": []}, "attestors": ["127.0.0.1:1"]}
                ]
            },
        ),
    }
    model, data = configs[role]
    with pytest.raises(ConfigurationError, match="plaintext gRPC is refused; set tls"):
        load_config(model, None, {}, data)
    with pytest.raises(ConfigurationError, match="tls.cert: Field required"):
        load_config(model, None, {}, {**data, "tls": {"ca": "ca.crt", "key": "tls.key"}})
    if role == "relayer":
        with pytest.raises(ConfigurationError, match="operator_listen needs tls"):
            load_config(
                model, None, {}, {**data, "insecure_plaintext": True, "operator_listen": "127.0.0.1:0"}
            )


# --- the command line -------------------------------------------------------------------------


def test_relay_send_wait_names_the_tls_cause_before_sending(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import relay.client
    from relay.cli import main

    public = serve(pki.issue("relayer"), require_client_certificate=False)
    sent: list[object] = []
    monkeypatch.setattr(relay.client, "send", lambda *args, **kwargs: sent.append(args) or b"\x02" * 32)
    monkeypatch.setenv("SENDER_KEY", "0x" + "11" * 32)
    argv = ["send", "--rpc", "http://127.0.0.1:1", "--gateway", "0x" + "42" * 20, "--key-env", "SENDER_KEY"]
    argv += ["--destination", "2", "--recipient", "0x" + "43" * 20, "--body", "hi", "--wait"]
    argv += ["--relay", address(public), "--timeout", "5"]
    try:
        other = Pki(tmp_path / "other", "another CA").client()
        assert main([*argv, "--ca", other.ca]) == 1
        err = capsys.readouterr().err
        assert "RelayerUnreachable" in err and "not signed by our CA" in err
        assert main(argv) == 2  # neither --ca nor --insecure
        assert "plaintext gRPC is refused" in capsys.readouterr().err
        assert main([*argv, "--insecure"]) == 1  # a plaintext client to a TLS relayer
        assert "requires TLS" in capsys.readouterr().err
        assert main([*argv, "--insecure", "--ca", pki.client().ca]) == 2
        assert main([*argv, "--ca", pki.client().ca, "--cert", "only-a-cert.crt"]) == 2
        assert sent == []  # nothing dispatched while the relayer cannot be reached
    finally:
        public.stop(0)


def test_relay_send_refuses_a_sender_key_file_others_can_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from relay.cli import main

    key_file = tmp_path / "sender.key"
    key_file.write_text("0x" + "11" * 32 + "\n")
    key_file.chmod(0o644)
    argv = ["send", "--rpc", "http://127.0.0.1:1", "--gateway", "0x" + "42" * 20, "--key-file", str(key_file)]
    assert main([*argv, "--destination", "2", "--recipient", "0x" + "43" * 20, "--body", "hi"]) == 2
    err = capsys.readouterr().err
    assert f"chmod 600 {key_file}" in err and "11" * 32 not in err
