"""A trust-minimised cross-chain messaging relay.

`relay.verify` is the pure verifier (no I/O); `relay.cli` the `relay` command; the roles
(attestor, relayer, submitter) talk gRPC using the stubs generated from `proto/relay/v1/`.
"""

__version__ = "0.1.0"
