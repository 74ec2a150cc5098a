"""Every metric the relay exports, declared once, on an injectable registry.

`RelayMetrics(registry)` registers all `relay_*` metrics on the given
`prometheus_client.CollectorRegistry` (tests pass a fresh one; processes pass the one their
`/metrics` endpoint serves). Roles hold one instance and update its attributes; they never create
metrics of their own, so names, labels and buckets live in this file and in the reference table
of docs/operations.md, and nowhere else.

gRPC server metrics are recorded by `MetricsInterceptor`, not by handlers, so every method of
every service is counted the same way (including calls the handler never sees, such as
UNIMPLEMENTED).

Label conventions: `origin`/`destination` are domain numbers as decimal strings; `chain` is the
`ChainConfig.name`; `method` is the full gRPC method (`/relay.v1.Service/Method`) for gRPC and
the JSON-RPC method (`eth_getLogs`) for chain RPC; `reason` is `RelayError.reason` (the class name).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from relay.lifecycle import MessageState

NAMESPACE = "relay"

# The states a message moves through (relay.lifecycle); `relay_messages` has one series per state.
MESSAGE_STATES = tuple(state.value for state in MessageState)

# Seconds. Cross-chain delivery spans block times and finality (minutes), so the buckets reach an hour.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
# Seconds. Verification is CPU work: a Merkle branch is microseconds, a 512-key BLS check milliseconds.
VERIFY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
# Seconds. gRPC handlers on the relay's own services.
GRPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class RelayMetrics:
    """All relay metrics, registered on `registry` with the `relay_` prefix.

    Create exactly one per registry: a second instance on the same registry raises
    `ValueError` (prometheus_client refuses duplicate names), which catches double declaration.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        ns = NAMESPACE

        # --- messages ----------------------------------------------------------------------
        self.messages = Gauge(
            "messages",
            "Messages currently in each state.",
            ["origin", "destination", "state"],
            namespace=ns,
            registry=registry,
        )
        self.messages_delivered = Counter(
            "messages_delivered",
            "Messages delivered on the destination (executed exactly once).",
            ["origin", "destination"],
            namespace=ns,
            registry=registry,
        )
        self.stage_latency = Histogram(
            "stage_latency_seconds",
            "Time a message spent in one stage (observe, attest, prove, submit, confirm).",
            ["origin", "destination", "stage"],
            namespace=ns,
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.end_to_end_latency = Histogram(
            "end_to_end_latency_seconds",
            "Time from dispatch on the origin to delivery on the destination.",
            ["origin", "destination"],
            namespace=ns,
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.oldest_pending_age = Gauge(
            "oldest_pending_message_age_seconds",
            "Age of the oldest message that is deliverable (finalized and attested) but not yet delivered.",
            ["origin", "destination"],
            namespace=ns,
            registry=registry,
        )
        self.oldest_retrying_age = Gauge(
            "oldest_retrying_message_age_seconds",
            "Age (since it was observed) of the oldest message a transient failure keeps RETRYING; 0 when none.",
            ["origin", "destination"],
            namespace=ns,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "queue_depth",
            "Messages waiting in the relayer's queue for a destination.",
            ["origin", "destination"],
            namespace=ns,
            registry=registry,
        )

        # --- chains ------------------------------------------------------------------------
        self.chain_head = Gauge(
            "chain_head_block",
            "Latest block number seen on the chain.",
            ["chain"],
            namespace=ns,
            registry=registry,
        )
        self.chain_finalized = Gauge(
            "chain_finalized_block",
            "Latest finalized (or confirmed-depth) block number on the chain.",
            ["chain"],
            namespace=ns,
            registry=registry,
        )
        self.watcher_lag = Gauge(
            "watcher_lag_blocks",
            "Finalized block minus the last block the watcher has processed.",
            ["chain"],
            namespace=ns,
            registry=registry,
        )
        self.rpc_calls = Counter(
            "rpc_calls", "Chain RPC calls made.", ["chain", "method"], namespace=ns, registry=registry
        )
        self.rpc_errors = Counter(
            "rpc_errors", "Chain RPC calls that failed.", ["chain", "method"], namespace=ns, registry=registry
        )
        self.retries = Counter(
            "retries",
            "Retries performed by a named retry policy.",
            ["policy"],
            namespace=ns,
            registry=registry,
        )
        self.reorgs = Counter(
            "reorgs",
            "Reorganisations detected below the watcher's position.",
            ["chain"],
            namespace=ns,
            registry=registry,
        )
        self.source_halted = Gauge(
            "source_halted",
            "1 while the source chain's RPC endpoints disagree: the watcher stores nothing new from it.",
            ["chain"],
            namespace=ns,
            registry=registry,
        )
        self.source_disagreements = Counter(
            "source_disagreements",
            "Polls in which the source chain's RPC endpoints disagreed, by what they disagreed on.",
            ["chain", "method"],
            namespace=ns,
            registry=registry,
        )
        self.watcher_skipped_logs = Counter(
            "watcher_skipped_logs",
            "Logs an RPC returned that the watcher ignored, by reason (another address or topic).",
            ["chain", "reason"],
            namespace=ns,
            registry=registry,
        )
        self.committee_epoch = Gauge(
            "committee_epoch",
            "The committee epoch the relayer attests each origin under (followed from the destination gateways).",
            ["origin"],
            namespace=ns,
            registry=registry,
        )
        self.handovers_submitted = Counter(
            "handovers_submitted",
            "Hand-over certificates the relayer had a destination's submitter submit.",
            ["origin", "destination"],
            namespace=ns,
            registry=registry,
        )
        self.reattested = Counter(
            "reattested_messages",
            "Messages sent back to be attested again because a hand-over moved their origin to a new epoch.",
            ["origin"],
            namespace=ns,
            registry=registry,
        )
        self.tree_repairs = Counter(
            "tree_repairs",
            "Times a committee checkpoint disagreed with the relayer's tree and the tree was re-read.",
            ["origin"],
            namespace=ns,
            registry=registry,
        )

        # --- verification ------------------------------------------------------------------
        self.verification_time = Histogram(
            "verification_seconds",
            "Time to verify one proof, by kind (merkle, checkpoint, handover, ecdsa).",
            ["kind"],
            namespace=ns,
            registry=registry,
            buckets=VERIFY_BUCKETS,
        )
        self.rejections = Counter(
            "proof_rejections",
            "Proofs rejected, by reason (the InvalidProof class name).",
            ["origin", "reason"],
            namespace=ns,
            registry=registry,
        )

        # --- submitter ---------------------------------------------------------------------
        self.submitter_balance = Gauge(
            "submitter_balance",
            "Native balance of the submitter's account, in the chain's smallest native unit (wei on EVM chains).",
            ["chain", "account"],
            namespace=ns,
            registry=registry,
        )
        self.submitter_nonce = Gauge(
            "submitter_nonce",
            "Next nonce of the submitter's account.",
            ["chain", "account"],
            namespace=ns,
            registry=registry,
        )
        self.gas_spent = Counter(
            "submitter_gas_spent_wei",
            "Fees paid by the submitter (gas used times effective price).",
            ["chain", "account"],
            namespace=ns,
            registry=registry,
        )

        self.submitter_transactions = Counter(
            "submitter_transaction_events",
            "Delivery transactions that needed help to land, by event: fee_bump (replaced with "
            "higher fees), fee_cap (the next bump would pass max_fee_per_gas_cap), dropped (the "
            "node forgot it; sent again under a re-read nonce), nonce_taken (another transaction "
            "used its nonce; sent again).",
            ["chain", "event"],
            namespace=ns,
            registry=registry,
        )

        # --- relayer: deliveries confirmed on the destination chain ------------------------
        self.deliveries_unconfirmed = Counter(
            "deliveries_unconfirmed",
            "Messages a submitter reported delivered that the destination chain does not show "
            "delivered (kept RETRYING, not DELIVERED).",
            ["destination"],
            namespace=ns,
            registry=registry,
        )
        self.deliveries_paused = Counter(
            "deliveries_paused",
            "Messages the destination gateway refused because delivery from their origin is paused "
            "(emergency controls): they wait PAUSED and are tried again.",
            ["origin", "destination"],
            namespace=ns,
            registry=registry,
        )
        self.deliveries_found_on_chain = Counter(
            "deliveries_found_on_chain",
            "PARKED or RETRYING messages found delivered on the destination chain (made DELIVERED).",
            ["destination"],
            namespace=ns,
            registry=registry,
        )

        # --- relayer: light-client origins ----------------------------------------------------
        self.light_client_updates = Counter(
            "light_client_updates",
            "Light-client updates for a light-client origin's destination light client, by outcome (sent,"
            " not_needed, unverified: the beacon node's data did not verify, else the submitter's error).",
            ["origin", "destination", "outcome"],
            namespace=ns,
            registry=registry,
        )
        self.light_client_stored_block = Gauge(
            "light_client_stored_block",
            "The newest execution block of the origin that the destination's light client stores.",
            ["origin", "destination"],
            namespace=ns,
            registry=registry,
        )
        # --- relayer: gas policy and cost accounting per route -----------------------------
        self.gas_policy_holds = Counter(
            "gas_policy_holds",
            "Messages the gas policy held UNPAID, by reason (Unpaid, Underpaid, GasPriceUnknown, "
            "PaymentUnknown).",
            ["origin", "destination", "reason"],
            namespace=ns,
            registry=registry,
        )
        self.route_gas_spent = Counter(
            "route_gas_spent",
            "Gas used by delivery transactions, attributed to each message evenly within its batch.",
            ["origin", "destination"],
            namespace=ns,
            registry=registry,
        )
        self.route_native_spent = Counter(
            "route_native_spent",
            "Fees of delivery transactions (gas used times effective gas price) attributed per "
            "message, in the destination's smallest native unit.",
            ["origin", "destination"],
            namespace=ns,
            registry=registry,
        )
        self.route_spent_in_origin_units = Counter(
            "route_spent_in_origin_units",
            "relay_route_native_spent valued in the origin's smallest native unit (times the "
            "policy's exchange rate / 1e10): comparable with relay_route_native_paid.",
            ["origin", "destination"],
            namespace=ns,
            registry=registry,
        )
        self.route_native_paid = Counter(
            "route_native_paid",
            "Gas payments (gasPaid on the source gateway) of delivered messages, in the origin's "
            "smallest native unit.",
            ["origin", "destination"],
            namespace=ns,
            registry=registry,
        )

        # --- attestor ----------------------------------------------------------------------
        self.attestor_last_signed_index = Gauge(
            "attestor_last_signed_index",
            "Merkle index of the last checkpoint this attestor signed.",
            ["origin"],
            namespace=ns,
            registry=registry,
        )
        self.attestor_halted = Gauge(
            "attestor_halted",
            "1 when this attestor stopped signing on a finality conflict (a changed or non-extending root).",
            ["origin", "reason"],
            namespace=ns,
            registry=registry,
        )
        self.quorum_reachable_weight = Gauge(
            "attestor_quorum_reachable_weight",
            "Total weight of attestors that answered the last probe.",
            ["origin"],
            namespace=ns,
            registry=registry,
        )
        self.quorum_threshold = Gauge(
            "attestor_quorum_threshold_weight",
            "Weight the committee of this origin needs for a quorum.",
            ["origin"],
            namespace=ns,
            registry=registry,
        )

        # --- replicas (several relayers on one store; docs/adr/0007) ------------------------
        # Per-replica metrics: each replica exports its own. The message gauges above are read
        # from the shared store, so every replica exports the same values (aggregate with max).
        self.replica_info = Gauge(
            "replica_info",
            "1, labelled with this relayer's replica id.",
            ["replica"],
            namespace=ns,
            registry=registry,
        )
        self.lease_held = Gauge(
            "lease_held",
            "1 while this replica holds the lease (source/<domain>: it watches, attests and proves the origin).",
            ["lease"],
            namespace=ns,
            registry=registry,
        )
        self.lease_takeovers = Counter(
            "lease_takeovers",
            "Leases this replica took over from another owner (whose lease had expired or was released).",
            ["lease"],
            namespace=ns,
            registry=registry,
        )
        self.fenced_writes = Counter(
            "fenced_writes",
            "Writes refused because this replica's lease or claim had moved on to another (LeaseLost; stage"
            " renew: a claim renewal refused while a delivery call waited, the call abandoned).",
            ["stage"],
            namespace=ns,
            registry=registry,
        )
        self.claims_requeued = Counter(
            "claims_requeued",
            "SUBMITTED messages whose delivery claim expired, queued again by this replica.",
            ["destination"],
            namespace=ns,
            registry=registry,
        )

        # --- gRPC server (recorded by MetricsInterceptor) ----------------------------------
        self.grpc_requests = Counter(
            "grpc_server_requests",
            "gRPC requests handled, by full method and status code.",
            ["method", "code"],
            namespace=ns,
            registry=registry,
        )
        self.grpc_latency = Histogram(
            "grpc_server_latency_seconds",
            "gRPC handling time, by full method and status code.",
            ["method", "code"],
            namespace=ns,
            registry=registry,
            buckets=GRPC_BUCKETS,
        )

    def declare_route(self, origin: int, destination: int) -> None:
        """Create a route's series at zero at start-up, so rate/increase and the no-progress alert
        see the route before its first delivery (a counter that does not exist yet cannot be "flat")."""
        o, d = str(origin), str(destination)
        self.messages_delivered.labels(o, d)
        self.queue_depth.labels(o, d).set(0)
        self.oldest_pending_age.labels(o, d).set(0)
        self.oldest_retrying_age.labels(o, d).set(0)
        self.set_message_counts(origin, destination, {})

    def set_message_counts(self, origin: int, destination: int, counts: dict[str, int]) -> None:
        """Set `relay_messages` for one route from a {state: count} snapshot; absent states become 0."""
        for state in sorted(set(MESSAGE_STATES) | set(counts)):
            self.messages.labels(str(origin), str(destination), state).set(counts.get(state, 0))

    def set_quorum(self, origin: int, reachable_weight: int, threshold: int) -> None:
        """Record how much attestor weight answered vs how much a quorum needs, for one origin."""
        self.quorum_reachable_weight.labels(str(origin)).set(reachable_weight)
        self.quorum_threshold.labels(str(origin)).set(threshold)

    def set_chain_progress(self, chain: str, head: int, finalized: int, processed: int) -> None:
        """Record a watcher's view of one chain: head, finalized block and how far behind it is."""
        self.chain_head.labels(chain).set(head)
        self.chain_finalized.labels(chain).set(finalized)
        self.watcher_lag.labels(chain).set(max(0, finalized - processed))

    def forget_chain_progress(self, chain: str) -> None:
        """Stop exporting the watcher's view of `chain` (head, finalized, lag, halted): a replica
        that does not hold the source's lease has no current view, and a stale one would hide or
        fake the holder's under `max` (docs/operations.md, several replicas)."""
        for gauge in (self.chain_head, self.chain_finalized, self.watcher_lag, self.source_halted):
            try:
                gauge.remove(chain)
            except KeyError:
                pass  # never exported here

    def record_rejection(self, origin: int, error: BaseException) -> None:
        """Count a rejected proof under its stable reason (`RelayError.reason`, else the class name)."""
        reason = getattr(error, "reason", None)
        self.rejections.labels(str(origin), reason if isinstance(reason, str) else type(error).__name__).inc()

    def time_verification(self, kind: str) -> Any:
        """A context manager / decorator timing one verification of `kind`."""
        return self.verification_time.labels(kind).time()


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts and times every gRPC server call by full method and final status code.

    Works for all four call shapes: unary responses are timed around the handler; streamed
    responses are timed until the iterator is exhausted or fails. The code is OK on success, the
    code the handler set with `context.abort`/`set_code` otherwise, and UNKNOWN for an uncaught
    exception. Calls to methods no service implements are counted as UNIMPLEMENTED.
    """

    def __init__(self, metrics: RelayMetrics, clock: Callable[[], float] = time.perf_counter) -> None:
        self._metrics = metrics
        self._clock = clock

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Wrap the handler grpc found for this method (or record UNIMPLEMENTED if none)."""
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        handler = continuation(handler_call_details)
        if handler is None:
            self._record(method, grpc.StatusCode.UNIMPLEMENTED, 0.0)
            return None
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, handler.stream_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(method, handler.stream_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return handler

    def _record(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        name = code.name
        self._metrics.grpc_requests.labels(method, name).inc()
        self._metrics.grpc_latency.labels(method, name).observe(seconds)

    def _wrap_unary(
        self, method: str, behavior: Callable[[Any, grpc.ServicerContext], Any]
    ) -> Callable[..., Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            start = self._clock()
            try:
                response = behavior(request, context)
            except BaseException:
                self._record(method, _code_after_failure(context), self._clock() - start)
                raise
            self._record(method, _code_after_success(context), self._clock() - start)
            return response

        return handle

    def _wrap_stream(
        self,
        method: str,
        behavior: Callable[[Any, grpc.ServicerContext], Iterator[Any]],
    ) -> Callable[..., Iterator[Any]]:
        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = self._clock()
            try:
                yield from behavior(request, context)
            except GeneratorExit:
                # The client went away (cancelled) before the stream finished.
                self._record(method, grpc.StatusCode.CANCELLED, self._clock() - start)
                raise
            except BaseException:
                self._record(method, _code_after_failure(context), self._clock() - start)
                raise
            self._record(method, _code_after_success(context), self._clock() - start)

        return handle


def _context_code(context: grpc.ServicerContext) -> grpc.StatusCode | None:
    # `ServicerContext.code()` exists since grpcio 1.38; older or fake contexts may lack it.
    code_of = getattr(context, "code", None)
    code = code_of() if callable(code_of) else None
    return code if isinstance(code, grpc.StatusCode) else None


def _code_after_success(context: grpc.ServicerContext) -> grpc.StatusCode:
    return _context_code(context) or grpc.StatusCode.OK


def _code_after_failure(context: grpc.ServicerContext) -> grpc.StatusCode:
    # `context.abort(code, ...)` sets the code and raises; any other exception is UNKNOWN to the client.
    code = _context_code(context)
    return code if code is not None and code is not grpc.StatusCode.OK else grpc.StatusCode.UNKNOWN
