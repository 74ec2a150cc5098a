"""What a source watcher reads from its RPC endpoints: parsed defensively, and agreed by a quorum.

Every answer is parsed here from the raw JSON-RPC result, never trusted to be well formed: a
wrong type, a missing field, odd-length hex, a negative or oversized number, a log outside the
requested range or a repeated log make the endpoint's answer `RpcUnavailable` (a typed,
transient error: the poll fails, nothing is stored, the next poll asks again). Quantities and
data follow the execution-apis schema (`uint`: `0x` and hex digits, `0x0` for zero; `bytes`:
`0x` and an even number of hex digits); leading zeros in a quantity are tolerated.

`QuorumSource` asks each configured endpoint and acts only on what `quorum` of them say alike:

- the head it reads up to is the highest block `quorum` endpoints have (a lagging endpoint is
  tolerated: the watcher reads up to the lowest common head of the quorum);
- a block hash or a log range is accepted only if every endpoint that has it answers the same;
  two different answers raise `SourceDisagreement`, which halts the origin until they agree.

See docs/adr/0005-gapless-tree-and-source-quorum.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from web3.types import RPCEndpoint

from adapters.evm.rpc import EvmEndpoint
from relay.errors import RelayError, RpcUnavailable, SourceDisagreement
from relay.metrics import RelayMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BLOCK_NUMBER = 2**63 - 1
"""Block numbers, log indexes: larger ones are nonsense from a node, not a chain."""

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class MalformedAnswer(ValueError):
    """A JSON-RPC result that does not follow the schema (raised inside a read, then wrapped)."""


# --- parsing ----------------------------------------------------------------------------------


def parse_quantity(value: object, what: str, maximum: int = MAX_BLOCK_NUMBER) -> int:
    """A JSON-RPC `uint` (`0x` + hex digits) within [0, maximum]; `MalformedAnswer` otherwise."""
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise MalformedAnswer(f"{what} is not a hex quantity: {str(value)[:80]!r}")
    digits = value[2:]
    if not digits or len(digits) > 64 or not set(digits) <= _HEX_DIGITS:
        raise MalformedAnswer(f"{what} is not a hex quantity: {value[:80]!r}")
    number = int(digits, 16)
    if number > maximum:
        raise MalformedAnswer(f"{what} is out of range: {value[:80]!r}")
    return number


def parse_data(value: object, what: str, length: int | None = None) -> bytes:
    """JSON-RPC `bytes` (`0x` + an even number of hex digits), of `length` bytes if given."""
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise MalformedAnswer(f"{what} is not hex data: {str(value)[:80]!r}")
    digits = value[2:]
    if len(digits) % 2 or not set(digits) <= _HEX_DIGITS:
        raise MalformedAnswer(f"{what} is not hex data of whole bytes: {value[:80]!r}")
    data = bytes.fromhex(digits)
    if length is not None and len(data) != length:
        raise MalformedAnswer(f"{what} is {len(data)} bytes, not {length}")
    return data


def _field(obj: dict[str, Any], name: str, what: str) -> object:
    if name not in obj:
        raise MalformedAnswer(f"{what} has no {name!r}")
    return obj[name]


@dataclass(frozen=True)
class BlockRef:
    """A block's number and hash, as an endpoint reported them."""

    number: int
    hash: bytes


@dataclass(frozen=True)
class RawLog:
    """One log of an `eth_getLogs` answer, parsed."""

    address: bytes
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    block_hash: bytes
    transaction_hash: bytes
    log_index: int
    removed: bool = False


