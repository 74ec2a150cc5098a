"""A loopback JSON-RPC proxy that fails the first requests of chosen methods, for tests.

`FlakyRpcProxy(upstream, {"eth_estimateGas": 2}, mode="500")` forwards every POST to `upstream`
but answers the first 2 requests that contain an `eth_estimateGas` call with HTTP 500 (mode
"500"), HTTP 429 ("429"), or by closing the connection without an answer ("drop"). It counts the
failures it injected per method, so a test can prove the faults really happened.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FlakyRpcProxy:
    """The proxy; a context manager serving on 127.0.0.1 at `url`."""

    def __init__(self, upstream: str, failures: dict[str, int], mode: str = "500") -> None:
        if mode not in ("500", "429", "drop"):
            raise ValueError(f"unknown mode {mode!r}")
        self.upstream = upstream
        self.remaining = dict(failures)
        self.mode = mode
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                method = proxy._fault_for(body)
                if method is not None:
                    if proxy.mode == "drop":
                        self.close_connection = True
                        self.connection.close()
                        return
                    status = int(proxy.mode)
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "5")
                    self.end_headers()
                    self.wfile.write(b"flaky")
                    return
                request = urllib.request.Request(  # noqa: S310 - upstream is a loopback http URL
                    proxy.upstream, data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - same
                    payload = answer.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _fault_for(self, body: bytes) -> str | None:
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        calls = parsed if isinstance(parsed, list) else [parsed]
        with self._lock:
            for call in calls:
                method = call.get("method") if isinstance(call, dict) else None
                if method and self.remaining.get(method, 0) > 0:
                    self.remaining[method] -= 1
                    self.injected[method] += 1
                    return str(method)
        return None

    @property
    def url(self) -> str:
        """The proxy's http URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FlakyRpcProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
