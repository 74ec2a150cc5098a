// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IGasPaymaster} from "./IGateway.sol";
import {Owned} from "./Owned.sol";

/// @title GasPaymaster: the sender pays, on the source chain, for the gas of its message's `handle`.
/// @notice Modelled on Hyperlane's InterchainGasPaymaster. A sender declares a gas limit for the
/// recipient's `handle` on the destination and pays `quoteGasPayment(destination, gasLimit)` in
/// this chain's native token; the payment is recorded per message id (GasPayment events, and the
/// totals in `gasPaid`). Relayers deliver what is paid for and the destination Gateway gives the
/// recipient exactly the gas limit the delivery names. The gas limit is not part of the message,
/// so the message format stays Hyperlane-v3 byte-compatible. Payments stay in this contract until
/// the owner claims them (the relay operator's revenue).
abstract contract GasPaymaster is IGasPaymaster, Owned {
    /// @notice One destination's prices. quote = gasLimit * gasPrice * exchangeRate / 1e10.
    /// @dev `gasPrice` is in the destination's smallest native unit per gas; `exchangeRate` is the
    /// value of one destination native unit in this chain's native units, scaled by 1e10.
    struct GasOracle {
        uint128 gasPrice;
        uint128 exchangeRate;
    }

    /// @dev One storage slot per dispatched message: where it goes, that it exists, and what was
    /// paid for it so far. Written at dispatch, so a top-up can check the id is genuine.
    struct GasRecord {
        uint32 destination;
        bool dispatched;
        uint96 gasLimit;
        uint120 payment;
    }

    uint256 public constant EXCHANGE_RATE_SCALE = 1e10;

    mapping(uint32 destination => GasOracle) private _gasOracles;
    mapping(bytes32 id => GasRecord) private _gasRecords;

    /// @notice The native amount (this chain's smallest unit) that pays for `gasLimit` gas of a
    /// recipient's `handle` on `destination`. Reverts NoGasOracle if the owner set no prices for it.
    function quoteGasPayment(uint32 destination, uint256 gasLimit) public view returns (uint256) {
        GasOracle memory oracle = _gasOracles[destination];
        if (oracle.exchangeRate == 0) revert NoGasOracle(destination);
        if (gasLimit > type(uint96).max) revert GasLimitTooLarge(gasLimit, type(uint96).max);
        return gasLimit * oracle.gasPrice * oracle.exchangeRate / EXCHANGE_RATE_SCALE;
    }

    /// @notice Sets `destination`'s gas price and exchange rate. An exchange rate of zero removes
    /// the entry (quotes for it revert NoGasOracle); a gas price of zero makes its gas free.
    function setGasOracle(uint32 destination, uint128 gasPrice, uint128 exchangeRate) external onlyOwner {
        _gasOracles[destination] = GasOracle(gasPrice, exchangeRate);
        emit GasOracleSet(destination, gasPrice, exchangeRate);
    }

    /// @notice The destination's gas price and exchange rate as set (zeros if unset).
    function gasOracleOf(uint32 destination) external view returns (uint128 gasPrice, uint128 exchangeRate) {
        GasOracle memory oracle = _gasOracles[destination];
        return (oracle.gasPrice, oracle.exchangeRate);
    }

    /// @notice Pays for `gasLimit` more gas for message `id`, already dispatched by this Gateway to
    /// `destination` (a top-up: the gas limits and the payments of an id add up). Overpayment
    /// above the quote is refunded to the caller.
    function payForGas(bytes32 id, uint32 destination, uint256 gasLimit) external payable {
        GasRecord memory record = _gasRecords[id];
        if (!record.dispatched) revert UnknownMessage(id);
        if (record.destination != destination) revert GasDestinationMismatch(id, record.destination, destination);
        _payForGas(id, destination, gasLimit);
    }

    /// @notice Totals paid for message `id`: the gas limit its deliveries may name, and the amount.
    function gasPaid(bytes32 id) external view returns (uint256 gasLimit, uint256 payment) {
        GasRecord memory record = _gasRecords[id];
        return (record.gasLimit, record.payment);
    }

    /// @notice Sends every payment held here to `to` (the owner's revenue).
    function claimGasPayments(address payable to) external onlyOwner {
        uint256 amount = address(this).balance;
        emit GasPaymentsClaimed(to, amount);
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert ClaimFailed(to, amount);
    }

    /// @dev Writes the record of a freshly dispatched message (one storage write per dispatch).
    function _recordDispatch(bytes32 id, uint32 destination) internal {
        _gasRecords[id] = GasRecord(destination, true, 0, 0);
    }

    /// @dev Charges the quote for `gasLimit` from msg.value, adds both to the id's totals, emits
    /// GasPayment, then refunds the excess (checks, effects, interaction last). A refund that the
    /// caller's own address refuses reverts the caller's own transaction only.
    function _payForGas(bytes32 id, uint32 destination, uint256 gasLimit) internal {
        uint256 required = quoteGasPayment(destination, gasLimit);
        if (msg.value < required) revert InsufficientGasPayment(required, msg.value);
        GasRecord storage record = _gasRecords[id];
        uint256 totalGas = uint256(record.gasLimit) + gasLimit;
        if (totalGas > type(uint96).max) revert GasLimitTooLarge(totalGas, type(uint96).max);
        record.gasLimit = uint96(totalGas);
        // Cannot overflow: 2^120 wei is far more than any native supply, and it was sent here.
        record.payment += uint120(required);
        emit GasPayment(id, destination, gasLimit, required);
        uint256 excess = msg.value - required;
        if (excess != 0) {
            (bool ok,) = payable(msg.sender).call{value: excess}("");
            if (!ok) revert RefundFailed(msg.sender, excess);
        }
    }
}
