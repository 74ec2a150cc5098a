// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {BLS} from "./BLS.sol";

/// @title Test-only wrapper exposing the BLS library's internal functions as calls.
/// @notice Lets the integration tests compare hash-to-curve and verification against py_ecc.
/// Not deployed by the relay.
contract BLSHarness {
    function hashToG2(bytes calldata message) external view returns (bytes memory) {
        return BLS.hashToG2(message);
    }

    function expandMessageXmd(bytes calldata message) external view returns (bytes32[8] memory) {
        return BLS.expandMessageXmd(message);
    }

    function verify(bytes calldata aggregatePublicKey, bytes calldata message, bytes calldata signature)
        external
        view
        returns (bool)
    {
        return BLS.verify(aggregatePublicKey, message, signature);
    }

    function verifyPossession(bytes calldata publicKey, bytes calldata proof) external view returns (bool) {
        return BLS.verifyPossession(publicKey, proof);
    }

    function compressG1(bytes calldata point) external pure returns (bytes memory) {
        return BLS.compressG1(point);
    }

    function areValidG1Points(bytes calldata keys) external view returns (bool) {
        return BLS.areValidG1Points(keys);
    }
}
