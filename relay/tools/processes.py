"""Child processes the devnet starts and stops: by PID only, never by name.

Each `ManagedProcess` is one `python -m relay ...` role with its own log file, started in its own
session and, on Linux, asked to exit with its parent (`PR_SET_PDEATHSIG`), so a devnet that dies
without cleaning up leaves nothing behind. `stop()` terminates, then kills after a timeout.
`grpc_serving(address, tls)` tells whether a started role serves yet (its gRPC health check).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_SECONDS = 8.0


def with_parent_death_signal(argv: Sequence[str]) -> list[str]:
    """`argv` run under util-linux's `setpriv --pdeathsig TERM`: the child gets SIGTERM if the
    process that started it dies without cleaning up (Linux). Not a `preexec_fn`: Python code
    between fork and exec is unsafe in a parent with threads (gRPC's), and once killed children
    at start-up with nothing but gRPC's "epoll_wait error: Bad file descriptor" in their logs."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else list(argv)


class ManagedProcess:
    """One `python -m relay ...` child: started, watched and stopped by its PID only."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """The PID of the running child, if any."""
        return self.popen.pid if self.popen is not None else None

    @property
    def alive(self) -> bool:
        """Whether the child is running."""
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        """Start the child (appending to its log file)."""
        if self.alive:
            return
        with open(self.log_path, "ab") as log_file:
            self.popen = subprocess.Popen(
                with_parent_death_signal(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=PROJECT_ROOT,
                env=self.env,
                start_new_session=True,
            )
        self.starts += 1

    def signal(self, number: int) -> None:
        """Send `number` to this child (and only to it)."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(number)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL; return the exit code (None if not running)."""
        process = self.popen
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.popen = None
        return process.returncode

    def kill(self) -> None:
        """SIGKILL (`kill -9`): no clean shutdown, as a crash."""
        process = self.popen
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self.popen = None

    def tail(self, lines: int = 20) -> str:
        """The last lines of the child's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def grpc_serving(address: str, tls: Any, timeout: float = 1.0) -> bool:
    """Whether the gRPC server at `address` answers its health check with SERVING (over TLS with
    `tls`, a `relay.rpc.tls.TlsFiles`; plaintext with None)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from relay.rpc.tls import open_channel

    with open_channel(address, tls) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
