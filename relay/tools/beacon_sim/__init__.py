"""A simulated beacon chain that follows a real execution chain (anvil), for the light-client devnet.

Ethereum's light client trusts the sync committee; a local devnet has no beacon chain, so this
package makes one up around a real anvil chain, and only that part is simulated:

- `builders`: networks, committees with known secret keys, headers and reduced states (shared
  with the tests' synthetic chain);
- `chain`: `SimulatedBeaconChain`, one beacon slot per anvil block, each block's execution
  payload header copied from anvil's real header (its hash checked), states holding the
  finalized checkpoint and the sync committees, aggregates signed over the real signing root,
  committees changing every sync-committee period, and forged updates (wrong keys) on demand;
- `server`: `BeaconApiServer`, the beacon light-client REST API over loopback HTTP, the paths
  `adapters.ethereum.beacon_api` reads, so the real light clients (Python and on-chain) verify it.
"""
