// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {BLS} from "./BLS.sol";

/// @title Test-only measurement probes for docs/adr/0008-gas-per-message.md. Not deployed by the relay.
/// @notice `MinSigBLS` verifies the "minimal-signature-size" orientation (signatures in G1, keys in
/// G2, ciphersuite BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_POP_); `SignatureOrientationProbe` checks a
/// quorum certificate under either orientation with the Gateway's own aggregation loop (committee
/// stored as SSTORE2 code, EXTCODECOPY per signer), so two transactions differ only in orientation;
/// `RootCacheProbe` prices remembering a verified root. `adapters/evm/gas_ideas.py` drives them.
library MinSigBLS {
    uint256 internal constant SHA256 = 0x02;
    uint256 internal constant MODEXP = 0x05;
    uint256 internal constant G1_ADD = 0x0b;
    uint256 internal constant G2_ADD = 0x0d;
    uint256 internal constant PAIRING_CHECK = 0x0f;
    uint256 internal constant MAP_FP_TO_G1 = 0x10;

    uint256 internal constant G1_POINT_LENGTH = 128;
    uint256 internal constant G2_POINT_LENGTH = 256;

    // DST_prime of RFC 9380 expand_message_xmd for BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_POP_
    // (43 bytes, then its length 0x2b), split into the two words it spans.
    bytes32 private constant DST_PRIME_HEAD = "BLS_SIG_BLS12381G1_XMD:SHA-256_S";
    bytes32 private constant DST_PRIME_TAIL = "SWU_RO_POP_\x2b";
    uint256 private constant DST_PRIME_LENGTH = 44;

    uint256 private constant P_HIGH = 0x000000000000000000000000000000001a0111ea397fe69a4b1ba7b6434bacd7;
    uint256 private constant P_LOW = 0x64774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab;

    // -G2 generator, EIP-2537 encoding (x.c0, x.c1, y.c0, y.c1).
    uint256 private constant NEG_G2_0 = 0x00000000000000000000000000000000024aa2b2f08f0a91260805272dc51051;
    uint256 private constant NEG_G2_1 = 0xc6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8;
    uint256 private constant NEG_G2_2 = 0x0000000000000000000000000000000013e02b6052719f607dacd3a088274f65;
    uint256 private constant NEG_G2_3 = 0x596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e;
    uint256 private constant NEG_G2_4 = 0x000000000000000000000000000000000d1b3cc2c7027888be51d9ef691d77bc;
    uint256 private constant NEG_G2_5 = 0xb679afda66c73f17f9ee3837a55024f78c71363275a75d75d86bab79f74782aa;
    uint256 private constant NEG_G2_6 = 0x0000000000000000000000000000000013fa4d4a0ad8b1ce186ed5061789213d;
    uint256 private constant NEG_G2_7 = 0x993923066dddaf1040bc3ff59f825c78df74f2d75467e25e0f55f8a00fa030ed;

    /// @notice RFC 9380 hash_to_curve for BLS12381G1_XMD:SHA-256_SSWU_RO_: expand_message_xmd to 128
    /// bytes (five SHA-256 calls), two field elements reduced mod p (MODEXP), two MAP_FP_TO_G1 (which
    /// clear the cofactor; clearing is linear, so the sum is H(m)), one G1_ADD.
    function hashToG1(bytes memory message) internal view returns (bytes memory point) {
        point = new bytes(G1_POINT_LENGTH);
        bool ok = true;
        assembly ("memory-safe") {
            let buffer := mload(0x40)
            let length := mload(message)
            // b_0 = H(Z_pad || msg || I2OSP(128, 2) || I2OSP(0, 1) || DST_prime)
            mstore(buffer, 0)
            mstore(add(buffer, 0x20), 0)
            mcopy(add(buffer, 0x40), add(message, 0x20), length)
            let tail := add(add(buffer, 0x40), length)
            mstore(tail, shl(232, 0x008000))
            mstore(add(tail, 3), DST_PRIME_HEAD)
            mstore(add(tail, 35), DST_PRIME_TAIL)
            ok := and(ok, staticcall(gas(), SHA256, buffer, add(length, add(0x43, DST_PRIME_LENGTH)), 0x00, 0x20))
            let b0 := mload(0x00)
            // uniform = b_1 || .. || b_4 at buffer + 0x100
            let uniform := add(buffer, 0x100)
            mstore(buffer, b0)
            mstore(add(buffer, 0x20), shl(248, 1))
            mstore(add(buffer, 0x21), DST_PRIME_HEAD)
            mstore(add(buffer, 0x41), DST_PRIME_TAIL)
            ok := and(ok, staticcall(gas(), SHA256, buffer, add(0x21, DST_PRIME_LENGTH), uniform, 0x20))
            for { let i := 2 } lt(i, 5) { i := add(i, 1) } {
                mstore(buffer, xor(b0, mload(add(uniform, shl(5, sub(i, 2))))))
                mstore8(add(buffer, 0x20), i)
                ok := and(ok, staticcall(gas(), SHA256, buffer, add(0x21, DST_PRIME_LENGTH), add(uniform, shl(5, sub(i, 1))), 0x20))
            }
            // MODEXP input at buffer: lengths (0x40, 0x01, 0x40), base (64), exponent 1, p (64).
            mstore(buffer, 0x40)
            mstore(add(buffer, 0x20), 0x01)
            mstore(add(buffer, 0x40), 0x40)
            mstore8(add(buffer, 0xa0), 0x01)
            mstore(add(buffer, 0xa1), P_HIGH)
            mstore(add(buffer, 0xc1), P_LOW)
            // u0, u1 at buffer + 0x180; mapped Q0 || Q1 at buffer + 0x200
            let fieldElements := add(buffer, 0x180)
            for { let k := 0 } lt(k, 2) { k := add(k, 1) } {
                mstore(add(buffer, 0x60), mload(add(uniform, shl(6, k))))
                mstore(add(buffer, 0x80), mload(add(uniform, add(shl(6, k), 0x20))))
                ok := and(ok, staticcall(gas(), MODEXP, buffer, 0xe1, add(fieldElements, shl(6, k)), 0x40))
            }
            let mapped := add(buffer, 0x200)
            ok := and(ok, staticcall(gas(), MAP_FP_TO_G1, fieldElements, 0x40, mapped, 0x80))
            ok := and(ok, staticcall(gas(), MAP_FP_TO_G1, add(fieldElements, 0x40), 0x40, add(mapped, 0x80), 0x80))
            ok := and(ok, staticcall(gas(), G1_ADD, mapped, 0x100, add(point, 0x20), 0x80))
        }
        if (!ok) revert BLS.PrecompileFailed(MAP_FP_TO_G1);
    }

    /// @notice e(H(message), aggregatePublicKey) * e(signature, -G2) == 1: a G1 signature under a G2
    /// (aggregate) key. False for an identity key or any point the pairing precompile refuses
    /// (off curve, outside the subgroup).
    function verify(bytes memory aggregatePublicKey, bytes memory message, bytes calldata signature)
        internal
        view
        returns (bool valid)
    {
        if (aggregatePublicKey.length != G2_POINT_LENGTH || signature.length != G1_POINT_LENGTH) return false;
        bool identity;
        assembly ("memory-safe") {
            let data := add(aggregatePublicKey, 0x20)
            identity := iszero(
                or(
                    or(or(mload(data), mload(add(data, 0x20))), or(mload(add(data, 0x40)), mload(add(data, 0x60)))),
                    or(
                        or(mload(add(data, 0x80)), mload(add(data, 0xa0))),
                        or(mload(add(data, 0xc0)), mload(add(data, 0xe0)))
                    )
                )
            )
        }
        if (identity) return false;
        bytes memory hashed = hashToG1(message);
        assembly ("memory-safe") {
            let input := mload(0x40)
            mcopy(input, add(hashed, 0x20), 0x80)
            mcopy(add(input, 0x80), add(aggregatePublicKey, 0x20), 0x100)
            calldatacopy(add(input, 0x180), signature.offset, 0x80)
            mstore(add(input, 0x200), NEG_G2_0)
            mstore(add(input, 0x220), NEG_G2_1)
            mstore(add(input, 0x240), NEG_G2_2)
            mstore(add(input, 0x260), NEG_G2_3)
            mstore(add(input, 0x280), NEG_G2_4)
            mstore(add(input, 0x2a0), NEG_G2_5)
            mstore(add(input, 0x2c0), NEG_G2_6)
            mstore(add(input, 0x2e0), NEG_G2_7)
            mstore(0x00, 0)
            let ok := staticcall(gas(), PAIRING_CHECK, input, 0x300, 0x00, 0x20)
            valid := and(ok, eq(mload(0x00), 1))
        }
    }
}

