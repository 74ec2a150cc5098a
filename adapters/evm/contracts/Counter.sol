// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IGateway} from "./IGateway.sol";
import {IMessageRecipient} from "./IMessageRecipient.sol";

/// @title Example dApp: sends messages through its Gateway and counts the ones it receives.
/// @notice A starting point to copy. It accepts messages from any origin and sender; a real
/// application would keep a list of trusted (origin, sender) pairs and reject the rest in `handle`.
/// The owner can make `handle` revert on purpose, to exercise the Gateway's failure path (the
/// message stays deliverable and goes through once the switch is off again).
contract Counter is IMessageRecipient {
    IGateway public immutable gateway;
    address public owner;
    bool public failing;
    /// @notice Messages received in total.
    uint256 public received;
    /// @notice Messages received per origin domain and sender.
    mapping(uint32 origin => mapping(bytes32 sender => uint256 count)) public receivedFrom;
    /// @notice keccak256 of the body of the last message received (a hash, not the body: storing a
    /// 64 KiB body would cost ~45M gas, more than a block).
    bytes32 public lastBodyHash;
    /// @notice The length in bytes of the last body received.
    uint256 public lastBodyLength;

    event FailingChanged(bool failing);

    error NotGateway(address caller);
    error NotOwner(address caller);
    error FailingOnPurpose(uint32 origin, bytes32 sender);

    constructor(IGateway gateway_) {
        gateway = gateway_;
        owner = msg.sender;
    }

    /// @notice Sends `body` to `recipient` (an address left-padded to 32 bytes) on `destination`.
    function send(uint32 destination, bytes32 recipient, bytes calldata body) external returns (bytes32 id) {
        return gateway.dispatch(destination, recipient, body);
    }

    /// @notice Sends `body` and pays for `gasLimit` gas of its delivery (`msg.value` must be the
    /// Gateway's `quoteGasPayment(destination, gasLimit)`: this example keeps no refunds).
    function sendWithGas(uint32 destination, bytes32 recipient, bytes calldata body, uint256 gasLimit)
        external
        payable
        returns (bytes32 id)
    {
        return gateway.dispatchWithGas{value: msg.value}(destination, recipient, body, gasLimit);
    }

    /// @inheritdoc IMessageRecipient
    function handle(uint32 origin, bytes32 sender, bytes calldata body) external {
        // Only the Gateway has verified the message; anyone else could call with made-up values.
        if (msg.sender != address(gateway)) revert NotGateway(msg.sender);
        if (failing) revert FailingOnPurpose(origin, sender);
        received += 1;
        receivedFrom[origin][sender] += 1;
        lastBodyHash = keccak256(body);
        lastBodyLength = body.length;
    }

    /// @notice Makes `handle` revert (true) or work again (false).
    function setFailing(bool failing_) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        failing = failing_;
        emit FailingChanged(failing_);
    }
}
