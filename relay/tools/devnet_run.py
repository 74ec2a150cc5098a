"""A devnet run: send messages on every route (both ways, or one way in light-client mode), watch
them to delivery, summarise.

`run_messages(devnet, count)` sends `count` messages on each of `devnet.routes` with the example app, follows them
through the relayer's `RelayService` until every one is delivered (or the timeout), and returns a
`RunResult`: counts by state, latency from source finality to destination receipt (timed by a
`HeadClock` per chain), gas per message from the delivery receipts, and whether the recipients'
counters agree. `format_summary` prints it; `ProgressPrinter` shows progress on a terminal.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.errors import RelayError
from relay.tools.devnet import Devnet


@dataclass
class RunResult:
    """What one devnet run measured."""

    sent: int
    delivered: int
    counts: dict[str, int]
    duration: float
    latencies: list[float]
    gas_per_message: float
    transactions: int
    received_ok: bool
    epochs: dict[int, int] | None = None  # with a rotation: each origin's committee epoch afterwards
    rotation_error: str = ""
    committee: str = ""  # how the Gateways verified each origin, e.g. "ecdsa, 3 of 4"
    one_way: bool = False  # light-client mode: messages flow from the source chain only
    notes: list[str] = field(default_factory=list)  # mode-specific lines for the summary

    @property
    def throughput(self) -> float:
        """Delivered messages per second, from the first send to the last delivery."""
        return self.delivered / self.duration if self.duration > 0 else 0.0


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (nearest rank) of `values`; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[rank]


class HeadClock:
    """Wall-clock time each block height was first seen on a chain (to date source finality)."""

    def __init__(self, rpc_url: str, interval: float = 0.1) -> None:
        self.rpc_url = rpc_url
        self.interval = interval
        self.first_seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="head-clock", daemon=True)

    def start(self) -> HeadClock:
        """Start polling the head in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        from adapters.evm.rpc import EvmEndpoint

        endpoint = EvmEndpoint(self.rpc_url)
        last = -1
        while not self._stop.is_set():
            try:
                head = int(endpoint.call("eth_blockNumber", lambda: endpoint.web3.eth.block_number))
            except RelayError:
                head = last
            now = time.time()
            for number in range(last + 1, head + 1):
                self.first_seen.setdefault(number, now)
            last = max(last, head)
            self._stop.wait(self.interval)

    def time_of(self, number: int) -> float | None:
        """When block `number` was first seen, if it was."""
        return self.first_seen.get(number)


def run_messages(
    devnet: Devnet,
    count: int,
    *,
    timeout: float = 600.0,
    report: Callable[[dict[str, int], int, int], None] | None = None,
    rotate_after: int | None = None,
    say: Callable[[str], None] = lambda _text: None,
) -> RunResult:
    """Send `count` messages on each route, wait until all are delivered (or `timeout`), measure.

    Latency is from source finality (the wall-clock time the block `confirmations` above the
    message's block appeared; in light-client mode the message's block itself, the simulated
    chain's finality being part of the path) to the relayer's record of the destination receipt. With
    `rotate_after`, messages go out in chunks, one per block, and once `rotate_after` were
    delivered both committees are handed over (`relay.tools.devnet_rotation`) while the rest
    is still being sent.
    """
    routes = [(source.domain, destination.domain) for source, destination in devnet.routes]
    clocks = {chain.domain: HeadClock(chain.rpc_url).start() for chain in devnet.chains}
    before = {chain.domain: devnet.received(chain.domain) for chain in devnet.chains}
    client = devnet.client()
    started = time.time()
    try:
        sent: list[bytes] = []
        expected = {chain.domain: 0 for chain in devnet.chains}
        rotation = None
        if rotate_after is not None:
            from relay.tools.devnet_rotation import RotationAfter

            baseline = sum(before.values())
            rotation = RotationAfter(devnet, rotate_after, baseline, say).start()
        chunk = max(1, count // 20) if rotate_after is not None else count

        def send_all(source: int, destination: int) -> None:
            remaining = count
            while remaining > 0:
                size = min(chunk, remaining)
                sent.extend(devnet.send(source, destination, size, body_prefix=f"hello {count - remaining}"))
                remaining -= size
                if remaining and rotate_after is not None:
                    time.sleep(max(devnet.options.block_time, 0.2))  # traffic paced by the block time

        senders = [threading.Thread(target=send_all, args=route) for route in routes]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()
        for _, destination in routes:
            expected[destination] = count
        statuses = client.wait_all_delivered(sent, timeout=timeout, report=report)
        rotated = rotation.stop() if rotation is not None else None
        finished = max((s.delivered_at for s in statuses.values() if s.delivered_at), default=time.time())
    finally:
        for clock in clocks.values():
            clock.stop()
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status.state] = counts.get(status.state, 0) + 1
    delivered = [s for s in statuses.values() if s.state == "delivered"]
    latencies = []
    for status in delivered:
        # Light-client mode: finality is the simulated beacon chain's, part of what is measured.
        depth = 0 if devnet.lightclient is not None else devnet.options.confirmations
        final_at = clocks[status.origin].time_of(status.source_block + depth)
        if final_at is not None and status.delivered_at:
            latencies.append(max(0.0, status.delivered_at - final_at))
    gas_total, transactions = 0, 0
    for chain in devnet.chains:
        hashes = sorted(
            {
                s.destination_transaction
                for s in delivered
                if s.destination == chain.domain and s.destination_transaction
            }
        )
        from adapters.evm.deploy import gas_used_by

        used = gas_used_by(chain.rpc_url, hashes)
        gas_total += sum(used.values())
        transactions += len(used)
    received_ok = all(
        devnet.received(chain.domain) - before[chain.domain] == expected[chain.domain]
        for chain in devnet.chains
    )
    return RunResult(
        sent=len(sent),
        delivered=len(delivered),
        counts=counts,
        duration=max(finished - started, 1e-9),
        latencies=latencies,
        gas_per_message=gas_total / len(delivered) if delivered else 0.0,
        transactions=transactions,
        received_ok=received_ok,
        epochs=final_epochs(devnet) if rotated is not None else None,
        rotation_error=rotated.error if rotated is not None else "",
        committee=describe_verification(devnet),
        one_way=len(routes) == 1,
        notes=verification_notes(devnet),
    )


