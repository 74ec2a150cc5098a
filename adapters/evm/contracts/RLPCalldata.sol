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
    /// the payload lies inside `end`. The next item starts at `payload + length`. Checks, in
    /// order: `ptr` inside `end`; for a long form, its length bytes inside `end`, then canonical
    /// (no leading zero, 56 or more); the payload inside `end`; a one-byte string not below 0x80.
    function readItem(uint256 ptr, uint256 end) internal pure returns (bool isList, uint256 payload, uint256 length) {
        uint256 status; // 0 fine, 1 truncated, 2 not canonical
        assembly ("memory-safe") {
            switch lt(ptr, end)
            case 0 { status := 1 }
            default {
                let word := calldataload(ptr)
                let prefix := byte(0, word)
                let lengthOfLength := 0
                switch lt(prefix, 0x80)
                case 1 {
                    payload := ptr
                    length := 1
                }
                default {
                    switch lt(prefix, 0xb8)
                    case 1 {
                        payload := add(ptr, 1)
                        length := sub(prefix, 0x80)
                    }
                    default {
                        switch lt(prefix, 0xc0)
                        case 1 { lengthOfLength := sub(prefix, 0xb7) }
                        default {
                            isList := 1
                            switch lt(prefix, 0xf8)
                            case 1 {
                                payload := add(ptr, 1)
                                length := sub(prefix, 0xc0)
                            }
                            default { lengthOfLength := sub(prefix, 0xf7) }
                        }
                    }
                }
                if lengthOfLength {
                    payload := add(add(ptr, 1), lengthOfLength)
                    length := shr(sub(256, shl(3, lengthOfLength)), shl(8, word))
                    switch gt(payload, end)
                    case 1 { status := 1 }
                    default { if or(iszero(byte(1, word)), lt(length, 56)) { status := 2 } }
                }
                if iszero(status) {
                    switch gt(add(payload, length), end)
                    case 1 { status := 1 }
                    default {
                        // A single byte below 0x80 is its own encoding, never 0x81 and the byte.
                        if and(eq(prefix, 0x81), lt(byte(1, word), 0x80)) { status := 2 }
                    }
                }
            }
        }
        if (status == 1) revert RLPTruncated(ptr);
        if (status == 2) revert RLPNonCanonical(ptr);
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
