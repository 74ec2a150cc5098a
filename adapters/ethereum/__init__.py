"""Ethereum as a source chain verified by the sync-committee light client (`kind: ethereum`)."""
