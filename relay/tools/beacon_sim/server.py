"""`BeaconApiServer`: the simulated chain's beacon light-client REST API, over loopback HTTP.

It answers the paths `adapters.ethereum.beacon_api` reads, in the beacon API's JSON (every
object wrapped as `{"version": fork, "data": ...}`), so `HttpBeaconTransport` and the light
clients read it as they would a beacon node:

- `GET /eth/v1/beacon/light_client/bootstrap/{block_root}`
- `GET /eth/v1/beacon/light_client/updates?start_period=&count=` (at most 128 periods)
- `GET /eth/v1/beacon/light_client/finality_update`, `.../optimistic_update`
- `GET /eth/v1/beacon/genesis` (genesis time, validators root and fork version)

A `ThreadingHTTPServer` bound to 127.0.0.1 on a port the kernel picks (port 0 by default). Bad
requests get 400, unknown roots and periods not reached yet 404, an unreachable execution node
503; each with the beacon API's `{"code", "message"}` body. Nothing a client sends reaches
beyond these checks.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from relay.errors import NotYetAvailable, RelayError
from relay.tools.beacon_sim.chain import SimulatedBeaconChain
from relay.verify.ethereum.codec import to_versioned_json

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
LIGHT_CLIENT_PREFIX = "/eth/v1/beacon/light_client/"
GENESIS_PATH = "/eth/v1/beacon/genesis"
MAX_REQUEST_LIGHT_CLIENT_UPDATES = 128
"""The beacon API's cap on periods per `updates` request."""
MAX_PERIOD = 2**40
"""Periods beyond this are refused before any arithmetic (2**40 periods of one slot outlast the universe)."""


class BadRequest(RelayError, ValueError):
    """A request the API refuses (400): an unknown parameter, a malformed root or number."""


class BeaconApiServer:
    """Serves a `SimulatedBeaconChain` until `stop()`; `url` is its base URL."""

    def __init__(self, chain: SimulatedBeaconChain, host: str = LOOPBACK, port: int = 0) -> None:
        self.chain = chain
        handler = type("BoundBeaconApiHandler", (_BeaconApiHandler,), {"chain": chain})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> BeaconApiServer:
        """Serve in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="beacon-sim-http", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> BeaconApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def answer(chain: SimulatedBeaconChain, path: str) -> Any:
    """The JSON body for `GET path`; raises `BadRequest`, `NotYetAvailable` or another `RelayError`."""
    parts = urlsplit(path)
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True, max_num_fields=4)
    except ValueError as error:
        raise BadRequest("malformed query string", query=parts.query[:80]) from error
    route = parts.path
    fork = chain.network.compute_fork_at_slot
    if route == GENESIS_PATH:
        _no_parameters(query)
        network = chain.network
        return {
            "data": {
                "genesis_time": str(network.genesis_time),
                "genesis_validators_root": "0x" + network.genesis_validators_root.hex(),
                "genesis_fork_version": "0x" + network.forks[0].version.hex(),
            }
        }
    if not route.startswith(LIGHT_CLIENT_PREFIX):
        raise NotYetAvailable("no such resource", path=route)
    name = route[len(LIGHT_CLIENT_PREFIX) :]
    if name.startswith("bootstrap/"):
        _no_parameters(query)
        bootstrap = chain.bootstrap(_parse_root(name[len("bootstrap/") :]))
        return to_versioned_json(bootstrap, fork(bootstrap.header.beacon.slot))
    if name == "updates":
        start = _parse_number(query, "start_period", MAX_PERIOD)
        count = _parse_number(query, "count", MAX_PERIOD)
        if set(query) != {"start_period", "count"}:
            raise BadRequest("updates takes start_period and count only", parameters=sorted(query))
        updates = chain.updates(start, min(count, MAX_REQUEST_LIGHT_CLIENT_UPDATES))
        return [to_versioned_json(u, fork(u.attested_header.beacon.slot)) for u in updates]
    if name == "finality_update":
        _no_parameters(query)
        finality = chain.finality_update()
        return to_versioned_json(finality, fork(finality.attested_header.beacon.slot))
    if name == "optimistic_update":
        _no_parameters(query)
        optimistic = chain.optimistic_update()
        return to_versioned_json(optimistic, fork(optimistic.attested_header.beacon.slot))
    raise NotYetAvailable("no such resource", path=route)


def _no_parameters(query: dict[str, list[str]]) -> None:
    if query:
        raise BadRequest("this resource takes no query parameters", parameters=sorted(query))


def _parse_root(text: str) -> bytes:
    digits = text.removeprefix("0x")
    if len(digits) != 64 or not all(c in "0123456789abcdefABCDEF" for c in digits):
        raise BadRequest("a block root is 0x and 64 hex digits", root=text[:80])
    return bytes.fromhex(digits)


def _parse_number(query: dict[str, list[str]], name: str, maximum: int) -> int:
    values = query.get(name)
    if not values or len(values) != 1:
        raise BadRequest(f"{name} is required once", parameter=name)
    text = values[0]
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise BadRequest(f"{name} is a decimal number", parameter=name, value=text[:40])
    value = int(text)
    if value > maximum:
        raise BadRequest(f"{name} is too large", parameter=name, value=value, maximum=maximum)
    return value


class _BeaconApiHandler(BaseHTTPRequestHandler):
    chain: SimulatedBeaconChain
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        try:
            status, body = HTTPStatus.OK, answer(self.chain, self.path)
        except BadRequest as error:
            status, body = HTTPStatus.BAD_REQUEST, _error_body(HTTPStatus.BAD_REQUEST, error)
        except NotYetAvailable as error:
            status, body = HTTPStatus.NOT_FOUND, _error_body(HTTPStatus.NOT_FOUND, error)
        except RelayError as error:
            log.warning("beacon sim could not answer %s: %s", self.path[:200], error)
            status, body = HTTPStatus.SERVICE_UNAVAILABLE, _error_body(HTTPStatus.SERVICE_UNAVAILABLE, error)
        except Exception as error:  # a bug here must not kill the server thread silently
            log.exception("beacon sim failed on %s", self.path[:200])
            status, body = (
                HTTPStatus.INTERNAL_SERVER_ERROR,
                _error_body(HTTPStatus.INTERNAL_SERVER_ERROR, error),
            )
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("beacon sim: " + format, *args)


def _error_body(status: HTTPStatus, error: Exception) -> dict[str, Any]:
    return {"code": int(status), "message": str(error)[:500]}