def verification_notes(devnet: Devnet) -> list[str]:
    """Light-client mode: where the destination's light client got to and what its updates cost."""
    if devnet.lightclient is None:
        return []
    from relay.tools.devnet_lightclient import summary_lines

    try:
        return summary_lines(devnet)
    except RelayError as error:
        return [f"light client state unavailable: {error}"]


def describe_verification(devnet: Devnet) -> str:
    """How the destination verified each origin, for the summary."""
    if devnet.lightclient is not None:
        return devnet.lightclient.describe()
    return f"{devnet.options.committee_scheme}, {devnet.committee.threshold} of {len(devnet.committee)}"


def final_epochs(devnet: Devnet) -> dict[int, int]:
    """Each origin's committee epoch on its destination gateway (`committeeOf`: either scheme)."""
    from relay.tools.rotation import _committee_reader

    epochs = {}
    for index, origin in enumerate(devnet.chains):
        destination = devnet.chains[1 - index]
        summary = _committee_reader(destination.rpc_url, destination.gateway).committee_of(origin.domain)
        epochs[origin.domain] = summary[0] if summary is not None else 0
    return epochs


def format_summary(result: RunResult) -> str:
    """The closing lines of a devnet run."""
    lines = [
        f"delivered {result.delivered}/{result.sent} "
        f"({'recipient counters agree' if result.received_ok else 'RECIPIENT COUNTERS DISAGREE'})",
        f"throughput {result.throughput:.1f} messages/s over {result.duration:.1f} s",
        f"latency {'dispatch block (finality included)' if result.one_way else 'source finality'} "
        f"-> destination receipt: p50 {percentile(result.latencies, 0.5):.2f} s, "
        f"p99 {percentile(result.latencies, 0.99):.2f} s",
        f"gas per delivered message {result.gas_per_message:,.0f} ({result.transactions} delivery transactions)",
    ]
    if result.one_way:
        lines.append("messages flow one way: source -> destination (light-client mode)")
        lines.append(f"verification: {result.committee}")
        lines.extend(result.notes)
    elif result.committee:
        lines.append(f"committee scheme: {result.committee}")
    if result.epochs is not None:
        lines.append(
            "committee epochs after the rotation: "
            + ", ".join(f"origin {origin} epoch {epoch}" for origin, epoch in sorted(result.epochs.items()))
            + (f" (rotation failed: {result.rotation_error})" if result.rotation_error else "")
        )
    others = {k: v for k, v in result.counts.items() if k != "delivered"}
    if others:
        lines.append("not delivered: " + ", ".join(f"{k} {v}" for k, v in sorted(others.items())))
    return "\n".join(lines)


class ProgressPrinter:
    """Counts by state, rewritten in place on a terminal, else one line per second."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._last_line = 0.0

    def __call__(self, counts: dict[str, int], delivered: int, total: int) -> None:
        """Show one progress report (rate-limited to one line a second off a terminal)."""
        now = time.monotonic()
        if not self.tty and now - self._last_line < 1.0:
            return
        self._last_line = now
        states = "  ".join(f"{name} {counts[name]}" for name in sorted(counts) if counts[name])
        line = f"[{now - self.started:6.1f}s] delivered {delivered}/{total}  {states}"
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the in-place line on a terminal."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
