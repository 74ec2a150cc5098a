// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IExecutionHeaders} from "./EthereumInbox.sol";

/// @title Test-only IExecutionHeaders: whoever deployed it stores execution headers by hand.
/// @notice Stands in for EthereumLightClient in the receipt-proof tests and the inbox gas bench,
/// so they need no sync committee. It trusts its deployer: never enrol it in production.
contract StoredExecutionHeaders is IExecutionHeaders {
    struct Header {
        bytes32 blockHash;
        bytes32 receiptsRoot;
    }

    address public immutable deployer;
    mapping(uint64 blockNumber => Header header) private _headers;

    error NotDeployer(address caller);

    constructor() {
        deployer = msg.sender;
    }

    function storeHeader(uint64 blockNumber, bytes32 blockHash, bytes32 receiptsRoot) external {
        if (msg.sender != deployer) revert NotDeployer(msg.sender);
        _headers[blockNumber] = Header(blockHash, receiptsRoot);
    }

    /// @inheritdoc IExecutionHeaders
    function executionHeader(uint64 blockNumber) external view returns (bytes32 blockHash, bytes32 receiptsRoot) {
        Header storage header = _headers[blockNumber];
        return (header.blockHash, header.receiptsRoot);
    }
}
