"""`RelayClient` and `relay send --wait` report a relayer that cannot be reached, at once.

Against a real loopback port where nothing listens (it was bound, then closed). Before, a wrong
`--relay` waited out the whole `--timeout` and then reported the message as `unseen`.
"""

from __future__ import annotations

import socket
import time

import pytest

from relay.cli import main
from relay.client import RelayClient, RelayerUnreachable

WAIT = 120.0  # the wait asked for; being told within a fraction of it is the point


@pytest.fixture
def dead_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


def test_wait_delivered_names_the_unreachable_address(dead_address: str) -> None:
    started = time.monotonic()
    with RelayClient(dead_address, insecure=True) as client, pytest.raises(RelayerUnreachable) as raised:
        client.wait_delivered(b"\x01" * 32, timeout=WAIT)
    assert dead_address in str(raised.value) and raised.value.reason == "RelayerUnreachable"
    assert time.monotonic() - started < WAIT / 4


def test_relay_send_wait_refuses_before_sending(
    dead_address: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import relay.client

    sent: list[object] = []
    monkeypatch.setattr(relay.client, "send", lambda *args: sent.append(args) or b"\x02" * 32)
    monkeypatch.setenv("SENDER_KEY", "0x" + "11" * 32)
    argv = ["send", "--rpc", "http://127.0.0.1:1", "--gateway", "0x" + "42" * 20, "--key-env", "SENDER_KEY"]
    argv += ["--destination", "2", "--recipient", "0x" + "43" * 20, "--body", "hi"]
    code = main([*argv, "--wait", "--relay", dead_address, "--timeout", str(WAIT), "--insecure"])
    err = capsys.readouterr().err
    assert code == 1 and "RelayerUnreachable" in err and dead_address in err
    assert sent == []  # nothing dispatched to a relay nobody runs
