"""Tools that start chains and processes around the relay: the devnet, benchmarks, a Prometheus helper.

They sit outside the core layers (like `relay.cli` and `relay.client`) and may import `adapters`;
nothing in the core imports them.
"""