def parse_block(value: object, requested: int | None = None) -> BlockRef | None:
    """An `eth_getBlockByNumber` result: None for `null`, else its number and hash."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedAnswer(f"block is not an object: {type(value).__name__}")
    number = parse_quantity(_field(value, "number", "block"), "block number")
    block_hash = parse_data(_field(value, "hash", "block"), "block hash", 32)
    if requested is not None and number != requested:
        raise MalformedAnswer(f"asked for block {requested}, got block {number}")
    return BlockRef(number, block_hash)


def parse_log(value: object) -> RawLog:
    """One log object of an `eth_getLogs` result."""
    if not isinstance(value, dict):
        raise MalformedAnswer(f"log is not an object: {type(value).__name__}")
    topics = _field(value, "topics", "log")
    if not isinstance(topics, list) or len(topics) > 4:
        raise MalformedAnswer("log topics are not a list of at most 4")
    removed = value.get("removed", False)
    if not isinstance(removed, bool):
        raise MalformedAnswer("log 'removed' is not a boolean")
    return RawLog(
        address=parse_data(_field(value, "address", "log"), "log address", 20),
        topics=tuple(parse_data(topic, "log topic", 32) for topic in topics),
        data=parse_data(_field(value, "data", "log"), "log data"),
        block_number=parse_quantity(_field(value, "blockNumber", "log"), "log block number"),
        block_hash=parse_data(_field(value, "blockHash", "log"), "log block hash", 32),
        transaction_hash=parse_data(_field(value, "transactionHash", "log"), "log transaction hash", 32),
        log_index=parse_quantity(_field(value, "logIndex", "log"), "log index"),
        removed=removed,
    )


def parse_logs(value: object, first: int, last: int) -> list[RawLog]:
    """An `eth_getLogs` result over blocks [first, last]: in chain order, none outside, none twice."""
    if not isinstance(value, list):
        raise MalformedAnswer(f"logs are not a list: {type(value).__name__}")
    logs = [parse_log(entry) for entry in value]
    logs = [entry for entry in logs if not entry.removed]
    for entry in logs:
        if not first <= entry.block_number <= last:
            raise MalformedAnswer(f"log of block {entry.block_number} outside the range [{first}, {last}]")
    logs.sort(key=lambda entry: (entry.block_number, entry.log_index))
    positions = [(entry.block_number, entry.log_index) for entry in logs]
    if len(set(positions)) != len(positions):
        raise MalformedAnswer("the same log position appears twice")
    return logs


# --- one endpoint, raw ------------------------------------------------------------------------


def request(endpoint: EvmEndpoint, method: str, params: list[Any], parse: Callable[[object], T]) -> T:
    """Call `method` on `endpoint` and `parse` its raw result; every failure is `RpcUnavailable`.

    Runs under the endpoint's `CHAIN_READ` policy (a malformed answer is retried like a dropped
    one: the next answer may be fine).
    """

    def ask() -> T:
        try:
            response = endpoint.web3.provider.make_request(RPCEndpoint(method), params)
            if not isinstance(response, dict):
                raise MalformedAnswer(f"the answer is not a JSON-RPC object: {type(response).__name__}")
            if response.get("error") is not None:
                raise MalformedAnswer(f"error answer: {str(response['error'])[:200]}")
            if "result" not in response:
                raise MalformedAnswer("the answer has no result")
            return parse(response["result"])
        except RelayError:
            raise
        except Exception as error:  # whatever the node sent (or failed to), it is the endpoint's fault
            if endpoint.metrics is not None:
                endpoint.metrics.rpc_errors.labels(endpoint.chain_name, method).inc()
            raise RpcUnavailable(
                "chain RPC answered nonsense"
                if isinstance(error, MalformedAnswer)
                else "chain RPC did not answer",
                chain=endpoint.chain_name,
                url=endpoint.url,
                method=method,
                cause=f"{type(error).__name__}: {error}"[:300],
            ) from error

    return endpoint.read(method, ask)


# --- a quorum of endpoints --------------------------------------------------------------------


class QuorumSource:
    """The source chain as `quorum` of `endpoints` agree on it (see the module docstring).

    Call `head()` first in each poll: it picks the endpoints that have the common head (the
    `live` ones); the other reads ask only them, and an endpoint that fails one of them is not
    asked again in that poll (a hung endpoint costs one timeout per poll, not one per read).
    """

    def __init__(
        self,
        endpoints: list[EvmEndpoint],
        quorum: int,
        *,
        chain_name: str,
        metrics: RelayMetrics | None = None,
    ) -> None:
        if not 1 <= quorum <= len(endpoints):
            raise ValueError(f"rpc quorum {quorum} must be between 1 and the {len(endpoints)} endpoints")
        self.endpoints = endpoints
        self.quorum = quorum
        self.chain_name = chain_name
        self.metrics = metrics
        self.live: list[EvmEndpoint] = list(endpoints)

    def _ask(
        self, endpoints: list[EvmEndpoint], method: str, read: Callable[[EvmEndpoint], T]
    ) -> list[tuple[EvmEndpoint, T]]:
        answers: list[tuple[EvmEndpoint, T]] = []
        failures: list[RpcUnavailable] = []
        for endpoint in endpoints:
            try:
                answers.append((endpoint, read(endpoint)))
            except RpcUnavailable as error:
                failures.append(error)
                if endpoint in self.live:  # not asked again until the next poll's `head()`
                    self.live = [e for e in self.live if e is not endpoint]
        if len(answers) < self.quorum:
            raise RpcUnavailable(
                "too few source RPC endpoints answered",
                chain=self.chain_name,
                method=method,
                answered=len(answers),
                quorum=self.quorum,
                cause=str(failures[0])[:300] if failures else "",
            )
        return answers

    def _agreed(self, method: str, answers: list[tuple[EvmEndpoint, T]], **context: object) -> T:
        distinct = {repr(value) for _, value in answers}
        if len(distinct) > 1:
            if self.metrics is not None:
                self.metrics.source_disagreements.labels(self.chain_name, method).inc()
            raise SourceDisagreement(
                "source RPC endpoints disagree",
                chain=self.chain_name,
                method=method,
                endpoints=[endpoint.url for endpoint, _ in answers],
                **context,
            )
        return answers[0][1]

    def head(self) -> int:
        """The highest block `quorum` endpoints have; remembers which endpoints have it."""
        answers = self._ask(
            self.endpoints,
            "eth_blockNumber",
            lambda e: request(e, "eth_blockNumber", [], lambda v: parse_quantity(v, "head")),
        )
        heads = sorted((height for _, height in answers), reverse=True)
        common = heads[self.quorum - 1]
        self.live = [endpoint for endpoint, height in answers if height >= common]
        return common

    def finalized(self) -> int:
        """The highest block `quorum` endpoints call finalized (0 if none has one yet)."""
        answers = self._ask(
            self.live,
            "eth_getBlockByNumber",
            lambda e: request(e, "eth_getBlockByNumber", ["finalized", False], parse_block),
        )
        numbers = sorted((block.number if block else 0 for _, block in answers), reverse=True)
        return numbers[self.quorum - 1]

    def block_hash(self, number: int) -> bytes | None:
        """The hash of block `number` the endpoints agree on; None if none of them has it."""
        answers = self._ask(
            self.live,
            "eth_getBlockByNumber",
            lambda e: request(
                e, "eth_getBlockByNumber", [hex(number), False], lambda v: parse_block(v, number)
            ),
        )
        present = [(endpoint, block.hash) for endpoint, block in answers if block is not None]
        if not present:
            return None
        block_hash = self._agreed("eth_getBlockByNumber", present, block=number)
        if len(present) < self.quorum:
            raise RpcUnavailable(
                "too few source RPC endpoints have the block",
                chain=self.chain_name,
                block=number,
                have=len(present),
                quorum=self.quorum,
            )
        return block_hash

    def logs(self, address: str, topic: bytes, first: int, last: int) -> list[RawLog]:
        """The logs of `address` with topic0 `topic` in blocks [first, last], the same from every live endpoint."""
        query = {
            "address": address,
            "topics": ["0x" + topic.hex()],
            "fromBlock": hex(first),
            "toBlock": hex(last),
        }
        answers = self._ask(
            self.live,
            "eth_getLogs",
            lambda e: request(e, "eth_getLogs", [query], lambda v: parse_logs(v, first, last)),
        )
        return cast(list[RawLog], self._agreed("eth_getLogs", answers, first=first, last=last))