/// @notice One committee per orientation, stored as the Gateway stores its committee (SSTORE2 code:
/// STOP, then tag 32 | epoch 8 | threshold 8 | count 4 | (key | weight 8)*), and a certificate
/// check per orientation with the Gateway's aggregation loop (`_verifyQuorumCertificate`).
contract SignatureOrientationProbe {
    uint256 private constant HEADER_LENGTH = 52;
    uint256 private constant G1_MSM = 0x0c;
    uint256 private constant G2_MSM = 0x0e;

    address public g1KeyCommittee; // keys in G1 (128 bytes), signatures in G2: today's protocol
    address public g2KeyCommittee; // keys in G2 (256 bytes), signatures in G1: minimal-signature-size
    uint256 public g1KeyCommitteeSize;
    uint256 public g2KeyCommitteeSize;

    error InvalidSignature();
    error QuorumNotReached(uint256 signed, uint256 threshold);
    error BitfieldLengthMismatch(uint256 expected, uint256 actual);
    error InvalidKeys();
    error StorageFailed();

    /// @notice Validates every key (one MSM call, which checks curve and subgroup) and stores the
    /// encoded committee as code. `keysInG2` picks the orientation; `encoded` as described above.
    function storeCommittee(bool keysInG2, bytes calldata encoded) external {
        uint256 keyLength = keysInG2 ? MinSigBLS.G2_POINT_LENGTH : MinSigBLS.G1_POINT_LENGTH;
        uint256 memberLength = keyLength + 8;
        uint256 size = (encoded.length - HEADER_LENGTH) / memberLength;
        if (size == 0 || HEADER_LENGTH + size * memberLength != encoded.length) revert InvalidKeys();
        uint256 entryLength = keyLength + 32;
        bytes memory input = new bytes(size * entryLength);
        assembly ("memory-safe") {
            for { let i := 0 } lt(i, size) { i := add(i, 1) } {
                let entry := add(add(input, 0x20), mul(i, entryLength))
                calldatacopy(entry, add(encoded.offset, add(HEADER_LENGTH, mul(i, memberLength))), keyLength)
                mstore(add(entry, keyLength), 1)
            }
        }
        (bool ok,) = address(uint160(keysInG2 ? G2_MSM : G1_MSM)).staticcall(input);
        if (!ok) revert InvalidKeys();
        bytes memory initCode =
            abi.encodePacked(hex"61", uint16(encoded.length + 1), hex"80600c6000396000f3", hex"00", encoded);
        address pointer;
        assembly ("memory-safe") {
            pointer := create(0, add(initCode, 0x20), mload(initCode))
        }
        if (pointer == address(0)) revert StorageFailed();
        if (keysInG2) {
            (g2KeyCommittee, g2KeyCommitteeSize) = (pointer, size);
        } else {
            (g1KeyCommittee, g1KeyCommitteeSize) = (pointer, size);
        }
    }

    /// @notice Today's check: G1_ADD per signer over EXTCODECOPY'd 136-byte entries, then
    /// BLS.verify (hash-to-G2, 2-pair pairing) of a 256-byte G2 signature over `digest`.
    function verifyWithG1Keys(bytes32 digest, bytes calldata signers, bytes calldata signature) external view {
        bytes memory aggregateKey = _aggregate(g1KeyCommittee, g1KeyCommitteeSize, signers, MinSigBLS.G1_POINT_LENGTH);
        if (!BLS.verify(aggregateKey, abi.encodePacked(digest), signature)) revert InvalidSignature();
    }

    /// @notice Minimal-signature-size check: G2_ADD per signer over 264-byte entries, then
    /// MinSigBLS.verify (hash-to-G1, 2-pair pairing) of a 128-byte G1 signature over `digest`.
    function verifyWithG2Keys(bytes32 digest, bytes calldata signers, bytes calldata signature) external view {
        bytes memory aggregateKey = _aggregate(g2KeyCommittee, g2KeyCommitteeSize, signers, MinSigBLS.G2_POINT_LENGTH);
        if (!MinSigBLS.verify(aggregateKey, abi.encodePacked(digest), signature)) revert InvalidSignature();
    }

    /// @notice The same arguments, no work: the baseline the two checks are measured against.
    function noop(bytes32 digest, bytes calldata signers, bytes calldata signature) external pure {}

    function hashToG1(bytes calldata message) external view returns (bytes memory) {
        return MinSigBLS.hashToG1(message);
    }

    function verifyG1Signature(bytes calldata aggregatePublicKey, bytes calldata message, bytes calldata signature)
        external
        view
        returns (bool)
    {
        return MinSigBLS.verify(aggregatePublicKey, message, signature);
    }

    /// @dev The Gateway's loop, parameterised by key length (128: G1_ADD, 256: G2_ADD): the signers'
    /// keys summed, their weights checked against the threshold.
    function _aggregate(address pointer, uint256 size, bytes calldata signers, uint256 keyLength)
        private
        view
        returns (bytes memory aggregateKey)
    {
        if (signers.length != (size + 7) / 8) revert BitfieldLengthMismatch((size + 7) / 8, signers.length);
        aggregateKey = new bytes(keyLength);
        uint256 signedWeight;
        uint256 threshold;
        bool ok = true;
        assembly ("memory-safe") {
            extcodecopy(pointer, 0x00, 41, 8)
            threshold := shr(192, mload(0x00))
            let buffer := mload(0x40)
            let first := 1
            for { let i := 0 } lt(i, size) { i := add(i, 1) } {
                if and(shr(and(i, 7), byte(0, calldataload(add(signers.offset, shr(3, i))))), 1) {
                    let target := add(buffer, mul(iszero(first), keyLength))
                    // member entry: key, then the 8-byte weight
                    extcodecopy(pointer, target, add(add(1, HEADER_LENGTH), mul(i, add(keyLength, 8))), add(keyLength, 8))
                    signedWeight := add(signedWeight, shr(192, mload(add(target, keyLength))))
                    switch first
                    case 1 { first := 0 }
                    default {
                        // G2_ADD (0x0d) for 256-byte keys, G1_ADD (0x0b) for 128-byte keys
                        ok := and(ok, staticcall(gas(), add(0x0b, shl(1, eq(keyLength, 0x100))), buffer, shl(1, keyLength), buffer, keyLength))
                    }
                }
            }
            if iszero(first) { mcopy(add(aggregateKey, 0x20), buffer, keyLength) }
        }
        if (!ok) revert BLS.PrecompileFailed(keyLength == 0x100 ? MinSigBLS.G2_ADD : MinSigBLS.G1_ADD);
        if (signedWeight < threshold) revert QuorumNotReached(signedWeight, threshold);
    }
}

