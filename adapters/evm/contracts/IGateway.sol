// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title The sending side of a Gateway, as a dApp sees it.
interface IGateway {
    /// @notice Sends `body` to `recipient` on domain `destination`; returns the message id.
    function dispatch(uint32 destination, bytes32 recipient, bytes calldata body) external returns (bytes32 id);

    /// @notice The domain (chain identifier) this Gateway sends from and delivers to.
    function localDomain() external view returns (uint32);
}
