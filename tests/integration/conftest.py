"""Fixtures of the contract tests: one anvil per module, a committee, a fresh Gateway pair per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from web3 import Web3

from adapters.evm.anvil import AnvilProcess
from adapters.evm.gas import SigningCommittee
from tests.integration.gateway_bridge import Bridge, make_bridge


@pytest.fixture(scope="module")
def w3() -> Iterator[Any]:
    with AnvilProcess(chain_id=31337) as anvil:
        web3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        web3.eth.default_account = web3.eth.accounts[0]
        yield web3


@pytest.fixture(scope="module")
def signing() -> SigningCommittee:
    return SigningCommittee.generate(4, epoch=1, seed=b"test committee")


@pytest.fixture
def bridge(w3: Web3, signing: SigningCommittee) -> Bridge:
    return make_bridge(w3, signing)
