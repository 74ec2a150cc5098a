// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {BLS} from "./BLS.sol";

/// @title Sync-committee keys for the on-chain light client: SSZ root, storage as code, signers' key.
/// @notice The SSZ commitment of a sync committee holds compressed 48-byte keys; the EIP-2537
/// precompiles take 128-byte points. A committee is stored once as code (SSTORE2: up to 256 keys a
/// contract, after a STOP byte; the uncompressed aggregate key at the end of the first) and each
/// key the signature check needs is rebuilt from its stored x and sign flag and a y the caller
/// supplies: on the curve (G1ADD refuses other points), with that x and that sign, the point is
/// the unique decompression of the committed key, which the beacon chain validated at deposit.
/// Layout of a committee given as `bytes`: the keys, the compressed aggregate key, its 48-byte y.
library SyncCommitteeKeys {
    uint256 internal constant KEY_LENGTH = 48;
    uint256 internal constant KEYS_PER_CHUNK = 256;

    uint256 private constant HALF_P_HIGH = 0x000000000000000000000000000000000d0088f51cbff34d258dd3db21a5d66b;
    uint256 private constant HALF_P_LOW = 0xb23ba5c279c2895fb39869507b587b120f55ffff58a9ffffdcff7fffffffd555;
    uint256 private constant P_HIGH = 0x000000000000000000000000000000001a0111ea397fe69a4b1ba7b6434bacd7;
    uint256 private constant P_LOW = 0x64774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab;

    /// @notice A stored committee: its SSZ root and the code contracts holding its keys.
    struct StoredCommittee {
        bytes32 root;
        address keys0;
        address keys1;
    }

    /// @notice A key's supplied y does not fit its committed x (sign flag, or not on the curve);
    /// `index` is the member, or the committee size for the aggregate key.
    error InvalidSyncCommitteeKey(uint256 index);
    error InvalidSignerKeys(uint256 expectedLength, uint256 length);
    error KeyStorageFailed();

    /// @dev containers.py's compute_sync_committee_root from `size` compressed keys and the aggregate.
    function computeRoot(bytes calldata committee, uint256 size) internal view returns (bytes32 root) {
        bool ok = true;
        assembly ("memory-safe") {
            let leaves := mload(0x40)
            // Each 48-byte key is two chunks: its leaf is one hash of the key padded to 64 bytes.
            mstore(0x20, 0)
            for { let i := 0 } lt(i, size) { i := add(i, 1) } {
                calldatacopy(0x00, add(committee.offset, mul(i, 48)), 48)
                ok := and(ok, staticcall(gas(), 0x02, 0x00, 0x40, add(leaves, shl(5, i)), 0x20))
                mstore(0x20, 0)
            }
            for { let width := size } gt(width, 1) { width := shr(1, width) } {
                for { let i := 0 } lt(i, shr(1, width)) { i := add(i, 1) } {
                    ok := and(ok, staticcall(gas(), 0x02, add(leaves, shl(6, i)), 0x40, add(leaves, shl(5, i)), 0x20))
                }
            }
            let pubkeysRoot := mload(leaves)
            calldatacopy(0x00, add(committee.offset, mul(size, 48)), 48)
            ok := and(ok, staticcall(gas(), 0x02, 0x00, 0x40, 0x20, 0x20))
            mstore(0x00, pubkeysRoot)
            ok := and(ok, staticcall(gas(), 0x02, 0x00, 0x40, 0x00, 0x20))
            root := mload(0x00)
            mstore(0x20, 0)
        }
        if (!ok) revert BLS.PrecompileFailed(0x02);
    }

    /// @dev Stores a committee (keys, compressed aggregate, aggregate y) as code: the keys 256 per
    /// contract after a STOP byte (so nobody can run the data); chunk 0 ends with the uncompressed
    /// aggregate key, whose y is checked against its compressed encoding first.
    function store(bytes calldata committee, uint256 size, bytes32 root)
        internal
        returns (StoredCommittee memory stored)
    {
        bytes memory aggregate = _decompress(
            committee[size * KEY_LENGTH:(size + 1) * KEY_LENGTH],
            committee[(size + 1) * KEY_LENGTH:(size + 2) * KEY_LENGTH],
            size
        );
        uint256 first = size < KEYS_PER_CHUNK ? size : KEYS_PER_CHUNK;
        stored.root = root;
        stored.keys0 = _deployData(abi.encodePacked(committee[:first * KEY_LENGTH], aggregate));
        if (size > KEYS_PER_CHUNK) stored.keys1 = _deployData(committee[KEYS_PER_CHUNK * KEY_LENGTH:size * KEY_LENGTH]);
    }

    function _deployData(bytes memory data) private returns (address pointer) {
        // Init code (11 bytes) returning everything after itself: STOP, then the data.
        bytes memory creation = abi.encodePacked(hex"600B5981380380925939F3", hex"00", data);
        assembly ("memory-safe") {
            pointer := create(0, add(creation, 0x20), mload(creation))
        }
        if (pointer == address(0)) revert KeyStorageFailed();
    }

    /// @dev The EIP-2537 point of a compressed key given its y: the flags must say "compressed, not
    /// infinity" and carry y's sign; G1ADD with the identity checks that the point is on the curve.
    function _decompress(bytes calldata compressed, bytes calldata y, uint256 index)
        private
        view
        returns (bytes memory point)
    {
        point = new bytes(128);
        bool ok;
        assembly ("memory-safe") {
            let data := add(point, 0x20)
            calldatacopy(add(data, 16), compressed.offset, 48)
            calldatacopy(add(data, 0x50), y.offset, 48)
            let flags := and(byte(0, mload(add(data, 16))), 0xe0)
            mstore8(add(data, 16), and(byte(0, mload(add(data, 16))), 0x1f))
            let yHigh := mload(add(data, 0x40))
            let yLow := mload(add(data, 0x60))
            let larger := or(gt(yHigh, HALF_P_HIGH), and(eq(yHigh, HALF_P_HIGH), gt(yLow, HALF_P_LOW)))
            ok := eq(flags, or(0x80, mul(larger, 0x20)))
            if ok {
                let buffer := mload(0x40)
                mcopy(buffer, data, 0x80)
                mstore(add(buffer, 0x80), 0)
                mstore(add(buffer, 0xa0), 0)
                mstore(add(buffer, 0xc0), 0)
                mstore(add(buffer, 0xe0), 0)
                ok := staticcall(gas(), 0x0b, buffer, 0x100, buffer, 0x80)
            }
        }
        if (!ok) revert InvalidSyncCommitteeKey(index);
    }

    /// @dev The sum of the participants' keys: the stored aggregate at full participation, the
    /// aggregate minus the non-participants when more than half signed, else the participants' sum.
    function signersKey(
        StoredCommittee storage committee,
        uint256 size,
        bytes calldata bits,
        bytes calldata ys,
        uint256 participants
    ) internal view returns (bytes memory key) {
        uint256 aggregateOffset = 1 + (size < KEYS_PER_CHUNK ? size : KEYS_PER_CHUNK) * KEY_LENGTH;
        address keys0 = committee.keys0;
        if (participants == size) {
            key = new bytes(128);
            assembly ("memory-safe") {
                extcodecopy(keys0, add(key, 0x20), aggregateOffset, 0x80)
            }
            return key;
        }
        bool subtract = 2 * participants > size;
        uint256 summed = subtract ? size - participants : participants;
        if (ys.length != summed * KEY_LENGTH) revert InvalidSignerKeys(summed * KEY_LENGTH, ys.length);
        uint256 badIndex;
        uint256 yOffset;
        assembly ("memory-safe") {
            yOffset := ys.offset
        }
        (key, badIndex) = _sumKeys(keys0, committee.keys1, bits, yOffset, !subtract);
        if (badIndex != type(uint256).max) revert InvalidSyncCommitteeKey(badIndex);
        if (subtract) {
            bool ok;
            assembly ("memory-safe") {
                // aggregate - sum: negate the sum's y (unless it is the identity), add the aggregate.
                let data := add(key, 0x20)
                let yHigh := mload(add(data, 0x40))
                let yLow := mload(add(data, 0x60))
                if or(yHigh, yLow) {
                    mstore(add(data, 0x40), sub(sub(P_HIGH, yHigh), lt(P_LOW, yLow)))
                    mstore(add(data, 0x60), sub(P_LOW, yLow))
                }
                let buffer := mload(0x40)
                mcopy(buffer, data, 0x80)
                extcodecopy(keys0, add(buffer, 0x80), aggregateOffset, 0x80)
                ok := staticcall(gas(), 0x0b, buffer, 0x100, data, 0x80)
            }
            if (!ok) revert InvalidSyncCommitteeKey(size);
        }
    }

    /// @dev The sum of the keys whose participation bit equals `wanted`, each rebuilt from its
    /// stored x and sign flag and the next 48-byte y at `ys`. Returns the index of the first key
    /// whose y does not fit (sign flag, or not on the curve), else type(uint256).max.
    /// The bits are read 256 at a time, byte-reversed so that bit i of the word is member i, and
    /// only the wanted ones are visited (lowest first), so the cost follows the keys summed.
    function _sumKeys(address keys0, address keys1, bytes calldata bits, uint256 y, bool wanted)
        private
        view
        returns (bytes memory sum, uint256 badIndex)
    {
        // accumulator (128 bytes), the key being added (128), then the two code contracts' addresses.
        sum = new bytes(320);
        badIndex = type(uint256).max;
        assembly ("memory-safe") {
            mstore(add(sum, 0x120), keys0)
            mstore(add(sum, 0x140), keys1)
        }
        assembly ("memory-safe") {
            // Byte-reverse: byte k of the bitvector becomes bits 8k..8k+7 of the word.
            function reverseBytes(word) -> reversed {
                reversed := or(shr(8, and(word, 0xff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00)),
                    shl(8, and(word, 0x00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff)))
                reversed := or(shr(16, and(reversed, 0xffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000)),
                    shl(16, and(reversed, 0x0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff)))
                reversed := or(shr(32, and(reversed, 0xffffffff00000000ffffffff00000000ffffffff00000000ffffffff00000000)),
                    shl(32, and(reversed, 0x00000000ffffffff00000000ffffffff00000000ffffffff00000000ffffffff)))
                reversed := or(shr(64, and(reversed, 0xffffffffffffffff0000000000000000ffffffffffffffff0000000000000000)),
                    shl(64, and(reversed, 0x0000000000000000ffffffffffffffff0000000000000000ffffffffffffffff)))
                reversed := or(shr(128, reversed), shl(128, reversed))
            }
            // The position of the single set bit of `bit` (a power of two).
            function bitPosition(bit) -> position {
                position := shl(7, gt(bit, 0xffffffffffffffffffffffffffffffff))
                let rest := shr(position, bit)
                let step := shl(6, gt(rest, 0xffffffffffffffff))
                position := or(position, step)
                rest := shr(step, rest)
                step := shl(5, gt(rest, 0xffffffff))
                position := or(position, step)
                rest := shr(step, rest)
                step := shl(4, gt(rest, 0xffff))
                position := or(position, step)
                rest := shr(step, rest)
                step := shl(3, gt(rest, 0xff))
                position := or(position, step)
                rest := shr(step, rest)
                step := shl(2, gt(rest, 0xf))
                position := or(position, step)
                rest := shr(step, rest)
                step := shl(1, gt(rest, 0x3))
                position := or(position, step)
                position := or(position, gt(shr(step, rest), 1))
            }
            // Adds key `index` (x from the committee's code after the STOP byte, y at calldata `y`) to
            // the accumulator; true if its flags fit y and G1ADD accepts it (on the curve).
            function addKey(accumulator, index, yAt) -> ok {
                let entry := add(accumulator, 0x80)
                mstore(entry, 0)
                switch lt(index, 256)
                case 1 { extcodecopy(mload(add(accumulator, 0x100)), add(entry, 16), add(1, mul(index, 48)), 48) }
                default {
                    extcodecopy(mload(add(accumulator, 0x120)), add(entry, 16), add(1, mul(sub(index, 256), 48)), 48)
                }
                mstore(add(entry, 0x40), 0)
                calldatacopy(add(entry, 0x50), yAt, 48)
                let flags := byte(16, mload(entry))
                mstore8(add(entry, 16), and(flags, 0x1f))
                let yHigh := mload(add(entry, 0x40))
                let larger :=
                    or(gt(yHigh, HALF_P_HIGH), and(eq(yHigh, HALF_P_HIGH), gt(mload(add(entry, 0x60)), HALF_P_LOW)))
                // On the curve (G1ADD), with the committed x and sign: the committed key itself.
                ok := and(
                    eq(and(flags, 0xe0), or(0x80, shl(5, larger))),
                    staticcall(gas(), 0x0b, accumulator, 0x100, accumulator, 0x80)
                )
            }
            for { let base := 0 } lt(base, bits.length) { base := add(base, 32) } {
                let word := calldataload(add(bits.offset, base))
                if iszero(wanted) { word := not(word) }
                // Keep only the bytes of the bitvector (the last word may run past it).
                let tail := sub(bits.length, base)
                if lt(tail, 32) { word := and(word, shl(sub(256, shl(3, tail)), not(0))) }
                word := reverseBytes(word)
                for { } word { } {
                    let lowest := and(word, sub(0, word))
                    word := xor(word, lowest)
                    let index := add(shl(3, base), bitPosition(lowest))
                    if iszero(addKey(add(sum, 0x20), index, y)) {
                        badIndex := index
                        word := 0
                        base := bits.length
                    }
                    y := add(y, 48)
                }
            }
            mstore(sum, 0x80)
        }
    }

    /// @dev How many participation bits are set.
    function countBits(bytes calldata bits) internal pure returns (uint256 count) {
        for (uint256 i = 0; i < bits.length; ++i) {
            uint256 b = uint8(bits[i]);
            b = b - ((b >> 1) & 0x55);
            b = (b & 0x33) + ((b >> 2) & 0x33);
            count += (b + (b >> 4)) & 0x0f;
        }
    }
}
