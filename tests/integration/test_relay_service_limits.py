"""RelayService under a flood of status streams: operator calls and queries still answer.

The relayer, its store and its gRPC server are real (the fakes of tests/integration/test_relayer.py
stand for the chains and peers). 64 `WatchMessages` streams are opened against a limit of 32: the
first 32 are served, the rest are refused with RESOURCE_EXHAUSTED at once, and while the 32 stay
open `RetryMessage`, `GetMessage`, `ListMessages` and the gRPC health check answer within a short
deadline. Before the per-kind limits the 32 streams took every server thread and the operator's
retry waited for ever. The streams come over the public port (server TLS) and the retry over the
operator port (mutual TLS) of the same server, so they share its limits.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from relay.lifecycle import MessageState
from relay.rpc.tls import open_channel
from relay.v1 import relay_service_pb2, relay_service_pb2_grpc, types_pb2
from tests.integration.test_relayer import TOKEN, World, tls_world  # noqa: F401 - the fixture
from tests.pki import Pki
from tests.waiting import eventually

S = MessageState
PROMPT = 5.0  # seconds: a deadline that a blocked server thread pool would miss for ever


def test_64_watch_streams_never_block_retry_or_queries(tls_world: World, pki: Pki) -> None:  # noqa: F811
    world = tls_world
    parked = world.chain.dispatch(b"reverts")
    world.destination.reverting.add(parked.id)
    relayer = world.relayer().open()
    relayer.serve()
    assert relayer.config.max_watch_streams == 32
    relayer.run_once()
    assert relayer.store.get(parked.id).state is S.PARKED  # type: ignore[union-attr]
    channels = [open_channel(relayer.address, pki.client()) for _ in range(4)]
    operator = open_channel(relayer.operator_address, pki.client("operator"))
    streams = []
    try:
        served, refused = 0, 0
        for n in range(64):
            stub = relay_service_pb2_grpc.RelayServiceStub(channels[n % len(channels)])
            stream = stub.WatchMessages(relay_service_pb2.WatchMessagesRequest(ids=[parked.id]), timeout=60)
            streams.append(stream)
            try:
                first = next(stream)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
                refused += 1
            else:
                assert first.state == types_pb2.MESSAGE_STATE_PARKED
                served += 1
        assert (served, refused) == (32, 32)

        client = relay_service_pb2_grpc.RelayServiceStub(channels[0])
        status = client.GetMessage(relay_service_pb2.GetMessageRequest(id=parked.id), timeout=PROMPT)
        assert status.state == types_pb2.MESSAGE_STATE_PARKED
        page = client.ListMessages(relay_service_pb2.ListMessagesRequest(), timeout=PROMPT)
        assert [m.message.id for m in page.messages] == [parked.id]
        health = health_pb2_grpc.HealthStub(channels[1]).Check(
            health_pb2.HealthCheckRequest(), timeout=PROMPT
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        world.destination.reverting.clear()
        retried = relay_service_pb2_grpc.RelayServiceStub(operator).RetryMessage(
            relay_service_pb2.RetryMessageRequest(id=parked.id, operator_token=TOKEN), timeout=PROMPT
        )
        assert retried.state == types_pb2.MESSAGE_STATE_VERIFIED
        # The open streams hear about the retry: they are alive, not just holding slots.
        assert any(next(s).state == types_pb2.MESSAGE_STATE_VERIFIED for s in streams if s.is_active())

        # A stream slot freed by a client that goes away is taken by the next watcher (once the
        # server noticed the cancellations: its streams look at their context twice a second).
        for stream in streams:
            stream.cancel()

        def watch_again() -> Any:
            again = relay_service_pb2_grpc.RelayServiceStub(channels[2]).WatchMessages(
                relay_service_pb2.WatchMessagesRequest(ids=[parked.id]), timeout=PROMPT
            )
            streams.append(again)
            try:
                return next(again)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
                return None

        first = eventually(watch_again, 10, "a freed stream slot taken by the next watcher", interval=0.2)
        assert first.state == types_pb2.MESSAGE_STATE_VERIFIED
    finally:
        for stream in streams:
            stream.cancel()
        for channel in [*channels, operator]:
            channel.close()
        relayer.stop()
