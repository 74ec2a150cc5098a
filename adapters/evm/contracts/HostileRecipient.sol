// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IMessageRecipient} from "./IMessageRecipient.sol";

/// @title Test-only recipient that misbehaves on purpose. Not deployed by the relay.
/// @notice `arm` stores the calldata of a Gateway call (e.g. `process` of the very message being
/// handled); the next `handle` sends it once, re-entering the Gateway, and records the outcome.
/// `setBurnGas(true)` makes `handle` spin until it runs out of gas.
contract HostileRecipient is IMessageRecipient {
    address public immutable gateway;
    bytes public armedCall;
    bool public burnGas;
    uint256 public handled;
    bool public reentrySucceeded;
    bytes public reentryResult;

    constructor(address gateway_) {
        gateway = gateway_;
    }

    function arm(bytes calldata gatewayCall) external {
        armedCall = gatewayCall;
    }

    function setBurnGas(bool burnGas_) external {
        burnGas = burnGas_;
    }

    function handle(uint32, bytes32, bytes calldata) external {
        if (burnGas) {
            while (true) {}
        }
        handled += 1;
        if (armedCall.length != 0) {
            bytes memory gatewayCall = armedCall;
            delete armedCall;
            (reentrySucceeded, reentryResult) = gateway.call(gatewayCall);
        }
    }
}
