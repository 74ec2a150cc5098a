// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MerklePatriciaCalldata} from "./MerklePatriciaCalldata.sol";
import {RLPCalldata} from "./RLPCalldata.sol";

/// @notice What the inbox needs from a light client: the execution block hash and receipts root
/// of a finalized block it stored (zeros if it stored none). EthereumLightClient implements it.
interface IExecutionHeaders {
    function executionHeader(uint64 blockNumber) external view returns (bytes32 blockHash, bytes32 receiptsRoot);
}

/// @notice The Gateway's entry point for an origin enrolled with enrollOriginVerifier.
interface IVerifiedDelivery {
    function deliverVerified(bytes calldata message, uint256 gasLimit) external returns (bool fresh);
}

/// @title EthereumInbox: delivers messages from an Ethereum origin by receipt proofs, no committee.
/// @notice A message is delivered when a Merkle-Patricia proof shows that a receipt in the
/// receipts trie of a block the light client stored (or an ancestor of it, reached by walking
/// RLP headers back by parent hash) holds a `Dispatch` log emitted by the origin's source
/// Gateway. The inbox rebuilds the message from the log, checks it against the log's id and
/// destination topics, and hands it to the destination Gateway (`deliverVerified`), which
/// applies the same replay, pause and recipient rules as committee deliveries. Trusted: only the
/// light client (Ethereum's sync committee). Every malformed input reverts with a typed error;
/// every loop is bounded by the length of its input.
contract EthereumInbox {
    using RLPCalldata for uint256;

    /// @notice A receipt and where it is committed.
    /// @param blockNumber a block the light client stored
    /// @param headers empty when the receipt is in that block; otherwise the RLP headers of that
    /// block (first) and its ancestors down to the receipt's block (last), each the parent of
    /// the one before
    /// @param transactionIndex the receipt's index in its block (its key in the receipts trie)
    /// @param nodes the trie nodes from the receipts root to the receipt, root first
    struct ReceiptProof {
        uint64 blockNumber;
        bytes[] headers;
        uint256 transactionIndex;
        bytes[] nodes;
    }

    /// @dev The previous proof of a batch, as resolved: what an empty node or header of the next
    /// proof stands for, and how far its header walk got.
    struct Resolved {
        bytes32 walkStart; // the stored block its walk started from: hash (zero: none) and number
        uint256 walkNumber;
        uint256[] nodes; // start, end per trie node
        uint256[] headers; // start, end per header
        bytes32[] walk; // after header i: its parent hash (2i) and its receipts root (2i + 1)
    }

    /// @notice One message of a batch: the log `logIndex` of the receipt `proofs[proofIndex]`.
    struct Delivery {
        uint256 proofIndex;
        uint256 logIndex;
        uint256 gasLimit;
    }

    /// @notice topic0 of the Gateway's `Dispatch(bytes32 indexed id, uint32 indexed destination,
    /// uint32 nonce, bytes message)`.
    bytes32 public constant DISPATCH_TOPIC = keccak256("Dispatch(bytes32,uint32,uint32,bytes)");
    uint256 private constant MESSAGE_HEADER_LENGTH = 77;
    uint256 private constant BLOOM_LENGTH = 256;
    /// @dev Header field positions (the London+ header list; the inbox reads no field past number).
    uint256 private constant HEADER_FIELDS_BEFORE_RECEIPTS_ROOT = 4; // ommers, coinbase, state, transactions
    uint256 private constant MAX_RECEIPT_TYPE = 4; // 1 access list, 2 EIP-1559, 3 blob, 4 EIP-7702

    IVerifiedDelivery public immutable gateway;
    IExecutionHeaders public immutable lightClient;
    uint32 public immutable originDomain;
    address public immutable sourceGateway;

    /// @notice A batch entry already delivered (by an earlier transaction or entry) was skipped.
    event DeliverySkipped(bytes32 indexed id);

    error NotAContract(address account);
    error InvalidSourceGateway();
    error EmptyBatch();
    error ProofIndexOutOfRange(uint256 proofIndex, uint256 proofs);
    error AlreadyDelivered(bytes32 id);
    /// @notice The light client stores no header for this block number.
    error UnknownBlock(uint64 blockNumber);
    error HeaderHashMismatch(uint256 header);
    error HeaderNumberMismatch(uint256 header, uint256 expected, uint256 actual);
    error TransactionIndexTooLarge(uint256 transactionIndex);
    /// @notice Proof node `node` is empty (shared) but the previous proof has no node there.
    error MissingSharedNode(uint256 node);
    /// @notice Header `header` of a walk is empty (shared) but the previous proof of the batch has
    /// no header there (or there is no previous proof: a lone delivery or a batch's first proof).
    error MissingSharedHeader(uint256 header);
    error UnsupportedReceiptType(uint256 firstByte);
    error MalformedReceipt();
    error LogIndexOutOfRange(uint256 logIndex, uint256 logs);
    error MalformedLog();
    error WrongEmitter(address emitter);
    error NotDispatchEvent(bytes32 topic0);
    /// @notice The log's data is not the canonical ABI encoding of (uint32 nonce, bytes message)
    /// with a message of at least a header's length.
    error MalformedDispatchData();
    error MessageIdMismatch(bytes32 topic, bytes32 computed);
    error DestinationTopicMismatch(bytes32 topic, uint32 destination);
    error NonceMismatch(uint256 logNonce, uint32 messageNonce);
    error MessageOriginMismatch(uint32 expected, uint32 actual);

    constructor(IVerifiedDelivery gateway_, IExecutionHeaders lightClient_, uint32 originDomain_, address sourceGateway_) {
        if (address(gateway_).code.length == 0) revert NotAContract(address(gateway_));
        if (address(lightClient_).code.length == 0) revert NotAContract(address(lightClient_));
        if (sourceGateway_ == address(0)) revert InvalidSourceGateway();
        gateway = gateway_;
        lightClient = lightClient_;
        originDomain = originDomain_;
        sourceGateway = sourceGateway_;
    }

    // ---------------------------------------------------------------- delivering

    /// @notice Delivers the message of the Dispatch log `logIndex` of the proven receipt, calling
    /// its recipient with exactly `gasLimit` gas. Reverts AlreadyDelivered if it was delivered.
    function deliverFromEthereum(ReceiptProof calldata proof, uint256 logIndex, uint256 gasLimit) external {
        (bytes32 blockHash, bytes32 receiptsRoot) = _storedHeader(proof.blockNumber);
        (uint256 receipt, uint256 receiptEnd,) = _proveReceipt(proof, blockHash, receiptsRoot, _noPrevious(), false);
        (bytes32 id, bytes memory message) = _readDispatch(receipt, receiptEnd, logIndex);
        if (!gateway.deliverVerified(message, gasLimit)) revert AlreadyDelivered(id);
    }

    /// @notice Delivers many messages: each proof is verified once, however many deliveries use
    /// it, and the light client is asked once per run of proofs for the same block. Entries
    /// already delivered are skipped (DeliverySkipped); any invalid entry reverts the batch.
    /// An empty node in `proofs[i].nodes[j]` stands for node j of proof i - 1 (as resolved): proofs
    /// of one block share their upper nodes, and each is sent once (every node is still checked
    /// against its parent's hash). Likewise an empty header in `proofs[i].headers[j]` stands for
    /// header j of proof i - 1 (as resolved): proofs walking back from one stored block share the
    /// walk's first headers. A walk is checked header by header like a lone one, except that a
    /// run of shared headers at its start, from the same stored block as proof i - 1's walk, is
    /// the very walk proof i - 1 verified (same stored block, same header bytes): its result is
    /// reused, not hashed again. A shared header after that point is hashed and chained as usual.
    function deliverFromEthereumBatch(ReceiptProof[] calldata proofs, Delivery[] calldata deliveries) external {
        if (deliveries.length == 0) revert EmptyBatch();
        uint256[] memory receipts = new uint256[](proofs.length * 2);
        uint64 lastBlock;
        bytes32 blockHash;
        bytes32 receiptsRoot;
        Resolved memory previous = _noPrevious();
        for (uint256 i = 0; i < proofs.length; i++) {
            ReceiptProof calldata proof = proofs[i];
            if (i == 0 || proof.blockNumber != lastBlock) {
                lastBlock = proof.blockNumber;
                (blockHash, receiptsRoot) = _storedHeader(lastBlock);
            }
            (receipts[2 * i], receipts[2 * i + 1], previous) =
                _proveReceipt(proof, blockHash, receiptsRoot, previous, i + 1 < proofs.length);
        }
        for (uint256 i = 0; i < deliveries.length; i++) {
            Delivery calldata delivery = deliveries[i];
            uint256 index = delivery.proofIndex;
            if (index >= proofs.length) revert ProofIndexOutOfRange(index, proofs.length);
            uint256 freeMemory;
            assembly ("memory-safe") {
                freeMemory := mload(0x40)
            }
            (bytes32 id, bytes memory message) =
                _readDispatch(receipts[2 * index], receipts[2 * index + 1], delivery.logIndex);
            if (!gateway.deliverVerified(message, delivery.gasLimit)) emit DeliverySkipped(id);
            // Each entry's message and call data are dead once delivered: reuse their memory.
            assembly ("memory-safe") {
                mstore(0x40, freeMemory)
            }
        }
    }

    // ---------------------------------------------------------------- views

    /// @notice The message the log `logIndex` of the proven receipt carries, after every check
    /// `deliverFromEthereum` makes before delivering (for relayers to check a proof first).
    function provenMessage(ReceiptProof calldata proof, uint256 logIndex)
        external
        view
        returns (bytes32 id, bytes memory message)
    {
        (bytes32 blockHash, bytes32 receiptsRoot) = _storedHeader(proof.blockNumber);
        (uint256 receipt, uint256 receiptEnd,) = _proveReceipt(proof, blockHash, receiptsRoot, _noPrevious(), false);
        return _readDispatch(receipt, receiptEnd, logIndex);
    }

    /// @notice The log `logIndex` of the proven receipt, whoever emitted it, and the receipt's
    /// type (0 legacy, 1-4 typed).
    function provenLog(ReceiptProof calldata proof, uint256 logIndex)
        external
        view
        returns (uint256 receiptType, address emitter, bytes32[] memory topics, bytes memory data)
    {
        (bytes32 blockHash, bytes32 receiptsRoot) = _storedHeader(proof.blockNumber);
        (uint256 receipt, uint256 receiptEnd,) = _proveReceipt(proof, blockHash, receiptsRoot, _noPrevious(), false);
        uint256 log;
        uint256 logEnd;
        (receiptType, log, logEnd) = _findLog(receipt, receiptEnd, logIndex);
        uint256 ptr;
        (emitter, ptr) = _readEmitter(log, logEnd);
        (uint256 topic, uint256 topicsEnd) = ptr.readList(logEnd);
        uint256 count;
        for (uint256 at = topic; at < topicsEnd; at = at.skip(topicsEnd)) count++;
        topics = new bytes32[](count);
        for (uint256 i = 0; i < count; i++) {
            (topics[i], topic) = topic.readBytes32(topicsEnd);
        }
        (uint256 payload, uint256 length) = topicsEnd.readString(logEnd);
        data = new bytes(length);
        assembly ("memory-safe") {
            calldatacopy(add(data, 0x20), payload, length)
        }
    }

    // ---------------------------------------------------------------- proofs

    function _storedHeader(uint64 blockNumber) private view returns (bytes32 blockHash, bytes32 receiptsRoot) {
        (blockHash, receiptsRoot) = lightClient.executionHeader(blockNumber);
        if (blockHash == bytes32(0)) revert UnknownBlock(blockNumber);
    }

    /// @dev Nothing before: a lone proof, or a batch's first (an empty node or header is refused).
    function _noPrevious() private pure returns (Resolved memory none) {}

    /// @param previous the previous proof of a batch as resolved (empty nodes and headers of this
    /// proof stand for its), or `_noPrevious()`
    /// @param keepWalk whether a next proof may share this one's headers (else its walk is not kept)
    /// @return receipt calldata offset of the proven receipt's encoding
    /// @return receiptEnd the offset right after it
    /// @return resolved this proof as resolved, for the next proof
    function _proveReceipt(
        ReceiptProof calldata proof,
        bytes32 blockHash,
        bytes32 receiptsRoot,
        Resolved memory previous,
        bool keepWalk
    ) private pure returns (uint256 receipt, uint256 receiptEnd, Resolved memory resolved) {
        if (keepWalk) (resolved.walkStart, resolved.walkNumber) = (blockHash, proof.blockNumber);
        if (proof.headers.length != 0) {
            (receiptsRoot, resolved.headers, resolved.walk) =
                _walkHeaders(proof.headers, blockHash, proof.blockNumber, previous, keepWalk);
        }
        resolved.nodes = _resolveNodes(proof.nodes, previous.nodes);
        (bytes32 key, uint256 keyNibbles) = _receiptKey(proof.transactionIndex);
        uint256 length;
        (receipt, length) = MerklePatriciaCalldata.proveValue(receiptsRoot, key, keyNibbles, resolved.nodes);
        receiptEnd = receipt + length;
    }

    /// @dev Where each proof node lies in calldata (start, end); an empty node is node i of the
    /// previous proof.
    function _resolveNodes(bytes[] calldata proofNodes, uint256[] memory previousNodes)
        private
        pure
        returns (uint256[] memory nodes)
    {
        uint256 count = proofNodes.length;
        nodes = new uint256[](2 * count);
        for (uint256 i = 0; i < count; i++) {
            (uint256 start, uint256 end) = RLPCalldata.bounds(proofNodes[i]);
            if (start == end) {
                if (2 * i >= previousNodes.length) revert MissingSharedNode(i);
                (start, end) = (previousNodes[2 * i], previousNodes[2 * i + 1]);
            }
            assembly ("memory-safe") {
                // i < count: both words are inside `nodes`.
                let at := add(add(nodes, 0x20), shl(6, i))
                mstore(at, start)
                mstore(add(at, 0x20), end)
            }
        }
    }

    /// @dev Follows `headers` from the stored block (hash `blockHash`, number `blockNumber`) back
    /// by parent hash; returns the receipts root of the last one, and the walk as resolved (see
    /// `Resolved`). An empty header is header i of the previous proof's walk: while every header
    /// so far is such, and that walk started from the same stored block (hash and number), it is the
    /// same walk, already verified, whose state after header i is taken as is; otherwise the header
    /// is checked like any. `keep`: whether to return the walk (for a next proof), else nothing.
    function _walkHeaders(
        bytes[] calldata headers,
        bytes32 blockHash,
        uint256 blockNumber,
        Resolved memory previous,
        bool keep
    ) private pure returns (bytes32 receiptsRoot, uint256[] memory bounds, bytes32[] memory walk) {
        uint256 count = headers.length;
        if (keep) {
            bounds = new uint256[](2 * count);
            walk = new bytes32[](2 * count);
        }
        // Whether the walk so far is the previous proof's (same start, the same headers).
        bool reused = previous.walkStart == blockHash && previous.walkNumber == blockNumber;
        bytes32 expected = blockHash;
        for (uint256 i = 0; i < count; i++) {
            (uint256 start, uint256 end) = RLPCalldata.bounds(headers[i]);
            bytes32 parentHash;
            if (start == end) {
                if (2 * i >= previous.headers.length) revert MissingSharedHeader(i);
                (start, end) = (previous.headers[2 * i], previous.headers[2 * i + 1]);
            } else {
                reused = false;
            }
            if (reused) {
                // Header i of the previous walk, checked there from the same stored block.
                (parentHash, receiptsRoot) = (previous.walk[2 * i], previous.walk[2 * i + 1]);
            } else {
                // Header i is block `blockNumber - i`; past genesis (its parent hash, zero, matches
                // no header) the number wraps, and no header matches it either.
                uint256 number;
                unchecked {
                    number = blockNumber - i;
                }
                (parentHash, receiptsRoot) = _checkHeader(start, end, expected, number, i);
            }
            if (keep) {
                assembly ("memory-safe") {
                    // i < count: both words of each are inside `bounds` and `walk`.
                    let at := add(add(bounds, 0x20), shl(6, i))
                    mstore(at, start)
                    mstore(add(at, 0x20), end)
                    at := add(add(walk, 0x20), shl(6, i))
                    mstore(at, parentHash)
                    mstore(add(at, 0x20), receiptsRoot)
                }
            }
            expected = parentHash;
        }
    }

    /// @dev Header `index` of a walk, at start..end in calldata: it must hash to `expected` and be
    /// block `number`; returns its parent hash and receipts root.
    function _checkHeader(uint256 start, uint256 end, bytes32 expected, uint256 number, uint256 index)
        private
        pure
        returns (bytes32 parentHash, bytes32 receiptsRoot)
    {
        bytes32 computed;
        assembly ("memory-safe") {
            let copy := mload(0x40)
            calldatacopy(copy, start, sub(end, start))
            computed := keccak256(copy, sub(end, start))
        }
        if (computed != expected) revert HeaderHashMismatch(index);
        (uint256 ptr, uint256 listEnd) = start.readList(end);
        if (listEnd != end) revert RLPCalldata.RLPTrailingBytes(listEnd);
        (parentHash, ptr) = ptr.readBytes32(listEnd);
        for (uint256 field = 0; field < HEADER_FIELDS_BEFORE_RECEIPTS_ROOT; field++) ptr = ptr.skip(listEnd);
        (receiptsRoot, ptr) = ptr.readBytes32(listEnd);
        ptr = ptr.skip(listEnd).skip(listEnd); // logs bloom, difficulty
        (uint256 headerNumber,) = ptr.readUint(listEnd);
        if (headerNumber != number) revert HeaderNumberMismatch(index, number, headerNumber);
    }

    /// @dev rlp(transactionIndex), the receipts trie key, left-aligned, and its length in nibbles.
    function _receiptKey(uint256 index) private pure returns (bytes32 key, uint256 nibbles) {
        if (index > type(uint32).max) revert TransactionIndexTooLarge(index);
        if (index == 0) return (bytes32(uint256(0x80) << 248), 2);
        if (index < 0x80) return (bytes32(index << 248), 2);
        uint256 size = index < 0x100 ? 1 : index < 0x10000 ? 2 : index < 0x1000000 ? 3 : 4;
        uint256 encoded = ((0x80 + size) << (8 * size)) | index;
        return (bytes32(encoded << (256 - 8 * (size + 1))), 2 * (size + 1));
    }

    // ---------------------------------------------------------------- receipts and logs

    /// @dev The log `logIndex` of a receipt (legacy, or typed 1-4 behind its type byte).
    /// @return receiptType 0 legacy, else the EIP-2718 type
    /// @return log calldata offset of the log's RLP item
    /// @return logsEnd the end of the receipt's log list
    function _findLog(uint256 receipt, uint256 receiptEnd, uint256 logIndex)
        private
        pure
        returns (uint256 receiptType, uint256 log, uint256 logsEnd)
    {
        uint256 first;
        assembly ("memory-safe") {
            first := byte(0, calldataload(receipt))
        }
        uint256 ptr = receipt;
        if (first < 0xc0) {
            if (first == 0 || first > MAX_RECEIPT_TYPE) revert UnsupportedReceiptType(first);
            receiptType = first;
            ptr += 1;
        }
        // [status or state root, cumulative gas used, logs bloom, logs]
        (uint256 item, uint256 listEnd) = ptr.readList(receiptEnd);
        if (listEnd != receiptEnd) revert RLPCalldata.RLPTrailingBytes(listEnd);
        item = item.skip(listEnd).skip(listEnd);
        (uint256 bloom, uint256 bloomLength) = item.readString(listEnd);
        if (bloomLength != BLOOM_LENGTH) revert MalformedReceipt();
        (log, logsEnd) = (bloom + BLOOM_LENGTH).readList(listEnd);
        if (logsEnd != listEnd) revert RLPCalldata.RLPTrailingBytes(logsEnd);
        // Bounded by the receipt: each skipped log is at least one byte.
        for (uint256 i = 0; i < logIndex; i++) {
            if (log == logsEnd) revert LogIndexOutOfRange(logIndex, i);
            log = log.skip(logsEnd);
        }
        if (log == logsEnd) revert LogIndexOutOfRange(logIndex, logIndex);
    }

    /// @dev The emitter of the log at `log`, and the offset of its topics.
    function _readEmitter(uint256 log, uint256 logsEnd) private pure returns (address emitter, uint256 topics) {
        (uint256 ptr, uint256 logEnd) = log.readList(logsEnd);
        (uint256 payload, uint256 length) = ptr.readString(logEnd);
        if (length != 20) revert MalformedLog();
        assembly ("memory-safe") {
            emitter := shr(96, calldataload(payload))
        }
        return (emitter, payload + 20);
    }

    /// @dev The message of the Dispatch log `logIndex` of a proven receipt, checked against the
    /// log's topics and this inbox's origin and source Gateway.
    function _readDispatch(uint256 receipt, uint256 receiptEnd, uint256 logIndex)
        private
        view
        returns (bytes32 id, bytes memory message)
    {
        (, uint256 log, uint256 logsEnd) = _findLog(receipt, receiptEnd, logIndex);
        (address emitter, uint256 topics) = _readEmitter(log, logsEnd);
        // Any contract can emit a log that looks like Dispatch; only the source Gateway's count.
        if (emitter != sourceGateway) revert WrongEmitter(emitter);
        (, uint256 logEnd) = log.readList(logsEnd);
        bytes32 destinationTopic;
        uint256 data;
        (id, destinationTopic, data) = _readDispatchTopics(topics, logEnd);
        (uint256 payload, uint256 length) = data.readString(logEnd);
        if (payload + length != logEnd) revert RLPCalldata.RLPTrailingBytes(payload + length);
        uint256 nonce;
        (nonce, message) = _decodeDispatchData(payload, length);
        _checkMessage(id, destinationTopic, nonce, message);
    }

    /// @dev The topics of a Dispatch log: exactly [DISPATCH_TOPIC, id, destination]; `next` is
    /// the offset after the topic list (the log's data).
    function _readDispatchTopics(uint256 ptr, uint256 logEnd)
        private
        pure
        returns (bytes32 id, bytes32 destinationTopic, uint256 next)
    {
        (uint256 topic, uint256 topicsEnd) = ptr.readList(logEnd);
        bytes32 topic0;
        (topic0, topic) = topic.readBytes32(topicsEnd);
        if (topic0 != DISPATCH_TOPIC) revert NotDispatchEvent(topic0);
        (id, topic) = topic.readBytes32(topicsEnd);
        (destinationTopic, topic) = topic.readBytes32(topicsEnd);
        if (topic != topicsEnd) revert MalformedLog();
        next = topicsEnd;
    }

    /// @dev abi.decode(data, (uint32, bytes)), accepting only the canonical encoding: offset 0x40,
    /// the length exactly filling the data, zero padding.
    function _decodeDispatchData(uint256 data, uint256 dataLength)
        private
        pure
        returns (uint256 nonce, bytes memory message)
    {
        if (dataLength < 0x60) revert MalformedDispatchData();
        uint256 offset;
        uint256 length;
        assembly ("memory-safe") {
            nonce := calldataload(data)
            offset := calldataload(add(data, 0x20))
            length := calldataload(add(data, 0x40))
        }
        if (nonce > type(uint32).max || offset != 0x40) revert MalformedDispatchData();
        if (length < MESSAGE_HEADER_LENGTH || length > dataLength - 0x60) revert MalformedDispatchData();
        uint256 padded = (length + 31) & ~uint256(31);
        if (0x60 + padded != dataLength) revert MalformedDispatchData();
        uint256 padding;
        assembly ("memory-safe") {
            // The last word's bytes after the message: shift the message bytes out.
            padding := shl(shl(3, sub(32, sub(padded, length))), calldataload(add(data, add(0x40, padded))))
        }
        if (padded != length && padding != 0) revert MalformedDispatchData();
        message = new bytes(length);
        assembly ("memory-safe") {
            calldatacopy(add(message, 0x20), add(data, 0x60), length)
        }
    }

    /// @dev The message is the one the log names (id), for the log's destination and nonce, from
    /// this inbox's origin.
    function _checkMessage(bytes32 id, bytes32 destinationTopic, uint256 nonce, bytes memory message) private view {
        bytes32 computed = keccak256(message);
        if (computed != id) revert MessageIdMismatch(id, computed);
        uint32 messageNonce;
        uint32 messageOrigin;
        uint32 destination;
        assembly ("memory-safe") {
            let head := mload(add(message, 0x20))
            messageNonce := and(shr(216, head), 0xffffffff)
            messageOrigin := and(shr(184, head), 0xffffffff)
            destination := shr(224, mload(add(message, add(0x20, 41))))
        }
        if (uint256(destinationTopic) != destination) revert DestinationTopicMismatch(destinationTopic, destination);
        if (nonce != messageNonce) revert NonceMismatch(nonce, messageNonce);
        if (messageOrigin != originDomain) revert MessageOriginMismatch(originDomain, messageOrigin);
    }
}
