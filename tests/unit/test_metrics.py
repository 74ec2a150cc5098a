"""RelayMetrics registers every metric once on the injected registry; the interceptor counts real calls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from relay.errors import InvalidMerkleProof
from relay.metrics import MetricsInterceptor, RelayMetrics

SERVICE = "relay.test.Echo"


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_every_metric_is_on_the_injected_registry_with_the_relay_prefix() -> None:
    registry = CollectorRegistry()
    RelayMetrics(registry)
    names = {metric.name for metric in registry.collect()}
    assert names and all(name.startswith("relay_") for name in names)
    expected = {
        "relay_messages",
        "relay_messages_delivered",
        "relay_stage_latency_seconds",
        "relay_end_to_end_latency_seconds",
        "relay_oldest_pending_message_age_seconds",
        "relay_oldest_retrying_message_age_seconds",
        "relay_queue_depth",
        "relay_chain_head_block",
        "relay_chain_finalized_block",
        "relay_watcher_lag_blocks",
        "relay_verification_seconds",
        "relay_proof_rejections",
        "relay_rpc_calls",
        "relay_rpc_errors",
        "relay_retries",
        "relay_reorgs",
        "relay_source_halted",
        "relay_source_disagreements",
        "relay_watcher_skipped_logs",
        "relay_tree_repairs",
        "relay_committee_epoch",
        "relay_handovers_submitted",
        "relay_reattested_messages",
        "relay_submitter_balance",
        "relay_submitter_nonce",
        "relay_submitter_gas_spent_wei",
        "relay_submitter_transaction_events",
        "relay_deliveries_unconfirmed",
        "relay_deliveries_paused",
        "relay_deliveries_found_on_chain",
        "relay_gas_policy_holds",
        "relay_light_client_updates",
        "relay_light_client_stored_block",
        "relay_route_gas_spent",
        "relay_route_native_spent",
        "relay_route_spent_in_origin_units",
        "relay_route_native_paid",
        "relay_attestor_last_signed_index",
        "relay_attestor_halted",
        "relay_attestor_quorum_reachable_weight",
        "relay_attestor_quorum_threshold_weight",
        "relay_grpc_server_requests",
        "relay_grpc_server_latency_seconds",
        "relay_replica_info",
        "relay_lease_held",
        "relay_lease_takeovers",
        "relay_fenced_writes",
        "relay_claims_requeued",
    }
    assert names == expected


def test_the_default_registry_is_untouched_and_a_second_declaration_is_refused() -> None:
    from prometheus_client import REGISTRY

    registry = CollectorRegistry()
    RelayMetrics(registry)
    assert REGISTRY.get_sample_value("relay_queue_depth", {"origin": "1", "destination": "2"}) is None
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        RelayMetrics(registry)
    RelayMetrics(CollectorRegistry())  # another registry is independent


def test_helpers_write_the_documented_series() -> None:
    registry = CollectorRegistry()
    metrics = RelayMetrics(registry)
    metrics.declare_route(1, 2)
    assert (
        registry.get_sample_value("relay_messages_delivered_total", {"origin": "1", "destination": "2"}) == 0
    )
    assert sample(registry, "relay_messages", origin="1", destination="2", state="observed") == 0
    metrics.set_message_counts(1, 2, {"observed": 3, "delivered": 7})
    assert sample(registry, "relay_messages", origin="1", destination="2", state="observed") == 3
    assert sample(registry, "relay_messages", origin="1", destination="2", state="parked") == 0
    metrics.set_chain_progress("alpha", head=120, finalized=100, processed=90)
    assert sample(registry, "relay_watcher_lag_blocks", chain="alpha") == 10
    assert sample(registry, "relay_chain_head_block", chain="alpha") == 120
    metrics.set_quorum(1, reachable_weight=2, threshold=3)
    assert sample(registry, "relay_attestor_quorum_reachable_weight", origin="1") == 2
    assert sample(registry, "relay_attestor_quorum_threshold_weight", origin="1") == 3
    metrics.record_rejection(1, InvalidMerkleProof("bad branch", index=4))
    assert sample(registry, "relay_proof_rejections_total", origin="1", reason="InvalidMerkleProof") == 1
    with metrics.time_verification("merkle"):
        pass
    assert sample(registry, "relay_verification_seconds_count", kind="merkle") == 1


# --- the interceptor, over a real in-process gRPC server on 127.0.0.1 ---------------------------


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def _missing(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, "no such message")
    raise AssertionError("abort raises")


def _boom(request: bytes, context: grpc.ServicerContext) -> bytes:
    raise RuntimeError("handler bug")


def _count(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for i in range(int(request.decode())):
        yield str(i).encode()


def _count_then_fail(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    yield b"0"
    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")


def _join(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    return b"".join(requests)


@pytest.fixture()
def served() -> Iterator[tuple[CollectorRegistry, grpc.Channel]]:
    from concurrent import futures

    registry = CollectorRegistry()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4), interceptors=[MetricsInterceptor(RelayMetrics(registry))]
    )
    handlers: dict[str, Any] = {
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Missing": grpc.unary_unary_rpc_method_handler(_missing),
        "Boom": grpc.unary_unary_rpc_method_handler(_boom),
        "Count": grpc.unary_stream_rpc_method_handler(_count),
        "CountThenFail": grpc.unary_stream_rpc_method_handler(_count_then_fail),
        "Join": grpc.stream_unary_rpc_method_handler(_join),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield registry, channel
    finally:
        channel.close()
        server.stop(grace=None)


def _requests(registry: CollectorRegistry, method: str, code: str) -> float:
    return sample(registry, "relay_grpc_server_requests_total", method=f"/{SERVICE}/{method}", code=code)


def test_interceptor_counts_unary_calls_by_method_and_code(
    served: tuple[CollectorRegistry, grpc.Channel],
) -> None:
    registry, channel = served
    assert channel.unary_unary(f"/{SERVICE}/Echo")(b"hi", timeout=5) == b"hi"
    assert channel.unary_unary(f"/{SERVICE}/Echo")(b"again", timeout=5) == b"again"
    with pytest.raises(grpc.RpcError) as missing:
        channel.unary_unary(f"/{SERVICE}/Missing")(b"", timeout=5)
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as boom:
        channel.unary_unary(f"/{SERVICE}/Boom")(b"", timeout=5)
    assert boom.value.code() is grpc.StatusCode.UNKNOWN
    with pytest.raises(grpc.RpcError) as nowhere:
        channel.unary_unary(f"/{SERVICE}/Nowhere")(b"", timeout=5)
    assert nowhere.value.code() is grpc.StatusCode.UNIMPLEMENTED

    assert _requests(registry, "Echo", "OK") == 2
    assert _requests(registry, "Missing", "NOT_FOUND") == 1
    assert _requests(registry, "Boom", "UNKNOWN") == 1
    assert _requests(registry, "Nowhere", "UNIMPLEMENTED") == 1
    assert (
        sample(registry, "relay_grpc_server_latency_seconds_count", method=f"/{SERVICE}/Echo", code="OK") == 2
    )


def test_interceptor_counts_streaming_calls_when_the_stream_ends(
    served: tuple[CollectorRegistry, grpc.Channel],
) -> None:
    registry, channel = served
    assert list(channel.unary_stream(f"/{SERVICE}/Count")(b"3", timeout=5)) == [b"0", b"1", b"2"]
    with pytest.raises(grpc.RpcError) as failed:
        list(channel.unary_stream(f"/{SERVICE}/CountThenFail")(b"", timeout=5))
    assert failed.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert channel.stream_unary(f"/{SERVICE}/Join")(iter([b"a", b"b"]), timeout=5) == b"ab"

    assert _requests(registry, "Count", "OK") == 1
    assert _requests(registry, "CountThenFail", "RESOURCE_EXHAUSTED") == 1
    assert _requests(registry, "Join", "OK") == 1
