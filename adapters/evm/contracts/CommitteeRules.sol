// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title The rules every committee scheme shares (BLS and ECDSA): size, weights, threshold and
/// the signer bitfield, with the errors that name each broken rule.
/// @notice docs/protocol.md, "Committee" and "ECDSA committee": 1..MAX_COMMITTEE_SIZE members, each
/// with a non-zero weight; 0 < threshold <= total weight, and 3 * threshold >= 2 * total weight
/// unless the origin allows a lower threshold; a certificate names its signers with a bitfield of
/// exactly ceil(size / 8) bytes, bit i (bitfield[i / 8] >> (i % 8) & 1) for member i.
abstract contract CommitteeRules {
    /// @dev 180 BLS members would still fit in one contract's code (EIP-170); 128 keeps a margin.
    uint256 public constant MAX_COMMITTEE_SIZE = 128;

    /// @notice committeeScheme values: how an origin's committee signs.
    uint8 internal constant SCHEME_NONE = 0;
    uint8 internal constant SCHEME_BLS = 1;
    uint8 internal constant SCHEME_ECDSA = 2;
    /// @dev No committee: the enrolled verifier contract proves each message itself and hands it
    /// over through `deliverVerified` (docs/adr/0009; e.g. EthereumInbox, receipt proofs).
    uint8 internal constant SCHEME_VERIFIER = 3;

    error EmptyCommittee();
    error CommitteeTooLarge(uint256 size, uint256 max);
    error ZeroWeight(uint256 member);
    error InvalidThreshold(uint256 threshold, uint256 totalWeight);
    error ThresholdBelowTwoThirds(uint256 threshold, uint256 totalWeight);
    error BitfieldLengthMismatch(uint256 expected, uint256 actual);
    error BitfieldOutOfRange();
    error QuorumNotReached(uint256 signed, uint256 threshold);
    /// @notice The call needs `origin`'s committee to use another scheme (1 BLS, 2 ECDSA, 3 verifier).
    error WrongCommitteeScheme(uint32 origin, uint8 scheme);

    /// @dev Refuses committees that could never sign (threshold above the total weight, or zero)
    /// and, unless `lowThresholdAllowed`, a threshold below two thirds of the total weight.
    function _requireThreshold(uint256 threshold, uint256 totalWeight, bool lowThresholdAllowed) internal pure {
        if (threshold == 0 || threshold > totalWeight) revert InvalidThreshold(threshold, totalWeight);
        if (3 * threshold < 2 * totalWeight && !lowThresholdAllowed) {
            revert ThresholdBelowTwoThirds(threshold, totalWeight);
        }
    }

    /// @dev Refuses an empty committee and one above MAX_COMMITTEE_SIZE members.
    function _requireCommitteeSize(uint256 size) internal pure {
        if (size == 0) revert EmptyCommittee();
        if (size > MAX_COMMITTEE_SIZE) revert CommitteeTooLarge(size, MAX_COMMITTEE_SIZE);
    }

    /// @dev Refuses a signer bitfield of the wrong length for `size` members, or with a bit set
    /// beyond the last member (it would name a signer that does not exist).
    function _requireBitfield(uint256 size, bytes calldata signers) internal pure {
        uint256 expectedLength = (size + 7) >> 3;
        if (signers.length != expectedLength) revert BitfieldLengthMismatch(expectedLength, signers.length);
        if (size & 7 != 0 && uint8(signers[expectedLength - 1]) >> (size & 7) != 0) revert BitfieldOutOfRange();
    }
}
