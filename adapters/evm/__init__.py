"""EVM chains: the Gateway contracts, their build, local anvil chains and the EIP-2537 encodings."""
