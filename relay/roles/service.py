"""What the attestor and submitter processes share: stopping and running (their gRPC servers are
started by `relay.rpc.server.start_grpc_server`, like the relayer's).

`ServedRole` is a mixin for a role with a started gRPC server (`_grpc`), an optional HTTP health server
(`_health`), a `stopping` event, `start()` and a `run_loop()`; `stop_grace` is how long in-flight
calls get to finish on stop.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from relay.rpc.server import GrpcServer


class ServedRole:
    """stop() and run() for a role process that serves gRPC (and health over HTTP)."""

    stop_grace: float = 2.0
    stopping: threading.Event
    _grpc: GrpcServer | None
    _health: Any

    def start(self) -> Any:  # pragma: no cover - every role defines it
        raise NotImplementedError

    def run_loop(self) -> None:  # pragma: no cover - every role defines it
        raise NotImplementedError

    def stop(self, grace: float | None = None) -> None:
        """Stop the loop and the servers; calls in progress get `grace` (default `stop_grace`) seconds."""
        seconds = self.stop_grace if grace is None else grace
        self.stopping.set()
        if self._grpc is not None:
            self._grpc.stop(seconds)  # NOT_SERVING first, then calls in progress get `seconds`
        if self._health is not None:
            self._health.stop()

    def run(self) -> int:
        """Serve until `stop()` (the CLI calls it on SIGTERM/SIGINT); return the exit code."""
        self.start()
        try:
            self.run_loop()
        finally:
            self.stop()
        return 0

    def run_until_signalled(self) -> int:
        """`run()`, with SIGTERM and SIGINT asking the loop to stop (then it shuts down cleanly)."""
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda _signal, _frame: self.stopping.set())
        return self.run()
