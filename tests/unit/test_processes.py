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
child = ManagedProcess("sleeper", [sys.executable, "-c", "import time; time.sleep(120)"],
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


def test_a_child_gets_sigterm_when_its_starter_is_killed(tmp_path: Path) -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path / "sleeper.log")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert starter.stdout is not None
    child = int(starter.stdout.readline())
    try:
        assert alive(child)
        # setpriv sets the parent-death signal, then execs the command: wait for the exec (a
        # starter killed before that moment leaves an orphan, the known race of PR_SET_PDEATHSIG).
        eventually(lambda: b"time.sleep" in Path(f"/proc/{child}/cmdline").read_bytes() or None, 15, "exec")
        assert os.getsid(child) == child  # its own session: a terminal's ^C does not reach it
        starter.kill()  # SIGKILL: no chance to clean up
        starter.wait(timeout=10)
        eventually(lambda: not alive(child) or None, 15, "the orphaned child gone")
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
