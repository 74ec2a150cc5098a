"""A local anvil chain as a child process, for tests, benchmarks and `relay devnet`.

`AnvilProcess` starts `.tools/bin/anvil` (installed by `make tools`) on a loopback port, waits
until its JSON-RPC answers, and stops exactly the process it started, nothing else.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from relay.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ANVIL_PATH = PROJECT_ROOT / ".tools" / "bin" / "anvil"
LOOPBACK = "127.0.0.1"

# anvil's well-known development accounts (mnemonic "test test ... junk"); throw-away keys that
# every anvil instance funds with 10,000 ether.
DEV_PRIVATE_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
)

_START_TIMEOUT_SECONDS = 20.0
_STOP_TIMEOUT_SECONDS = 5.0
_PORT_ATTEMPTS = 3


class AnvilError(ConfigurationError):
    """anvil is missing, did not start, or exited early; the message carries its output."""


_DEFAULT_EPHEMERAL = (32768, 60999)
_LISTEN_RANGE_FLOOR = 10000
_issued: set[int] = set()
_issued_lock = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports."""
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL


def find_free_port() -> int:
    """Return a loopback TCP port that is free now and outside the kernel's ephemeral range.

    A port taken with bind(0) comes from the ephemeral range, which every outgoing connection
    (each HTTP request to anvil, each gRPC channel) also draws from, so a port chosen for a
    process that binds it later can be taken in between. Listening ports picked here come from
    below that range, which only other listeners use; a port is not handed out twice per process.
    """
    low, _high = _ephemeral_range()
    candidates = list(range(_LISTEN_RANGE_FLOOR, max(low, _LISTEN_RANGE_FLOOR + 1000)))
    share, shares = _worker_share()
    candidates = [port for port in candidates if port % shares == share]
    random.shuffle(candidates)
    with _issued_lock:
        for port in candidates:
            if port in _issued:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind((LOOPBACK, port))
                except OSError:
                    continue
            _issued.add(port)
            return port
    raise AnvilError("no free loopback port below the ephemeral range", low=low)


def _worker_share() -> tuple[int, int]:
    """(this process's share, number of shares) of the listening ports.

    Ports are not handed out twice per process, but two processes picking at once can draw the
    same one and the later bind fails. The test suite runs in several pytest-xdist workers at once
    (`PYTEST_XDIST_WORKER` = gw0, gw1, ..., `PYTEST_XDIST_WORKER_COUNT`), each starting devnets:
    each worker draws only ports congruent to its number, so workers never collide.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return 0, 1
    try:
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        index = int(worker.removeprefix("gw"))
    except ValueError:
        return 0, 1
    if count < 1 or not 0 <= index < count:
        return 0, 1
    return index, count


class AnvilProcess:
    """One anvil chain, started on `start()` or on entering the context manager.

    `port=None` picks a free loopback port (and retries with another one if anvil loses the race
    for it); `block_time=None` mines one block per transaction, otherwise every `block_time` seconds;
    `steps_tracing=True` makes `debug_traceTransaction` return struct logs (adapters/evm/gas_ideas.py).
    """

    def __init__(
        self,
        chain_id: int,
        port: int | None = None,
        block_time: float | None = None,
        anvil_path: Path | str = ANVIL_PATH,
        steps_tracing: bool = False,
    ) -> None:
        self.chain_id = chain_id
        self.steps_tracing = steps_tracing
        self.port = port
        self.block_time = block_time
        self.anvil_path = Path(anvil_path)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def rpc_url(self) -> str:
        """The HTTP JSON-RPC endpoint; only meaningful while the process runs."""
        if self.port is None:
            raise AnvilError("anvil has not been started")
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> AnvilProcess:
        """Start anvil and return once `eth_chainId` answers with our chain id."""
        if self.running:
            return self
        if not os.access(self.anvil_path, os.X_OK):
            raise AnvilError(f"anvil not found at {self.anvil_path}; run `make tools` to install it")
        pick_port = self.port is None
        for attempt in range(_PORT_ATTEMPTS if pick_port else 1):
            if pick_port:
                self.port = find_free_port()
            try:
                self._spawn_and_wait()
                return self
            except AnvilError:
                self.stop()
                if attempt + 1 >= (_PORT_ATTEMPTS if pick_port else 1):
                    raise
        raise AnvilError("unreachable")  # pragma: no cover

    def _spawn_and_wait(self) -> None:
        command = [
            str(self.anvil_path),
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
        ]
        if self.block_time is not None:
            command += ["--block-time", str(self.block_time)]
        if self.steps_tracing:
            command.append("--steps-tracing")  # geth-style struct logs from debug_traceTransaction
        # anvil logs every request; a file (not a pipe nobody reads) keeps it from blocking.
        self._log = tempfile.NamedTemporaryFile(prefix=f"anvil-{self.chain_id}-", suffix=".log")
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AnvilError(
                    f"anvil exited with code {self._process.returncode} on port {self.port}: {self.read_log()}"
                )
            if self._chain_id_answered() == self.chain_id:
                return
            time.sleep(0.05)
        raise AnvilError(f"anvil did not answer on {self.rpc_url} within {_START_TIMEOUT_SECONDS}s")

    def _chain_id_answered(self) -> int | None:
        request = urllib.request.Request(  # noqa: S310 - our own http://127.0.0.1 URL
            self.rpc_url,
            data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=1.0) as response:  # noqa: S310 - loopback http
                return int(json.load(response)["result"], 16)
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            return None

    def read_log(self, limit: int = 4000) -> str:
        """The tail of anvil's output, for error messages."""
        if self._log is None:
            return ""
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace")
        return text[-limit:]

    def stop(self) -> None:
        """Terminate the process this object started (kill it if it does not exit in time)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> AnvilProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        # Last resort so an abandoned object does not leave a chain running.
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            process.terminate()
