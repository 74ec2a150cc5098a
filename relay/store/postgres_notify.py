"""Hearing every replica's commits: one LISTEN connection per PostgreSQL store, on its own thread.

Each transaction that changes message states also sends `pg_notify('relay_messages', ids)`
(`relay.store.postgres_rows.notification_payloads`); PostgreSQL delivers it at commit, to every
connection listening on the database, the sender's own included, and never for a rollback. The
`NotificationListener` holds such a connection and hands the ids of each notification to the
store's listeners, so `RelayService.WatchMessages` on any replica sees the changes of all of them.

A payload that is not a list of message ids (anyone who may connect can NOTIFY) is dropped and
logged. A lost connection (a server restart) is re-established with a bounded backoff; what was
committed while it was down is not heard (a watcher re-reads the message it waits for).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import psycopg

from relay.errors import ConfigurationError, StoreUnavailable
from relay.store.postgres_connect import connect, describe_dsn
from relay.store.postgres_rows import NOTIFY_CHANNEL, parse_notification

log = logging.getLogger("relay.store")

POLL_SECONDS = 0.5  # how often the thread looks up from waiting to see whether it must stop
RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)  # then 2.0 s between attempts
FIRST_CONNECT_TIMEOUT_SECONDS = 15.0


class NotificationListener:
    """A thread that LISTENs on the store's channel and calls `deliver(ids)` for each notification."""

    def __init__(self, dsn: str, password: str | None, deliver: Callable[[Sequence[bytes]], None]) -> None:
        self.dsn = dsn
        self.password = password
        self.deliver = deliver
        self.connections = 0  # how many times the LISTEN connection was (re)established
        self._listening = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up (commits from now on are heard)."""
        return self._listening.is_set()

    def start(self) -> None:
        """Start the thread; return once it listens (or after a bounded wait if the server is down)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="relay-store-listen", daemon=True)
        self._thread.start()
        self._listening.wait(FIRST_CONNECT_TIMEOUT_SECONDS)

    def stop(self) -> None:
        """Stop listening and wait for the thread to end."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=POLL_SECONDS * 4 + 10)
            self._thread = None

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                with connect(self.dsn, self.password, autocommit=True) as connection:
                    connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.connections += 1
                    self._listening.set()
                    failures = 0
                    if self.connections > 1:
                        # Commits made while the connection was down were not heard: tell the
                        # listeners to re-read what they watch (an empty list of ids).
                        self.deliver(())
                    self._listen(connection)
            except (psycopg.Error, StoreUnavailable, ConfigurationError) as error:
                self._listening.clear()
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                log.warning(
                    "store notifications interrupted; reconnecting",
                    extra={
                        "store": describe_dsn(self.dsn),
                        "cause": str(error).splitlines()[0:1],
                        "retry_in": delay,
                    },
                )
                self._stopping.wait(delay)
        self._listening.clear()

    def _listen(self, connection: psycopg.Connection) -> None:
        while not self._stopping.is_set():
            for notification in connection.notifies(timeout=POLL_SECONDS):
                if notification.channel != NOTIFY_CHANNEL:
                    continue
                try:
                    ids = parse_notification(notification.payload)
                except ValueError as error:
                    log.warning(
                        "dropped a store notification that is not a list of message ids",
                        extra={"sender_pid": notification.pid, "cause": str(error)},
                    )
                    continue
                self.deliver(ids)
