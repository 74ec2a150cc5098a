"""One error per check of the Ethereum light client and of the execution proofs.

Every class names the check it stands for in `check` (a stable snake_case name, the same as in
the consensus specs where the spec has one), and every raise carries the failing values as
fields. All of them are `InvalidProof`s: the data is wrong and retrying cannot help. Merkle
failures are also `InvalidMerkleProof`s and signature failures `InvalidSignature`s, so generic
handlers written against `relay.errors` catch them too.
"""

from __future__ import annotations

from typing import ClassVar

from relay.errors import (
    ConfigurationError,
    InvalidMerkleProof,
    InvalidProof,
    InvalidPublicKey,
    InvalidSignature,
    MalformedEncoding,
)


class EthereumProofError(InvalidProof):
    """Root of the Ethereum verification failures; `check` names the failed check."""

    check: ClassVar[str] = "ethereum_proof"

    def __init__(self, description: str, /, **fields: object) -> None:
        super().__init__(f"{self.check}: {description}", **fields)


# --- decoding ------------------------------------------------------------------------------------


class MalformedObject(EthereumProofError, MalformedEncoding):
    """A beacon-API JSON object, SSZ bytes, RLP or ABI data that does not have the expected shape."""

    check = "well_formed"


# --- the light-client sync protocol ----------------------------------------------------------------


class InvalidTrustedRoot(EthereumProofError):
    """The bootstrap header is not the block the operator chose to trust."""

    check = "trusted_block_root"


class InvalidLightClientHeader(EthereumProofError):
    """A header carries execution fields that its fork does not have (`is_valid_light_client_header`)."""

    check = "light_client_header"


class InvalidExecutionBranch(EthereumProofError, InvalidMerkleProof):
    """The execution payload header is not the one in the beacon block body."""

    check = "execution_branch"


class InvalidCurrentSyncCommitteeBranch(EthereumProofError, InvalidMerkleProof):
    """The bootstrap's sync committee is not the one in the trusted header's state."""

    check = "current_sync_committee_branch"


class InsufficientParticipation(EthereumProofError):
    """Fewer sync-committee members signed than the spec's minimum (or the quorum asked for)."""

    check = "sync_committee_participation"


class InvalidSlotOrder(EthereumProofError):
    """Not `current_slot >= signature_slot > attested_slot >= finalized_slot`."""

    check = "slot_order"


class UnknownSyncCommitteePeriod(EthereumProofError):
    """The update is signed in a period whose committee the store does not know (a skipped period)."""

    check = "sync_committee_period"


class IrrelevantUpdate(EthereumProofError):
    """The update neither advances the store nor brings the next sync committee."""

    check = "update_relevance"


class InvalidFinalizedHeader(EthereumProofError):
    """The finalized header is present without a finality branch, or malformed for its fork."""

    check = "finalized_header"


class InvalidFinalityBranch(EthereumProofError, InvalidMerkleProof):
    """The finalized header is not the finalized checkpoint in the attested header's state."""

    check = "finality_branch"


class InvalidNextSyncCommittee(EthereumProofError):
    """A next sync committee present without a branch, or differing from the one already known."""

    check = "next_sync_committee"


class InvalidNextSyncCommitteeBranch(EthereumProofError, InvalidMerkleProof):
    """The next sync committee is not the one in the attested header's state."""

    check = "next_sync_committee_branch"


class InvalidSyncCommitteeKey(EthereumProofError, InvalidPublicKey):
    """A sync committee holds a public key that does not decode (or is the identity)."""

    check = "sync_committee_public_key"


class InvalidSyncAggregateSignature(EthereumProofError, InvalidSignature):
    """The participants' aggregate signature over the attested header does not verify."""

    check = "sync_aggregate_signature"


class ForceUpdateDisabled(ConfigurationError):
    """The unsafe force update (applying an update without a 2/3 quorum) is not enabled."""

    check: ClassVar[str] = "force_update_enabled"


# --- execution-layer proofs ---------------------------------------------------------------------------


class InvalidBlockHash(EthereumProofError):
    """An execution block header does not hash to the block hash it claims (or that was proven)."""

    check = "block_hash"


class InvalidHeaderChain(EthereumProofError):
    """An execution header is not an ancestor of the proven header by its parent-hash chain."""

    check = "header_chain"


class InvalidReceiptsRoot(EthereumProofError, InvalidMerkleProof):
    """The receipts rebuilt into a trie do not give the block's receipts root."""

    check = "receipts_root"


class InvalidReceiptProof(EthereumProofError, InvalidMerkleProof):
    """A Merkle-Patricia proof does not lead from the receipts root to the claimed receipt."""

    check = "receipt_proof"


class InvalidAccountProof(EthereumProofError, InvalidMerkleProof):
    """An `eth_getProof` account proof does not lead from the state root to the claimed account."""

    check = "account_proof"


class InvalidStorageProof(EthereumProofError, InvalidMerkleProof):
    """An `eth_getProof` storage proof does not lead from the storage root to the claimed value."""

    check = "storage_proof"


class LogNotFound(EthereumProofError):
    """The proven receipt does not contain the log (address, topics, data) asked for."""

    check = "log_inclusion"


class InvalidDispatchLog(EthereumProofError):
    """A Gateway `Dispatch` log whose topics and data do not agree with the message it carries."""

    check = "dispatch_log"


class InvalidCode(EthereumProofError):
    """Contract code that does not hash to the proven account's code hash."""

    check = "code_hash"
