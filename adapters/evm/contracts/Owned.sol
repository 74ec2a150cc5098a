// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Owned: the one account allowed to configure a contract (enrollments, gas oracles, claims).
/// @notice Ownership moves in two steps: the owner names a pending owner, who must accept. A typo
/// in the new address therefore cannot lose the contract, and the zero address is refused (there
/// is no renouncing: a Gateway without an owner could never recover an origin).
abstract contract Owned {
    address public owner;
    /// @notice The account `transferOwnership` named; it becomes owner when it calls `acceptOwnership`.
    address public pendingOwner;

    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    error NotOwner(address caller);
    error NotPendingOwner(address caller);
    error ZeroAddress();

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    constructor() {
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
    }

    /// @notice Starts handing the contract to `newOwner` (which must call `acceptOwnership`). A
    /// second call replaces the pending owner; the current owner keeps every power until then.
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(msg.sender, newOwner);
    }

    /// @notice The pending owner takes over.
    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert NotPendingOwner(msg.sender);
        emit OwnershipTransferred(owner, msg.sender);
        owner = msg.sender;
        pendingOwner = address(0);
    }
}
