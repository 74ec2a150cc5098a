// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Owned} from "./Owned.sol";

/// @title Emergency controls: a guardian that can stop delivery per origin and dispatch per
/// destination; only the owner starts them again.
/// @notice The guardian is a fast, narrow key (an on-call operator, a monitoring bot): it can only
/// pause. The owner can pause too, and alone can unpause and name the guardian. Pausing loses no
/// message: a paused delivery reverts (DeliveryIsPaused) and stays deliverable, and relayers wait
/// for the unpause. Hand-overs and enrollment stay open while paused, since they are the way out.
abstract contract EmergencyControls is Owned {
    mapping(uint32 destination => bool paused) private _dispatchPaused;
    /// @notice The account allowed to pause (besides the owner); zero if none.
    address public guardian;
    /// @dev How many destinations are paused: dispatch reads the mapping only when it is not zero.
    /// Declared last so it shares a storage slot with the guardian and the Gateway's `count`,
    /// which dispatch reads anyway.
    uint32 private _pausedDestinations;

    event GuardianSet(address indexed previousGuardian, address indexed newGuardian);
    event DeliveryPaused(uint32 indexed origin, address by);
    event DeliveryUnpaused(uint32 indexed origin);
    event DispatchPaused(uint32 indexed destination, address by);
    event DispatchUnpaused(uint32 indexed destination);

    error NotGuardian(address caller);
    error DeliveryIsPaused(uint32 origin);
    error DispatchIsPaused(uint32 destination);

    modifier onlyGuardianOrOwner() {
        if (msg.sender != guardian && msg.sender != owner) revert NotGuardian(msg.sender);
        _;
    }

    /// @notice Names the guardian (zero removes it: then only the owner can pause).
    function setGuardian(address newGuardian) external onlyOwner {
        emit GuardianSet(guardian, newGuardian);
        guardian = newGuardian;
    }

    /// @notice Stops delivery of messages from `origin` (guardian or owner). Idempotent.
    function pauseDelivery(uint32 origin) external onlyGuardianOrOwner {
        _setDeliveryPaused(origin, true);
        emit DeliveryPaused(origin, msg.sender);
    }

    /// @notice Lets messages from `origin` be delivered again (owner only).
    function unpauseDelivery(uint32 origin) external onlyOwner {
        _setDeliveryPaused(origin, false);
        emit DeliveryUnpaused(origin);
    }

    /// @notice Stops dispatch of messages to `destination` (guardian or owner). Idempotent.
    function pauseDispatch(uint32 destination) external onlyGuardianOrOwner {
        if (!_dispatchPaused[destination]) {
            _dispatchPaused[destination] = true;
            _pausedDestinations += 1;
        }
        emit DispatchPaused(destination, msg.sender);
    }

    /// @notice Lets messages to `destination` be dispatched again (owner only).
    function unpauseDispatch(uint32 destination) external onlyOwner {
        if (_dispatchPaused[destination]) {
            _dispatchPaused[destination] = false;
            _pausedDestinations -= 1;
        }
        emit DispatchUnpaused(destination);
    }

    /// @notice Whether dispatch to `destination` is paused.
    function dispatchPaused(uint32 destination) external view returns (bool) {
        return _dispatchPaused[destination];
    }

    /// @notice Whether delivery of messages from `origin` is paused.
    function deliveryPaused(uint32 origin) external view virtual returns (bool);

    /// @dev Where the delivery flag lives is the Gateway's business (next to the origin's committee).
    function _setDeliveryPaused(uint32 origin, bool paused) internal virtual;

    function _requireDispatchOpen(uint32 destination) internal view {
        if (_pausedDestinations != 0 && _dispatchPaused[destination]) revert DispatchIsPaused(destination);
    }
}
