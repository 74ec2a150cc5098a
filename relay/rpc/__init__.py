"""The gRPC boundary: generated stubs live in `relay.v1` (made by `python -m relay.rpc.build`);
conversion between protobuf messages and domain types happens here, not in the core."""
