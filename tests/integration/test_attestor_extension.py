"""An attestor on a real anvil chain whose history is rewritten below what it signed.

The chain is taken back with `evm_snapshot`/`evm_revert` (a reorg deeper than the attestor's
finality rule), and other messages are dispatched in place of the signed ones: the new final root
does not extend the signed tree. The attestor must stop signing, say so at alert level, set
`relay_attestor_halted` and report not ready, also after a restart from its signed log.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from adapters.evm import deploy
from adapters.evm.finality import EvmFinalitySource
from relay.config import SecretRef
from relay.roles.attestor import Attestor, AttestorConfig
from relay.roles.ledger import NonExtendingRoot
from relay.verify.merkle import IncrementalTree
from tests.chains import SOURCE, Chains

pytestmark = pytest.mark.anvil


def _attestor(chains: Chains, signed_log: Path) -> Attestor:
    config = AttestorConfig(
        chain=chains.source_chain(confirmations=1),
        bls_key=SecretRef(value=hex(chains.secrets[0])),
        signer_index=0,
        epoch=1,
        listen="127.0.0.1:0",
        signed_log=str(signed_log),
        insecure_plaintext=True,
    )
    return Attestor(config)


def test_the_finality_source_shows_the_leaves_behind_its_root(chains: Chains) -> None:
    chains.send(3, "history")
    chains.mine(1)
    source = EvmFinalitySource(chains.source_chain(confirmations=1))
    root, count = source.finalized_checkpoint_state() or (b"", 0)
    tree = IncrementalTree.from_frontier(count, source.frontier())
    assert tree.root() == root
    older = IncrementalTree()
    for leaf in source.leaves(0, count - 2):
        older.insert(leaf)
    for leaf in source.leaves(count - 2, count):
        older.insert(leaf)
    assert older.root() == root
    assert source.leaves(count, count) == []


def test_a_rewritten_history_halts_the_attestor(
    chains: Chains, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    signed_log = tmp_path / "signed.jsonl"
    snapshot = deploy.rpc_request(chains.source.rpc_url, "evm_snapshot")
    try:
        chains.send(2, "original")
        chains.mine(1)
        attestor = _attestor(chains, signed_log)
        first = attestor.poll_once()
        assert first is not None
        signed_index = first.checkpoint.index

        # A reorg below the signed height: other messages take the signed nonces.
        assert deploy.rpc_request(chains.source.rpc_url, "evm_revert", [snapshot]) is True
        snapshot = deploy.rpc_request(chains.source.rpc_url, "evm_snapshot")
        chains.send(3, "rewritten")
        chains.mine(3)

        with pytest.raises(NonExtendingRoot) as caught:
            attestor.poll_once()
        with caplog.at_level(logging.CRITICAL, logger="relay.roles.attestor"):
            attestor.halt(caught.value)  # what the loop does with it: alert, metric, not ready
        assert any("finality conflict" in r.getMessage() for r in caplog.records)
        ready, detail = attestor.readiness()
        assert not ready and detail.startswith("halted")
        halted = attestor.registry.get_sample_value(
            "relay_attestor_halted", {"origin": str(SOURCE), "reason": "NonExtendingRoot"}
        )
        assert halted == 1
        assert attestor.ledger.last_signed_index == signed_index

        # A restart does not forget: the signed log's frontier refuses the rewritten history again.
        with pytest.raises(NonExtendingRoot):
            _attestor(chains, signed_log).poll_once()
    finally:
        assert deploy.rpc_request(chains.source.rpc_url, "evm_revert", [snapshot]) is True


def test_the_run_loop_halts_on_a_rewritten_history(chains: Chains, tmp_path: Path) -> None:
    """The background loop itself turns the conflict into a halt (no test-side `halt` call)."""
    import threading

    from tests.waiting import eventually

    signed_log = tmp_path / "signed.jsonl"
    snapshot = deploy.rpc_request(chains.source.rpc_url, "evm_snapshot")
    attestor: Attestor | None = None
    try:
        chains.send(1, "kept")
        chains.mine(1)
        first = _attestor(chains, signed_log)
        assert first.poll_once() is not None
        assert deploy.rpc_request(chains.source.rpc_url, "evm_revert", [snapshot]) is True
        snapshot = deploy.rpc_request(chains.source.rpc_url, "evm_snapshot")
        chains.send(2, "replaced")
        chains.mine(2)
        attestor = _attestor(chains, signed_log).start()
        loop = threading.Thread(target=attestor.run_loop, daemon=True)
        loop.start()
        running = attestor
        halted = eventually(lambda: running.halted, timeout=20, what="the attestor halts")
        assert isinstance(halted, NonExtendingRoot)
        assert not attestor.readiness()[0]
    finally:
        if attestor is not None:
            attestor.stop()
        assert deploy.rpc_request(chains.source.rpc_url, "evm_revert", [snapshot]) is True
