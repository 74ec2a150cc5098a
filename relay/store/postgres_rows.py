"""Rows of the PostgreSQL store to records and back, and the SQL fragments that go with them.

The tables have the columns of the SQLite store's, so the mapping of rows to records is shared:
`relay.store.sqlite_rows` (messages, checkpoints, signatures, transactions). What differs lives
here: psycopg's `%s` placeholders and array parameters, and the NOTIFY payloads announcing state
changes to other replicas. Pure functions; no connection.
"""

from __future__ import annotations

from typing import Any

from relay.lifecycle import MessageState
from relay.store.base import Transition
from relay.store.sqlite_rows import transition_assignments as sqlite_transition_assignments

CLAIM_STATES = (MessageState.VERIFIED.value, MessageState.RETRYING.value)
"""States a message can be claimed for delivery in."""

HELD_STATES = (MessageState.SUBMITTED.value, *CLAIM_STATES)
"""States in which a claim is still renewable (claimed, or sent and waiting for its outcome)."""


def transition_assignments(transition: Transition, now: float) -> tuple[list[str], list[Any]]:
    """The SQLite store's `SET` assignments and parameters of a transition's row update (including
    the end of the claim of a message leaving SUBMITTED), with psycopg's `%s` placeholders."""
    sets, params = sqlite_transition_assignments(transition, now)
    return [assignment.replace("?", "%s") for assignment in sets], params


NOTIFY_CHANNEL = "relay_messages"
NOTIFY_PAYLOAD_LIMIT = 7900  # bytes; PostgreSQL's limit is 8000
_ID_HEX_LENGTH = 64


def notification_payloads(ids: list[bytes]) -> list[str]:
    """The NOTIFY payloads announcing `ids`: hex ids joined by commas, each payload under the limit."""
    payloads: list[str] = []
    current: list[str] = []
    size = 0
    for message_id in ids:
        text = bytes(message_id).hex()
        if current and size + 1 + len(text) > NOTIFY_PAYLOAD_LIMIT:
            payloads.append(",".join(current))
            current, size = [], 0
        current.append(text)
        size += len(text) + (1 if len(current) > 1 else 0)
    if current:
        payloads.append(",".join(current))
    return payloads


def parse_notification(payload: str) -> list[bytes]:
    """The ids a NOTIFY payload announces; `ValueError` for anything but comma-separated 32-byte
    hex ids (anyone who can connect to the database can NOTIFY on the channel)."""
    if len(payload) > NOTIFY_PAYLOAD_LIMIT or not payload:
        raise ValueError("notification payload empty or too long")
    ids = []
    for part in payload.split(","):
        if len(part) != _ID_HEX_LENGTH:
            raise ValueError("notification payload holds something other than a message id")
        ids.append(bytes.fromhex(part))
    return ids
