"""The Ethereum light client and execution proofs: pure verification, no I/O.

What the `ethereum` attestor mode trusts is one beacon block root chosen by the operator and the
honesty of a 2/3 majority of each sync committee; everything else is checked here:

- `sync_protocol`: the consensus specs' light-client sync protocol (processing updates,
  finality and optimistic updates, the optional force update), Capella to Electra, and
  `LightClient`; `validation` holds its checks (headers, bootstrap, updates, the sync aggregate)
  and `light_client_store` the store and its predicates.
- `containers`, `ssz`, `merkle`, `signing`, `config`: the SSZ objects and their roots, Merkle
  branches with each fork's generalized indices, signing domains, networks and presets.
- `codec`: beacon-API JSON and SSZ decoding.
- `committee_keys`: sync-committee public keys decoded once per period and cached.
- `execution`: execution block headers, by block hash and by parent-hash chain.
- `receipts`: receipts roots, receipt inclusion proofs, the logs bloom.
- `accounts`: `eth_getProof` account and storage proofs, code hashes.
- `execution_encoding`: JSON-RPC values and Merkle-Patricia proof reading, shared by the three above.
- `dispatch`: a Gateway `Dispatch` log proven in a finalized block, decoded into a `Message`.
- `errors`: one `InvalidProof` subclass per check, naming it in `check`.
"""

from relay.verify.ethereum.accounts import Account, AccountProof, verify_get_proof
from relay.verify.ethereum.codec import (
    decode_bootstrap_ssz,
    decode_finality_update_ssz,
    decode_optimistic_update_ssz,
    decode_update_ssz,
    parse_bootstrap,
    parse_finality_update,
    parse_optimistic_update,
    parse_update,
    parse_updates,
)
from relay.verify.ethereum.committee_keys import SyncCommitteeKeyCache
from relay.verify.ethereum.config import (
    MAINNET,
    Fork,
    NetworkConfig,
    Preset,
    get_network,
    network_config_from_spec,
)
from relay.verify.ethereum.containers import (
    BeaconBlockHeader,
    ExecutionPayloadHeader,
    LightClientBootstrap,
    LightClientFinalityUpdate,
    LightClientHeader,
    LightClientOptimisticUpdate,
    LightClientUpdate,
    SyncAggregate,
    SyncCommittee,
    compute_beacon_block_root,
)
from relay.verify.ethereum.dispatch import (
    DISPATCH_TOPIC,
    ProvenMessage,
    ReceiptProof,
    decode_dispatch_log,
    prove_dispatch_message,
    prove_dispatches_in_receipts,
)
from relay.verify.ethereum.errors import EthereumProofError
from relay.verify.ethereum.execution import ExecutionBlockHeader, verify_block_hash, verify_header_chain
from relay.verify.ethereum.light_client_store import LightClientStore, UpdateOutcome
from relay.verify.ethereum.receipts import (
    Log,
    Receipt,
    compute_receipts_root,
    verify_receipt_inclusion,
    verify_receipt_proof,
    verify_receipts_root,
)
from relay.verify.ethereum.sync_protocol import LightClient, process_light_client_update
from relay.verify.ethereum.validation import (
    compute_light_client_execution_root,
    initialize_light_client_store,
)

__all__ = [
    "DISPATCH_TOPIC",
    "MAINNET",
    "Account",
    "AccountProof",
    "BeaconBlockHeader",
    "EthereumProofError",
    "ExecutionBlockHeader",
    "ExecutionPayloadHeader",
    "Fork",
    "LightClient",
    "LightClientBootstrap",
    "LightClientFinalityUpdate",
    "LightClientHeader",
    "LightClientOptimisticUpdate",
    "LightClientStore",
    "LightClientUpdate",
    "Log",
    "NetworkConfig",
    "Preset",
    "ProvenMessage",
    "Receipt",
    "ReceiptProof",
    "SyncAggregate",
    "SyncCommittee",
    "SyncCommitteeKeyCache",
    "UpdateOutcome",
    "compute_beacon_block_root",
    "compute_light_client_execution_root",
    "compute_receipts_root",
    "decode_bootstrap_ssz",
    "decode_dispatch_log",
    "decode_finality_update_ssz",
    "decode_optimistic_update_ssz",
    "decode_update_ssz",
    "get_network",
    "initialize_light_client_store",
    "network_config_from_spec",
    "parse_bootstrap",
    "parse_finality_update",
    "parse_optimistic_update",
    "parse_update",
    "parse_updates",
    "process_light_client_update",
    "prove_dispatch_message",
    "prove_dispatches_in_receipts",
    "verify_block_hash",
    "verify_get_proof",
    "verify_header_chain",
    "verify_receipt_inclusion",
    "verify_receipt_proof",
    "verify_receipts_root",
]
