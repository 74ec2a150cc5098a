"""The status page's data: one JSON-ready snapshot of a running relayer.

`build_status(relayer)` reads only what the relayer already exposes (its config, `chain_statuses()`,
`route_costs()` and its store), so the page costs four cheap queries per refresh: the counts by state, one
page of the newest messages and the leases. Nothing here changes state.

Replicas (docs/adr/0007): `replica` names this relayer and the source leases it holds (the origins it
watches, attests and proves); `leases` lists every lease in the store with its holder's replica id
(the process part of a registration's owner is not shown), so any replica's page shows who does what. `/api/status` serves it as JSON; the
page (`page.html`) renders it.

Transaction links come from the relayer's `explorers` config: domain -> URL template with a
`{tx}` placeholder for the 0x-prefixed hash. A chain without a template gets the plain hash
(`url` is null) rather than a guessed link.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from relay.lifecycle import MessageState
from relay.store.base import MessageFilter, MessageRecord

if TYPE_CHECKING:
    from relay.relayer import Relayer

DEFAULT_RECENT_MESSAGES = 50
TX_PLACEHOLDER = "{tx}"
_FAILED = frozenset({MessageState.PARKED, MessageState.REJECTED})


def build_status(relayer: Relayer, *, recent: int = DEFAULT_RECENT_MESSAGES) -> dict[str, Any]:
    """A snapshot of `relayer` for the status page: chains and lag, counts by state, newest messages.

    Times are unix seconds on the relayer's clock; `age_seconds` is since the message was observed
    on its source chain. Message ids and hashes are 0x-prefixed hex.
    """
    config = relayer.config
    now = relayer.now()
    names = compute_chain_names(relayer)
    explorers = dict(config.explorers)
    lag_threshold = config.ready_max_lag_blocks

    chains = []
    for status in relayer.chain_statuses():
        chains.append(
            {
                "domain": status.domain,
                "name": status.name,
                "head": status.head,
                "finalized": status.finalized,
                "cursor": status.cursor,
                "lag_blocks": status.lag_blocks,
                "lag_seconds": round(status.lag_seconds, 1),
                "lagging": status.lag_blocks > lag_threshold,
            }
        )

    stored = relayer.store.count_by_state()
    counts = {state.name: stored.get(state, 0) for state in MessageState}
    totals = {
        "messages": sum(counts.values()),
        "pending": sum(n for state, n in stored.items() if state.is_pending),
        "delivered": stored.get(MessageState.DELIVERED, 0),
        "failed": sum(n for state, n in stored.items() if state in _FAILED),
    }

    unpaid = {
        (origin, destination): n
        for (origin, destination, state), n in relayer.store.count_by_route_and_state().items()
        if state is MessageState.UNPAID
    }
    costs = []
    for (origin, destination), cost in sorted(relayer.route_costs().items()):
        costs.append(
            {
                "origin": _chain(origin, names),
                "destination": _chain(destination, names),
                "messages": cost.messages,
                "delivered": cost.delivered,
                "gas_spent": cost.gas_spent,
                # Amounts as strings: wei overflow a JavaScript number.
                "spent": str(cost.spent),
                "spent_in_origin_units": str(cost.spent_in_origin_units),
                "paid": str(cost.paid),
                "unpaid": unpaid.pop((origin, destination), 0),
            }
        )
    for (origin, destination), n in sorted(unpaid.items()):
        costs.append(
            {
                "origin": _chain(origin, names),
                "destination": _chain(destination, names),
                "messages": 0,
                "delivered": 0,
                "gas_spent": 0,
                "spent": "0",
                "spent_in_origin_units": "0",
                "paid": "0",
                "unpaid": n,
            }
        )

    page = relayer.store.list_messages(MessageFilter(), max(1, recent))
    messages = [_message_status(record, now, names, explorers) for record in page.records]
    held = sorted(lease.name for source in relayer.sources.values() if (lease := source.lease) is not None)
    leases = [
        {
            "name": lease.name,
            "holder": lease.owner.split(":", 1)[0],
            "fence": lease.fence,
            "expires_in": round(lease.expires_at - now, 1),
            "live": lease.expires_at > now,
        }
        for lease in relayer.store.leases()
    ]
    return {
        "generated_at": now,
        "relay_service": relayer.address,
        "replica": {"id": config.replica_id, "holds": held},
        "leases": leases,
        "lag_threshold_blocks": lag_threshold,
        "totals": totals,
        "counts": counts,
        "chains": chains,
        "costs": costs,
        "messages": messages,
    }


def compute_chain_names(relayer: Relayer) -> dict[int, str]:
    """Domain -> display name: source chain names, then named destinations, else `domain N` on use."""
    names = {source.chain.domain: source.chain.name for source in relayer.config.sources}
    for destination in relayer.config.destinations:
        if destination.name:
            names.setdefault(destination.domain, destination.name)
    return names


def compute_transaction_link(transaction: bytes, template: str | None) -> dict[str, str | None] | None:
    """`{"hash", "url"}` for a transaction hash (None when there is none); `url` only with a template."""
    if not transaction:
        return None
    tx_hash = "0x" + transaction.hex()
    return {"hash": tx_hash, "url": template.replace(TX_PLACEHOLDER, tx_hash) if template else None}


def _chain(domain: int, names: dict[int, str]) -> dict[str, Any]:
    return {"domain": domain, "name": names.get(domain, f"domain {domain}")}


def _message_status(
    record: MessageRecord, now: float, names: dict[int, str], explorers: dict[int, str]
) -> dict[str, Any]:
    message = record.message
    return {
        "id": "0x" + record.id.hex(),
        "origin": _chain(message.origin, names),
        "destination": _chain(message.destination, names),
        "nonce": message.nonce,
        "state": record.state.name,
        "age_seconds": round(max(0.0, now - record.observed_at), 1) if record.observed_at else None,
        "attempts": record.attempts,
        "last_error": record.last_error,
        "source_tx": compute_transaction_link(record.source_transaction, explorers.get(message.origin)),
        "destination_tx": compute_transaction_link(
            record.destination_transaction, explorers.get(message.destination)
        ),
    }


def render_status_json(relayer: Relayer) -> tuple[int, str, bytes]:
    """The `/api/status` route: 200 with the snapshot, 503 while the relayer has no open store."""
    try:
        body = build_status(relayer)
    except RuntimeError as error:  # the relayer is not open (starting or stopping)
        return 503, "application/json", json.dumps({"error": str(error)}).encode()
    return 200, "application/json", json.dumps(body).encode()


def render_status_page() -> tuple[int, str, bytes]:
    """The `/` route: the static page (it fetches `/api/status` itself)."""
    return 200, "text/html; charset=utf-8", load_status_page()


def load_status_page() -> bytes:
    """The bytes of `page.html`, shipped inside the package."""
    return resources.files("relay.status").joinpath("page.html").read_bytes()
