// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {CommitteeRules} from "./CommitteeRules.sol";

/// @title ECDSA committees: an origin's committee as a weighted multisig of Ethereum addresses.
/// @notice docs/protocol.md, "ECDSA committee". For small committees, where `ecrecover` (3,000 gas
/// a signer) is cheaper than a BLS pairing (over 100,000 gas whatever the size). Members sign the
/// same checkpoint_digest (and handover_digest) as a BLS committee, as EIP-191 personal messages
/// (keccak256("\x19Ethereum Signed Message:\n32" || digest)), the primitive Hyperlane validators
/// use. A certificate is the signer bitfield of BLS and, as `signature`, one 65-byte signature
/// r || s || v per set bit, in ascending member index: no sorting or duplicate checks are needed,
/// since signature k must recover to exactly the k-th signer the bitfield names.
/// ecdsa_committee_hash = keccak256(ECDSA_COMMITTEE_TAG || epoch u64 || threshold u64 || count u32
/// || (address 20 bytes || weight u64)*); the Gateway stores that preimage as contract code.
abstract contract EcdsaCommittees is CommitteeRules {
    /// @notice Signers in member-index order, each with its weight (same length);
    /// `threshold` is the signing weight a quorum needs.
    struct EcdsaCommittee {
        uint64 epoch;
        uint64 threshold;
        address[] signers;
        uint64[] weights;
    }

    bytes32 public constant ECDSA_COMMITTEE_TAG = "RELAY/ECDSA-COMMITTEE/V1";

    uint256 internal constant ECDSA_HEADER_LENGTH = 52; // tag 32, epoch 8, threshold 8, count 4
    uint256 internal constant ECDSA_MEMBER_LENGTH = 28; // address 20, weight 8
    uint256 internal constant ECDSA_SIGNATURE_LENGTH = 65; // r 32, s 32, v 1
    /// @dev secp256k1's group order n, halved: a signature with s above it is the malleable twin
    /// (n - s) of a low-s one (EIP-2), refused so a certificate has exactly one encoding.
    uint256 private constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
    uint256 private constant ECRECOVER = 0x01;

    // Why an ECDSA signature was refused (_verifyEcdsaCertificate's assembly -> typed error).
    uint8 private constant REFUSED_HIGH_S = 1;
    uint8 private constant REFUSED_RECOVERY_ID = 2;
    uint8 private constant REFUSED_UNRECOVERABLE = 3;
    uint8 private constant REFUSED_OTHER_SIGNER = 4;

    error EcdsaSignersWeightsMismatch(uint256 signers, uint256 weights);
    error EcdsaZeroSigner(uint256 member);
    error EcdsaDuplicateSigner(uint256 member, address signer);
    /// @notice `signature` must be 65 bytes per set bit of the bitfield.
    error EcdsaSignaturesLengthMismatch(uint256 expected, uint256 actual);
    /// @notice Member `signer`'s signature has s > n / 2 (EIP-2 malleability).
    error EcdsaSignatureMalleable(uint256 signer);
    /// @notice Member `signer`'s signature has a v other than 27 or 28.
    error EcdsaInvalidRecoveryId(uint256 signer, uint8 v);
    /// @notice Member `signer`'s signature recovers no key (r or s zero, r not below n, or r not
    /// the x of a curve point).
    error EcdsaSignatureUnrecoverable(uint256 signer);
    /// @notice Member `signer`'s signature recovers to another address: forged, over another
    /// digest, or in the wrong place of the certificate.
    error EcdsaSignerMismatch(uint256 signer, address member, address recovered);

    /// @notice ecdsa_committee_hash of docs/protocol.md.
    function computeEcdsaCommitteeHash(EcdsaCommittee calldata committee) external pure returns (bytes32) {
        return keccak256(_encodeEcdsaCommittee(committee));
    }

    /// @dev The ecdsa_committee_hash preimage: tag | epoch | threshold | count | (address | weight)*.
    function _encodeEcdsaCommittee(EcdsaCommittee calldata committee) internal pure returns (bytes memory encoded) {
        uint256 size = committee.signers.length;
        _requireCommitteeSize(size);
        if (committee.weights.length != size) revert EcdsaSignersWeightsMismatch(size, committee.weights.length);
        encoded = new bytes(ECDSA_HEADER_LENGTH + size * ECDSA_MEMBER_LENGTH);
        bytes32 tag = ECDSA_COMMITTEE_TAG;
        uint64 epoch = committee.epoch;
        uint64 threshold = committee.threshold;
        assembly ("memory-safe") {
            mstore(add(encoded, 0x20), tag)
            mstore(add(encoded, 0x40), or(or(shl(192, epoch), shl(128, threshold)), shl(96, size)))
        }
        for (uint256 i = 0; i < size; i++) {
            // Indexing the calldata arrays checks that each value fits its type.
            address signer = committee.signers[i];
            uint64 weight = committee.weights[i];
            assembly ("memory-safe") {
                let entry := add(add(encoded, 0x20), add(ECDSA_HEADER_LENGTH, mul(i, ECDSA_MEMBER_LENGTH)))
                // Address, weight, then 4 zero bytes past the entry that the next entry overwrites.
                mstore(entry, or(shl(96, signer), shl(32, weight)))
            }
        }
    }

    /// @dev Refuses a zero address (ecrecover's "no signer"), a signer listed twice, a zero weight
    /// and a threshold the rules refuse. `encoded` is the committee's _encodeEcdsaCommittee.
    function _validateEcdsaCommittee(EcdsaCommittee calldata committee, bytes memory encoded, bool lowThresholdAllowed)
        internal
        pure
    {
        uint256 size = committee.signers.length;
        uint256 totalWeight;
        for (uint256 i = 0; i < size; i++) {
            if (committee.signers[i] == address(0)) revert EcdsaZeroSigner(i);
            if (committee.weights[i] == 0) revert ZeroWeight(i);
            totalWeight += committee.weights[i];
        }
        uint256 duplicate = type(uint256).max;
        address signer;
        assembly ("memory-safe") {
            // Every pair, on the encoded entries: at most 128 * 127 / 2 comparisons, at enrollment only.
            let members := add(add(encoded, 0x20), ECDSA_HEADER_LENGTH)
            for { let i := 1 } and(lt(i, size), eq(duplicate, not(0))) { i := add(i, 1) } {
                let current := shr(96, mload(add(members, mul(i, ECDSA_MEMBER_LENGTH))))
                for { let j := 0 } lt(j, i) { j := add(j, 1) } {
                    if eq(current, shr(96, mload(add(members, mul(j, ECDSA_MEMBER_LENGTH))))) {
                        duplicate := i
                        signer := current
                        break
                    }
                }
            }
        }
        if (duplicate != type(uint256).max) revert EcdsaDuplicateSigner(duplicate, signer);
        _requireThreshold(committee.threshold, totalWeight, lowThresholdAllowed);
    }

    /// @dev Copies the committee stored at `pointer` (code: a STOP byte, then the
    /// ecdsa_committee_hash preimage of `size` members, then `trailing` bytes the caller appended)
    /// into memory from its threshold on: threshold 8 | count 4 | members | trailing. One
    /// EXTCODECOPY reads everything a delivery needs. Returns the copy's memory address.
    function _copyEcdsaCommittee(address pointer, uint256 size, uint256 trailing) internal view returns (uint256 copy) {
        assembly ("memory-safe") {
            copy := mload(0x40)
            let length := add(add(12, mul(size, ECDSA_MEMBER_LENGTH)), trailing)
            extcodecopy(pointer, copy, 41, length)
            mstore(0x40, add(copy, and(add(length, 31), not(31))))
        }
    }

    /// @dev The `offset`-th trailing word of a `_copyEcdsaCommittee` copy of `size` members.
    function _ecdsaTrailingWord(uint256 copy, uint256 size, uint256 offset) internal pure returns (bytes32 word) {
        assembly ("memory-safe") {
            word := mload(add(add(copy, add(12, mul(size, ECDSA_MEMBER_LENGTH))), offset))
        }
    }

    /// @dev Verifies an ECDSA certificate over `digest` of the committee of `size` members whose
    /// `_copyEcdsaCommittee` copy is at `copy`: the bitfield, the signers' weight against the
    /// threshold, the signatures' length, then each signature, which must recover (EIP-191 hash
    /// of `digest`) to the member its bit names. Each signature costs one ecrecover.
    function _verifyEcdsaCertificate(
        uint256 copy,
        uint256 size,
        bytes32 digest,
        bytes calldata signers,
        bytes calldata signatures
    ) internal view {
        _requireBitfield(size, signers);
        uint256 threshold;
        uint256 signedWeight;
        uint256 count;
        uint256 members;
        uint256 list;
        assembly ("memory-safe") {
            threshold := shr(192, mload(copy))
            members := add(copy, 12)
            // The signers' indices, in order, so the recovery loop visits signers only.
            list := mload(0x40)
            for { let i := 0 } lt(i, size) { i := add(i, 1) } {
                // Bit i is (bitfield[i / 8] >> (i % 8)) & 1.
                if and(shr(and(i, 7), byte(0, calldataload(add(signers.offset, shr(3, i))))), 1) {
                    mstore(add(list, shl(5, count)), i)
                    count := add(count, 1)
                    signedWeight := add(signedWeight, shr(192, mload(add(members, add(mul(i, ECDSA_MEMBER_LENGTH), 20)))))
                }
            }
            mstore(0x40, add(list, shl(5, count)))
        }
        if (signedWeight < threshold) revert QuorumNotReached(signedWeight, threshold);
        if (signatures.length != count * ECDSA_SIGNATURE_LENGTH) {
            revert EcdsaSignaturesLengthMismatch(count * ECDSA_SIGNATURE_LENGTH, signatures.length);
        }
        uint256 refusal = _recoverSigners(members, list, count, digest, signatures);
        if (refusal != 0) _refuseEcdsaSignature(refusal, members);
    }

    /// @dev Recovers each signature (EIP-191 hash of `digest`) and compares it with the member it
    /// stands for (`list`: the `count` signer indices in order; `members`: the copied member
    /// entries). Returns 0 if all match, else the refusal: reason (bits 0-7) | member index
    /// (8-15) | v (16-23) | recovered address (96-255).
    function _recoverSigners(uint256 members, uint256 list, uint256 count, bytes32 digest, bytes calldata signatures)
        private
        view
        returns (uint256 refusal)
    {
        assembly ("memory-safe") {
            // The EIP-191 personal-message hash of the digest, ecrecover's first input word; the
            // input (hash, v, r, s) is built in scratch memory past the free memory pointer.
            mstore(0x00, "\x19Ethereum Signed Message:\n32")
            mstore(0x1c, digest)
            let input := mload(0x40)
            mstore(input, keccak256(0x00, 0x3c))
            let signature := signatures.offset
            let end := add(list, shl(5, count))
            for { let next := list } lt(next, end) { next := add(next, 0x20) } {
                let i := mload(next)
                let s := calldataload(add(signature, 0x20))
                let v := byte(0, calldataload(add(signature, 0x40)))
                let details := or(shl(8, i), shl(16, v))
                if gt(s, HALF_ORDER) {
                    refusal := or(REFUSED_HIGH_S, details)
                    break
                }
                if iszero(or(eq(v, 27), eq(v, 28))) {
                    refusal := or(REFUSED_RECOVERY_ID, details)
                    break
                }
                mstore(add(input, 0x20), v)
                mstore(add(input, 0x40), calldataload(signature))
                mstore(add(input, 0x60), s)
                signature := add(signature, ECDSA_SIGNATURE_LENGTH)
                // ecrecover returns nothing for r or s out of range, or no point with x = r.
                let ok := staticcall(gas(), ECRECOVER, input, 0x80, 0x00, 0x20)
                // (Yul evaluates arguments right to left: returndatasize must follow the call.)
                if iszero(and(ok, eq(returndatasize(), 0x20))) {
                    refusal := or(REFUSED_UNRECOVERABLE, details)
                    break
                }
                let recovered := mload(0x00)
                if iszero(eq(recovered, shr(96, mload(add(members, mul(i, ECDSA_MEMBER_LENGTH)))))) {
                    refusal := or(or(REFUSED_OTHER_SIGNER, details), shl(96, recovered))
                    break
                }
            }
        }
    }

    /// @dev Reverts with the typed error for `refusal` (see _recoverSigners).
    function _refuseEcdsaSignature(uint256 refusal, uint256 members) private pure {
        uint256 member = (refusal >> 8) & 0xff;
        uint8 reason = uint8(refusal);
        if (reason == REFUSED_HIGH_S) revert EcdsaSignatureMalleable(member);
        if (reason == REFUSED_RECOVERY_ID) revert EcdsaInvalidRecoveryId(member, uint8(refusal >> 16));
        if (reason == REFUSED_UNRECOVERABLE) revert EcdsaSignatureUnrecoverable(member);
        address expected;
        assembly ("memory-safe") {
            expected := shr(96, mload(add(members, mul(member, ECDSA_MEMBER_LENGTH))))
        }
        revert EcdsaSignerMismatch(member, expected, address(uint160(refusal >> 96)));
    }

    /// @dev The committee of epoch `epoch` from its ecdsa_committee_hash preimage.
    function _decodeEcdsaCommittee(bytes memory encoded, uint64 epoch, uint256 size)
        internal
        pure
        returns (EcdsaCommittee memory committee)
    {
        uint64 threshold;
        assembly ("memory-safe") {
            threshold := shr(192, mload(add(encoded, 0x48)))
        }
        committee.epoch = epoch;
        committee.threshold = threshold;
        committee.signers = new address[](size);
        committee.weights = new uint64[](size);
        for (uint256 i = 0; i < size; i++) {
            address signer;
            uint64 weight;
            assembly ("memory-safe") {
                let entry := add(add(encoded, 0x20), add(ECDSA_HEADER_LENGTH, mul(i, ECDSA_MEMBER_LENGTH)))
                signer := shr(96, mload(entry))
                weight := shr(192, mload(add(entry, 20)))
            }
            committee.signers[i] = signer;
            committee.weights[i] = weight;
        }
    }
}
