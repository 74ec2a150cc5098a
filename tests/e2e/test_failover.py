"""Failover on real processes: three relayer replicas on one PostgreSQL, and what goes wrong.

One devnet for the module (`relay.tools.devnet`, `store="postgres"`, `relayers=3`): its own
PostgreSQL server, two anvil chains, 8 attestors, 2 submitters and three relayer replicas
(`relayer-1` .. `relayer-3`) sharing the store, with a short lease (`LEASE_SECONDS`) so that a
takeover happens within a test's time. Each test sends a few hundred messages, breaks something
while they are in flight, and then checks the invariants, never the implementation:

- nothing lost: every message sent ends DELIVERED;
- nothing twice: each recipient's counter grew by exactly what was sent to it, the destination
  Gateway emitted exactly one `Delivered` per id, and the store recorded at most one delivering
  transaction per id (the one on the chain);
- no double submission: no second delivery of a message reached the chain (no `DeliverySkipped`
  event for a sent id, no reverted transaction to the Gateway while the test ran);
- the failure was handled as designed: a killed replica's source lease is taken over within the
  lease time (the measured time is printed), a replica stopped past its lease has its late writes
  fenced (`relay_fenced_writes_total`), replicas reconnect after PostgreSQL restarts.

The store is read directly with SQL as the database's superuser (what an operator's `psql` sees):
the `leases` table and the `messages` claims. Waits are bounded (`tests.waiting.eventually`); the
only sleep holds a SIGSTOP for the lease time, which is what is being tested.
"""

from __future__ import annotations

import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pytest

from adapters.evm.rpc import DELIVERED_TOPIC, EvmEndpoint
from relay.tools.devnet import Devnet, DevnetChain, DevnetOptions
from tests.waiting import eventually, metric_value

pytestmark = [pytest.mark.anvil, pytest.mark.timeout(420)]

LEASE_SECONDS = 5.0
POLL_INTERVAL = 0.25
# A survivor takes a lease over on its first pass after the lease expired; a pass under load
# (ingesting, proving, delivering) takes longer than the poll interval: this is its allowance.
TAKEOVER_MARGIN = 8 * POLL_INTERVAL
# What a replica logs when the store refuses to renew its delivery claims (relay.relayer.deliver).
LOST_CLAIM = "delivery claim lost"
MAX_BATCH = 20  # several delivery batches per replica, so a failure lands among claims in flight


# --- the module's devnet ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    options = DevnetOptions(
        run_root=tmp_path_factory.mktemp("failover"),
        store="postgres",
        relayers=3,
        lease_seconds=LEASE_SECONDS,
        durable_store=False,
        relayer_poll_interval=POLL_INTERVAL,
        block_time=1.0,
        confirmations=2,
        max_batch=MAX_BATCH,
        retry_base_delay=0.1,
        retry_max_delay=2.0,
        log_level="INFO",
    )
    network = Devnet(options).start()
    try:
        print(f"\nfailover devnet: PostgreSQL {network.database.version}, replicas {network.relayer_names}")
        yield network
    finally:
        network.stop()


@pytest.fixture
def devnet(replicas: Devnet) -> Iterator[Devnet]:
    """The module's devnet, with every replica running again (and serving) after each test."""
    yield replicas
    for name in replicas.relayer_names:
        process = replicas.processes[name]
        process.signal(signal.SIGCONT)  # a test that failed while one was stopped
        if not process.alive:
            replicas.restart(name, wait=False)
    replicas.wait_ready(replicas.relayer_names)


# --- reading the shared state ------------------------------------------------------------------------


class SharedStore:
    """SQL on the replicas' database as its superuser; reconnects after the server restarted."""

    def __init__(self, devnet: Devnet) -> None:
        self.dsn = devnet.database.server.dsn("relay")
        self._connection: psycopg.Connection[Any] | None = None

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        for attempt in range(2):
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
                return self._connection.execute(query, params).fetchall()
            except psycopg.OperationalError:
                self._connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def lease_owners(self, prefix: str) -> dict[str, tuple[str, int, float]]:
        """Lease name -> (owner, fence, expires_at) for the leases named `prefix`..."""
        found = self.rows(
            "SELECT name, owner, fence, expires_at FROM leases WHERE starts_with(name, %s)", prefix
        )
        # A source lease's owner is "<replica id>:<pid>:<token>" (one process): keep the replica id.
        return {name: (owner.split(":", 1)[0], fence, expires) for name, owner, fence, expires in found}

    def submitted_claims(self) -> dict[str, dict[bytes, int]]:
        """Replica id -> {message id: fence} of the SUBMITTED messages it holds a claim on."""
        claims: dict[str, dict[bytes, int]] = {}
        for owner, message_id, fence in self.rows(
            "SELECT claim_owner, id, fence FROM messages WHERE state = 'submitted' AND claim_owner <> ''"
        ):
            claims.setdefault(owner, {})[bytes(message_id)] = fence
        return claims

    def fences(self, ids: Sequence[bytes]) -> dict[bytes, int]:
        return {
            bytes(i): f for i, f in self.rows("SELECT id, fence FROM messages WHERE id = ANY(%s)", list(ids))
        }

    def recorded_transactions(self, ids: Sequence[bytes]) -> dict[bytes, list[bytes]]:
        """Message id -> the delivery transactions the store recorded for it."""
        found: dict[bytes, list[bytes]] = {}
        for message_id, hash_ in self.rows(
            "SELECT message_id, hash FROM transaction_messages WHERE message_id = ANY(%s)", list(ids)
        ):
            found.setdefault(bytes(message_id), []).append(bytes(hash_))
        return found

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


