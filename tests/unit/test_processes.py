"""relay.tools.processes: devnet children die with the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.waiting import eventually

STARTER = """
import os, sys
from pathlib import Path
from relay.tools.processes import ManagedProcess
child = ManagedProcess("sleeper", [sys.executable, "-c", sys.argv[2]],
                       Path(sys.argv[1]), dict(os.environ))
child.start()
print(child.pid, flush=True)
sys.stdin.read()
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    status = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]
    return status != "Z"


SLEEPER = "import time; time.sleep(120)"


def executed(pid: int) -> bool:
    """Whether `pid` runs the sleeper itself: neither the starter's fork before its exec, nor
    setpriv (which sets the signal, then execs the sleeper)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return argv[1:3] == [b"-c", SLEEPER.encode()]


def test_a_child_gets_sigterm_when_its_starter_is_killed(tmp_path: Path) -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path / "sleeper.log"), SLEEPER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert starter.stdout is not None
    child = int(starter.stdout.readline())
    try:
        assert alive(child)
        # Kill the starter only once setpriv has exec'd the command: a starter killed before
        # setpriv set the parent-death signal leaves an orphan (PR_SET_PDEATHSIG's known race).
        eventually(lambda: executed(child) or None, 15, "setpriv's exec of the command")
        assert os.getsid(child) == child  # its own session: a terminal's ^C does not reach it
        starter.kill()  # SIGKILL: no chance to clean up
        starter.wait(timeout=10)
        eventually(lambda: not alive(child) or None, 15, "the orphaned child gone")
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
