"""Second security review of issue 12's merged changes (ECDSA committees, pipelined deliveries).

Each test states an attack on a trust boundary and the behaviour the code must keep under it.
"""

from __future__ import annotations

from typing import Any

import pytest

from adapters.evm.committees import EvmCommitteeReader
from adapters.evm.config import EvmChainConfig
from relay.errors import RpcUnavailable
from relay.verify.ecdsa import EcdsaCommittee

ORIGIN = 7
GATEWAY = "0x" + "11" * 20
SIGNERS = ["0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20]


def lying_reader(answers: dict[str, Any]) -> EvmCommitteeReader:
    """A reader whose Gateway answers come from `answers` (what a lying RPC can return: the ABI
    decodes `address[]` and `uint64[]` with independent lengths)."""
    chain = EvmChainConfig(name="destination", domain=2, rpc_urls=["http://127.0.0.1:9"], gateway=GATEWAY)
    reader = EvmCommitteeReader(chain)
    reader._call = lambda name, origin: answers[name]  # type: ignore[method-assign]
    return reader


@pytest.mark.parametrize("weights", [[1, 1], [1, 1, 1, 1], []])
def test_a_lying_rpc_with_signers_and_weights_of_different_lengths_is_an_rpc_outage(
    weights: list[int],
) -> None:
    """currentEcdsaCommittee answering 3 signers and 2 (or 4, or 0) weights: a typed
    `RpcUnavailable` (the relayer's committee stage and the attestor's membership catch
    `RelayError`), never a bare ValueError out of `zip(strict=True)`."""
    honest = EcdsaCommittee(3, tuple(bytes.fromhex(s[2:]) for s in SIGNERS), (1, 1, 1), 3)
    reader = lying_reader(
        {
            "committeeOf": (3, honest.hash()),
            "currentEcdsaCommittee": (3, 3, SIGNERS, weights),
        }
    )
    with pytest.raises(RpcUnavailable):
        reader.current_ecdsa_committee(ORIGIN)
