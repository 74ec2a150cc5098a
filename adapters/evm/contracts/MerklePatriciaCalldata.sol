// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {RLPCalldata} from "./RLPCalldata.sol";

/// @title Merkle-Patricia inclusion proofs read from calldata (Ethereum's hexary trie).
/// @notice `proveValue` walks `nodes` (RLP nodes, root first) from `root` along the nibbles of
/// `key` and returns where the proven value lies in calldata. Every node is referenced by its
/// keccak256: nodes shorter than 32 bytes (embedded in their parent) never occur in a trie whose
/// leaves hold more than 32 bytes, such as the receipts trie, and are refused. Each node
/// consumes at least one key nibble or ends the walk, so the loop is bounded by the key.
library MerklePatriciaCalldata {
    using RLPCalldata for uint256;

    /// @notice Node `node` does not hash to the reference its parent (or the root) holds.
    error ProofNodeHashMismatch(uint256 node);
    /// @notice Node `node` is neither a branch (17 items) nor an extension or leaf (2 items with
    /// a valid hex-prefix path), or holds a child that is not a 32-byte hash.
    error InvalidProofNode(uint256 node);
    /// @notice Node `node`'s path leaves the key: the key is not in the trie (or the proof is for
    /// another key).
    error ProofPathMismatch(uint256 node);
    /// @notice The proof ends before reaching the key's value.
    error ProofTooShort(uint256 nodes);
    /// @notice Nodes follow the one that holds the value.
    error ProofTooLong(uint256 nodes);
    /// @notice The trie holds no value under the key (an empty branch slot or value).
    error ValueNotInTrie(uint256 node);

    uint256 private constant BRANCH_ITEMS = 17;
    uint256 private constant VALUE_SLOT = 16;

    /// @dev Where the walk is: the key (left-aligned), its length and the nibbles consumed.
    struct Cursor {
        bytes32 key;
        uint256 keyNibbles;
        uint256 consumed;
    }

    /// @param key the key, left-aligned; `keyNibbles` its length in nibbles (at most 64)
    /// @param nodes where each node lies in calldata: start and end offsets, node i at 2i, 2i+1
    /// (each node is hash-checked here, so where its bytes come from does not matter)
    /// @return value calldata offset of the proven value
    /// @return valueLength its length
    function proveValue(bytes32 root, bytes32 key, uint256 keyNibbles, uint256[] memory nodes)
        internal
        pure
        returns (uint256 value, uint256 valueLength)
    {
        Cursor memory cursor = Cursor(key, keyNibbles, 0);
        bytes32 expected = root;
        uint256 count = nodes.length / 2;
        for (uint256 i = 0; i < count; i++) {
            uint256 start;
            uint256 end;
            assembly ("memory-safe") {
                // i < count = nodes.length / 2: both words are inside the array.
                let at := add(add(nodes, 0x20), shl(6, i))
                start := mload(at)
                end := mload(add(at, 0x20))
            }
            if (_hash(start, end) != expected) revert ProofNodeHashMismatch(i);
            (bool atValue, uint256 item) = _step(start, end, cursor, i);
            if (!atValue) {
                expected = _readChild(item, end, i);
                continue;
            }
            (value, valueLength) = item.readString(end);
            if (valueLength == 0) revert ValueNotInTrie(i);
            if (i + 1 != count) revert ProofTooLong(count);
            return (value, valueLength);
        }
        revert ProofTooShort(count);
    }

    /// @dev Reads node `node` (at start..end) and advances `cursor` past it.
    /// @return atValue whether `item` is the key's value (else it is the next node's reference)
    /// @return item the calldata offset of that value or reference
    function _step(uint256 start, uint256 end, Cursor memory cursor, uint256 node)
        private
        pure
        returns (bool atValue, uint256 item)
    {
        (uint256 first, uint256 listEnd) = start.readList(end);
        if (listEnd != end) revert RLPCalldata.RLPTrailingBytes(listEnd);
        uint256 second = first.skip(end);
        uint256 third = second.skip(end);
        if (third == end) {
            // Extension or leaf: [hex-prefix path, child reference or value].
            atValue = _followPath(first, end, cursor, node);
            if (atValue && cursor.consumed != cursor.keyNibbles) revert ProofPathMismatch(node);
            return (atValue, second);
        }
        // Branch: 16 children, then the value of the key that ends here.
        if (cursor.consumed == cursor.keyNibbles) return (true, _branchItem(first, third, end, VALUE_SLOT, node));
        uint256 slot = uint256(cursor.key >> (252 - 4 * cursor.consumed)) & 0xf;
        cursor.consumed += 1;
        item = slot == 1 ? second : _branchItem(first, third, end, slot, node);
    }

    /// @dev The offset of item `slot` of a branch node whose items start at `first` (item 2 at
    /// `third`); checks the node has exactly 17 items.
    function _branchItem(uint256 first, uint256 third, uint256 end, uint256 slot, uint256 node)
        private
        pure
        returns (uint256 item)
    {
        item = first;
        uint256 at = third;
        for (uint256 j = 2; j < BRANCH_ITEMS; j++) {
            if (at == end) revert InvalidProofNode(node);
            if (j == slot) item = at;
            uint256 prefix;
            assembly ("memory-safe") {
                prefix := byte(0, calldataload(at))
            }
            // The two items of real branches, canonical as they are: an empty slot and a hash.
            if (prefix == 0x80) {
                at += 1;
            } else if (prefix == 0xa0 && at + 33 <= end) {
                at += 33;
            } else {
                at = at.skip(end);
            }
        }
        if (at != end) revert InvalidProofNode(node);
    }

    /// @dev The child reference at `ptr`: a 32-byte hash (an empty slot means no such key).
    function _readChild(uint256 ptr, uint256 end, uint256 node) private pure returns (bytes32 child) {
        (uint256 payload, uint256 length) = ptr.readString(end);
        if (length == 0) revert ValueNotInTrie(node);
        if (length != 32) revert InvalidProofNode(node);
        assembly ("memory-safe") {
            child := calldataload(payload)
        }
    }

    /// @dev Checks the hex-prefix path at `ptr` continues the cursor's key, and consumes it.
    /// @return leaf whether the node is a leaf (flag 2 or 3) rather than an extension (0 or 1)
    function _followPath(uint256 ptr, uint256 end, Cursor memory cursor, uint256 node) private pure returns (bool leaf) {
        (uint256 payload, uint256 length) = ptr.readString(end);
        if (length == 0) revert InvalidProofNode(node);
        uint256 head;
        assembly ("memory-safe") {
            head := byte(0, calldataload(payload))
        }
        uint256 flag = head >> 4;
        if (flag > 3) revert InvalidProofNode(node);
        leaf = flag >= 2;
        uint256 odd = flag & 1;
        // An even path pads its first byte with a zero nibble.
        if (odd == 0 && head & 0xf != 0) revert InvalidProofNode(node);
        uint256 pathNibbles = 2 * (length - 1) + odd;
        uint256 consumed = cursor.consumed;
        // An extension consumes at least one nibble; a path longer than the key's rest cannot match.
        if ((!leaf && pathNibbles == 0) || pathNibbles > cursor.keyNibbles - consumed) revert ProofPathMismatch(node);
        bytes32 key = cursor.key;
        for (uint256 n = 0; n < pathNibbles; n++) {
            // Path nibble n is nibble n + 2 - odd of the encoding (after the flag, and the pad).
            uint256 position = n + 2 - odd;
            uint256 pathNibble;
            assembly ("memory-safe") {
                let encoded := byte(0, calldataload(add(payload, shr(1, position))))
                pathNibble := and(shr(shl(2, iszero(and(position, 1))), encoded), 0xf)
            }
            if (pathNibble != uint256(key >> (252 - 4 * (consumed + n))) & 0xf) revert ProofPathMismatch(node);
        }
        cursor.consumed = consumed + pathNibbles;
    }

    /// @dev keccak256 of the calldata bytes start..end (copied to free memory, which stays free).
    function _hash(uint256 start, uint256 end) private pure returns (bytes32 digest) {
        assembly ("memory-safe") {
            let copy := mload(0x40)
            calldatacopy(copy, start, sub(end, start))
            digest := keccak256(copy, sub(end, start))
        }
    }
}
