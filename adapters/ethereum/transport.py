"""How the Ethereum mode reaches its chain: a beacon REST API and an execution JSON-RPC API.

Both are `typing.Protocol`s so the finality source never knows whether it talks to a node over
HTTP or to a recording. Nothing they return is trusted: the light client verifies every answer.

- `BeaconTransport.get(path)`: the decoded JSON body of `GET path` (path with its query string).
- `ExecutionTransport.call(method, params)`: the `result` of one JSON-RPC call.

`ReplayTransport` answers both from a recording (a JSON file), for tests and for verifying
recorded data offline; `HttpBeaconTransport` and `HttpExecutionTransport` talk to real nodes.
Failures are typed: `ResponseNotFound` (the node does not have it: 404, or not recorded),
`RpcMethodNotFound` (the node lacks a JSON-RPC method), `RpcUnavailable` for everything else
that a retry may cure.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from relay.errors import ConfigurationError, NotYetAvailable, RpcUnavailable

JSONRPC_METHOD_NOT_FOUND = -32601


class ResponseNotFound(NotYetAvailable):
    """The node has no answer for this request (HTTP 404, a null result, or not in the recording)."""


class RpcMethodNotFound(RpcUnavailable):
    """The execution node does not implement this JSON-RPC method."""


class RpcCallFailed(RpcUnavailable):
    """The execution node answered a JSON-RPC call with an error."""


@runtime_checkable
class BeaconTransport(Protocol):
    """Read-only access to a beacon node's REST API."""

    def get(self, path: str) -> Any:
        """The decoded JSON body of `GET path`; raises `ResponseNotFound` or `RpcUnavailable`."""
        ...


@runtime_checkable
class ExecutionTransport(Protocol):
    """Access to an execution node's JSON-RPC API."""

    def call(self, method: str, params: Sequence[Any]) -> Any:
        """The `result` of calling `method` with `params`; raises on a JSON-RPC error."""
        ...


# --- replay -------------------------------------------------------------------------------------------------


class ReplayTransport:
    """Both transports at once, answering from recorded responses.

    A recording is a mapping `{"beacon": {path: body}, "execution": [{"method", "params",
    "result" | "error"}]}`. Any body or result may instead be `{"$file": path}`, read from that
    JSON file (relative paths are relative to the recording file), so large vectors are
    referenced rather than copied. Every request is appended to `requests` in order.
    """

    def __init__(self, recording: Mapping[str, Any], *, base_directory: Path | None = None) -> None:
        self._base = base_directory
        beacon = recording.get("beacon", {})
        execution = recording.get("execution", [])
        if not isinstance(beacon, Mapping) or not isinstance(execution, list):
            raise ValueError("a recording has a 'beacon' mapping and an 'execution' list")
        unknown = set(recording) - {"beacon", "execution", "description"}
        if unknown:
            raise ValueError(f"unknown recording keys: {sorted(unknown)}")
        self._beacon: dict[str, Any] = dict(beacon)
        self._execution: dict[str, dict[str, Any]] = {}
        for entry in execution:
            self._execution[self._call_key(entry["method"], entry.get("params", []))] = entry
        self._loaded: dict[str, Any] = {}
        self.requests: list[tuple[str, Any]] = []

    @classmethod
    def from_file(cls, path: str | Path) -> ReplayTransport:
        """Load a recording from a JSON file."""
        path = Path(path)
        with path.open() as handle:
            return cls(json.load(handle), base_directory=path.parent)

    @staticmethod
    def _call_key(method: str, params: Sequence[Any]) -> str:
        return json.dumps([method, list(params)], sort_keys=True)

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, Mapping) and set(value) == {"$file"}:
            name = str(value["$file"])
            if name not in self._loaded:
                file = Path(name)
                if not file.is_absolute() and self._base is not None:
                    file = self._base / file
                with file.open() as handle:
                    self._loaded[name] = json.load(handle)
            return self._loaded[name]
        return value

    def get(self, path: str) -> Any:
        """The recorded body for `GET path`."""
        self.requests.append(("GET", path))
        if path not in self._beacon:
            raise ResponseNotFound("no recorded beacon response", path=path)
        return self._resolve(self._beacon[path])

    def call(self, method: str, params: Sequence[Any]) -> Any:
        """The recorded result of a JSON-RPC call."""
        self.requests.append((method, list(params)))
        entry = self._execution.get(self._call_key(method, params))
        if entry is None:
            raise ResponseNotFound("no recorded JSON-RPC response", method=method, params=list(params))
        if "error" in entry:
            _raise_rpc_error(method, entry["error"])
        result = self._resolve(entry.get("result"))
        if result is None:
            raise ResponseNotFound("JSON-RPC result is null", method=method, params=list(params))
        return result


def _raise_rpc_error(method: str, error: Any) -> None:
    code = error.get("code") if isinstance(error, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else str(error)
    if code == JSONRPC_METHOD_NOT_FOUND:
        raise RpcMethodNotFound("JSON-RPC method not available", method=method, code=code, message=message)
    raise RpcCallFailed("JSON-RPC call failed", method=method, code=code, message=message)


# --- HTTP ------------------------------------------------------------------------------------------------------


def require_http_url(url: str) -> str:
    """`url` if it is http(s); `ConfigurationError` otherwise (urllib would also open `file:` URLs)."""
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError("node URL must be http:// or https://", url=url)
    return url


class HttpBeaconTransport:
    """A beacon node's REST API over HTTP(S), e.g. `http://localhost:5052`."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = require_http_url(base_url).rstrip("/")
        self.timeout = timeout

    def get(self, path: str) -> Any:
        """`GET path` and decode the JSON body."""
        url = self.base_url + path  # http(s) only: checked by require_http_url
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) only
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                raise ResponseNotFound("beacon node has no such resource", path=path) from error
            raise RpcUnavailable(
                "beacon node answered with an error", path=path, status=error.code
            ) from error
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as error:
            raise RpcUnavailable(
                "beacon node unreachable or answered garbage", path=path, reason=str(error)
            ) from error


class HttpExecutionTransport:
    """An execution node's JSON-RPC API over HTTP(S), e.g. `http://localhost:8545`."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = require_http_url(url)
        self.timeout = timeout
        self._next_id = 0

    def call(self, method: str, params: Sequence[Any]) -> Any:
        """POST one JSON-RPC request and return its `result`."""
        self._next_id += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": list(params)}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - http(s) only: checked by require_http_url
            self.url, data=body, headers={"Content-Type": "application/json", "Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) only
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise RpcUnavailable(
                "execution node answered with an HTTP error", method=method, status=error.code
            ) from error
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as error:
            raise RpcUnavailable(
                "execution node unreachable or answered garbage", method=method, reason=str(error)
            ) from error
        if not isinstance(answer, Mapping):
            raise RpcUnavailable("JSON-RPC answer is not an object", method=method)
        if answer.get("error") is not None:
            _raise_rpc_error(method, answer["error"])
        if answer.get("result") is None:
            raise ResponseNotFound("JSON-RPC result is null", method=method, params=list(params))
        return answer["result"]
