"""The relay's long-running roles, one module each: `relayer` (no keys: watch, attest-collect,
verify, forward), `attestor` (one committee BLS key: sign checkpoints) and `submitter` (one
destination transaction key: deliver batches). Each is a `relay` CLI subcommand and a pod kind."""
