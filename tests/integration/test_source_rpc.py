"""The EVM watcher against hostile and disagreeing RPC endpoints (real anvil behind a lying proxy).

- Every hostile answer (wrong types, missing fields, huge or negative numbers, odd-length hex,
  null blocks, logs out of range or order, a log from another address, answers that are not
  JSON-RPC) ends in `RpcUnavailable` or in a poll that stores nothing wrong; the next honest
  poll reports every real message.
- With two endpoints (one behind the proxy), a tampered log, an omitted log or a stale block
  is a `SourceDisagreement`: the origin halts (`relay_source_halted` = 1) and resumes when the
  endpoints agree again; a lagging head is tolerated (read up to the common head).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from adapters.evm.watcher import EvmWatcher
from relay import errors
from relay.chains import SourceWatcher
from relay.metrics import RelayMetrics
from tests.chains import Chains, MemoryCursors
from tests.rpc_proxy import RpcProxy

pytestmark = pytest.mark.anvil


@pytest.fixture
def proxy(chains: Chains) -> Iterator[RpcProxy]:
    with RpcProxy(chains.source.rpc_url) as running:
        yield running


def watch_to_head(watcher: SourceWatcher) -> list[bytes]:
    """Poll until the cursor reaches the head; the ids reported on the way."""
    ids: list[bytes] = []
    for _ in range(100):
        update = watcher.poll()
        ids.extend(o.id for o in update.observed)
        if update.cursor is not None and update.cursor.block_number >= update.head_block:
            return ids
    raise AssertionError("the watcher never reached the head")


def on(method: str, change: Callable[[list[Any], Any], Any]) -> Callable[[str, list[Any], Any], Any]:
    """A proxy rewrite that changes only answers to `method`."""
    return lambda m, params, result: change(params, result) if m == method else result


def each_log(change: Callable[[dict[str, Any]], Any]) -> Callable[[list[Any], Any], Any]:
    return lambda _params, logs: [change(dict(entry)) for entry in logs] if isinstance(logs, list) else logs


def with_field(name: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def change(entry: dict[str, Any]) -> dict[str, Any]:
        entry[name] = value
        return entry

    return change


def without_field(name: str) -> Callable[[dict[str, Any]], Any]:
    def change(entry: dict[str, Any]) -> dict[str, Any]:
        entry.pop(name, None)
        return entry

    return change


def block_field(name: str, value: Any) -> Callable[[list[Any], Any], Any]:
    return lambda _params, block: {**block, name: value} if isinstance(block, dict) else block


HOSTILE_ANSWERS: dict[str, Callable[[str, list[Any], Any], Any]] = {
    "head as a JSON number": on("eth_blockNumber", lambda _p, r: int(r, 16)),
    "head empty hex": on("eth_blockNumber", lambda _p, r: "0x"),
    "head negative": on("eth_blockNumber", lambda _p, r: "-0x1"),
    "head huge": on("eth_blockNumber", lambda _p, r: "0x" + "f" * 64),
    "head too many digits": on("eth_blockNumber", lambda _p, r: "0x" + "1" * 65),
    "head null": on("eth_blockNumber", lambda _p, r: None),
    "head with an underscore": on("eth_blockNumber", lambda _p, r: "0x1_0"),
    "head an object": on("eth_blockNumber", lambda _p, r: {"number": r}),
    "block without hash": on("eth_getBlockByNumber", lambda _p, b: {"number": b["number"]} if b else b),
    "block hash odd-length": on("eth_getBlockByNumber", block_field("hash", "0xabc")),
    "block hash short": on("eth_getBlockByNumber", block_field("hash", "0x" + "ab" * 31)),
    "block of another number": on("eth_getBlockByNumber", block_field("number", "0x0")),
    "block a list": on("eth_getBlockByNumber", lambda _p, b: [b]),
    "logs an object": on("eth_getLogs", lambda _p, logs: {"logs": logs}),
    "logs null": on("eth_getLogs", lambda _p, logs: None),
    "log a string": on("eth_getLogs", lambda _p, logs: ["log"] * len(logs)),
    "log without data": on("eth_getLogs", each_log(without_field("data"))),
    "log without blockNumber": on("eth_getLogs", each_log(without_field("blockNumber"))),
    "log data odd-length": on("eth_getLogs", each_log(with_field("data", "0x123"))),
    "log topic odd-length": on("eth_getLogs", each_log(lambda e: {**e, "topics": [*e["topics"][:1], "0x1"]})),
    "log with five topics": on("eth_getLogs", each_log(lambda e: {**e, "topics": e["topics"] * 5})),
    "log index negative": on("eth_getLogs", each_log(with_field("logIndex", "-0x1"))),
    "log index huge": on("eth_getLogs", each_log(with_field("logIndex", "0x" + "f" * 40))),
    "log removed not a boolean": on("eth_getLogs", each_log(with_field("removed", "no"))),
    "log block out of range": on("eth_getLogs", each_log(with_field("blockNumber", "0xffffff"))),
    "log block number zero": on("eth_getLogs", each_log(with_field("blockNumber", "0x0"))),
    "log twice": on("eth_getLogs", lambda _p, logs: logs + logs if logs else logs),
    "log address short": on("eth_getLogs", each_log(with_field("address", "0x1234"))),
}
"""Hostile answers after which the poll must fail with `RpcUnavailable` (and the next one work)."""


def test_rpc_answers_are_parsed_defensively(chains: Chains, proxy: RpcProxy) -> None:
    metrics = RelayMetrics(CollectorRegistry())
    cursors = MemoryCursors()
    watcher = EvmWatcher(chains.source_chain(rpc_urls=[proxy.url]), cursors, metrics=metrics)
    watch_to_head(watcher)
    for case, rewrite in HOSTILE_ANSWERS.items():
        ids = chains.send(1, case[:20])
        proxy.rewrite = rewrite
        with pytest.raises(errors.RpcUnavailable):
            for _ in range(5):  # the hostile answer comes when the poll reaches that read
                watcher.poll()
        proxy.rewrite = None
        assert set(ids) <= set(watch_to_head(watcher)), case  # nothing lost: the next polls find it
    assert metrics.registry.get_sample_value("relay_source_halted", {"chain": "source"}) == 0


@pytest.mark.parametrize(
    "body",
    [b"<html>bad gateway</html>", b"[]", b'"0x1"', b"{}", b'{"jsonrpc": "2.0", "id": 1, "result": ', b"null"],
)
def test_answers_that_are_not_json_rpc_are_rpc_unavailable(
    chains: Chains, proxy: RpcProxy, body: bytes
) -> None:
    watcher = EvmWatcher(chains.source_chain(rpc_urls=[proxy.url]), MemoryCursors())
    proxy.raw = lambda _request: body
    for _ in range(2):
        with pytest.raises(errors.RpcUnavailable):
            watcher.poll()
    proxy.raw = None
    watch_to_head(watcher)


def test_logs_out_of_order_are_put_in_order_and_a_log_of_another_address_is_skipped(
    chains: Chains, proxy: RpcProxy
) -> None:
    metrics = RelayMetrics(CollectorRegistry())
    watcher = EvmWatcher(chains.source_chain(rpc_urls=[proxy.url]), MemoryCursors(), metrics=metrics)
    watch_to_head(watcher)
    ids = chains.send(3, "order")

    def reversed_with_a_stranger(_params: list[Any], logs: Any) -> Any:
        stranger = {**logs[0], "address": "0x" + "de" * 20, "logIndex": "0x7f"}
        return [stranger, *reversed(logs)]

    proxy.rewrite = on("eth_getLogs", reversed_with_a_stranger)
    assert watch_to_head(watcher) == ids
    skipped = metrics.registry.get_sample_value(
        "relay_watcher_skipped_logs_total", {"chain": "source", "reason": "another address or event"}
    )
    assert skipped is not None and skipped >= 1


def test_a_null_block_stalls_nothing(chains: Chains, proxy: RpcProxy) -> None:
    watcher = EvmWatcher(chains.source_chain(rpc_urls=[proxy.url]), MemoryCursors())
    watch_to_head(watcher)
    ids = chains.send(1, "null-block")
    proxy.rewrite = on("eth_getBlockByNumber", lambda _p, _b: None)
    update = watcher.poll()  # the block seems gone (a reorg, to the watcher): nothing reported
    assert update.observed == []
    proxy.rewrite = None
    reported = watch_to_head(watcher)  # the non-final blocks are read again: re-reports are harmless
    assert reported[-1:] == ids


# --- two endpoints, one lying -------------------------------------------------------------------------


def quorum_watcher(chains: Chains, proxy: RpcProxy, metrics: RelayMetrics, **extra: Any) -> EvmWatcher:
    config = chains.source_chain(rpc_urls=[chains.source.rpc_url, proxy.url], **extra)
    return EvmWatcher(config, MemoryCursors(), metrics=metrics)


def halted(metrics: RelayMetrics) -> float | None:
    return metrics.registry.get_sample_value("relay_source_halted", {"chain": "source"})


def tamper_data(_params: list[Any], logs: Any) -> Any:
    return [{**entry, "data": entry["data"][:-2] + "ff"} for entry in logs]


def omit_last(_params: list[Any], logs: Any) -> Any:
    return logs[:-1]


def stale_block(params: list[Any], block: Any) -> Any:
    if block is None or params[0] in ("finalized", "latest"):
        return block
    return {**block, "hash": "0x" + "0e" * 32}


LIES: dict[str, tuple[str, Callable[[list[Any], Any], Any]]] = {
    "a log's body changed": ("eth_getLogs", tamper_data),
    "a log omitted": ("eth_getLogs", omit_last),
    "a stale block": ("eth_getBlockByNumber", stale_block),
}


@pytest.mark.parametrize("lie", sorted(LIES))
def test_a_disagreement_halts_the_origin_until_the_endpoints_agree(
    chains: Chains, proxy: RpcProxy, lie: str
) -> None:
    metrics = RelayMetrics(CollectorRegistry())
    watcher = quorum_watcher(chains, proxy, metrics)
    watch_to_head(watcher)
    ids = chains.send(2, "disagree")
    method, change = LIES[lie]
    proxy.rewrite = on(method, change)
    for _ in range(3):
        with pytest.raises(errors.SourceDisagreement):
            watcher.poll()
        assert halted(metrics) == 1
    disagreements = metrics.registry.get_sample_value(
        "relay_source_disagreements_total", {"chain": "source", "method": method}
    )
    assert disagreements is not None and disagreements >= 3
    proxy.rewrite = None
    assert watch_to_head(watcher) == ids  # resumed: nothing lost, nothing forged
    assert halted(metrics) == 0


def test_a_lagging_endpoint_is_read_up_to_the_common_head(chains: Chains, proxy: RpcProxy) -> None:
    metrics = RelayMetrics(CollectorRegistry())
    watcher = quorum_watcher(chains, proxy, metrics)
    watch_to_head(watcher)
    lagging_head = chains.head()
    ids = chains.send(2, "lag")
    proxy.rewrite = on("eth_blockNumber", lambda _p, _r: hex(lagging_head))
    update = watcher.poll()
    assert update.head_block == lagging_head and update.observed == [] and halted(metrics) == 0
    proxy.rewrite = None
    assert watch_to_head(watcher) == ids


def test_a_quorum_of_one_tolerates_an_endpoint_that_is_down(chains: Chains) -> None:
    metrics = RelayMetrics(CollectorRegistry())
    config = chains.source_chain(rpc_urls=[chains.source.rpc_url, "http://127.0.0.1:9"], rpc_quorum=1)
    watcher = EvmWatcher(config, MemoryCursors(), metrics=metrics)
    watch_to_head(watcher)
    ids = chains.send(1, "one-down")
    assert watch_to_head(watcher) == ids
    strict = EvmWatcher(chains.source_chain(rpc_urls=config.rpc_urls), MemoryCursors(), metrics=metrics)
    with pytest.raises(errors.RpcUnavailable):  # the default quorum is every endpoint
        strict.poll()


def test_the_quorum_must_fit_the_endpoints(chains: Chains) -> None:
    for quorum in (0, 3):
        with pytest.raises(ValueError, match="rpc_quorum"):
            chains.source_chain(rpc_urls=[chains.source.rpc_url, chains.source.rpc_url], rpc_quorum=quorum)


def test_an_endpoint_that_fails_is_not_asked_again_in_the_same_poll(chains: Chains, proxy: RpcProxy) -> None:
    metrics = RelayMetrics(CollectorRegistry())
    config = chains.source_chain(rpc_urls=[chains.source.rpc_url, proxy.url], rpc_quorum=1)
    watcher = EvmWatcher(config, MemoryCursors(), metrics=metrics)
    watch_to_head(watcher)
    ids = chains.send(1, "skip-broken")
    proxy.raw = lambda _request: b"<html>bad gateway</html>"
    proxy.requests.clear()
    update = watcher.poll()
    assert [o.id for o in update.observed] == ids
    assert set(proxy.requests) == {"eth_blockNumber"}  # only the head read, then left out of the poll
