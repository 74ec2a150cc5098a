"""The light-client verifier: pure functions and small classes, no I/O, no clock, no globals.

- `relay.verify.message`: the v3 message encoding and its id.
- `relay.verify.merkle`: the depth-32 incremental Merkle tree and branch verification.
- `relay.verify.bls`: BLS12-381 backends (py_ecc reference, blst fast).
- `relay.verify.committee`: committees, checkpoints, quorum certificates, hand-overs.
- `relay.verify.ecdsa`: ECDSA committees (the Gateway's ECDSA mode): hash, certificates, checkpoints, hand-overs.
- `relay.verify.ethereum`: the Ethereum sync-committee light client and execution proofs.
"""
