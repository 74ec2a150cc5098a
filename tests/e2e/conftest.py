"""One real devnet for the whole end-to-end session: two anvil chains, 8 attestor processes, the
relayer and two submitters, talking gRPC over 127.0.0.1 (see `relay.tools.devnet`).

Tests share it (starting one takes ~20 s on two cores) and are written so that each leaves it
healthy: every process a test stops is started again before the test ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.evm.anvil import ANVIL_PATH
from adapters.evm.build import SOLCJS_PATH
from relay.tools.devnet import Devnet, DevnetOptions


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    if not (ANVIL_PATH.exists() and SOLCJS_PATH.exists()):
        pytest.fail("anvil/solcjs missing: run `make tools` (scripts/install-tools.sh)")
    options = DevnetOptions(
        run_root=tmp_path_factory.mktemp("devnet"),
        block_time=1.0,
        confirmations=2,
        max_batch=100,
        # A fast delivery backoff (0.1 s doubling to a 5 s cap): an outage of a minute fails more
        # attempts than the default schedule (1 s to 300 s) fails in five minutes; see
        # test_outage.py.
        retry_base_delay=0.1,
        retry_max_delay=5.0,
    )
    network = Devnet(options).start()
    try:
        yield network
    finally:
        network.stop()
