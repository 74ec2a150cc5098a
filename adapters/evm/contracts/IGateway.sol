// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Paying, on the source chain, for the gas of a message's `handle` on its destination.
/// @notice A sender declares a gas limit for its recipient's `handle` and pays for it in this
/// chain's native token. The destination Gateway calls the recipient with exactly the gas limit a
/// delivery names; relayers deliver a message when what was paid for it covers that limit at the
/// destination's gas price (or an operator's policy names it). The limit is not in the message.
interface IGasPaymaster {
    /// @notice `payment` (this chain's smallest unit) paid for `gasLimit` more gas for message `id`.
    event GasPayment(bytes32 indexed id, uint32 indexed destination, uint256 gasLimit, uint256 payment);
    event GasOracleSet(uint32 indexed destination, uint128 gasPrice, uint128 exchangeRate);
    event GasPaymentsClaimed(address indexed to, uint256 amount);

    error NoGasOracle(uint32 destination);
    error InsufficientGasPayment(uint256 required, uint256 paid);
    error UnknownMessage(bytes32 id);
    error GasDestinationMismatch(bytes32 id, uint32 dispatchedTo, uint32 paidFor);
    error GasLimitTooLarge(uint256 gasLimit, uint256 max);
    error RefundFailed(address to, uint256 amount);
    error ClaimFailed(address to, uint256 amount);

    /// @notice What `gasLimit` gas for a `handle` on `destination` costs here:
    /// gasLimit * gasPrice * exchangeRate / 1e10. Reverts NoGasOracle if no prices are set for it.
    function quoteGasPayment(uint32 destination, uint256 gasLimit) external view returns (uint256);

    /// @notice Adds `gasLimit` gas (paid with the quote; any excess is refunded to the caller) to
    /// message `id`, which this Gateway dispatched to `destination`. Reverts UnknownMessage otherwise.
    function payForGas(bytes32 id, uint32 destination, uint256 gasLimit) external payable;

    /// @notice Totals paid for message `id`: the gas limit and the native amount.
    function gasPaid(bytes32 id) external view returns (uint256 gasLimit, uint256 payment);
}

/// @title The sending side of a Gateway, as a dApp sees it.
interface IGateway is IGasPaymaster {
    /// @notice The body is longer than MAX_BODY_LENGTH bytes.
    error BodyTooLarge(uint256 length, uint256 max);

    /// @notice Sends `body` (at most MAX_BODY_LENGTH bytes) to `recipient` on domain
    /// `destination`; returns the message id. Nothing is paid for its delivery: a relayer delivers
    /// it only if its operator's policy says so, or after a `payForGas` top-up.
    function dispatch(uint32 destination, bytes32 recipient, bytes calldata body) external returns (bytes32 id);

    /// @notice `dispatch`, then pays for `gasLimit` gas of the recipient's `handle` (msg.value must
    /// cover `quoteGasPayment(destination, gasLimit)`; the excess is refunded to the caller).
    function dispatchWithGas(uint32 destination, bytes32 recipient, bytes calldata body, uint256 gasLimit)
        external
        payable
        returns (bytes32 id);

    /// @notice The largest body `dispatch` accepts, in bytes (65536).
    function MAX_BODY_LENGTH() external view returns (uint256);

    /// @notice The domain (chain identifier) this Gateway sends from and delivers to.
    function localDomain() external view returns (uint32);
}
