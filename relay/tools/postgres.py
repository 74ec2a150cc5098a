"""A throw-away PostgreSQL server for the tests, the devnet and the benches.

`PostgresServer(root)` creates a cluster with `initdb` in `root/data` (superuser `relay`, trust
authentication on loopback, UTF-8, C locale) and runs `postgres` on 127.0.0.1 at a free port, TCP
only (no Unix socket: its path would outgrow the 107-byte limit under a pytest tmp dir). The
binaries come from PATH or Debian's `/usr/lib/postgresql/<version>/bin` (`make tools` installs
them, see scripts/install-postgres.sh).

PostgreSQL refuses to run as root, and CI runs as root: then the server runs as the `postgres`
system user (or a `relaypg` system user created for it) through `runuser`, owning its data folder.
When that user cannot reach `root` (a pytest tmp dir is private to root), the cluster lives in a
private temporary folder instead, `root/data` links to it, and `close()` removes it.

`durable=False` (the tests) turns off fsync and full-page writes: fast, and fine for data nobody
keeps; a crash of the server itself (`stop(immediate=True)`) still loses no commit. The server is a child process asked to exit with its parent (Linux),
stopped by its PID only; `stop()` / `start()` keep the port, so DSNs stay valid across a restart.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

from relay.errors import ConfigurationError, RelayError
from relay.tools.processes import with_parent_death_signal

SUPERUSER = "relay"
SERVICE_USERS = ("postgres", "relaypg")  # as root: the first that exists, else the last is created
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
DEBIAN_BINARIES = Path("/usr/lib/postgresql")


class PostgresServerError(RelayError):
    """The PostgreSQL server could not be created, started or stopped (its log says why)."""


def find_binaries() -> Path:
    """The folder holding `initdb` and `postgres`: from PATH, else the newest Debian version."""
    on_path = shutil.which("initdb")
    if on_path and (Path(on_path).parent / "postgres").exists():
        return Path(on_path).parent
    if DEBIAN_BINARIES.is_dir():
        versions = sorted(
            (p for p in DEBIAN_BINARIES.iterdir() if (p / "bin" / "initdb").exists()),
            key=lambda p: int(p.name) if p.name.isdecimal() else 0,
        )
        if versions:
            return versions[-1] / "bin"
    raise ConfigurationError(
        "PostgreSQL is not installed (run `make tools`, which installs Debian's postgresql package)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now: below the ephemeral range, which
    outgoing connections draw from, and never one another pytest worker may draw
    (`adapters.evm.anvil.find_free_port`)."""
    from adapters.evm.anvil import find_free_port

    return find_free_port()