@pytest.fixture
def store(devnet: Devnet) -> Iterator[SharedStore]:
    shared = SharedStore(devnet)
    try:
        yield shared
    finally:
        shared.close()


def replica_id(devnet: Devnet, name: str) -> str:
    return f"relayer-{devnet.relayer_names.index(name) + 1}"


def replica_named(devnet: Devnet, replica: str) -> str:
    return devnet.relayer_names[int(replica.rsplit("-", 1)[1]) - 1]


def scrape(devnet: Devnet, name: str) -> str:
    with urllib.request.urlopen(f"http://{devnet.metrics_addresses[name]}/metrics", timeout=5) as response:
        return str(response.read().decode())


def ready(devnet: Devnet, name: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{devnet.metrics_addresses[name]}/readyz", timeout=3) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# --- sending and checking ---------------------------------------------------------------------------


class Traffic:
    """Messages sent both ways (from threads, so a failure can be injected while they are sent)."""

    def __init__(self, devnet: Devnet, each_way: int, label: str) -> None:
        self.devnet = devnet
        self.each_way = each_way
        self.before = {chain.domain: devnet.received(chain.domain) for chain in devnet.chains}
        self.first_block = {
            chain.domain: EvmEndpoint(chain.rpc_url).web3.eth.block_number for chain in devnet.chains
        }
        self.sent: dict[int, list[bytes]] = {}  # destination domain -> ids
        self.started = time.monotonic()
        alpha, beta = devnet.chains
        self._threads = [
            threading.Thread(target=self._send, args=(src, dst, label), name=f"send-{src.name}")
            for src, dst in ((alpha, beta), (beta, alpha))
        ]
        for thread in self._threads:
            thread.start()

    def _send(self, source: DevnetChain, destination: DevnetChain, label: str) -> None:
        self.sent[destination.domain] = self.devnet.send(
            source.domain, destination.domain, self.each_way, label
        )

    def join(self) -> list[bytes]:
        for thread in self._threads:
            thread.join(120)
        assert sorted(self.sent) == sorted(c.domain for c in self.devnet.chains), "a sender failed"
        return self.ids

    @property
    def ids(self) -> list[bytes]:
        return [i for ids in self.sent.values() for i in ids]

    def delivered_so_far(self) -> int:
        return sum(self.devnet.received(c.domain) - self.before[c.domain] for c in self.devnet.chains)

    def check_exactly_once(self, store: SharedStore, timeout: float = 180) -> float:
        """Every message delivered exactly once; returns the seconds from the first send."""
        ids = self.join()
        alive = [n for n in self.devnet.relayer_names if self.devnet.processes[n].alive]
        client = self.devnet.client(alive[-1])  # any replica answers for every message
        views = client.wait_all_delivered(ids, timeout=timeout, interval=0.5)
        states = Counter(views[i].state if i in views else "unseen" for i in ids)
        assert states == Counter({"delivered": len(ids)}), f"not all delivered: {dict(states)}"
        elapsed = time.monotonic() - self.started
        for chain in self.devnet.chains:  # nothing lost, nothing twice: the recipients' own count
            assert self.devnet.received(chain.domain) - self.before[chain.domain] == self.each_way
        for chain in self.devnet.chains:
            events = delivered_events(chain)
            twice = {i.hex(): events[i] for i in self.sent[chain.domain] if events[i] != 1}
            assert not twice, f"ids without exactly one Delivered event on {chain.name}: {twice}"
        for chain in self.devnet.chains:  # no second submission reached the chain either
            skipped, reverted = wasted_deliveries(chain, self.first_block[chain.domain])
            resent = sorted(i.hex() for i in self.sent[chain.domain] if skipped[i])
            assert not resent, f"ids delivered again (DeliverySkipped) on {chain.name}: {resent}"
            assert not reverted, f"reverted transactions to the Gateway on {chain.name}: {reverted}"
        recorded = store.recorded_transactions(ids)
        double = {i.hex(): [h.hex() for h in hashes] for i, hashes in recorded.items() if len(hashes) > 1}
        assert not double, f"messages the store recorded in more than one delivery transaction: {double}"
        for message_id, (hash_,) in recorded.items():
            view = views[message_id]
            if view.destination_transaction:
                assert view.destination_transaction == hash_
        print(
            f"store: {len(recorded)} of {len(ids)} messages with exactly one recorded delivery transaction "
            f"(the others confirmed as already delivered on the chain), none with more"
        )
        return elapsed


def wasted_deliveries(chain: DevnetChain, first_block: int) -> tuple[Counter[bytes], list[str]]:
    """What a second submission of a delivered message would leave on the chain since `first_block`:
    the Gateway's `DeliverySkipped` events (a batch carrying it again) per id, and the hashes of
    reverted transactions to the Gateway (a lone message sent again reverts `AlreadyDelivered`)."""
    endpoint = EvmEndpoint(chain.rpc_url)
    web3 = endpoint.web3
    gateway = web3.to_checksum_address(chain.gateway)
    skipped_topic = "0x" + web3.keccak(text="DeliverySkipped(bytes32)").hex().removeprefix("0x")
    logs = web3.eth.get_logs(
        {"address": gateway, "topics": [skipped_topic], "fromBlock": first_block, "toBlock": "latest"}
    )
    reverted = []
    for number in range(first_block, web3.eth.block_number + 1):
        for transaction in web3.eth.get_block(number, full_transactions=True)["transactions"]:
            if (
                transaction["to"] == gateway
                and web3.eth.get_transaction_receipt(transaction["hash"])["status"] == 0
            ):
                reverted.append(bytes(transaction["hash"]).hex())
    return Counter(bytes(entry["topics"][1]) for entry in logs), reverted


def delivered_events(chain: DevnetChain) -> Counter[bytes]:
    """How many `Delivered` events the chain's Gateway emitted per message id."""
    endpoint = EvmEndpoint(chain.rpc_url)
    logs = endpoint.web3.eth.get_logs(
        {
            "address": endpoint.web3.to_checksum_address(chain.gateway),
            "topics": ["0x" + DELIVERED_TOPIC.hex()],
            "fromBlock": 0,
            "toBlock": "latest",
        }
    )
    return Counter(bytes(entry["topics"][1]) for entry in logs)


# --- the tests ---------------------------------------------------------------------------------------


def test_a_killed_replica_is_taken_over_within_the_lease_and_nothing_is_lost(
    devnet: Devnet, store: SharedStore
) -> None:
    sources = {f"source/{chain.domain}" for chain in devnet.chains}
    eventually(
        lambda: set(store.lease_owners("source/")) == sources, 60, "both source leases held by a replica"
    )
    traffic = Traffic(devnet, 150, "kill")
    eventually(lambda: traffic.delivered_so_far() >= 10, 120, "deliveries under way")

    # The victim: a replica watching a source (its lease must be taken over), the one with the
    # most delivery claims in flight among those.
    owners = store.lease_owners("source/")
    claims = store.submitted_claims()
    holders = {owner for owner, _fence, _expires in owners.values()}
    victim_id = max(sorted(holders), key=lambda replica: len(claims.get(replica, {})))
    victim = replica_named(devnet, victim_id)
    leases = {name for name, (owner, _f, _e) in owners.items() if owner == victim_id}
    delivered_at_kill = traffic.delivered_so_far()
    devnet.kill(victim)  # SIGKILL; returns once the process is gone
    killed_at = time.monotonic()

    def taken_over() -> dict[str, str] | None:
        now = store.lease_owners("source/")
        moved = {name: now[name][0] for name in leases if now[name][0] != victim_id}
        return moved if len(moved) == len(leases) else None

    new_owners = eventually(taken_over, 3 * LEASE_SECONDS + 30, f"{victim}'s source leases taken over", 0.05)
    takeover = time.monotonic() - killed_at
    print(
        f"\nkill -9 {victim} ({victim_id}; source leases {sorted(leases)}, "
        f"{len(claims.get(victim_id, {}))} delivery claims in flight, {delivered_at_kill}/300 delivered): "
        f"taken over by {new_owners} after {takeover:.2f} s (lease {LEASE_SECONDS} s)"
    )
    assert takeover <= LEASE_SECONDS + TAKEOVER_MARGIN, f"takeover took {takeover:.2f} s"
    survivors = [n for n in devnet.relayer_names if n != victim]
    assert sum(metric_value(scrape(devnet, n), "relay_lease_takeovers_total") for n in survivors) >= len(
        leases
    )

    elapsed = traffic.check_exactly_once(store)
    print(f"kill -9: {len(traffic.ids)} messages delivered exactly once, {elapsed:.1f} s from the first send")
    devnet.restart(victim)  # the same replica id again, once its old registration expired


def test_a_replica_stopped_past_its_lease_is_fenced_and_nothing_is_delivered_twice(
    devnet: Devnet, store: SharedStore
) -> None:
    traffic = Traffic(devnet, 150, "stop")

    def replica_with_claims() -> tuple[str, dict[bytes, int]] | None:
        claims = store.submitted_claims()
        busy = [(owner, held) for owner, held in claims.items() if held]
        return max(busy, key=lambda item: len(item[1])) if busy else None

    victim_id, held = eventually(replica_with_claims, 120, "a replica with deliveries in flight", 0.05)
    victim = replica_named(devnet, victim_id)
    fenced_before = metric_value(scrape(devnet, victim), "relay_fenced_writes_total")
    log_path = devnet.processes[victim].log_path
    log_offset = log_path.stat().st_size
    devnet.processes[victim].signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        # Its claims expire after the lease; another replica requeues them under new fences.
        eventually(
            lambda: all(store.fences(list(held)).get(i, f) != f for i, f in held.items()),
            3 * LEASE_SECONDS + 30,
            f"the claims of stopped {victim} requeued under new fences",
            0.1,
        )
        requeued = time.monotonic() - stopped_at
        time.sleep(max(0.0, LEASE_SECONDS + 1.0 - requeued))  # stopped past its lease, whatever happened
    finally:
        devnet.processes[victim].signal(signal.SIGCONT)
    stopped_for = time.monotonic() - stopped_at
    print(
        f"\nSIGSTOP {victim} ({victim_id}) with {len(held)} deliveries in flight: its claims requeued "
        f"after {requeued:.2f} s, SIGCONT after {stopped_for:.2f} s (lease {LEASE_SECONDS} s)"
    )

    def late_work_fenced() -> str | None:
        """The evidence that the woken replica recorded nothing of its late work: a write the
        store refused (the metric), or a claim renewal the store refused, after which the replica
        abandons the call and records nothing (its log)."""
        refused = metric_value(scrape(devnet, victim), "relay_fenced_writes_total") - fenced_before
        if refused:
            return f"{refused:.0f} late writes refused (relay_fenced_writes_total)"
        with open(log_path, "rb") as log:
            log.seek(log_offset)
            lost = [line for line in log.read().decode(errors="replace").splitlines() if LOST_CLAIM in line]
        return f"{len(lost)} lost claim renewals, the late call abandoned (its log)" if lost else None

    fenced = eventually(late_work_fenced, 60, f"{victim}'s late work fenced")
    elapsed = traffic.check_exactly_once(store)
    print(
        f"SIGSTOP/SIGCONT: {fenced}; {len(traffic.ids)} messages delivered "
        f"exactly once, {elapsed:.1f} s from the first send"
    )
    assert devnet.processes[victim].alive


def test_replicas_reconnect_after_postgresql_restarts_and_nothing_is_lost(
    devnet: Devnet, store: SharedStore
) -> None:
    traffic = Traffic(devnet, 150, "restart")
    eventually(lambda: traffic.delivered_so_far() >= 10, 120, "deliveries under way")
    stopped_at = time.monotonic()
    delivered_at_stop = traffic.delivered_so_far()
    devnet.database.server.stop()  # a fast shutdown: every replica's connections are cut
    devnet.database.server.start()  # same port, same data
    down_for = time.monotonic() - stopped_at
    eventually(
        lambda: all(ready(devnet, name) for name in devnet.relayer_names),
        60,
        "every replica ready again after the restart",
    )
    back_at = time.monotonic() - stopped_at
    assert delivered_at_stop < 2 * traffic.each_way, "the restart came after the run, not during it"
    elapsed = traffic.check_exactly_once(store)
    assert not devnet.check_alive(), "a process exited"
    print(
        f"\nPostgreSQL restart mid-run ({delivered_at_stop}/{2 * traffic.each_way} delivered): down "
        f"{down_for:.2f} s, every replica ready {back_at:.2f} s after the stop; {len(traffic.ids)} messages "
        f"delivered exactly once, {elapsed:.1f} s from the first send"
    )
