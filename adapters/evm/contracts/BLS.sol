// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title BLS signatures of the Ethereum ciphersuite, verified through the EIP-2537 precompiles.
/// @notice Ciphersuite BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_: public keys in G1, signatures
/// and hashed messages in G2. Points use the EIP-2537 encodings: G1 is 128 bytes (x, y), G2 is
/// 256 bytes (x.c0, x.c1, y.c0, y.c1), each field element a 64-byte big-endian word pair whose top
/// 16 bytes are zero. Proofs of possession (a signature of the key's 48-byte compressed encoding
/// under the POP ciphersuite's DST) are checked by `verifyPossession` before a key joins a committee.
library BLS {
    // Precompile addresses (EIP-2537 as activated in Prague, plus SHA-256 and MODEXP).
    uint256 internal constant SHA256 = 0x02;
    uint256 internal constant MODEXP = 0x05;
    uint256 internal constant G1_ADD = 0x0b; // used by Gateway's signer aggregation
    uint256 internal constant G1_MSM = 0x0c;
    uint256 internal constant G2_ADD = 0x0d;
    uint256 internal constant PAIRING_CHECK = 0x0f;
    uint256 internal constant MAP_FP2_TO_G2 = 0x11;

    uint256 internal constant G1_POINT_LENGTH = 128;
    uint256 internal constant G2_POINT_LENGTH = 256;

    // DST_prime of RFC 9380 expand_message_xmd: the 43-byte DST followed by its length (0x2b),
    // split into the two 32-byte words it spans. Signatures and proofs of possession differ only
    // in the first word (BLS_SIG_ / BLS_POP_).
    bytes32 private constant DST_PRIME_HEAD = "BLS_SIG_BLS12381G2_XMD:SHA-256_S";
    bytes32 private constant POP_DST_PRIME_HEAD = "BLS_POP_BLS12381G2_XMD:SHA-256_S";
    bytes32 private constant DST_PRIME_TAIL = "SWU_RO_POP_\x2b";
    uint256 private constant DST_PRIME_LENGTH = 44;

    // (p - 1) / 2 as a 64-byte big-endian number: a y above it is the "larger" square root, which
    // sets the sign bit of the compressed (ZCash) encoding.
    uint256 private constant HALF_P_HIGH = 0x000000000000000000000000000000000d0088f51cbff34d258dd3db21a5d66b;
    uint256 private constant HALF_P_LOW = 0xb23ba5c279c2895fb39869507b587b120f55ffff58a9ffffdcff7fffffffd555;

    // The base field modulus p as a 64-byte big-endian number (for MODEXP).
    uint256 private constant P_HIGH = 0x000000000000000000000000000000001a0111ea397fe69a4b1ba7b6434bacd7;
    uint256 private constant P_LOW = 0x64774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab;

    // -G1 generator (x, p - y), EIP-2537 encoding.
    uint256 private constant NEG_G1_X_HIGH = 0x0000000000000000000000000000000017f1d3a73197d7942695638c4fa9ac0f;
    uint256 private constant NEG_G1_X_LOW = 0xc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb;
    uint256 private constant NEG_G1_Y_HIGH = 0x00000000000000000000000000000000114d1d6855d545a8aa7d76c8cf2e21f2;
    uint256 private constant NEG_G1_Y_LOW = 0x67816aef1db507c96655b9d5caac42364e6f38ba0ecb751bad54dcd6b939c2ca;

    /// @notice A precompile call failed where valid inputs cannot make it fail (out of gas, or a chain
    /// without EIP-2537).
    error PrecompileFailed(uint256 precompile);

    /// @notice RFC 9380 hash_to_curve for BLS12381G2_XMD:SHA-256_SSWU_RO_ with the POP ciphersuite's DST.
    /// @return point H(message) as a 256-byte EIP-2537 G2 point.
    function hashToG2(bytes memory message) internal view returns (bytes memory point) {
        return _hashToG2(message, DST_PRIME_HEAD);
    }

    function _hashToG2(bytes memory message, bytes32 dstPrimeHead) private view returns (bytes memory point) {
        bytes32[8] memory uniform = _expandMessageXmd(message, dstPrimeHead);
        point = new bytes(G2_POINT_LENGTH);
        uint256 failed;
        assembly ("memory-safe") {
            let buffer := mload(0x40)
            // buffer + 0x000: MODEXP input (225 bytes): lengths, 64-byte base, exponent 1, 64-byte p
            // buffer + 0x100: u0 || u1, the two Fp2 elements of hash_to_field (4 x 64 bytes)
            // buffer + 0x200: Q0 || Q1, the two mapped G2 points (2 x 256 bytes)
            mstore(buffer, 0x40)
            mstore(add(buffer, 0x20), 0x01)
            mstore(add(buffer, 0x40), 0x40)
            mstore8(add(buffer, 0xa0), 0x01)
            mstore(add(buffer, 0xa1), P_HIGH)
            mstore(add(buffer, 0xc1), P_LOW)
            let fieldElements := add(buffer, 0x100)
            // hash_to_field: element k (k = 0..3) is uniform[64k .. 64k+64] reduced mod p.
            for { let k := 0 } lt(k, 4) { k := add(k, 1) } {
                mstore(add(buffer, 0x60), mload(add(uniform, shl(6, k))))
                mstore(add(buffer, 0x80), mload(add(uniform, add(shl(6, k), 0x20))))
                if iszero(staticcall(gas(), MODEXP, buffer, 0xe1, add(fieldElements, shl(6, k)), 0x40)) {
                    failed := MODEXP
                }
            }
            // map_to_curve (with clear_cofactor) on u0 and u1, then Q0 + Q1.
            let mapped := add(buffer, 0x200)
            if iszero(staticcall(gas(), MAP_FP2_TO_G2, fieldElements, 0x80, mapped, 0x100)) {
                failed := MAP_FP2_TO_G2
            }
            if iszero(staticcall(gas(), MAP_FP2_TO_G2, add(fieldElements, 0x80), 0x80, add(mapped, 0x100), 0x100)) {
                failed := MAP_FP2_TO_G2
            }
            if iszero(staticcall(gas(), G2_ADD, mapped, 0x200, add(point, 0x20), 0x100)) {
                failed := G2_ADD
            }
        }
        if (failed != 0) revert PrecompileFailed(failed);
    }

    /// @notice RFC 9380 expand_message_xmd with SHA-256, len_in_bytes = 256 (two Fp2 elements).
    function expandMessageXmd(bytes memory message) internal view returns (bytes32[8] memory uniform) {
        return _expandMessageXmd(message, DST_PRIME_HEAD);
    }

    function _expandMessageXmd(bytes memory message, bytes32 dstPrimeHead)
        private
        view
        returns (bytes32[8] memory uniform)
    {
        bool ok;
        assembly ("memory-safe") {
            let buffer := mload(0x40)
            let length := mload(message)
            // b_0 = H(Z_pad || msg || I2OSP(256, 2) || I2OSP(0, 1) || DST_prime)
            mstore(buffer, 0)
            mstore(add(buffer, 0x20), 0)
            mcopy(add(buffer, 0x40), add(message, 0x20), length)
            let tail := add(add(buffer, 0x40), length)
            mstore(tail, shl(232, 0x010000))
            mstore(add(tail, 3), dstPrimeHead)
            mstore(add(tail, 35), DST_PRIME_TAIL)
            ok := staticcall(gas(), SHA256, buffer, add(length, add(0x43, DST_PRIME_LENGTH)), 0x00, 0x20)
            let b0 := mload(0x00)
            // b_1 = H(b_0 || I2OSP(1, 1) || DST_prime); b_i = H((b_0 xor b_(i-1)) || I2OSP(i, 1) || DST_prime)
            mstore(buffer, b0)
            mstore(add(buffer, 0x20), shl(248, 1))
            mstore(add(buffer, 0x21), dstPrimeHead)
            mstore(add(buffer, 0x41), DST_PRIME_TAIL)
            ok := and(ok, staticcall(gas(), SHA256, buffer, add(0x21, DST_PRIME_LENGTH), uniform, 0x20))
            for { let i := 2 } lt(i, 9) { i := add(i, 1) } {
                let previous := mload(add(uniform, shl(5, sub(i, 2))))
                mstore(buffer, xor(b0, previous))
                mstore8(add(buffer, 0x20), i)
                ok := and(ok, staticcall(gas(), SHA256, buffer, add(0x21, DST_PRIME_LENGTH), add(uniform, shl(5, sub(i, 1))), 0x20))
            }
        }
        if (!ok) revert PrecompileFailed(SHA256);
    }

    /// @notice FastAggregateVerify's final step: e(aggregatePublicKey, H(message)) == e(G1, signature).
    /// @dev False (never a revert) for an identity key, a malformed point, or a point outside the
    /// prime-order subgroup (the pairing precompile rejects those).
    function verify(bytes memory aggregatePublicKey, bytes memory message, bytes calldata signature)
        internal
        view
        returns (bool valid)
    {
        if (aggregatePublicKey.length != G1_POINT_LENGTH || signature.length != G2_POINT_LENGTH) return false;
        if (isG1Identity(aggregatePublicKey)) return false;
        bytes memory hashed = _hashToG2(message, DST_PRIME_HEAD);
        assembly ("memory-safe") {
            // e(pk, H(m)) * e(-G1, sig) == 1 (as _pairingCheck; inline here, the delivery path)
            let input := mload(0x40)
            mcopy(input, add(aggregatePublicKey, 0x20), 0x80)
            mcopy(add(input, 0x80), add(hashed, 0x20), 0x100)
            mstore(add(input, 0x180), NEG_G1_X_HIGH)
            mstore(add(input, 0x1a0), NEG_G1_X_LOW)
            mstore(add(input, 0x1c0), NEG_G1_Y_HIGH)
            mstore(add(input, 0x1e0), NEG_G1_Y_LOW)
            calldatacopy(add(input, 0x200), signature.offset, 0x100)
            mstore(0x00, 0)
            let ok := staticcall(gas(), PAIRING_CHECK, input, 0x300, 0x00, 0x20)
            valid := and(ok, eq(mload(0x00), 1))
        }
    }

    /// @notice PopVerify of the POP ciphersuite: `proof` (256-byte G2) signs the 48-byte compressed
    /// encoding of `publicKey` (128-byte G1) under BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_.
    /// @dev False (never a revert) for an identity key, malformed points, or points outside the
    /// prime-order subgroup. A rogue key (x*G - sum of other keys) has no known secret key, so
    /// nobody can make this true for it.
    function verifyPossession(bytes memory publicKey, bytes calldata proof) internal view returns (bool valid) {
        if (publicKey.length != G1_POINT_LENGTH || proof.length != G2_POINT_LENGTH) return false;
        if (isG1Identity(publicKey)) return false;
        return _pairingCheck(publicKey, _hashToG2(compressG1(publicKey), POP_DST_PRIME_HEAD), proof);
    }

    /// @notice The 48-byte compressed (ZCash) encoding of a 128-byte EIP-2537 G1 point that is not
    /// the identity: x big-endian with flag bits 0x80 (compressed) and 0x20 (y > (p - 1) / 2).
    function compressG1(bytes memory point) internal pure returns (bytes memory compressed) {
        compressed = new bytes(48);
        assembly ("memory-safe") {
            let data := add(point, 0x20)
            let yHigh := mload(add(data, 0x40))
            let yLow := mload(add(data, 0x60))
            let larger := or(gt(yHigh, HALF_P_HIGH), and(eq(yHigh, HALF_P_HIGH), gt(yLow, HALF_P_LOW)))
            // x occupies bytes 16..63 of its 64-byte word pair.
            mcopy(add(compressed, 0x20), add(data, 16), 48)
            let first := byte(0, mload(add(compressed, 0x20)))
            mstore8(add(compressed, 0x20), or(first, or(0x80, mul(larger, 0x20))))
        }
    }

    /// @dev e(publicKey, hashed) * e(-G1, signature) == 1.
    function _pairingCheck(bytes memory publicKey, bytes memory hashed, bytes calldata signature)
        private
        view
        returns (bool valid)
    {
        assembly ("memory-safe") {
            let input := mload(0x40)
            mcopy(input, add(publicKey, 0x20), 0x80)
            mcopy(add(input, 0x80), add(hashed, 0x20), 0x100)
            mstore(add(input, 0x180), NEG_G1_X_HIGH)
            mstore(add(input, 0x1a0), NEG_G1_X_LOW)
            mstore(add(input, 0x1c0), NEG_G1_Y_HIGH)
            mstore(add(input, 0x1e0), NEG_G1_Y_LOW)
            calldatacopy(add(input, 0x200), signature.offset, 0x100)
            mstore(0x00, 0)
            let ok := staticcall(gas(), PAIRING_CHECK, input, 0x300, 0x00, 0x20)
            valid := and(ok, eq(mload(0x00), 1))
        }
    }

    /// @notice Whether every key in `keys` (concatenated 128-byte G1 points) is on the curve and in
    /// the prime-order subgroup. One G1MSM call checks them all: the precompile rejects any point
    /// that is not, and the scalars (all 1) do not matter.
    function areValidG1Points(bytes memory keys) internal view returns (bool valid) {
        uint256 count = keys.length / G1_POINT_LENGTH;
        if (count == 0 || keys.length % G1_POINT_LENGTH != 0) return false;
        assembly ("memory-safe") {
            let input := mload(0x40)
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let entry := add(input, mul(i, 0xa0))
                mcopy(entry, add(add(keys, 0x20), shl(7, i)), 0x80)
                mstore(add(entry, 0x80), 1)
            }
            valid := staticcall(gas(), G1_MSM, input, mul(count, 0xa0), input, 0x80)
        }
    }

    /// @notice Whether a 128-byte G1 encoding is the point at infinity (all zeros).
    function isG1Identity(bytes memory point) internal pure returns (bool identity) {
        assembly ("memory-safe") {
            let data := add(point, 0x20)
            identity := iszero(or(or(mload(data), mload(add(data, 0x20))), or(mload(add(data, 0x40)), mload(add(data, 0x60)))))
        }
    }
}
