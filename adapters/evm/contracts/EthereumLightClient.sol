// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {BLS} from "./BLS.sol";
import {Owned} from "./Owned.sol";
import {SyncCommitteeKeys} from "./SyncCommitteeKeys.sol";

/// @title The Ethereum sync-committee light client (consensus specs `sync-protocol.md`), on-chain.
/// @notice Follows Ethereum's finalized chain from one trusted block root, trusting nothing but a
/// 2/3 supermajority of each sync committee, and stores every finalized header's execution block
/// number, block hash and receipts root for receipt proofs (`executionHeader`). The checks are
/// those of the Python reference `relay.verify.ethereum` (validation.py, sync_protocol.py), in the
/// same order and under the same names; see docs/adr/ for the design.
///
/// Layouts (mirrored by adapters/ethereum/onchain_client.py):
/// - `Header`: a beacon block header, the 17 SSZ chunks of its execution payload header (the
///   `hash_tree_root` of each field in Deneb order; under the Capella layout the last two, blob
///   gas, must be zero and are not hashed) and the 4-node execution branch into the body root.
/// - A sync committee (`bytes`): its `size` compressed 48-byte public keys, then the compressed
///   aggregate key, then the 48-byte y coordinate of the aggregate key (big-endian).
/// - `Update.signerKeyYs`: the 48-byte y coordinates of the keys the signature check sums, in
///   committee order: none at full participation; the non-participants' if more than half signed
///   (the signers' key is the stored aggregate minus them); otherwise the participants'.
/// - `Update.syncCommitteeSignature`: the 256-byte EIP-2537 G2 point of the aggregate signature.
///
/// Keys (SyncCommitteeKeys.sol): a learned committee's compressed keys are hashed into its SSZ
/// root (checked against the state branch) and stored as code once per period; a signer's key is
/// rebuilt from its stored x and sign flag and the caller's y, and G1ADD checks it is on the curve.
contract EthereumLightClient is Owned {
    // --- layouts and constants -------------------------------------------------------------------

    uint8 public constant LAYOUT_PRE_CAPELLA = 0;
    uint8 public constant LAYOUT_CAPELLA = 1;
    uint8 public constant LAYOUT_DENEB = 2;
    uint8 public constant LAYOUT_ELECTRA = 3;

    uint256 private constant MAX_COMMITTEE_SIZE = 512;
    uint256 private constant MIN_SYNC_COMMITTEE_PARTICIPANTS = 1;
    uint256 private constant EXECUTION_LEAVES = 17;
    bytes32 private constant DOMAIN_SYNC_COMMITTEE = 0x0700000000000000000000000000000000000000000000000000000000000000;

    // Generalized indices (merkle.py): execution payload in the body; state paths before / from Electra.
    uint256 private constant EXECUTION_PAYLOAD_GINDEX = 25;
    uint256 private constant FINALIZED_ROOT_GINDEX = 105;
    uint256 private constant CURRENT_SYNC_COMMITTEE_GINDEX = 54;
    uint256 private constant NEXT_SYNC_COMMITTEE_GINDEX = 55;
    uint256 private constant FINALIZED_ROOT_GINDEX_ELECTRA = 169;
    uint256 private constant CURRENT_SYNC_COMMITTEE_GINDEX_ELECTRA = 86;
    uint256 private constant NEXT_SYNC_COMMITTEE_GINDEX_ELECTRA = 87;

    // --- inputs ----------------------------------------------------------------------------------

    /// @notice One fork: its activation epoch, 4-byte version and light-client layout (LAYOUT_*).
    struct ForkVersion {
        uint64 epoch;
        bytes4 version;
        uint8 layout;
    }

    /// @notice The chain followed: its identity, timing, preset and fork schedule (phase0 first, at epoch 0).
    struct Config {
        bytes32 genesisValidatorsRoot;
        uint64 genesisTime;
        uint64 secondsPerSlot;
        uint64 slotsPerEpoch;
        uint64 epochsPerPeriod;
        uint32 committeeSize;
        ForkVersion[] forks;
    }

    struct BeaconHeader {
        uint64 slot;
        uint64 proposerIndex;
        bytes32 parentRoot;
        bytes32 stateRoot;
        bytes32 bodyRoot;
    }

    struct Header {
        BeaconHeader beacon;
        bytes32[17] execution;
        bytes32[4] executionBranch;
    }

    /// @notice A `LightClientUpdate`. The next committee comes as keys (`nextSyncCommittee`, needed
    /// when this update makes the contract learn it) or as its root only (`nextSyncCommitteeRoot`,
    /// when the keys are not stored: the branch is still checked). No next committee: zero root,
    /// empty keys, zero branch; no finality: empty finalized header, zero branch.
    struct Update {
        Header attestedHeader;
        Header finalizedHeader;
        bytes32[] finalityBranch;
        bytes32 nextSyncCommitteeRoot;
        bytes nextSyncCommittee;
        bytes32[] nextSyncCommitteeBranch;
        bytes syncCommitteeBits;
        bytes syncCommitteeSignature;
        uint64 signatureSlot;
        bytes signerKeyYs;
    }

    // --- state -----------------------------------------------------------------------------------

    struct ExecutionHeader {
        bytes32 blockHash;
        bytes32 receiptsRoot;
    }

    /// @dev What `_validate` learned about an update, for `_apply`.
    struct Checked {
        uint64 storePeriod;
        uint64 signaturePeriod;
        uint64 attestedPeriod;
        uint256 participants;
        bool nextKnown;
        bool isFinality;
        bool isSyncCommitteeUpdate;
        bytes32 nextCommitteeRoot;
    }

    bool public initialized;
    /// @notice Whether the owner may call `forceUpdate` (false until `setForceUpdateEnabled(true)`).
    bool public forceUpdateEnabled;
    uint64 public finalizedSlot;
    uint64 public latestExecutionBlockNumber;
    uint32 public committeeSize;
    uint64 public genesisTime;
    uint64 public secondsPerSlot;
    uint64 public slotsPerEpoch;
    uint64 public slotsPerPeriod;
    bytes32 public genesisValidatorsRoot;
    ForkVersion[] private _forks;
    mapping(uint64 period => SyncCommitteeKeys.StoredCommittee) private _committees;
    mapping(uint64 blockNumber => ExecutionHeader) private _executionHeaders;

    // --- events and errors -------------------------------------------------------------------------

    event HeaderFinalized(
        uint64 indexed slot, uint64 indexed executionBlockNumber, bytes32 blockHash, bytes32 receiptsRoot
    );
    event SyncCommitteeStored(uint64 indexed period, bytes32 root);
    event ForceUpdateEnabled(bool enabled);

    error AlreadyInitialized();
    error NotInitialized();
    error InvalidConfig(string reason);
    error UnsupportedFork(uint64 slot);
    error InvalidLightClientHeader(uint64 slot);
    error InvalidExecutionBranch(uint64 slot);
    error InvalidTrustedRoot(bytes32 headerRoot, bytes32 trustedBlockRoot);
    error InvalidCurrentSyncCommittee();
    error InvalidCurrentSyncCommitteeBranch();
    error InvalidParticipationBits(uint256 length);
    error InsufficientParticipation(uint256 participants, uint256 minimum);
    error InvalidSlotOrder(uint64 currentSlot, uint64 signatureSlot, uint64 attestedSlot, uint64 finalizedSlot);
    error UnknownSyncCommitteePeriod(uint64 signaturePeriod, uint64 storePeriod);
    error IrrelevantUpdate(uint64 attestedSlot, uint64 finalizedSlot);
    error InvalidFinalizedHeader(uint64 finalizedSlot);
    error InvalidFinalityBranch();
    error InvalidNextSyncCommittee();
    error InvalidNextSyncCommitteeBranch();
    error MissingSyncCommitteeKeys(uint64 period);
    error InvalidSyncAggregateSignature();
    error FinalityProofRequired();
    error NoSupermajority(uint256 participants, uint256 committeeSize);
    error StaleUpdate(uint64 finalizedSlot, uint64 updateFinalizedSlot);
    error ForceUpdateDisabled();
    error ForceUpdateTooEarly(uint64 currentSlot, uint64 finalizedSlot);

    // --- owner -----------------------------------------------------------------------------------

    /// @notice Starts the light client from a block root the owner trusts and its bootstrap: the
    /// header (checked against the root) and its period's committee (checked against its state).
    function initialize(
        Config calldata config,
        bytes32 trustedBlockRoot,
        Header calldata header,
        bytes calldata currentSyncCommittee,
        bytes32[] calldata currentSyncCommitteeBranch
    ) external onlyOwner {
        if (initialized) revert AlreadyInitialized();
        _setConfig(config);
        uint64 slot = header.beacon.slot;
        uint8 layout = _verifyHeader(header);
        // The whole trust of the light client rests on this one root, chosen out of band.
        bytes32 headerRoot = _beaconRoot(header.beacon);
        if (headerRoot != trustedBlockRoot) revert InvalidTrustedRoot(headerRoot, trustedBlockRoot);
        if (currentSyncCommittee.length != (uint256(committeeSize) + 2) * SyncCommitteeKeys.KEY_LENGTH) {
            revert InvalidCurrentSyncCommittee();
        }
        bytes32 committeeRoot = SyncCommitteeKeys.computeRoot(currentSyncCommittee, committeeSize);
        // The committee must be the one in the trusted header's state, else anyone could pick the signers.
        uint256 gindex =
            layout >= LAYOUT_ELECTRA ? CURRENT_SYNC_COMMITTEE_GINDEX_ELECTRA : CURRENT_SYNC_COMMITTEE_GINDEX;
        if (!_isValidNormalizedBranch(committeeRoot, currentSyncCommitteeBranch, gindex, header.beacon.stateRoot)) {
            revert InvalidCurrentSyncCommitteeBranch();
        }
        initialized = true;
        _storeCommittee(_periodAt(slot), currentSyncCommittee, committeeRoot);
        _finalize(header);
    }

    /// @notice Allows (or forbids again) `forceUpdate`. Off by default: a forced update moves the
    /// finalized header without a 2/3 supermajority.
    function setForceUpdateEnabled(bool enabled) external onlyOwner {
        forceUpdateEnabled = enabled;
        emit ForceUpdateEnabled(enabled);
    }

    // --- updates ---------------------------------------------------------------------------------

    /// @notice Verifies a light-client update as the spec does and applies it when a 2/3
    /// supermajority of the committee signed a finality proof that finalizes a newer header or
    /// brings the next period's committee. Anyone may submit.
    function submitUpdate(Update calldata update) external {
        Checked memory checked = _validate(update);
        // This contract keeps finalized headers only: an update without finality would change nothing.
        if (!checked.isFinality) revert FinalityProofRequired();
        // Finality moves only on a 2/3 supermajority of the committee.
        if (checked.participants * 3 < uint256(committeeSize) * 2) {
            revert NoSupermajority(checked.participants, committeeSize);
        }
        uint64 updateFinalizedSlot = update.finalizedHeader.beacon.slot;
        bool hasFinalizedNextCommittee = !checked.nextKnown && checked.isSyncCommitteeUpdate
            && _periodAt(updateFinalizedSlot) == checked.attestedPeriod;
        if (updateFinalizedSlot <= finalizedSlot && !hasFinalizedNextCommittee) {
            revert StaleUpdate(finalizedSlot, updateFinalizedSlot);
        }
        _apply(update, update.finalizedHeader, checked);
    }

    /// @notice The spec's `process_light_client_store_force_update`, for the owner only and only when
    /// enabled: once no header has been finalized for a whole period (finality stalled), applies a
    /// valid update signed by any number of members (at least one), its attested header standing
    /// in for the finalized one when it finalizes nothing newer. The owner picks the update (the
    /// contract keeps no "best valid update"). Unsafe by nature, hence off by default.
    function forceUpdate(Update calldata update) external onlyOwner {
        if (!forceUpdateEnabled) revert ForceUpdateDisabled();
        uint64 current = _currentSlot();
        if (current <= finalizedSlot + slotsPerPeriod) revert ForceUpdateTooEarly(current, finalizedSlot);
        Checked memory checked = _validate(update);
        if (update.finalizedHeader.beacon.slot <= finalizedSlot) {
            _apply(update, update.attestedHeader, checked);
        } else {
            _apply(update, update.finalizedHeader, checked);
        }
    }

    // --- views -----------------------------------------------------------------------------------

    /// @notice The block hash and receipts root of a finalized execution block (zeros if not stored).
    function executionHeader(uint64 blockNumber) external view returns (bytes32 blockHash, bytes32 receiptsRoot) {
        ExecutionHeader storage stored = _executionHeaders[blockNumber];
        return (stored.blockHash, stored.receiptsRoot);
    }

    /// @notice The sync-committee period of the finalized header.
    function currentPeriod() public view returns (uint64) {
        return _periodAt(finalizedSlot);
    }

    /// @notice Whether the next period's committee is known (updates signed in it can be verified).
    function hasNextSyncCommittee() public view returns (bool) {
        return _committees[currentPeriod() + 1].root != bytes32(0);
    }

    /// @notice The SSZ root of the stored committee of `period` (zero if none).
    function syncCommitteeRoot(uint64 period) external view returns (bytes32) {
        return _committees[period].root;
    }

    /// @notice The code contracts holding the keys of `period`'s committee (zero if none): after a
    /// STOP byte, keys 0..255 then the 128-byte aggregate key in `keys0`, keys 256.. in `keys1`.
    function syncCommitteeKeys(uint64 period) external view returns (address keys0, address keys1) {
        SyncCommitteeKeys.StoredCommittee storage stored = _committees[period];
        return (stored.keys0, stored.keys1);
    }

    /// @notice The slot `block.timestamp` falls in (0 before genesis).
    function currentSlot() external view returns (uint64) {
        return _currentSlot();
    }

    /// @notice The fork schedule given to `initialize`.
    function forks() external view returns (ForkVersion[] memory) {
        return _forks;
    }

    // --- validation (validation.py's verify_light_client_update) --------------------------------------

    function _validate(Update calldata update) private view returns (Checked memory checked) {
        if (!initialized) revert NotInitialized();
        uint256 size = committeeSize;
        if (update.syncCommitteeBits.length != size / 8) {
            revert InvalidParticipationBits(update.syncCommitteeBits.length);
        }
        checked.participants = SyncCommitteeKeys.countBits(update.syncCommitteeBits);
        // Too few signers and the signature proves nothing about the committee's view.
        if (checked.participants < MIN_SYNC_COMMITTEE_PARTICIPANTS) {
            revert InsufficientParticipation(checked.participants, MIN_SYNC_COMMITTEE_PARTICIPANTS);
        }
        uint8 attestedLayout = _verifyHeader(update.attestedHeader);
        _checkSlotsAndPeriods(update, checked);
        _checkFinality(update, attestedLayout, checked);
        _checkNextCommittee(update, attestedLayout, checked);
        uint64 signerPeriod =
            checked.signaturePeriod == checked.storePeriod ? checked.storePeriod : checked.storePeriod + 1;
        _checkSignature(update, _committees[signerPeriod], checked.participants);
    }

    function _checkSlotsAndPeriods(Update calldata update, Checked memory checked) private view {
        uint64 attestedSlot = update.attestedHeader.beacon.slot;
        uint64 signatureSlot = update.signatureSlot;
        uint64 current = _currentSlot();
        // A signature comes after what it signs, which comes after what it finalizes; nothing from the future.
        if (!(current >= signatureSlot && signatureSlot > attestedSlot
                    && attestedSlot >= update.finalizedHeader.beacon.slot)) {
            revert InvalidSlotOrder(current, signatureSlot, attestedSlot, update.finalizedHeader.beacon.slot);
        }
        checked.storePeriod = _periodAt(finalizedSlot);
        checked.signaturePeriod = _periodAt(signatureSlot);
        checked.attestedPeriod = _periodAt(attestedSlot);
        checked.nextKnown = _committees[checked.storePeriod + 1].root != bytes32(0);
        // Only the current committee, or the next once it is proven, may sign: no skipping periods.
        bool signerKnown = checked.signaturePeriod == checked.storePeriod
            || (checked.nextKnown && checked.signaturePeriod == checked.storePeriod + 1);
        if (!signerKnown) revert UnknownSyncCommitteePeriod(checked.signaturePeriod, checked.storePeriod);
        checked.isSyncCommitteeUpdate = !_isZeroBranch(update.nextSyncCommitteeBranch);
        bool bringsNextCommittee =
            !checked.nextKnown && checked.isSyncCommitteeUpdate && checked.attestedPeriod == checked.storePeriod;
        // An update must either advance the store or bring the committee it is missing.
        if (!(attestedSlot > finalizedSlot || bringsNextCommittee)) revert IrrelevantUpdate(attestedSlot, finalizedSlot);
    }

    function _checkFinality(Update calldata update, uint8 attestedLayout, Checked memory checked) private view {
        Header calldata finalized = update.finalizedHeader;
        checked.isFinality = !_isZeroBranch(update.finalityBranch);
        if (!checked.isFinality) {
            // Without a finality proof there must be no finalized header to take on trust.
            if (!_isEmptyHeader(finalized)) revert InvalidFinalizedHeader(finalized.beacon.slot);
            return;
        }
        bytes32 finalizedRoot;
        if (finalized.beacon.slot == 0) {
            // The genesis checkpoint is stored as the zero root in the state.
            if (!_isEmptyHeader(finalized)) revert InvalidFinalizedHeader(0);
        } else {
            _verifyHeader(finalized);
            finalizedRoot = _beaconRoot(finalized.beacon);
        }
        uint256 gindex = attestedLayout >= LAYOUT_ELECTRA ? FINALIZED_ROOT_GINDEX_ELECTRA : FINALIZED_ROOT_GINDEX;
        // The finalized header must be the finalized checkpoint of the signed (attested) state.
        if (!_isValidNormalizedBranch(
                finalizedRoot, update.finalityBranch, gindex, update.attestedHeader.beacon.stateRoot
            )) {
            revert InvalidFinalityBranch();
        }
    }

    function _checkNextCommittee(Update calldata update, uint8 attestedLayout, Checked memory checked) private view {
        bool hasKeys = update.nextSyncCommittee.length != 0;
        if (!checked.isSyncCommitteeUpdate) {
            // Without a branch there must be no committee, so none is taken on trust.
            if (hasKeys || update.nextSyncCommitteeRoot != bytes32(0)) revert InvalidNextSyncCommittee();
            return;
        }
        bytes32 root;
        if (hasKeys) {
            if (update.nextSyncCommittee.length != (uint256(committeeSize) + 2) * SyncCommitteeKeys.KEY_LENGTH) {
                revert InvalidNextSyncCommittee();
            }
            root = SyncCommitteeKeys.computeRoot(update.nextSyncCommittee, committeeSize);
        } else {
            root = update.nextSyncCommitteeRoot;
        }
        if (root == bytes32(0)) revert InvalidNextSyncCommittee();
        // Within the store's period the next committee is already known and cannot change.
        if (checked.attestedPeriod == checked.storePeriod && checked.nextKnown
                && root != _committees[checked.storePeriod + 1].root) {
            revert InvalidNextSyncCommittee();
        }
        uint256 gindex = attestedLayout >= LAYOUT_ELECTRA ? NEXT_SYNC_COMMITTEE_GINDEX_ELECTRA : NEXT_SYNC_COMMITTEE_GINDEX;
        // The next committee must be the one in the signed (attested) state.
        if (!_isValidNormalizedBranch(
                root, update.nextSyncCommitteeBranch, gindex, update.attestedHeader.beacon.stateRoot
            )) {
            revert InvalidNextSyncCommitteeBranch();
        }
        checked.nextCommitteeRoot = root;
    }

    /// @dev The participants' aggregate signature over the attested header, in the fork domain of
    /// `signature_slot - 1` (members sign the block before the one including their aggregate).
    function _checkSignature(Update calldata update, SyncCommitteeKeys.StoredCommittee storage committee, uint256 participants)
        private
        view
    {
        uint64 signatureSlot = update.signatureSlot;
        uint64 forkVersionSlot = signatureSlot > 0 ? signatureSlot - 1 : 0;
        (bytes4 version,) = _forkAt(forkVersionSlot / slotsPerEpoch);
        bytes32 forkDataRoot = _sha256Pair(bytes32(version), genesisValidatorsRoot);
        bytes32 domain = DOMAIN_SYNC_COMMITTEE | (forkDataRoot >> 32);
        bytes32 signingRoot = _sha256Pair(_beaconRoot(update.attestedHeader.beacon), domain);
        bytes memory key = SyncCommitteeKeys.signersKey(
            committee, committeeSize, update.syncCommitteeBits, update.signerKeyYs, participants
        );
        if (!BLS.verify(key, abi.encodePacked(signingRoot), update.syncCommitteeSignature)) {
            revert InvalidSyncAggregateSignature();
        }
    }

    // --- applying (sync_protocol.py's apply_light_client_update) -----------------------------------

    function _apply(Update calldata update, Header calldata newFinalized, Checked memory checked) private {
        uint64 finalizedPeriod = _periodAt(newFinalized.beacon.slot);
        if (!checked.nextKnown) {
            if (finalizedPeriod != checked.storePeriod) {
                revert UnknownSyncCommitteePeriod(finalizedPeriod, checked.storePeriod);
            }
            if (checked.isSyncCommitteeUpdate) _learnCommittee(update, checked.storePeriod + 1, checked);
        } else if (finalizedPeriod == checked.storePeriod + 1 && checked.isSyncCommitteeUpdate) {
            // Crossing into the next period: its committee becomes current, the update's is the next.
            _learnCommittee(update, checked.storePeriod + 2, checked);
        }
        if (newFinalized.beacon.slot > finalizedSlot) _finalize(newFinalized);
    }

    function _learnCommittee(Update calldata update, uint64 period, Checked memory checked) private {
        if (update.nextSyncCommittee.length == 0) revert MissingSyncCommitteeKeys(period);
        _storeCommittee(period, update.nextSyncCommittee, checked.nextCommitteeRoot);
    }

    function _storeCommittee(uint64 period, bytes calldata committee, bytes32 root) private {
        _committees[period] = SyncCommitteeKeys.store(committee, committeeSize, root);
        emit SyncCommitteeStored(period, root);
    }

    function _finalize(Header calldata header) private {
        uint64 blockNumber = _readUint64(header.execution[6]);
        bytes32 blockHash = header.execution[12];
        bytes32 receiptsRoot = header.execution[3];
        finalizedSlot = header.beacon.slot;
        _executionHeaders[blockNumber] = ExecutionHeader(blockHash, receiptsRoot);
        if (blockNumber > latestExecutionBlockNumber) latestExecutionBlockNumber = blockNumber;
        emit HeaderFinalized(header.beacon.slot, blockNumber, blockHash, receiptsRoot);
    }

    // --- configuration ---------------------------------------------------------------------------------

    function _setConfig(Config calldata config) private {
        uint256 size = config.committeeSize;
        if (size < 8 || size > MAX_COMMITTEE_SIZE || size & (size - 1) != 0) revert InvalidConfig("committee size");
        if (config.slotsPerEpoch == 0 || config.epochsPerPeriod == 0 || config.secondsPerSlot == 0) {
            revert InvalidConfig("timing");
        }
        uint256 count = config.forks.length;
        if (count == 0 || config.forks[0].epoch != 0) revert InvalidConfig("fork schedule must start at epoch 0");
        for (uint256 i = 0; i < count; ++i) {
            ForkVersion calldata fork = config.forks[i];
            if (fork.layout > LAYOUT_ELECTRA) revert InvalidConfig("fork layout");
            if (i > 0 && (fork.epoch < config.forks[i - 1].epoch || fork.layout < config.forks[i - 1].layout)) {
                revert InvalidConfig("fork schedule out of order");
            }
            _forks.push(fork);
        }
        genesisValidatorsRoot = config.genesisValidatorsRoot;
        genesisTime = config.genesisTime;
        secondsPerSlot = config.secondsPerSlot;
        slotsPerEpoch = config.slotsPerEpoch;
        slotsPerPeriod = config.slotsPerEpoch * config.epochsPerPeriod;
        committeeSize = config.committeeSize;
    }

    function _forkAt(uint64 epoch) private view returns (bytes4 version, uint8 layout) {
        // Latest first: updates are about recent slots, so this usually reads one entry.
        for (uint256 i = _forks.length; i > 0; --i) {
            ForkVersion storage fork = _forks[i - 1];
            if (epoch >= fork.epoch) return (fork.version, fork.layout);
        }
        return (_forks[0].version, _forks[0].layout);
    }

    function _periodAt(uint64 slot) private view returns (uint64) {
        return slot / slotsPerPeriod;
    }

    function _currentSlot() private view returns (uint64) {
        if (block.timestamp < genesisTime) return 0;
        return uint64((block.timestamp - genesisTime) / secondsPerSlot);
    }

    // --- headers ---------------------------------------------------------------------------------------

    /// @dev validation.py's verify_light_client_header: the execution payload header, in its fork's
    /// layout, is the one committed in the beacon block body. Returns the header's layout.
    function _verifyHeader(Header calldata header) private view returns (uint8 layout) {
        uint64 slot = header.beacon.slot;
        (, layout) = _forkAt(slot / slotsPerEpoch);
        // Light-client headers carry an execution payload from Capella on; older ones are not followed.
        if (layout == LAYOUT_PRE_CAPELLA) revert UnsupportedFork(slot);
        // Blob gas only exists from Deneb on; a non-zero value before is a forged header.
        if (layout == LAYOUT_CAPELLA && (header.execution[15] != bytes32(0) || header.execution[16] != bytes32(0))) {
            revert InvalidLightClientHeader(slot);
        }
        bytes32 executionRoot = _executionRoot(header.execution, layout == LAYOUT_CAPELLA ? 15 : 17);
        bytes32 computed = executionRoot;
        for (uint256 depth = 0; depth < 4; ++depth) {
            computed = (EXECUTION_PAYLOAD_GINDEX >> depth) & 1 == 1
                ? _sha256Pair(header.executionBranch[depth], computed)
                : _sha256Pair(computed, header.executionBranch[depth]);
        }
        if (computed != header.beacon.bodyRoot) revert InvalidExecutionBranch(slot);
    }

    function _executionRoot(bytes32[17] calldata leaves, uint256 count) private view returns (bytes32 root) {
        uint256 width = count > 16 ? 32 : 16;
        bool ok = true;
        assembly ("memory-safe") {
            let buffer := mload(0x40)
            calldatacopy(buffer, leaves, mul(count, 0x20))
            for { let i := count } lt(i, width) { i := add(i, 1) } { mstore(add(buffer, shl(5, i)), 0) }
            for { } gt(width, 1) { width := shr(1, width) } {
                for { let i := 0 } lt(i, shr(1, width)) { i := add(i, 1) } {
                    ok := and(ok, staticcall(gas(), 0x02, add(buffer, shl(6, i)), 0x40, add(buffer, shl(5, i)), 0x20))
                }
            }
            root := mload(buffer)
        }
        if (!ok) revert BLS.PrecompileFailed(0x02);
    }

    function _beaconRoot(BeaconHeader calldata header) private view returns (bytes32) {
        bytes32 left = _sha256Pair(
            _sha256Pair(_uint64Chunk(header.slot), _uint64Chunk(header.proposerIndex)),
            _sha256Pair(header.parentRoot, header.stateRoot)
        );
        // The body root's sibling subtree is zeros: sha256(body || 0), then sha256(that || zero hash 1).
        bytes32 zeroHash1 = _sha256Pair(bytes32(0), bytes32(0));
        bytes32 right = _sha256Pair(_sha256Pair(header.bodyRoot, bytes32(0)), zeroHash1);
        return _sha256Pair(left, right);
    }

    function _isEmptyHeader(Header calldata header) private pure returns (bool) {
        BeaconHeader calldata beacon = header.beacon;
        if (beacon.slot != 0 || beacon.proposerIndex != 0 || beacon.parentRoot != 0 || beacon.stateRoot != 0) {
            return false;
        }
        if (beacon.bodyRoot != 0) return false;
        for (uint256 i = 0; i < EXECUTION_LEAVES; ++i) {
            if (header.execution[i] != _emptyExecutionLeaf(i)) return false;
        }
        for (uint256 i = 0; i < 4; ++i) {
            if (header.executionBranch[i] != 0) return false;
        }
        return true;
    }

    /// @dev The chunk of field `i` of the all-zero ExecutionPayloadHeader: zero except the 256-byte
    /// logs bloom (the root of 8 zero chunks) and the empty extra-data list (zero root mixed with length 0).
    function _emptyExecutionLeaf(uint256 i) private pure returns (bytes32) {
        if (i == 4) return 0xc78009fdf07fc56a11f122370658a353aaa542ed63e44c4bc15ff4cd105ab33c;
        if (i == 10) return 0xf5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b;
        return bytes32(0);
    }

    // --- Merkle branches -------------------------------------------------------------------------------

    /// @dev merkle.py's is_valid_normalized_merkle_branch: extra leading nodes (a branch padded to a
    /// later fork's depth) must be zero; a branch shorter than the gindex's depth is invalid.
    function _isValidNormalizedBranch(bytes32 leaf, bytes32[] calldata branch, uint256 gindex, bytes32 root)
        private
        view
        returns (bool)
    {
        uint256 depth = _floorLog2(gindex);
        if (branch.length < depth) return false;
        uint256 extra = branch.length - depth;
        for (uint256 i = 0; i < extra; ++i) {
            if (branch[i] != bytes32(0)) return false;
        }
        bytes32 value = leaf;
        for (uint256 i = 0; i < depth; ++i) {
            value = (gindex >> i) & 1 == 1 ? _sha256Pair(branch[extra + i], value) : _sha256Pair(value, branch[extra + i]);
        }
        return value == root;
    }

    function _isZeroBranch(bytes32[] calldata branch) private pure returns (bool) {
        for (uint256 i = 0; i < branch.length; ++i) {
            if (branch[i] != bytes32(0)) return false;
        }
        return true;
    }

    function _floorLog2(uint256 value) private pure returns (uint256 result) {
        while (value > 1) {
            value >>= 1;
            ++result;
        }
    }

    function _sha256Pair(bytes32 left, bytes32 right) private view returns (bytes32 result) {
        bool ok;
        assembly ("memory-safe") {
            mstore(0x00, left)
            mstore(0x20, right)
            ok := staticcall(gas(), 0x02, 0x00, 0x40, 0x00, 0x20)
            result := mload(0x00)
        }
        if (!ok) revert BLS.PrecompileFailed(0x02);
    }

    function _uint64Chunk(uint64 value) private pure returns (bytes32) {
        uint256 x = value;
        x = ((x & 0xFF00FF00FF00FF00) >> 8) | ((x & 0x00FF00FF00FF00FF) << 8);
        x = ((x & 0xFFFF0000FFFF0000) >> 16) | ((x & 0x0000FFFF0000FFFF) << 16);
        x = (x >> 32) | ((x & 0xFFFFFFFF) << 32);
        return bytes32(x << 192);
    }

    function _readUint64(bytes32 chunk) private pure returns (uint64) {
        uint256 x = uint256(chunk) >> 192;
        x = ((x & 0xFF00FF00FF00FF00) >> 8) | ((x & 0x00FF00FF00FF00FF) << 8);
        x = ((x & 0xFFFF0000FFFF0000) >> 16) | ((x & 0x0000FFFF0000FFFF) << 16);
        x = (x >> 32) | ((x & 0xFFFFFFFF) << 32);
        return uint64(x);
    }
}
