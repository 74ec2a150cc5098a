// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Strict RLP reading straight from calldata, by absolute calldata offsets.
/// @notice Every read is bounded by an `end` offset the caller got from an ABI-decoded `bytes`
/// (so it lies inside the calldata): a length prefix pointing past `end` reverts RLPTruncated,
/// a non-canonical encoding (a long form for a short item, leading zero bytes in a length, a
/// single byte below 0x80 wrapped in a string) RLPNonCanonical, a list where a string is needed
/// (or the reverse) RLPUnexpectedKind. Nothing here loops: callers iterate item by item, and each
/// item consumes at least one byte, so their loops are bounded by the input length.
library RLPCalldata {
    error RLPTruncated(uint256 offset);
    error RLPNonCanonical(uint256 offset);
    error RLPUnexpectedKind(uint256 offset);
    /// @notice Bytes left over after an item that should have filled its container exactly.
    error RLPTrailingBytes(uint256 offset);

    /// @dev Where `data` lies in calldata: its first byte's offset and the offset right after it.
    function bounds(bytes calldata data) internal pure returns (uint256 start, uint256 end) {
        assembly ("memory-safe") {
            start := data.offset
            end := add(data.offset, data.length)
        }
    }

    /// @dev The item at `ptr`: whether it is a list, where its payload starts and how long it is;
    /// the payload lies inside `end`. The next item starts at `payload + length`.
    function readItem(uint256 ptr, uint256 end) internal pure returns (bool isList, uint256 payload, uint256 length) {
        if (ptr >= end) revert RLPTruncated(ptr);
        uint256 prefix;
        assembly ("memory-safe") {
            prefix := byte(0, calldataload(ptr))
        }
        if (prefix < 0x80) return (false, ptr, 1);
        if (prefix < 0xb8) {
            (payload, length) = (ptr + 1, prefix - 0x80);
        } else if (prefix < 0xc0) {
            (payload, length) = _readLongLength(ptr, prefix - 0xb7, end);
        } else if (prefix < 0xf8) {
            (isList, payload, length) = (true, ptr + 1, prefix - 0xc0);
        } else {
            isList = true;
            (payload, length) = _readLongLength(ptr, prefix - 0xf7, end);
        }
        if (payload + length > end) revert RLPTruncated(ptr);
        if (prefix == 0x81) {
            uint256 only;
            assembly ("memory-safe") {
                only := byte(0, calldataload(payload))
            }
            // A single byte below 0x80 is its own encoding.
            if (only < 0x80) revert RLPNonCanonical(ptr);
        }
    }

    /// @dev A long-form length of `lengthOfLength` (1..8) bytes after the prefix at `ptr`.
    function _readLongLength(uint256 ptr, uint256 lengthOfLength, uint256 end)
        private
        pure
        returns (uint256 payload, uint256 length)
    {
        payload = ptr + 1 + lengthOfLength;
        if (payload > end) revert RLPTruncated(ptr);
        uint256 first;
        assembly ("memory-safe") {
            let word := calldataload(add(ptr, 1))
            first := byte(0, word)
            length := shr(sub(256, shl(3, lengthOfLength)), word)
        }
        // No leading zero byte, and the long form only for 56 bytes or more.
        if (first == 0 || length < 56) revert RLPNonCanonical(ptr);
    }

    /// @dev The list at `ptr` (its payload offset and the offset right after it).
    function readList(uint256 ptr, uint256 end) internal pure returns (uint256 payload, uint256 payloadEnd) {
        (bool isList, uint256 start, uint256 length) = readItem(ptr, end);
        if (!isList) revert RLPUnexpectedKind(ptr);
        return (start, start + length);
    }

    /// @dev The string at `ptr` (its payload offset and length).
    function readString(uint256 ptr, uint256 end) internal pure returns (uint256 payload, uint256 length) {
        bool isList;
        (isList, payload, length) = readItem(ptr, end);
        if (isList) revert RLPUnexpectedKind(ptr);
    }

    /// @dev The offset right after the item at `ptr`.
    function skip(uint256 ptr, uint256 end) internal pure returns (uint256 next) {
        (, uint256 payload, uint256 length) = readItem(ptr, end);
        return payload + length;
    }

    /// @dev A 32-byte string at `ptr` (a hash), and the offset after it.
    function readBytes32(uint256 ptr, uint256 end) internal pure returns (bytes32 value, uint256 next) {
        (uint256 payload, uint256 length) = readString(ptr, end);
        if (length != 32) revert RLPUnexpectedKind(ptr);
        assembly ("memory-safe") {
            value := calldataload(payload)
        }
        next = payload + 32;
    }

    /// @dev A canonical unsigned integer of at most 32 bytes at `ptr`, and the offset after it.
    function readUint(uint256 ptr, uint256 end) internal pure returns (uint256 value, uint256 next) {
        (uint256 payload, uint256 length) = readString(ptr, end);
        if (length > 32) revert RLPUnexpectedKind(ptr);
        if (length == 0) return (0, payload);
        assembly ("memory-safe") {
            value := shr(sub(256, shl(3, length)), calldataload(payload))
        }
        // Integers have no leading zero bytes (zero itself is the empty string).
        if (value >> ((length - 1) * 8) == 0) revert RLPNonCanonical(ptr);
        next = payload + length;
    }
}
