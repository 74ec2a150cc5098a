// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IMessageRecipient} from "./IMessageRecipient.sol";

/// @title Test-only recipient that misbehaves on purpose. Not deployed by the relay.
/// @notice `arm` stores the calldata of a Gateway call (e.g. `process` of the very message being
/// handled); the next `handle` sends it once, re-entering the Gateway, and records the outcome.
/// `setBurnGas(true)` makes `handle` spin until it runs out of gas. `setInnerCallGas(n)` makes
/// `handle` make an external call that needs about `n` gas (the issue-8 repro: a legitimate
/// recipient that only works if it really gets the gas its delivery names).
contract HostileRecipient is IMessageRecipient {
    address public immutable gateway;
    bytes public armedCall;
    bool public burnGas;
    uint256 public innerCallGas;
    uint256 public handled;
    bool public reentrySucceeded;
    bytes public reentryResult;

    constructor(address gateway_) {
        gateway = gateway_;
    }

    /// @notice Calls the Gateway with `data` and the value sent, bubbling a revert. This contract
    /// has no receive function, so a refund or a claim paid to it fails.
    function callGateway(bytes calldata data) external payable {
        (bool ok, bytes memory result) = gateway.call{value: msg.value}(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
    }

    function arm(bytes calldata gatewayCall) external {
        armedCall = gatewayCall;
    }

    function setBurnGas(bool burnGas_) external {
        burnGas = burnGas_;
    }

    function setInnerCallGas(uint256 innerCallGas_) external {
        innerCallGas = innerCallGas_;
    }

    /// @notice Spends about `amount` gas; reverts (arithmetic underflow) if it has less.
    function spend(uint256 amount) external view {
        uint256 stop = gasleft() - amount;
        while (gasleft() > stop) {}
    }

    function handle(uint32, bytes32, bytes calldata) external {
        if (burnGas) {
            while (true) {}
        }
        if (innerCallGas != 0) {
            this.spend(innerCallGas);
        }
        handled += 1;
        if (armedCall.length != 0) {
            bytes memory gatewayCall = armedCall;
            delete armedCall;
            (reentrySucceeded, reentryResult) = gateway.call(gatewayCall);
        }
    }
}
