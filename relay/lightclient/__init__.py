"""The attestor's `ethereum` mode: a sync-committee light client fed by untrusted nodes.

- `transport`: the `BeaconTransport` / `ExecutionTransport` protocols, HTTP implementations and
  `ReplayTransport` (recorded answers, for tests and offline checks).
- `source`: `EthereumFinalitySource`, which syncs the light client and returns the Gateway
  messages it proved in finalized blocks.
- `beacon_api`: the beacon REST paths it reads.

The verification itself is pure and lives in `relay.verify.ethereum`.
"""

from relay.lightclient.source import (
    BlockNotFinalized,
    BlockTooOld,
    EthereumFinalitySource,
    PollResult,
    ProvenBlock,
    SyncReport,
)
from relay.lightclient.transport import (
    BeaconTransport,
    ExecutionTransport,
    HttpBeaconTransport,
    HttpExecutionTransport,
    ReplayTransport,
    ResponseNotFound,
    RpcCallFailed,
    RpcMethodNotFound,
)

__all__ = [
    "BeaconTransport", "BlockNotFinalized", "BlockTooOld", "EthereumFinalitySource", "ExecutionTransport",
    "HttpBeaconTransport", "HttpExecutionTransport", "PollResult", "ProvenBlock", "ReplayTransport",
    "ResponseNotFound", "RpcCallFailed", "RpcMethodNotFound", "SyncReport",
]
