// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title What a dApp implements to receive messages from a Gateway.
/// @notice The Gateway calls `handle` once per message, after verifying the committee's signature
/// and the Merkle proof, with exactly the gas limit the delivery names: the gas the sender paid for
/// on the source chain (`dispatchWithGas` / `payForGas`). `handle` cannot use more, and the Gateway
/// refuses to start the call with less. If `handle` reverts or runs out of that gas, the message is
/// not marked delivered and can be delivered again later (with a larger limit after a top-up).
/// Keep `handle` within the limit you pay for. A recipient must check that `msg.sender` is its
/// Gateway, and should check `origin` and `sender` against the senders it trusts.
interface IMessageRecipient {
    /// @param origin the source domain (chain) of the message
    /// @param sender the address that called `dispatch` on the source Gateway, left-padded to 32 bytes
    /// @param body the application payload, unchanged
    function handle(uint32 origin, bytes32 sender, bytes calldata body) external;
}
