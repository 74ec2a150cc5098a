"""The devnet runs with mutual TLS: its printed `relay send` line works as pasted, every role
refuses plaintext and strangers, and every secret file it wrote is readable by its owner only."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from relay.rpc.tls import ClientTls, open_channel
from relay.tools.devnet import Devnet
from relay.tools.processes import PROJECT_ROOT
from tests.pki import Pki

pytestmark = [pytest.mark.anvil, pytest.mark.timeout(300)]


def health(address: str, tls: ClientTls | None) -> grpc.StatusCode:
    with open_channel(address, tls) as channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_the_printed_relay_send_line_delivers_over_tls(devnet: Devnet) -> None:
    line = devnet.send_command()
    assert "--ca " in line and "--cert " in line and "--key " in line and "--insecure" not in line
    argv = shlex.split(line)
    assert argv[:2] == ["relay", "send"]
    before = devnet.received("beta")
    done = subprocess.run(
        [sys.executable, "-m", "relay", *argv[1:], "--timeout", "120"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "sent 0x" in done.stdout and "delivered" in done.stdout
    assert devnet.received("beta") - before == 1


def test_every_role_refuses_plaintext_and_clients_of_another_ca(devnet: Devnet, tmp_path: Path) -> None:
    stranger = Pki(tmp_path / "stranger", "a stranger's CA").client("stranger")
    ours = devnet.client_tls()
    for name, address in devnet.addresses.items():
        public = name == "relayer"  # dApps: server TLS, no client certificate needed
        assert health(address, ours) == grpc.StatusCode.OK, name
        assert health(address, None) == grpc.StatusCode.UNAVAILABLE, name
        # The stranger trusts our CA for the server, so only its own certificate can fail.
        foreign = ClientTls(ours.ca, stranger.cert, stranger.key)
        expected = grpc.StatusCode.OK if public else grpc.StatusCode.UNAVAILABLE
        assert health(address, foreign) == expected, name


def test_every_secret_file_the_devnet_wrote_is_readable_by_its_owner_only(devnet: Devnet) -> None:
    run_dir = devnet.run_dir
    assert run_dir is not None
    # keys/ also holds the attestors' signed logs (signatures, public): not secrets.
    secrets = [p for p in (run_dir / "keys").iterdir() if p.is_file() and p.suffix != ".jsonl"]
    secrets += list(devnet.tls_dir.glob("*/tls.key")) + [devnet.tls_dir / "ca" / "ca.key"]
    assert len(secrets) > 10
    loose = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in secrets if p.stat().st_mode & 0o077}
    assert loose == {}
