"""The gRPC contract: stubs are generated from proto/ and fail this test when stale."""

from __future__ import annotations

import shutil
from pathlib import Path

from relay.rpc import build


def test_generated_stubs_are_up_to_date() -> None:
    assert build.stale_files() == []


def test_a_changed_proto_is_detected(tmp_path: Path) -> None:
    copy = tmp_path / "v1"
    shutil.copytree(build.OUTPUT_PACKAGE, copy)
    stub = copy / "types_pb2.py"
    stub.write_text(stub.read_text() + "\n# hand edit\n")
    assert build.stale_files(copy) == ["types_pb2.py"]


def test_three_services_are_defined() -> None:
    from relay.v1 import attestation_pb2, destination_pb2, relay_service_pb2

    services = {
        name
        for module in (attestation_pb2, destination_pb2, relay_service_pb2)
        for name in module.DESCRIPTOR.services_by_name
    }
    assert services == {"AttestationService", "DestinationService", "RelayService"}
    methods = {m.name for m in relay_service_pb2.DESCRIPTOR.services_by_name["RelayService"].methods}
    assert {"GetMessage", "ListMessages", "WatchMessages", "RetryMessage", "ListChains"} <= methods


def test_every_proto_file_declares_the_versioned_package() -> None:
    for path in build.proto_files():
        assert "package relay.v1;" in path.read_text(), path
    assert Path(build.PROTO_DIR).name == "v1"
