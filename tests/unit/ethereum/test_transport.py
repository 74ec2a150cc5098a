"""The HTTP transports against a local server: JSON bodies, 404s, JSON-RPC results and errors, outages."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapters.ethereum.transport import (
    BeaconTransport,
    ExecutionTransport,
    HttpBeaconTransport,
    HttpExecutionTransport,
    ReplayTransport,
    ResponseNotFound,
    RpcCallFailed,
    RpcMethodNotFound,
)
from relay.errors import RpcUnavailable


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/eth/v1/beacon/light_client/finality_update":
            self._send(200, {"version": "deneb", "data": {"x": "1"}})
        elif self.path == "/broken":
            self._send(500, {"message": "internal"})
        else:
            self._send(404, {"code": 404, "message": "not found"})

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        method = request["method"]
        if method == "eth_blockNumber":
            self._send(200, {"jsonrpc": "2.0", "id": request["id"], "result": "0x10"})
        elif method == "eth_getBlockByNumber":
            self._send(200, {"jsonrpc": "2.0", "id": request["id"], "result": None})
        elif method == "eth_getBlockReceipts":
            self._send(
                200,
                {
                    "jsonrpc": "2.0",
                    "id": request["id"],
                    "error": {"code": -32601, "message": "no such method"},
                },
            )
        else:
            self._send(
                200, {"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32000, "message": "boom"}}
            )


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_beacon_transport(server: str) -> None:
    beacon = HttpBeaconTransport(server, timeout=5)
    assert isinstance(beacon, BeaconTransport)
    assert beacon.get("/eth/v1/beacon/light_client/finality_update") == {
        "version": "deneb",
        "data": {"x": "1"},
    }
    with pytest.raises(ResponseNotFound):
        beacon.get("/eth/v1/beacon/light_client/bootstrap/0x00")
    with pytest.raises(RpcUnavailable) as error:
        beacon.get("/broken")
    assert error.value.fields["status"] == 500


def test_execution_transport(server: str) -> None:
    execution = HttpExecutionTransport(server, timeout=5)
    assert isinstance(execution, ExecutionTransport)
    assert execution.call("eth_blockNumber", []) == "0x10"
    with pytest.raises(ResponseNotFound):
        execution.call("eth_getBlockByNumber", ["0x1", False])
    with pytest.raises(RpcMethodNotFound):
        execution.call("eth_getBlockReceipts", ["0x1"])
    with pytest.raises(RpcCallFailed) as error:
        execution.call("eth_other", [])
    assert error.value.fields["code"] == -32000


def test_unreachable_node_is_transient() -> None:
    with pytest.raises(RpcUnavailable):
        HttpBeaconTransport("http://127.0.0.1:1", timeout=2).get("/x")
    with pytest.raises(RpcUnavailable):
        HttpExecutionTransport("http://127.0.0.1:1", timeout=2).call("eth_blockNumber", [])


def test_replay_transport_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError):
        ReplayTransport({"beacon": {}, "execution": [], "extra": 1})


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "127.0.0.1:5052", ""])
def test_node_urls_must_be_http(url: str) -> None:
    """urllib would open `file:` and `ftp:` URLs too: a node URL from config must be http(s)."""
    from adapters.ethereum.transport import HttpBeaconTransport, HttpExecutionTransport
    from relay.errors import ConfigurationError

    for transport in (HttpBeaconTransport, HttpExecutionTransport):
        with pytest.raises(ConfigurationError, match="http"):
            transport(url)
