// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {BLS} from "./BLS.sol";
import {EcdsaCommittees} from "./EcdsaCommittees.sol";
import {EmergencyControls} from "./EmergencyControls.sol";
import {GasPaymaster} from "./GasPaymaster.sol";
import {IGateway} from "./IGateway.sol";
import {IMessageRecipient} from "./IMessageRecipient.sol";

/// @title Gateway: one per chain; sends messages from this chain and delivers messages from others.
/// @notice Byte layouts (message, Merkle tree, checkpoint, committee, hand-over) follow
/// docs/protocol.md exactly. Sending appends each message id to an incremental Merkle tree.
/// Delivering checks a checkpoint signed by a quorum of the origin's committee (BLS through
/// EIP-2537, or ECDSA through ecrecover: the scheme is chosen per origin, EcdsaCommittees), a Merkle branch from each message to the checkpoint's root, and replay state, then
/// calls the recipient with exactly the gas limit the delivery names. Nobody needs to trust
/// whoever submits the transaction. Senders pay for that gas here, on the source chain
/// (GasPaymaster). A guardian can pause delivery per origin and dispatch per destination
/// (EmergencyControls).
contract Gateway is IGateway, GasPaymaster, EmergencyControls, EcdsaCommittees {
    /// @notice A signed statement that `root` is the source Gateway's tree after leaf `index`.
    struct Checkpoint {
        uint32 origin;
        bytes32 gateway;
        uint64 epoch;
        bytes32 root;
        uint32 index;
    }

    /// @notice `publicKey` is a 128-byte EIP-2537 G1 point; `proofOfPossession` the 256-byte
    /// EIP-2537 G2 encoding of its proof of possession (may be empty for a key this Gateway has
    /// already seen proven, see `possessionProven`). The proof is not part of committee_hash
    /// (docs/adr/0006-proof-of-possession-on-chain.md).
    struct Member {
        bytes publicKey;
        bytes proofOfPossession;
        uint64 weight;
    }

    /// @notice Members in signer-index order; `threshold` is the signing weight a quorum needs.
    struct Committee {
        uint64 epoch;
        uint64 threshold;
        Member[] members;
    }

    /// @dev Where an origin's current committee lives: its committee_hash (or
    /// ecdsa_committee_hash) preimage is the code of `pointer` (after a leading STOP byte), so
    /// delivery reads members with EXTCODECOPY instead of one SLOAD per word. Packs into one
    /// storage slot, together with the origin's delivery pause flag and its committee scheme
    /// (SCHEME_BLS, SCHEME_ECDSA), so checking either costs delivery no extra storage read.
    struct CommitteeRef {
        address pointer;
        uint64 epoch;
        uint16 size;
        bool deliveryPaused;
        uint8 scheme;
    }

    uint8 public constant MESSAGE_VERSION = 3;
    /// @notice The largest message body, in bytes (docs/protocol.md; relay.verify.message has the
    /// same constant). Enforced at dispatch, so every dispatched message can be relayed.
    uint256 public constant MAX_BODY_LENGTH = 65536;
    uint256 public constant TREE_DEPTH = 32;
    bytes32 public constant CHECKPOINT_TAG = "RELAY/CHECKPOINT/V1";
    bytes32 public constant COMMITTEE_TAG = "RELAY/COMMITTEE/V1";
    bytes32 public constant HANDOVER_TAG = "RELAY/HANDOVER/V2";

    uint256 private constant MESSAGE_HEADER_LENGTH = 77;
    uint256 private constant COMMITTEE_HEADER_LENGTH = 52; // tag 32, epoch 8, threshold 8, count 4
    uint256 private constant MEMBER_LENGTH = 136; // public key 128, weight 8
    /// @dev Recipient revert data kept in DeliveryFailed; a cap so a recipient cannot make the
    /// relayer pay for copying megabytes of it.
    uint256 private constant MAX_REASON_LENGTH = 256;
    uint256 private constant G1_ADD = 0x0b; // BLS.G1_ADD, for inline assembly
    /// @dev Z[i], the root of an empty subtree of height i (Z[0] = 0, Z[i+1] = keccak(Z[i] || Z[i])),
    /// for i = 0..31: read into memory with one CODECOPY instead of 31 hashes per delivery.
    bytes private constant ZERO_HASHES =
        hex"0000000000000000000000000000000000000000000000000000000000000000"
        hex"ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5"
        hex"b4c11951957c6f8f642c4af61cd6b24640fec6dc7fc607ee8206a99e92410d30"
        hex"21ddb9a356815c3fac1026b6dec5df3124afbadb485c9ba5a3e3398a04b7ba85"
        hex"e58769b32a1beaf1ea27375a44095a0d1fb664ce2dd358e7fcbfb78c26a19344"
        hex"0eb01ebfc9ed27500cd4dfc979272d1f0913cc9f66540d7e8005811109e1cf2d"
        hex"887c22bd8750d34016ac3c66b5ff102dacdd73f6b014e710b51e8022af9a1968"
        hex"ffd70157e48063fc33c97a050f7f640233bf646cc98d9524c6b92bcf3ab56f83"
        hex"9867cc5f7f196b93bae1e27e6320742445d290f2263827498b54fec539f756af"
        hex"cefad4e508c098b9a7e1d8feb19955fb02ba9675585078710969d3440f5054e0"
        hex"f9dc3e7fe016e050eff260334f18a5d4fe391d82092319f5964f2e2eb7c1c3a5"
        hex"f8b13a49e282f609c317a833fb8d976d11517c571d1221a265d25af778ecf892"
        hex"3490c6ceeb450aecdc82e28293031d10c7d73bf85e57bf041a97360aa2c5d99c"
        hex"c1df82d9c4b87413eae2ef048f94b4d3554cea73d92b0f7af96e0271c691e2bb"
        hex"5c67add7c6caf302256adedf7ab114da0acfe870d449a3a489f781d659e8becc"
        hex"da7bce9f4e8618b6bd2f4132ce798cdc7a60e7e1460a7299e3c6342a579626d2"
        hex"2733e50f526ec2fa19a22b31e8ed50f23cd1fdf94c9154ed3a7609a2f1ff981f"
        hex"e1d3b5c807b281e4683cc6d6315cf95b9ade8641defcb32372f1c126e398ef7a"
        hex"5a2dce0a8a7f68bb74560f8f71837c2c2ebbcbf7fffb42ae1896f13f7c7479a0"
        hex"b46a28b6f55540f89444f63de0378e3d121be09e06cc9ded1c20e65876d36aa0"
        hex"c65e9645644786b620e2dd2ad648ddfcbf4a7e5b1a3a4ecfe7f64667a3f0b7e2"
        hex"f4418588ed35a2458cffeb39b93d26f18d2ab13bdce6aee58e7b99359ec2dfd9"
        hex"5a9c16dc00d6ef18b7933a6f8dc65ccb55667138776f7dea101070dc8796e377"
        hex"4df84f40ae0c8229d0d6069e5c8f39a7c299677a09d367fc7b05e3bc380ee652"
        hex"cdc72595f74c7b1043d0e1ffbab734648c838dfb0527d971b602bc216c9619ef"
        hex"0abf5ac974a1ed57f4050aa510dd9c74f508277b39d7973bb2dfccc5eeb0618d"
        hex"b8cd74046ff337f0a7bf2c8e03e10f642c1886798d71806ab1e888d9e5ee87d0"
        hex"838c5655cb21c6cb83313b5a631175dff4963772cce9108188b34ac87c81c41e"
        hex"662ee4dd2dd7b2bc707961b1e646c4047669dcb6584f0d8d770daf5d7e7deb2e"
        hex"388ab20e2573d171a88108e79d820e98f26c0b84aa8b2f4aa4968dbb818ea322"
        hex"93237c50ba75ee485f4c22adf2f741400bdf8d6a9cc7df7ecae576221665d735"
        hex"8448818bb4ae4562849e949e17ac16e0be16688e156b5cf15e098c627c0056a9";
    /// @dev Gas the recipient CALL itself needs beyond what it forwards (warm account access, the
    /// opcodes between the check and the call), with a wide margin.
    uint256 private constant RECIPIENT_CALL_OVERHEAD = 1_000;

    uint32 public immutable localDomain;

    /// @notice Messages dispatched so far; the next message's nonce.
    uint32 public count;
    bytes32[TREE_DEPTH] private _branch;

    mapping(uint32 origin => bytes32 gateway) private _sourceGateways;
    mapping(uint32 origin => CommitteeRef) private _committees;
    /// @dev Delivered flags, one bit per (origin, nonce): key = origin << 24 | nonce >> 8. The
    /// Merkle proof binds a message id to leaf index = nonce under a root of the origin's one
    /// source Gateway, so (origin, nonce) names a message, and a batch of consecutive nonces
    /// shares a storage word.
    mapping(uint256 key => uint256 bits) private _deliveredBits;
    /// @notice Keys (keccak256 of the 128-byte EIP-2537 encoding) whose proof of possession this
    /// Gateway has verified; they are not verified again.
    mapping(bytes32 keyHash => bool proven) public possessionProven;
    /// @notice Origins whose committees may have a threshold below two thirds of their weight.
    mapping(uint32 origin => bool allowed) public lowThresholdAllowed;

    event Dispatch(bytes32 indexed id, uint32 indexed destination, uint32 nonce, bytes message);
    event Delivered(bytes32 indexed id, uint32 indexed origin, uint32 nonce);
    /// @notice The recipient reverted (reason: its revert data, truncated) or is not a contract;
    /// the message stays deliverable.
    event DeliveryFailed(bytes32 indexed id, bytes reason);
    /// @notice A batch entry that was already delivered (by an earlier transaction) was skipped.
    event DeliverySkipped(bytes32 indexed id);
    event OriginEnrolled(uint32 indexed origin, bytes32 sourceGateway, uint64 epoch, bytes32 committeeHash);
    event CommitteeHandedOver(uint32 indexed origin, uint64 epoch, bytes32 committeeHash);
    event PossessionProven(bytes32 indexed keyHash);
    event LowThresholdAllowedSet(uint32 indexed origin, bool allowed);
    event VerifierEnrolled(uint32 indexed origin, bytes32 sourceGateway, address verifier);
    error TreeFull();
    error NoMessagesDispatched();
    error UnknownOrigin(uint32 origin);
    error InvalidSourceGateway();
    error OriginAlreadyEnrolled(uint32 origin, bytes32 sourceGateway);
    error WrongGateway(bytes32 expected, bytes32 actual);
    error WrongEpoch(uint64 expected, uint64 actual);
    error InvalidSignatureLength(uint256 length);
    error InvalidSignature();
    error MalformedMessage(uint256 length);
    error UnsupportedVersion(uint8 version);
    error WrongOrigin(uint32 expected, uint32 actual);
    error WrongDestination(uint32 expected, uint32 actual);
    error NonceAfterCheckpoint(uint32 nonce, uint32 index);
    error InvalidMerkleProof(bytes32 id);
    error AlreadyDelivered(bytes32 id);
    /// @notice deliverVerified from someone other than the verifier enrolled for `origin`.
    error NotVerifier(uint32 origin, address caller);
    error VerifierWithoutCode(address verifier);
    error EmptyBatch();
    error BatchLengthMismatch(uint256 messages, uint256 branches);
    error InvalidPublicKey(uint256 member);
    error PublicKeysNotInSubgroup();
    error EpochNotIncreasing(uint64 current, uint64 proposed);
    error ProofOfPossessionMissing(uint256 member);
    error InvalidProofOfPossession(uint256 member);
    error CommitteeStorageFailed();
    /// @notice The transaction has too little gas left to give the recipient the gas limit its
    /// delivery names: the whole transaction reverts, so a submitter cannot starve a recipient
    /// into a failed delivery.
    error InsufficientGasForRecipient(bytes32 id, uint256 gasLimit, uint256 gasLeft);
    // Revert reasons of DeliveryFailed produced by the Gateway itself (never reverted with).
    error RecipientNotContract(address recipient);
    error InvalidRecipient(bytes32 recipient);
    /// @notice The recipient used its whole gas limit and returned no revert data: it most likely
    /// ran out of gas. A DeliveryFailed reason only: the recipient got exactly the gas the delivery
    /// named, so the message stays deliverable with a larger limit (a top-up on the source chain).
    error RecipientOutOfGas(uint256 gasLimit);

    constructor(uint32 localDomain_) {
        localDomain = localDomain_;
    }

    // ---------------------------------------------------------------- sending

    /// @inheritdoc IGateway
    function dispatch(uint32 destination, bytes32 recipient, bytes calldata body) external returns (bytes32 id) {
        return _dispatch(destination, recipient, body);
    }

    /// @inheritdoc IGateway
    function dispatchWithGas(uint32 destination, bytes32 recipient, bytes calldata body, uint256 gasLimit)
        external
        payable
        returns (bytes32 id)
    {
        id = _dispatch(destination, recipient, body);
        _payForGas(id, destination, gasLimit);
    }

    function _dispatch(uint32 destination, bytes32 recipient, bytes calldata body) private returns (bytes32 id) {
        // A body the relay refuses to decode would leave a leaf nobody can deliver.
        if (body.length > MAX_BODY_LENGTH) revert BodyTooLarge(body.length, MAX_BODY_LENGTH);
        _requireDispatchOpen(destination);
        uint32 nonce = count;
        if (nonce == type(uint32).max) revert TreeFull();
        bytes memory message = abi.encodePacked(
            MESSAGE_VERSION, nonce, localDomain, bytes32(uint256(uint160(msg.sender))), destination, recipient, body
        );
        id = keccak256(message);
        count = nonce + 1;
        _insert(id, uint256(nonce) + 1);
        _recordDispatch(id, destination);
        emit Dispatch(id, destination, nonce, message);
    }

    /// @notice The root of the tree of all dispatched message ids.
    function root() public view returns (bytes32 node) {
        uint256 size = count;
        bytes memory zeros = ZERO_HASHES;
        for (uint256 level = 0; level < TREE_DEPTH; level++) {
            if ((size >> level) & 1 == 1) {
                node = keccak256(abi.encodePacked(_branch[level], node));
            } else {
                bytes32 zero;
                assembly ("memory-safe") {
                    zero := mload(add(add(zeros, 0x20), shl(5, level)))
                }
                node = keccak256(abi.encodePacked(node, zero));
            }
        }
    }

    /// @notice What attestors sign: the current root and the index of the last leaf it covers.
    function latestCheckpoint() external view returns (bytes32, uint32) {
        uint32 size = count;
        if (size == 0) revert NoMessagesDispatched();
        return (root(), size - 1);
    }

    /// @dev Deposit-contract insertion; `size` is the leaf count including the new leaf.
    function _insert(bytes32 leaf, uint256 size) private {
        bytes32 node = leaf;
        for (uint256 level = 0; level < TREE_DEPTH; level++) {
            if (size & 1 == 1) {
                _branch[level] = node;
                return;
            }
            node = keccak256(abi.encodePacked(_branch[level], node));
            size >>= 1;
        }
        revert TreeFull();
    }

    // ---------------------------------------------------------------- delivering

    /// @notice Delivers one message, calling its recipient with exactly `gasLimit` gas. Reverts
    /// with AlreadyDelivered if it was delivered before, and with InsufficientGasForRecipient if
    /// the transaction cannot give the recipient `gasLimit` gas.
    /// @dev In `branch`, an entry of zero stands for Z[i], the hash of the empty subtree at level i:
    /// the siblings above and to the right of the last leaf are all such hashes, and zero bytes
    /// cost far less calldata gas. Either form verifies.
    function process(
        Checkpoint calldata checkpoint,
        bytes calldata signers,
        bytes calldata signature,
        bytes calldata message,
        bytes32[TREE_DEPTH] calldata branch,
        uint256 gasLimit
    ) external {
        _verifyCheckpoint(checkpoint, signers, signature);
        (bytes32 id, uint32 nonce) = _verifyMessage(checkpoint, message, branch, ZERO_HASHES);
        if (!_deliver(checkpoint.origin, nonce, id, message, gasLimit)) revert AlreadyDelivered(id);
    }

    /// @notice Delivers many messages under one checkpoint and one signature check. Already
    /// delivered entries are skipped (DeliverySkipped) so competing relayers do not waste a
    /// batch; any invalid entry reverts the whole batch. Branches and gas limits as in `process`.
    function processBatch(
        Checkpoint calldata checkpoint,
        bytes calldata signers,
        bytes calldata signature,
        bytes[] calldata messages,
        bytes32[TREE_DEPTH][] calldata branches,
        uint256[] calldata gasLimits
    ) external {
        if (messages.length == 0) revert EmptyBatch();
        if (messages.length != branches.length) revert BatchLengthMismatch(messages.length, branches.length);
        if (messages.length != gasLimits.length) revert BatchLengthMismatch(messages.length, gasLimits.length);
        _verifyCheckpoint(checkpoint, signers, signature);
        bytes memory zeros = ZERO_HASHES;
        for (uint256 i = 0; i < messages.length; i++) {
            (bytes32 id, uint32 nonce) = _verifyMessage(checkpoint, messages[i], branches[i], zeros);
            if (!_deliver(checkpoint.origin, nonce, id, messages[i], gasLimits[i])) emit DeliverySkipped(id);
        }
    }

    /// @notice Whether the message with this origin and nonce has been delivered.
    function delivered(uint32 origin, uint32 nonce) public view returns (bool) {
        (uint256 key, uint256 bit) = _deliveredSlot(origin, nonce);
        return _deliveredBits[key] & bit != 0;
    }

    /// @notice Whether `message` (encoded as in protocol.md) has been delivered. Only a message
    /// that verified can have been delivered, so the lookup by (origin, nonce) is exact for
    /// genuine messages.
    function isDelivered(bytes calldata message) external view returns (bool) {
        if (message.length < MESSAGE_HEADER_LENGTH) revert MalformedMessage(message.length);
        return delivered(uint32(bytes4(message[5:9])), uint32(bytes4(message[1:5])));
    }

    function _verifyCheckpoint(Checkpoint calldata checkpoint, bytes calldata signers, bytes calldata signature)
        private
        view
    {
        CommitteeRef memory committee = _enrolledCommittee(checkpoint.origin);
        if (committee.deliveryPaused) revert DeliveryIsPaused(checkpoint.origin);
        if (committee.scheme == SCHEME_ECDSA) {
            // One EXTCODECOPY: threshold, members and the source Gateway after them.
            uint256 copy = _copyEcdsaCommittee(committee.pointer, committee.size, 32);
            _requireSourceAndEpoch(checkpoint, committee, _ecdsaTrailingWord(copy, committee.size, 0));
            _verifyEcdsaCertificate(copy, committee.size, checkpointDigest(checkpoint), signers, signature);
        } else {
            // A verifier origin has no committee: its pointer is the verifier contract.
            if (committee.scheme != SCHEME_BLS) revert WrongCommitteeScheme(checkpoint.origin, committee.scheme);
            _requireSourceAndEpoch(checkpoint, committee, _storedSourceGateway(committee));
            _verifyQuorumCertificate(committee, checkpointDigest(checkpoint), signers, signature);
        }
    }

    function _requireSourceAndEpoch(
        Checkpoint calldata checkpoint,
        CommitteeRef memory committee,
        bytes32 sourceGateway
    ) private pure {
        // Another contract on the origin chain could build a tree with any ids in it.
        if (checkpoint.gateway != sourceGateway) revert WrongGateway(sourceGateway, checkpoint.gateway);
        // Only the current committee may speak; older ones may have been rotated out for a reason.
        if (checkpoint.epoch != committee.epoch) revert WrongEpoch(committee.epoch, checkpoint.epoch);
    }

    /// @return id the message id (keccak of the message)
    /// @return nonce its nonce, which is also its leaf index
    function _verifyMessage(
        Checkpoint calldata checkpoint,
        bytes calldata message,
        bytes32[TREE_DEPTH] calldata branch,
        bytes memory zeros
    ) private view returns (bytes32 id, uint32 nonce) {
        (id, nonce) = _readMessage(message, checkpoint.origin);
        // The root covers leaves 0..index only.
        if (nonce > checkpoint.index) revert NonceAfterCheckpoint(nonce, checkpoint.index);
        if (_branchRoot(id, branch, nonce, zeros) != checkpoint.root) revert InvalidMerkleProof(id);
    }

    /// @dev Checks the message's version, origin (`origin`) and destination (this Gateway).
    function _readMessage(bytes calldata message, uint32 origin) private view returns (bytes32 id, uint32 nonce) {
        if (message.length < MESSAGE_HEADER_LENGTH) revert MalformedMessage(message.length);
        uint8 version;
        uint32 messageOrigin;
        uint32 destination;
        assembly ("memory-safe") {
            let head := calldataload(message.offset)
            version := byte(0, head)
            nonce := and(shr(216, head), 0xffffffff)
            messageOrigin := and(shr(184, head), 0xffffffff)
            destination := shr(224, calldataload(add(message.offset, 41)))
            let copy := mload(0x40)
            calldatacopy(copy, message.offset, message.length)
            id := keccak256(copy, message.length)
        }
        if (version != MESSAGE_VERSION) revert UnsupportedVersion(version);
        if (messageOrigin != origin) revert WrongOrigin(origin, messageOrigin);
        if (destination != localDomain) revert WrongDestination(localDomain, destination);
    }

    /// @notice Delivers `message`, which the verifier enrolled for its origin
    /// (enrollOriginVerifier) has proven, under the same replay, pause and recipient rules as
    /// `process` (exactly `gasLimit` gas for the recipient). Only that verifier may call it.
    /// @return fresh false (nothing done) if it was already delivered: the verifier decides
    /// whether that reverts (one message) or is skipped (a batch).
    function deliverVerified(bytes calldata message, uint256 gasLimit) external returns (bool fresh) {
        if (message.length < MESSAGE_HEADER_LENGTH) revert MalformedMessage(message.length);
        uint32 origin = uint32(bytes4(message[5:9]));
        CommitteeRef memory committee = _enrolledCommittee(origin, SCHEME_VERIFIER);
        if (msg.sender != committee.pointer) revert NotVerifier(origin, msg.sender);
        if (committee.deliveryPaused) revert DeliveryIsPaused(origin);
        (bytes32 id, uint32 nonce) = _readMessage(message, origin);
        return _deliver(origin, nonce, id, message, gasLimit);
    }

    /// @dev Bit i of `index` says whether the node at level i is a right child. A zero sibling is
    /// read as Z[i]; this accepts nothing new, since anyone can send Z[i] itself.
    function _branchRoot(
        bytes32 leaf,
        bytes32[TREE_DEPTH] calldata branch,
        uint256 index,
        bytes memory zeros
    ) private pure returns (bytes32 node) {
        assembly ("memory-safe") {
            node := leaf
            let table := add(zeros, 0x20)
            for { let offset := 0 } lt(offset, 0x400) { offset := add(offset, 0x20) } {
                let sibling := calldataload(add(branch, offset))
                if iszero(sibling) { sibling := mload(add(table, offset)) }
                // The node goes right (0x20) when the index's lowest remaining bit is set.
                let position := and(shl(5, index), 0x20)
                mstore(position, node)
                mstore(xor(position, 0x20), sibling)
                node := keccak256(0x00, 0x40)
                index := shr(1, index)
            }
        }
    }

    /// @dev Marks the message delivered, then calls the recipient; un-marks it if the call fails.
    /// Marking first means a re-entrant call cannot deliver the same message twice.
    /// @return fresh false if the message had already been delivered (nothing was done)
    function _deliver(uint32 origin, uint32 nonce, bytes32 id, bytes calldata message, uint256 gasLimit)
        private
        returns (bool fresh)
    {
        (uint256 key, uint256 bit) = _deliveredSlot(origin, nonce);
        uint256 bits = _deliveredBits[key];
        if (bits & bit != 0) return false;
        _deliveredBits[key] = bits | bit;
        (bool ok, bytes memory reason) = _callRecipient(id, origin, message, gasLimit);
        if (ok) {
            emit Delivered(id, origin, nonce);
        } else {
            // Re-read: the recipient may have delivered other messages sharing this word.
            _deliveredBits[key] &= ~bit;
            emit DeliveryFailed(id, reason);
        }
        return true;
    }

    /// @dev IMessageRecipient(recipient).handle(origin, sender, body) with exactly `gasLimit` gas,
    /// catching every failure: a revert, running out of that gas, a recipient without code, or a
    /// recipient field that is not an address. The call only starts if the recipient really gets
    /// `gasLimit`: a CALL forwards at most 63/64 of the gas left (EIP-150), so that needs
    /// gasLimit + gasLimit/63 plus the call's own cost; with less, the whole transaction reverts
    /// (InsufficientGasForRecipient), so no submitter can turn a good message into a failed
    /// delivery by sending too little gas. A recipient cannot spend more than `gasLimit` either.
    /// (This replaces the earlier whole-transaction revert when a recipient used up the
    /// transaction's gas: with a fixed limit, running out is the recipient's own failure, reported
    /// as DeliveryFailed(RecipientOutOfGas(gasLimit)) with the message left deliverable.)
    function _callRecipient(bytes32 id, uint32 messageOrigin, bytes calldata message, uint256 gasLimit)
        private
        returns (bool ok, bytes memory reason)
    {
        address recipient;
        {
            bytes32 recipientField = bytes32(message[45:77]);
            if (uint256(recipientField) >> 160 != 0) {
                return (false, abi.encodeWithSelector(InvalidRecipient.selector, recipientField));
            }
            recipient = address(uint160(uint256(recipientField)));
        }
        if (recipient.code.length == 0) {
            return (false, abi.encodeWithSelector(RecipientNotContract.selector, recipient));
        }
        // No transaction has 2^96 gas; the bound keeps the arithmetic below from wrapping.
        if (gasLimit > type(uint96).max) revert InsufficientGasForRecipient(id, gasLimit, gasleft());
        bytes memory input = _encodeHandleCall(messageOrigin, message);
        uint256 gasLeft;
        bool outOfGas;
        assembly ("memory-safe") {
            // `input` is in memory already, so the CALL below pays no memory expansion.
            gasLeft := gas()
            if iszero(lt(gasLeft, add(add(gasLimit, div(gasLimit, 63)), RECIPIENT_CALL_OVERHEAD))) {
                ok := call(gasLimit, recipient, 0, add(input, 0x20), mload(input), 0, 0)
                if iszero(ok) {
                    let size := returndatasize()
                    // No revert data and the whole limit used: the recipient ran out of gas.
                    outOfGas := and(iszero(size), iszero(lt(sub(gasLeft, gas()), gasLimit)))
                    if gt(size, MAX_REASON_LENGTH) { size := MAX_REASON_LENGTH }
                    reason := mload(0x40)
                    mstore(reason, size)
                    returndatacopy(add(reason, 0x20), 0, size)
                    mstore(0x40, add(add(reason, 0x20), and(add(size, 31), not(31))))
                }
            }
        }
        if (!ok && gasLeft < gasLimit + gasLimit / 63 + RECIPIENT_CALL_OVERHEAD) {
            revert InsufficientGasForRecipient(id, gasLimit, gasLeft);
        }
        if (outOfGas) reason = abi.encodeWithSelector(RecipientOutOfGas.selector, gasLimit);
    }

    /// @dev The calldata of handle(origin, sender, body) for `message`, ABI-encoded by hand (one
    /// copy of the body instead of abi.encodeCall's two).
    function _encodeHandleCall(uint32 messageOrigin, bytes calldata message) private pure returns (bytes memory input) {
        bytes32 sender = bytes32(message[9:41]);
        bytes calldata body = message[MESSAGE_HEADER_LENGTH:];
        bytes4 selector = IMessageRecipient.handle.selector;
        assembly ("memory-safe") {
            input := mload(0x40)
            let padded := and(add(body.length, 31), not(31))
            let data := add(input, 0x20)
            mstore(add(data, add(0x64, padded)), 0) // zero padding after the body (before writing it)
            mstore(data, selector)
            mstore(add(data, 0x04), messageOrigin)
            mstore(add(data, 0x24), sender)
            mstore(add(data, 0x44), 0x60)
            mstore(add(data, 0x64), body.length)
            calldatacopy(add(data, 0x84), body.offset, body.length)
            mstore(input, add(0x84, padded))
            mstore(0x40, add(data, add(0x84, padded)))
        }
    }

    function _deliveredSlot(uint32 origin, uint32 nonce) private pure returns (uint256 key, uint256 bit) {
        key = (uint256(origin) << 24) | (uint256(nonce) >> 8);
        bit = 1 << (nonce & 0xff);
    }

    // ---------------------------------------------------------------- committees

    /// @notice Sets the trusted start for `origin`: its source Gateway and a committee. Calling it
    /// again (same source Gateway) resets the committee, the owner's recovery path; the epoch must
    /// then be above the current one, so no hand-over signed for an earlier epoch can be replayed.
    /// Every new key needs a valid proof of possession (ProofOfPossessionMissing,
    /// InvalidProofOfPossession).
    function enrollOrigin(uint32 origin, bytes32 sourceGateway, Committee calldata committee) external onlyOwner {
        _beginEnrollment(origin, sourceGateway, committee.epoch);
        bytes memory encoded = _encodeCommittee(committee);
        _storeCommittee(origin, committee, encoded);
        emit OriginEnrolled(origin, sourceGateway, committee.epoch, keccak256(encoded));
    }

    /// @notice `enrollOrigin` with an ECDSA committee (docs/protocol.md, "ECDSA committee"): its
    /// members sign checkpoints with their Ethereum keys. Re-enrolling with a higher epoch is also
    /// how the owner moves an origin from one scheme to the other.
    function enrollOriginEcdsa(uint32 origin, bytes32 sourceGateway, EcdsaCommittee calldata committee)
        external
        onlyOwner
    {
        _beginEnrollment(origin, sourceGateway, committee.epoch);
        bytes memory encoded = _encodeEcdsaCommittee(committee);
        _storeEcdsaCommittee(origin, committee, encoded);
        emit OriginEnrolled(origin, sourceGateway, committee.epoch, keccak256(encoded));
    }

    /// @notice Lets the contract `verifier` prove `origin`'s messages itself (no committee) and
    /// deliver them through `deliverVerified`; committeeScheme(origin) is then 3. Owner only;
    /// calling it again switches verifier, and the epoch moves on by one, so switching back to a
    /// committee needs a higher epoch than any before (no old hand-over replays).
    function enrollOriginVerifier(uint32 origin, bytes32 sourceGateway, address verifier) external onlyOwner {
        if (verifier.code.length == 0) revert VerifierWithoutCode(verifier);
        CommitteeRef memory current = _committees[origin];
        // The last epoch has no successor (and `+ 1` must not overflow into a panic).
        if (current.epoch == type(uint64).max) revert EpochNotIncreasing(current.epoch, current.epoch);
        uint64 epoch = current.epoch + 1;
        _beginEnrollment(origin, sourceGateway, epoch);
        _committees[origin] = CommitteeRef(verifier, epoch, 0, current.deliveryPaused, SCHEME_VERIFIER);
        emit VerifierEnrolled(origin, sourceGateway, verifier);
    }

    /// @dev The checks and the source Gateway binding both enrollments share.
    function _beginEnrollment(uint32 origin, bytes32 sourceGateway, uint64 epoch) private {
        if (sourceGateway == bytes32(0)) revert InvalidSourceGateway();
        bytes32 enrolled = _sourceGateways[origin];
        // Replay state is keyed by (origin, nonce): an origin stays bound to one source Gateway.
        if (enrolled != bytes32(0) && enrolled != sourceGateway) revert OriginAlreadyEnrolled(origin, enrolled);
        CommitteeRef memory current = _committees[origin];
        if (current.pointer != address(0) && epoch <= current.epoch) revert EpochNotIncreasing(current.epoch, epoch);
        _sourceGateways[origin] = sourceGateway;
    }

    /// @notice Moves `origin` to the committee of the next epoch; anyone may submit it. A quorum of
    /// the current committee must have signed handover_digest over the current and the next
    /// committee's hashes. Every new key needs a valid proof of possession. Allowed while delivery
    /// is paused (it is a way to recover). BLS origins only (WrongCommitteeScheme).
    function handover(uint32 origin, Committee calldata next, bytes calldata signers, bytes calldata signature)
        external
    {
        CommitteeRef memory current = _enrolledCommittee(origin, SCHEME_BLS);
        bytes memory encoded = _encodeCommittee(next);
        bytes32 nextHash = keccak256(encoded);
        _verifyQuorumCertificate(current, _handoverDigestFrom(origin, current, next.epoch, nextHash), signers, signature);
        _storeCommittee(origin, next, encoded);
        emit CommitteeHandedOver(origin, next.epoch, nextHash);
    }

    /// @notice `handover` of an ECDSA origin to the next ECDSA committee: a quorum of the current
    /// members signed handover_digest (over the ecdsa_committee_hash of both), each signature an
    /// EIP-191 signature of it, concatenated in member order as in a checkpoint certificate.
    function handoverEcdsa(
        uint32 origin,
        EcdsaCommittee calldata next,
        bytes calldata signers,
        bytes calldata signatures
    ) external {
        CommitteeRef memory current = _enrolledCommittee(origin, SCHEME_ECDSA);
        bytes memory encoded = _encodeEcdsaCommittee(next);
        bytes32 nextHash = keccak256(encoded);
        bytes32 digest = _handoverDigestFrom(origin, current, next.epoch, nextHash);
        _verifyEcdsaHandover(current, digest, signers, signatures);
        _storeEcdsaCommittee(origin, next, encoded);
        emit CommitteeHandedOver(origin, next.epoch, nextHash);
    }

    /// @dev handover_digest from `current` to the committee of `nextEpoch` (which must follow it)
    /// with hash `nextHash`.
    function _handoverDigestFrom(uint32 origin, CommitteeRef memory current, uint64 nextEpoch, bytes32 nextHash)
        private
        view
        returns (bytes32)
    {
        // The last epoch has no successor (and `+ 1` must not overflow into a panic).
        if (current.epoch == type(uint64).max) revert EpochNotIncreasing(current.epoch, nextEpoch);
        if (nextEpoch != current.epoch + 1) revert WrongEpoch(current.epoch + 1, nextEpoch);
        bytes32 currentHash = keccak256(_readCommittee(current.pointer));
        return handoverDigest(origin, _sourceGateways[origin], current.epoch, currentHash, nextHash);
    }

    /// @dev `handover`'s certificate check for an ECDSA committee.
    function _verifyEcdsaHandover(CommitteeRef memory current, bytes32 digest, bytes calldata signers, bytes calldata signatures)
        private
        view
    {
        uint256 copy = _copyEcdsaCommittee(current.pointer, current.size, 0);
        _verifyEcdsaCertificate(copy, current.size, digest, signers, signatures);
    }

    /// @notice The current committee's epoch and committee_hash (ecdsa_committee_hash for an
    /// ECDSA origin) for `origin`.
    /// WrongCommitteeScheme for an origin with a verifier (no committee: see `verifierOf`).
    function committeeOf(uint32 origin) external view returns (uint64 epoch, bytes32 committeeHash) {
        CommitteeRef memory committee = _enrolledCommittee(origin);
        if (committee.scheme == SCHEME_VERIFIER) revert WrongCommitteeScheme(origin, SCHEME_VERIFIER);
        return (committee.epoch, keccak256(_readCommittee(committee.pointer)));
    }

    /// @notice How `origin`'s committee signs: 0 not enrolled, 1 BLS, 2 ECDSA, 3 a verifier
    /// contract (enrollOriginVerifier).
    function committeeScheme(uint32 origin) external view returns (uint8) {
        CommitteeRef memory committee = _committees[origin];
        return committee.pointer == address(0) ? SCHEME_NONE : committee.scheme;
    }

    /// @notice The verifier contract enrolled for `origin` (enrollOriginVerifier);
    /// WrongCommitteeScheme for a committee origin.
    function verifierOf(uint32 origin) external view returns (address) {
        return _enrolledCommittee(origin, SCHEME_VERIFIER).pointer;
    }

    /// @notice The current ECDSA committee for `origin`, decoded (WrongCommitteeScheme for a BLS one).
    function currentEcdsaCommittee(uint32 origin) external view returns (EcdsaCommittee memory) {
        CommitteeRef memory ref = _enrolledCommittee(origin, SCHEME_ECDSA);
        return _decodeEcdsaCommittee(_readCommittee(ref.pointer), ref.epoch, ref.size);
    }

    /// @notice The current committee for `origin`, decoded (WrongCommitteeScheme for an ECDSA one).
    function currentCommittee(uint32 origin) external view returns (Committee memory committee) {
        CommitteeRef memory ref = _enrolledCommittee(origin, SCHEME_BLS);
        bytes memory encoded = _readCommittee(ref.pointer);
        uint64 threshold;
        assembly ("memory-safe") {
            threshold := shr(192, mload(add(encoded, 0x48)))
        }
        committee.epoch = ref.epoch;
        committee.threshold = threshold;
        committee.members = new Member[](ref.size);
        for (uint256 i = 0; i < ref.size; i++) {
            bytes memory publicKey = new bytes(BLS.G1_POINT_LENGTH);
            uint64 weight;
            assembly ("memory-safe") {
                let entry := add(add(encoded, 0x20), add(COMMITTEE_HEADER_LENGTH, mul(i, MEMBER_LENGTH)))
                mcopy(add(publicKey, 0x20), entry, 0x80)
                weight := shr(192, mload(add(entry, 0x80)))
            }
            // Proofs of possession are not stored: every key here was proven (possessionProven).
            committee.members[i] = Member(publicKey, "", weight);
        }
    }

    /// @notice The source Gateway enrolled for `origin` (zero if none).
    function sourceGatewayOf(uint32 origin) external view returns (bytes32) {
        return _sourceGateways[origin];
    }

    /// @notice checkpoint_digest of protocol.md: what the committee signs for a checkpoint.
    function checkpointDigest(Checkpoint calldata checkpoint) public pure returns (bytes32) {
        return keccak256(
            abi.encodePacked(
                CHECKPOINT_TAG, checkpoint.origin, checkpoint.gateway, checkpoint.epoch, checkpoint.root, checkpoint.index
            )
        );
    }

    /// @notice handover_digest of protocol.md: what committee `epoch` of `origin`'s source Gateway
    /// `sourceGateway` (whose committee_hash is `currentCommitteeHash`) signs to hand over to the
    /// committee with `nextCommitteeHash`.
    function handoverDigest(
        uint32 origin,
        bytes32 sourceGateway,
        uint64 epoch,
        bytes32 currentCommitteeHash,
        bytes32 nextCommitteeHash
    ) public pure returns (bytes32) {
        return keccak256(
            abi.encodePacked(HANDOVER_TAG, origin, sourceGateway, epoch, currentCommitteeHash, nextCommitteeHash)
        );
    }

    /// @notice Lets `origin`'s committees have a threshold below two thirds of their total weight
    /// (or stops it). Owner only; for test and permissioned setups that knowingly accept it.
    function setLowThresholdAllowed(uint32 origin, bool allowed) external onlyOwner {
        lowThresholdAllowed[origin] = allowed;
        emit LowThresholdAllowedSet(origin, allowed);
    }

    /// @inheritdoc EmergencyControls
    function deliveryPaused(uint32 origin) external view override returns (bool) {
        return _committees[origin].deliveryPaused;
    }

    function _setDeliveryPaused(uint32 origin, bool paused) internal override {
        _committees[origin].deliveryPaused = paused;
    }

    /// @notice committee_hash of protocol.md.
    function computeCommitteeHash(Committee calldata committee) external pure returns (bytes32) {
        return keccak256(_encodeCommittee(committee));
    }

    /// @dev The source Gateway stored after a BLS committee's members (see _writeCode).
    function _storedSourceGateway(CommitteeRef memory committee) private view returns (bytes32 sourceGateway) {
        address pointer = committee.pointer;
        uint256 offset = 1 + COMMITTEE_HEADER_LENGTH + uint256(committee.size) * MEMBER_LENGTH;
        assembly ("memory-safe") {
            extcodecopy(pointer, 0x00, offset, 0x20)
            sourceGateway := mload(0x00)
        }
    }

    /// @dev One SLOAD for the whole CommitteeRef (a plain storage-to-memory copy loads the slot once
    /// per field). Solidity packs the fields from the low-order end: pointer (bits 0-159), epoch
    /// (160-223), size (224-239), deliveryPaused (240-247), scheme (248-255).
    function _enrolledCommittee(uint32 origin) private view returns (CommitteeRef memory committee) {
        CommitteeRef storage ref = _committees[origin];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(ref.slot)
        }
        committee.pointer = address(uint160(word));
        committee.epoch = uint64(word >> 160);
        committee.size = uint16(word >> 224);
        committee.deliveryPaused = (word >> 240) & 0xff != 0;
        committee.scheme = uint8(word >> 248);
        if (committee.pointer == address(0)) revert UnknownOrigin(origin);
    }

    /// @dev `_enrolledCommittee`, for a call that only applies to committees of `scheme`.
    function _enrolledCommittee(uint32 origin, uint8 scheme) private view returns (CommitteeRef memory committee) {
        committee = _enrolledCommittee(origin);
        if (committee.scheme != scheme) revert WrongCommitteeScheme(origin, committee.scheme);
    }

    /// @dev Checks the signer bitfield, sums the signers' weights, aggregates their public keys and
    /// verifies the aggregate signature over `digest`.
    function _verifyQuorumCertificate(
        CommitteeRef memory committee,
        bytes32 digest,
        bytes calldata signers,
        bytes calldata signature
    ) private view {
        uint256 size = committee.size;
        uint256 expectedLength = (size + 7) / 8;
        if (signers.length != expectedLength) revert BitfieldLengthMismatch(expectedLength, signers.length);
        // A set bit beyond the last member would name a signer that does not exist.
        if (size % 8 != 0 && uint8(signers[expectedLength - 1]) >> (size % 8) != 0) revert BitfieldOutOfRange();

        address pointer = committee.pointer;
        bytes memory aggregateKey = new bytes(BLS.G1_POINT_LENGTH);
        uint256 signedWeight;
        uint256 threshold;
        bool ok = true;
        assembly ("memory-safe") {
            // Committee code: STOP byte, then tag 32 | epoch 8 | threshold 8 | count 4 | members.
            extcodecopy(pointer, 0x00, 41, 8)
            threshold := shr(192, mload(0x00))
            // Scratch: accumulator (128) | next member's public key (128) and weight (8).
            let buffer := mload(0x40)
            let first := 1
            for { let i := 0 } lt(i, size) { i := add(i, 1) } {
                // Bit i is (bitfield[i / 8] >> (i % 8)) & 1.
                if and(shr(and(i, 7), byte(0, calldataload(add(signers.offset, shr(3, i))))), 1) {
                    let target := add(buffer, mul(iszero(first), 0x80))
                    extcodecopy(pointer, target, add(add(1, COMMITTEE_HEADER_LENGTH), mul(i, MEMBER_LENGTH)), MEMBER_LENGTH)
                    signedWeight := add(signedWeight, shr(192, mload(add(target, 0x80))))
                    switch first
                    case 1 { first := 0 }
                    default { ok := and(ok, staticcall(gas(), G1_ADD, buffer, 0x100, buffer, 0x80)) }
                }
            }
            if iszero(first) { mcopy(add(aggregateKey, 0x20), buffer, 0x80) }
        }
        if (!ok) revert BLS.PrecompileFailed(BLS.G1_ADD);
        if (signedWeight < threshold) revert QuorumNotReached(signedWeight, threshold);
        if (signature.length != BLS.G2_POINT_LENGTH) revert InvalidSignatureLength(signature.length);
        if (!BLS.verify(aggregateKey, abi.encodePacked(digest), signature)) revert InvalidSignature();
    }

    /// @dev Validates `committee` and stores it (`encoded` is its _encodeCommittee) as `origin`'s current one.
    function _storeCommittee(uint32 origin, Committee calldata committee, bytes memory encoded) private {
        _validateCommittee(origin, committee);
        CommitteeRef storage ref = _committees[origin];
        // The delivery pause flag shares the slot and survives the change of committee.
        _committees[origin] = CommitteeRef(
            _writeCode(encoded, _sourceGateways[origin]),
            committee.epoch,
            uint16(committee.members.length),
            ref.deliveryPaused,
            SCHEME_BLS
        );
    }

    /// @dev `_storeCommittee` for an ECDSA committee.
    function _storeEcdsaCommittee(uint32 origin, EcdsaCommittee calldata committee, bytes memory encoded) private {
        _validateEcdsaCommittee(committee, encoded, lowThresholdAllowed[origin]);
        CommitteeRef storage ref = _committees[origin];
        _committees[origin] = CommitteeRef(
            _writeCode(encoded, _sourceGateways[origin]),
            committee.epoch,
            uint16(committee.signers.length),
            ref.deliveryPaused,
            SCHEME_ECDSA
        );
    }

    /// @dev The committee_hash preimage: tag | epoch | threshold | count | (public key | weight)*.
    function _encodeCommittee(Committee calldata committee) private pure returns (bytes memory encoded) {
        uint256 size = committee.members.length;
        _requireCommitteeSize(size);
        encoded = new bytes(COMMITTEE_HEADER_LENGTH + size * MEMBER_LENGTH);
        bytes32 tag = COMMITTEE_TAG;
        uint64 epoch = committee.epoch;
        uint64 threshold = committee.threshold;
        assembly ("memory-safe") {
            mstore(add(encoded, 0x20), tag)
            mstore(add(encoded, 0x40), or(or(shl(192, epoch), shl(128, threshold)), shl(96, size)))
        }
        for (uint256 i = 0; i < size; i++) {
            Member calldata member = committee.members[i];
            bytes calldata publicKey = member.publicKey;
            if (publicKey.length != BLS.G1_POINT_LENGTH) revert InvalidPublicKey(i);
            uint64 weight = member.weight;
            assembly ("memory-safe") {
                let entry := add(add(encoded, 0x20), add(COMMITTEE_HEADER_LENGTH, mul(i, MEMBER_LENGTH)))
                calldatacopy(entry, publicKey.offset, 0x80)
                // The weight, then 24 zero bytes past the entry that the next entry overwrites.
                mstore(add(entry, 0x80), shl(192, weight))
            }
        }
    }

    /// @dev Rejects committees that could never sign (threshold above the total weight), whose
    /// threshold is below two thirds of the weight (unless allowed for `origin`), members without
    /// weight, public keys that are the identity or outside the prime-order subgroup, and keys
    /// without a valid proof of possession (rogue-key defence); records the keys it proved.
    function _validateCommittee(uint32 origin, Committee calldata committee) private {
        uint256 size = committee.members.length;
        bytes memory keys = new bytes(size * BLS.G1_POINT_LENGTH);
        uint256 totalWeight;
        for (uint256 i = 0; i < size; i++) {
            Member calldata member = committee.members[i];
            if (member.weight == 0) revert ZeroWeight(i);
            totalWeight += member.weight;
            bytes calldata publicKey = member.publicKey;
            bool identity;
            assembly ("memory-safe") {
                let entry := add(add(keys, 0x20), mul(i, 0x80))
                calldatacopy(entry, publicKey.offset, 0x80)
                identity := iszero(or(or(mload(entry), mload(add(entry, 0x20))), or(mload(add(entry, 0x40)), mload(add(entry, 0x60)))))
            }
            if (identity) revert InvalidPublicKey(i);
        }
        _requireThreshold(committee.threshold, totalWeight, lowThresholdAllowed[origin]);
        if (!BLS.areValidG1Points(keys)) revert PublicKeysNotInSubgroup();
        _proveKeys(committee, keys);
    }

    /// @dev Verifies the proof of possession of every key not proven before, and remembers it.
    function _proveKeys(Committee calldata committee, bytes memory keys) private {
        uint256 size = committee.members.length;
        bytes memory key = new bytes(BLS.G1_POINT_LENGTH);
        for (uint256 i = 0; i < size; i++) {
            bytes32 keyHash;
            assembly ("memory-safe") {
                mcopy(add(key, 0x20), add(add(keys, 0x20), shl(7, i)), 0x80)
                keyHash := keccak256(add(key, 0x20), 0x80)
            }
            if (possessionProven[keyHash]) continue;
            bytes calldata proof = committee.members[i].proofOfPossession;
            if (proof.length == 0) revert ProofOfPossessionMissing(i);
            if (!BLS.verifyPossession(key, proof)) revert InvalidProofOfPossession(i);
            possessionProven[keyHash] = true;
            emit PossessionProven(keyHash);
        }
    }

    /// @dev Deploys a contract whose code is STOP, the committee hash preimage `data`, then the
    /// origin's source Gateway (SSTORE2), so nobody can call it. The source Gateway is repeated
    /// there, next to the members, so delivery checks it without a storage read of its own.
    function _writeCode(bytes memory data, bytes32 sourceGateway) private returns (address pointer) {
        // PUSH2 len, DUP1, PUSH1 12, PUSH1 0, CODECOPY, PUSH1 0, RETURN; then the runtime code.
        bytes memory initCode = abi.encodePacked(
            hex"61", uint16(data.length + 1 + 32), hex"80600c6000396000f3", hex"00", data, sourceGateway
        );
        assembly ("memory-safe") {
            pointer := create(0, add(initCode, 0x20), mload(initCode))
        }
        if (pointer == address(0)) revert CommitteeStorageFailed();
    }

    /// @dev The committee hash preimage stored at `pointer` (without the source Gateway after it).
    function _readCommittee(address pointer) private view returns (bytes memory encoded) {
        uint256 length = pointer.code.length - 1 - 32;
        encoded = new bytes(length);
        assembly ("memory-safe") {
            extcodecopy(pointer, add(encoded, 0x20), 1, length)
        }
    }
}