/// @notice A verified-root cache reduced to its storage: one slot per origin holding
/// keccak(epoch, root, index) of the last checkpoint whose certificate verified. A later message
/// with nonce <= index proves its branch against that root and needs no certificate.
contract RootCacheProbe {
    mapping(uint32 origin => bytes32 entry) public verifiedCheckpoint;

    error RootNotVerified(uint32 origin, bytes32 root);

    /// @notice What a verifying delivery would add: remember (epoch, root, index) for `origin`.
    function remember(uint32 origin, uint64 epoch, bytes32 root, uint32 index) external {
        verifiedCheckpoint[origin] = keccak256(abi.encodePacked(epoch, root, index));
    }

    /// @notice What a cached delivery would do instead of the certificate check.
    function check(uint32 origin, uint64 epoch, bytes32 root, uint32 index) external view {
        if (verifiedCheckpoint[origin] != keccak256(abi.encodePacked(epoch, root, index))) {
            revert RootNotVerified(origin, root);
        }
    }

    /// @notice The same arguments, no work: the baseline.
    function noop(uint32 origin, uint64 epoch, bytes32 root, uint32 index) external pure {}
}

/// @notice An ECDSA quorum check shaped like issue 12's decision D1 (one 65-byte EIP-191 signature
/// of the checkpoint digest per set bit of the signer bitfield, ascending; members stored as SSTORE2
/// code: count 4 | (address 20 | weight 8)*), so ADR 0008 can price it beside the BLS checks. The
/// Gateway's own ECDSA mode is separate; this is a measurement probe.
contract EcdsaQuorumProbe {
    uint256 private constant SIGNATURE_LENGTH = 65;
    uint256 private constant MEMBER_LENGTH = 28;
    uint256 private constant HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    address public committee;
    uint256 public size;
    uint256 public threshold;

    error InvalidSignature(uint256 signer);
    error QuorumNotReached(uint256 signed, uint256 threshold);
    error SignatureLengthMismatch(uint256 expected, uint256 actual);

    function storeCommittee(address[] calldata members, uint64[] calldata weights, uint256 threshold_) external {
        bytes memory encoded;
        for (uint256 i = 0; i < members.length; i++) {
            encoded = abi.encodePacked(encoded, members[i], weights[i]);
        }
        bytes memory initCode =
            abi.encodePacked(hex"61", uint16(encoded.length + 1), hex"80600c6000396000f3", hex"00", encoded);
        address pointer;
        assembly ("memory-safe") {
            pointer := create(0, add(initCode, 0x20), mload(initCode))
        }
        (committee, size, threshold) = (pointer, members.length, threshold_);
    }

    /// @notice Reverts unless the signers named by `signers` signed `digest` (EIP-191) with weight
    /// reaching the threshold.
    function verify(bytes32 digest, bytes calldata signers, bytes calldata signatures) external view {
        bytes32 hashed = keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", digest));
        address pointer = committee;
        uint256 count = size;
        uint256 used;
        uint256 signedWeight;
        for (uint256 i = 0; i < count; i++) {
            if ((uint8(signers[i >> 3]) >> (i & 7)) & 1 == 0) continue;
            if (signatures.length < (used + 1) * SIGNATURE_LENGTH) {
                revert SignatureLengthMismatch((used + 1) * SIGNATURE_LENGTH, signatures.length);
            }
            bytes32 r;
            bytes32 s;
            uint8 v;
            address member;
            uint64 weight;
            assembly ("memory-safe") {
                let at := add(signatures.offset, mul(used, SIGNATURE_LENGTH))
                r := calldataload(at)
                s := calldataload(add(at, 0x20))
                v := byte(0, calldataload(add(at, 0x40)))
                extcodecopy(pointer, 0x00, add(1, mul(i, MEMBER_LENGTH)), MEMBER_LENGTH)
                member := shr(96, mload(0x00))
                weight := shr(192, mload(0x14))
            }
            if (uint256(s) > HALF_N || (v != 27 && v != 28)) revert InvalidSignature(i);
            if (ecrecover(hashed, v, r, s) != member || member == address(0)) revert InvalidSignature(i);
            signedWeight += weight;
            used++;
        }
        if (signatures.length != used * SIGNATURE_LENGTH) {
            revert SignatureLengthMismatch(used * SIGNATURE_LENGTH, signatures.length);
        }
        if (signedWeight < threshold) revert QuorumNotReached(signedWeight, threshold);
    }

    function noop(bytes32 digest, bytes calldata signers, bytes calldata signatures) external pure {}
}
