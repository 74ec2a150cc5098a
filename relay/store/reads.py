"""The read-only message queries both SQL back ends share (SQLite and PostgreSQL).

Written once, with `?` placeholders: a back end's `_read` runs them as they are (SQLite) or with
its own placeholder (`PostgresStore` turns `?` into `%s`). `IN (?, ...)` lists are spelled out, which
both databases accept. The back ends keep their writes, whose locking differs.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

from relay.errors import MalformedEncoding
from relay.lifecycle import MessageState
from relay.store.base import MessageFilter, MessageRecord, Page
from relay.store.sqlite_rows import MESSAGE_COLUMNS, filter_sql, message_record

PENDING_STATES = tuple(s.value for s in MessageState if s.is_pending)


class MessageReads:
    """`Store`'s read-only message queries over `_read(sql, params)` (see the module docstring)."""

    @abstractmethod
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one read-only query (`?` placeholders) and return its rows."""

    def highest_nonce(self, origin: int, states: Iterable[MessageState]) -> int | None:
        values = [s.value for s in states]
        rows = self._read(
            f"SELECT MAX(nonce) FROM messages WHERE origin = ? AND state IN ({', '.join('?' for _ in values)})",
            (origin, *values),
        )
        return None if rows[0][0] is None else int(rows[0][0])

    def get(self, message_id: bytes) -> MessageRecord | None:
        rows = self._read(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (bytes(message_id),))
        return message_record(rows[0]) if rows else None

    def list_messages(self, where: MessageFilter, limit: int, page_token: str = "") -> Page:
        if limit <= 0:
            raise MalformedEncoding("page size must be positive", limit=limit)
        clauses, params = filter_sql(where)
        if page_token:
            if not page_token.isdecimal() or len(page_token) > 19:
                raise MalformedEncoding("page token is not one this relayer issued", page_token=page_token)
            clauses.append("seq < ?")
            params.append(int(page_token))
        sql = f"SELECT {MESSAGE_COLUMNS} FROM messages"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY seq DESC LIMIT ?"
        rows = self._read(sql, [*params, limit + 1])
        records = [message_record(r) for r in rows[:limit]]
        token = str(records[-1].sequence) if len(rows) > limit else ""
        return Page(records, token)

    def messages_in_state(
        self,
        state: MessageState,
        origin: int | None = None,
        destination: int | None = None,
        limit: int = 1000,
    ) -> list[MessageRecord]:
        sql = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE state = ?"
        params: list[Any] = [state.value]
        if origin is not None:
            sql += " AND origin = ?"
            params.append(origin)
        if destination is not None:
            sql += " AND destination = ?"
            params.append(destination)
        sql += " ORDER BY origin, nonce LIMIT ?"
        return [message_record(r) for r in self._read(sql, [*params, limit])]

    def due_for_retry(
        self, now: float, destination: int | None = None, limit: int = 1000
    ) -> list[MessageRecord]:
        sql = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE state = ? AND next_attempt_at <= ?"
        params: list[Any] = [MessageState.RETRYING.value, now]
        if destination is not None:
            sql += " AND destination = ?"
            params.append(destination)
        rows = self._read(sql + " ORDER BY next_attempt_at, seq LIMIT ?", [*params, limit])
        return [message_record(r) for r in rows]

    def message_ids_by_nonce(self, origin: int, from_nonce: int = 0) -> list[tuple[int, bytes]]:
        rows = self._read(
            "SELECT nonce, id FROM messages WHERE origin = ? AND nonce >= ? ORDER BY nonce",
            (origin, from_nonce),
        )
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def lowest_nonce(self, origin: int, state: MessageState) -> int | None:
        rows = self._read(
            "SELECT MIN(nonce) FROM messages WHERE origin = ? AND state = ?", (origin, state.value)
        )
        return None if rows[0][0] is None else int(rows[0][0])

    def count_by_state(self, origin: int | None = None) -> dict[MessageState, int]:
        sql = "SELECT state, COUNT(*) FROM messages"
        params: list[Any] = []
        if origin is not None:
            sql += " WHERE origin = ?"
            params.append(origin)
        rows = self._read(sql + " GROUP BY state", params)
        return {MessageState(r[0]): int(r[1]) for r in rows}

    def count_by_route_and_state(self) -> dict[tuple[int, int, MessageState], int]:
        rows = self._read("SELECT origin, destination, state, COUNT(*) FROM messages GROUP BY 1, 2, 3")
        return {(int(r[0]), int(r[1]), MessageState(r[2])): int(r[3]) for r in rows}

    def count_rejections(self) -> dict[str, int]:
        rows = self._read(
            "SELECT error_reason, COUNT(*) FROM messages WHERE state = ? GROUP BY error_reason",
            (MessageState.REJECTED.value,),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def oldest_by_route(self, states: Iterable[MessageState]) -> dict[tuple[int, int], float]:
        values = sorted(s.value for s in states)
        if not values:
            return {}
        marks = ", ".join("?" for _ in values)
        rows = self._read(
            f"SELECT origin, destination, MIN(observed_at) FROM messages WHERE state IN ({marks}) GROUP BY 1, 2",
            values,
        )
        return {(int(r[0]), int(r[1])): float(r[2]) for r in rows}

    def oldest_pending(self) -> MessageRecord | None:
        marks = ", ".join("?" for _ in PENDING_STATES)
        rows = self._read(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE state IN ({marks}) ORDER BY observed_at, seq LIMIT 1",
            PENDING_STATES,
        )
        return message_record(rows[0]) if rows else None
