"""A JSON-RPC proxy on loopback, in front of one real endpoint, that can lie.

`RpcProxy(upstream)` forwards every request to `upstream` (an anvil) and returns its answer,
unless a test sets `rewrite`: a function `(method, params, result) -> result` that may change
the result (a tampered log, an omitted one, a stale head), or `raw`: a function
`(request) -> bytes` whose return is sent back verbatim as the HTTP body (hostile answers that
are not even JSON-RPC). Use it as a context manager; `url` is where it listens.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Rewrite = Callable[[str, list[Any], Any], Any]
Raw = Callable[[dict[str, Any]], bytes]


class RpcProxy:
    """A lying JSON-RPC proxy (see the module docstring)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rewrite: Rewrite | None = None
        self.raw: Raw | None = None
        self.requests: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                answer = proxy.answer(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The proxy's own JSON-RPC URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def forward(self, request: dict[str, Any]) -> dict[str, Any]:
        """`request` as the upstream answers it."""
        call = urllib.request.Request(  # noqa: S310 - the test's own http:// upstream
            self.upstream, json.dumps(request).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(call, timeout=10) as response:  # noqa: S310 - as above
            answer: dict[str, Any] = json.loads(response.read())
        return answer

    def answer(self, body: bytes) -> bytes:
        """The HTTP body answering one JSON-RPC request, or a batch (each request rewritten alike)."""
        request = json.loads(body)
        if isinstance(request, list) and self.raw is None:
            return b"[" + b",".join(self.answer(json.dumps(r).encode()) for r in request) + b"]"
        self.requests.append(str(request.get("method")))
        if self.raw is not None:
            return self.raw(request)
        answer = self.forward(request)
        rewrite = self.rewrite
        if rewrite is not None and "result" in answer:
            answer["result"] = rewrite(
                str(request["method"]), list(request.get("params") or []), answer["result"]
            )
        return json.dumps(answer).encode()

    def __enter__(self) -> RpcProxy:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
