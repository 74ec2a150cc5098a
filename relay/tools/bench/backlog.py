"""The backlog drain: the relay's own capacity, with the senders out of the picture.

Every relayer replica of a devnet is stopped, messages are sent both ways and become final, the
replicas start again, and the drain is timed from all of them serving to the last delivery. The
relayers' CPU time over the same span is read from /proc (user + system, summed over replicas).
Used by `relay bench e2e` (one relayer) and its replica comparison (`e2e_replicas`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.tools.devnet_run import ProgressPrinter


@dataclass
class BacklogDrain:
    """One backlog-drain run: what was delivered, how fast, and the relayers' CPU time for it."""

    relayers: int
    sent: int
    delivered: int
    seconds: float  # from every relayer serving again to the last delivery
    cpu_seconds: float  # user + system CPU of every relayer process over the same span

    @property
    def rate(self) -> float:
        """Delivered messages per second."""
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_per_message(self) -> float:
        """Relayer CPU seconds per delivered message, summed over the replicas."""
        return self.cpu_seconds / self.delivered if self.delivered else 0.0


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds process `pid` has used (Linux /proc; 0 when unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)


def run_backlog(devnet: Any, count: int, timeout: float) -> BacklogDrain:
    """Send `count` each way with every relayer stopped; time the drain once they all serve again.

    Returns the delivered count, the seconds from the relayers serving to the last delivery, and
    the CPU time the relayer processes used over that span.
    """
    relayers = devnet.relayer_names
    print(
        f"backlog: {len(relayers)} relayer(s) stopped; sending {count} messages each way",
        file=sys.stderr,
        flush=True,
    )
    for name in relayers:
        devnet.terminate(name)
    alpha, beta = devnet.chains
    sent: list[bytes] = []
    senders = [
        threading.Thread(target=lambda s=src, d=dst: sent.extend(devnet.send(s, d, count)))
        for src, dst in ((alpha.domain, beta.domain), (beta.domain, alpha.domain))
    ]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    # Let every message become final before the relayers return, so only relay work is timed.
    time.sleep((devnet.options.confirmations + 2) * devnet.options.block_time)
    for name in relayers:
        devnet.restart(name, wait=False)
    devnet.wait_ready(relayers)
    serving = time.time()
    cpu_before = {name: process_cpu_seconds(devnet.processes[name].pid) for name in relayers}
    print("backlog: relayers serving again; draining", file=sys.stderr, flush=True)

    printer = ProgressPrinter(sys.stderr)
    # The finish time is each message's recorded delivery time, not when a poll saw it: polling
    # once a second keeps the measurement's own load on the relayer small.
    statuses = devnet.client().wait_all_delivered(sent, timeout=timeout, report=printer, interval=1.0)
    printer.finish()
    cpu = sum(process_cpu_seconds(devnet.processes[name].pid) - cpu_before[name] for name in relayers)
    delivered = [s for s in statuses.values() if s.state == "delivered"]
    finished = max((s.delivered_at for s in delivered), default=time.time())
    return BacklogDrain(len(relayers), len(sent), len(delivered), max(finished - serving, 1e-9), cpu)