class PostgresServer:
    """One PostgreSQL server in `root`, on 127.0.0.1:`port` (0: a free one, kept across restarts)."""

    def __init__(self, root: Path, port: int = 0, *, durable: bool = True) -> None:
        self.root = Path(root)
        self.port = port
        self.durable = durable
        self.binaries = find_binaries()
        self.log_path = self.root / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._service_user = self._choose_service_user() if os.geteuid() == 0 else None
        self._private_home: Path | None = None  # a temporary folder the service user owns, if used
        self.data_dir = self.root / "data"

    # --- lifetime -----------------------------------------------------------------------------

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    @property
    def running(self) -> bool:
        """Whether the server process is up (it may still be starting)."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Create the cluster if needed and start the server; return once it accepts connections."""
        if self.running:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        attempts = 3 if self.port == 0 else 1
        for attempt in range(attempts):
            if self.port == 0 or attempt:
                self.port = free_port()
            self._launch()
            if self._wait_ready():
                return
            if "could not bind" not in self.log_tail():  # not a port taken in the meantime
                break
        raise PostgresServerError("PostgreSQL did not start", port=self.port, log=self.log_tail())

    def stop(self, *, immediate: bool = False) -> None:
        """Stop the server: a fast shutdown (SIGINT: clients disconnected, work committed so far
        kept), or `immediate` (SIGQUIT: like a crash, recovered from the WAL at the next start)."""
        process = self.process
        if process is None:
            return
        pid = self._postmaster_pid()
        if process.poll() is None and pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT if immediate else signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove the private folder it used, if any (`root` stays)."""
        self.stop()
        if self._private_home is not None:
            shutil.rmtree(self._private_home, ignore_errors=True)
            with contextlib.suppress(OSError):
                (self.root / "data").unlink()
            self._private_home = None
            self.data_dir = self.root / "data"

    # --- use ----------------------------------------------------------------------------------

    def dsn(self, database: str = "postgres") -> str:
        """The libpq URI of `database` on this server, as the trusted superuser (no password)."""
        if not self.port:
            raise PostgresServerError("the server has no port before start()")
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database `name`; return its DSN."""
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name` (and its connections, PostgreSQL 13+), if it exists."""
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def create_role(self, name: str, password: str) -> None:
        """Create a login role that must authenticate with `password` (SCRAM) on loopback, owning
        nothing yet: for tests of password handling (every other role is trusted)."""
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(password)
                )
            )
        hba = self.data_dir / "pg_hba.conf"
        rule = f"host all {name} 127.0.0.1/32 scram-sha-256\n"
        hba.write_text(rule + hba.read_text())  # first match wins: before the trust rules
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute("SELECT pg_reload_conf()")

    @property
    def version(self) -> str:
        """The server's version, e.g. "15.14" (from `postgres --version`)."""
        output = subprocess.run(
            [str(self.binaries / "postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout
        found = re.search(r"\(PostgreSQL\)\s+(\S+)", output)
        return found.group(1) if found else output.strip()

    def log_tail(self, lines: int = 20) -> str:
        """The last `lines` of the server's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # --- internals ----------------------------------------------------------------------------

    def _choose_service_user(self) -> str:
        for name in SERVICE_USERS:
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                return name
        name = SERVICE_USERS[-1]
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        return name

    def _as_service_user(self, argv: Sequence[str]) -> list[str]:
        if self._service_user is None:
            return list(argv)
        return ["runuser", "-u", self._service_user, "--", *argv]

    def _reachable_by_service_user(self, path: Path) -> bool:
        if self._service_user is None:
            return True
        probe = subprocess.run(self._as_service_user(["test", "-x", str(path)]), check=False)
        return probe.returncode == 0

    def _prepare_data_dir(self) -> None:
        """As root: a data folder the service user owns and can reach."""
        if self._service_user is None:
            return
        entry = pwd.getpwnam(self._service_user)
        if not self._reachable_by_service_user(self.root):
            self._private_home = Path(tempfile.mkdtemp(prefix="relay-postgres-"))
            os.chown(self._private_home, entry.pw_uid, entry.pw_gid)
            if not self._reachable_by_service_user(self._private_home):
                raise PostgresServerError(
                    "the PostgreSQL service user cannot reach the temporary folder",
                    user=self._service_user,
                    folder=str(self._private_home),
                )
            target = self._private_home / "data"
            target.mkdir(mode=0o700)
            os.chown(target, entry.pw_uid, entry.pw_gid)
            with contextlib.suppress(FileNotFoundError):
                self.data_dir.unlink()
            self.data_dir.symlink_to(target)
            self.data_dir = target
            return
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        self._prepare_data_dir()
        argv = [
            str(self.binaries / "initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
        ]
        if not self.durable:
            argv.append("--no-sync")
        with open(self.log_path, "ab") as log:
            done = subprocess.run(
                self._as_service_user(argv), stdout=log, stderr=subprocess.STDOUT, cwd="/", check=False
            )
        if done.returncode != 0:
            raise PostgresServerError("initdb failed", code=done.returncode, log=self.log_tail())
        settings = [
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = ''",
            "max_connections = 300",
            "log_min_messages = warning",
        ]
        if not self.durable:
            # No fsync: a commit still writes its WAL to the OS before it returns, so a crash of
            # the server (kill -9, `stop(immediate=True)`) loses nothing; only a crash of the
            # machine would. (synchronous_commit stays on: off would lose the last commits.)
            settings += ["fsync = off", "full_page_writes = off"]
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# relay.tools.postgres\n" + "\n".join(settings) + "\n")

    def _launch(self) -> None:
        argv = [str(self.binaries / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                with_parent_death_signal(self._as_service_user(argv)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd="/",
                start_new_session=True,
            )

    def _wait_ready(self) -> bool:
        """Wait until the server accepts a connection (True) or its process exits (False)."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not self.running:
                self.process = None
                return False
            with contextlib.suppress(psycopg.OperationalError):
                psycopg.connect(self.dsn(), connect_timeout=2).close()
                return True
            time.sleep(0.1)
        self.stop(immediate=True)
        raise PostgresServerError("PostgreSQL did not accept connections in time", log=self.log_tail())

    def _postmaster_pid(self) -> int | None:
        """The postmaster's PID from its pid file (the child may be `runuser`, its parent)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        return self.process.pid if self.process is not None else None
