"""The relayer drives a real on-chain EthereumLightClient with real mainnet data, through a real submitter.

One anvil holds an `EthereumLightClient` initialised from the mainnet bootstrap vector. A beacon
node serving the mainnet vectors (`../shared/vectors/ethereum-mainnet-lc/`) feeds the relayer's
`EthereumLightClientOrigin`, which verifies every update with the Python light client, plans
what the destination needs from what it reads there (`EvmLightClientReader`), and encodes each
update; a real submitter sends them (`SubmitLightClientUpdate` over gRPC, its transaction
machinery). The contract ends at the Python light client's finalized header; asked again,
nothing is sent; a beacon node serving a forged update gets nothing sent at all.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from web3 import Web3

from adapters.ethereum import onchain_client
from adapters.ethereum.beacon_api import FINALITY_UPDATE_PATH, bootstrap_path
from adapters.ethereum.lightclient_origin import EthereumLightClientOrigin
from adapters.ethereum.transport import ResponseNotFound
from adapters.evm.anvil import DEV_PRIVATE_KEYS, AnvilProcess
from adapters.evm.config import EvmChainConfig
from adapters.evm.deploy import TransactionSender
from adapters.evm.lightclient_reads import EvmLightClientReader
from relay.config import SecretRef
from relay.errors import UntrustedAnswer
from relay.roles.submitter import Submitter, SubmitterConfig
from relay.rpc.clients import GrpcSubmitterClient
from relay.verify.bls import get_backend
from relay.verify.ethereum.codec import parse_bootstrap
from relay.verify.ethereum.config import MAINNET
from relay.verify.ethereum.containers import compute_beacon_block_root
from tests.unit.ethereum.conftest import CURRENT_SLOT, MAINNET_LC, read_json

pytestmark = [pytest.mark.anvil]

ORIGIN, DESTINATION = 1, 2


class VectorBeacon:
    """A beacon node answering the light-client API from the mainnet vectors (`forge`: the
    finality update's signature replaced by another valid-looking one)."""

    def __init__(self, trusted_root: bytes, *, forge: bool = False) -> None:
        self.bootstrap = read_json(MAINNET_LC / "bootstrap.json")
        self.updates = read_json(MAINNET_LC / "updates.json")
        self.finality = copy.deepcopy(read_json(MAINNET_LC / "finality.json"))
        if forge:
            aggregate = self.finality["data"]["sync_aggregate"]
            aggregate["sync_committee_signature"] = self.updates[0]["data"]["sync_aggregate"][
                "sync_committee_signature"
            ]
        self.trusted_root = trusted_root
        self.requests: list[str] = []

    def get(self, path: str) -> Any:
        self.requests.append(path)
        if path == bootstrap_path(self.trusted_root):
            return self.bootstrap
        if path == FINALITY_UPDATE_PATH:
            return self.finality
        if path.startswith("/eth/v1/beacon/light_client/updates?"):
            query = dict(item.split("=") for item in path.split("?", 1)[1].split("&"))
            first, count = int(query["start_period"]), int(query["count"])
            period = MAINNET.compute_sync_committee_period_at_slot
            return [
                u
                for u in self.updates
                if first <= period(int(u["data"]["attested_header"]["beacon"]["slot"])) < first + count
            ]
        raise ResponseNotFound("not served", path=path)


@dataclass
class Setup:
    w3: Web3
    address: str
    trusted_root: bytes
    reader: EvmLightClientReader
    client: GrpcSubmitterClient
    submitter_account: str


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    bootstrap = parse_bootstrap(read_json(MAINNET_LC / "bootstrap.json"), MAINNET.preset)
    trusted_root = compute_beacon_block_root(bootstrap.header.beacon)
    with AnvilProcess(chain_id=31337) as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
        owner = TransactionSender(anvil.rpc_url, DEV_PRIVATE_KEYS[0])
        address = onchain_client.deploy_light_client(w3, owner, bootstrap, MAINNET)
        chain = EvmChainConfig.model_validate(
            {
                "name": "destination",
                "domain": DESTINATION,
                "rpc_urls": [anvil.rpc_url],
                "gateway": "0x" + "42" * 20,  # not used by light-client updates
                "light_client_origins": {ORIGIN: {"light_client": address, "inbox": "0x" + "43" * 20}},
            }
        )
        submitter = Submitter(
            SubmitterConfig(
                chain=chain,
                key=SecretRef(value=DEV_PRIVATE_KEYS[2]),
                listen="127.0.0.1:0",
                insecure_plaintext=True,
            )
        ).start()
        client = GrpcSubmitterClient(f"127.0.0.1:{submitter.grpc_port}", None)
        try:
            yield Setup(
                w3,
                address,
                trusted_root,
                EvmLightClientReader(chain, ORIGIN),
                client,
                submitter.destination.account,
            )
        finally:
            client.close()
            submitter.stop()


def origin_for(setup: Setup, beacon: VectorBeacon) -> EthereumLightClientOrigin:
    return EthereumLightClientOrigin(
        beacon,
        execution=None,  # type: ignore[arg-type]  # updates read only the beacon node
        network=MAINNET,
        trusted_block_root=setup.trusted_root,
        gateway=bytes(20),
        origin_domain=ORIGIN,
        backend=get_backend("blst"),
        clock=lambda: float(MAINNET.genesis_time + CURRENT_SLOT * MAINNET.seconds_per_slot),
    )


def test_a_forged_update_from_the_beacon_node_sends_nothing(setup: Setup) -> None:
    nonce = setup.w3.eth.get_transaction_count(setup.submitter_account)
    origin = origin_for(setup, VectorBeacon(setup.trusted_root, forge=True))
    with pytest.raises(UntrustedAnswer):
        origin.updates_to_reach(1, setup.reader.stored_headers())
    assert setup.w3.eth.get_transaction_count(setup.submitter_account) == nonce


def test_the_relayer_brings_the_contract_to_the_python_light_clients_finalized_header(setup: Setup) -> None:
    origin = origin_for(setup, VectorBeacon(setup.trusted_root))
    before = setup.reader.stored_headers()
    finality = read_json(MAINNET_LC / "finality.json")["data"]["finalized_header"]
    target = int(finality["execution"]["block_number"])
    updates = origin.updates_to_reach(target, before)
    assert len(updates) >= 2 and updates[-1].finalized_block == target
    sent = [setup.client.submit_light_client_update(ORIGIN, update, 120) for update in updates]
    assert all(transaction for transaction, _ in sent)
    after = setup.reader.stored_headers()
    python_header = origin._client.finalized_header  # type: ignore[union-attr]
    assert after.finalized_slot == python_header.beacon.slot
    assert after.latest_block == python_header.execution.block_number == target
    assert setup.reader.execution_header(target) == (
        python_header.execution.block_hash,
        python_header.execution.receipts_root,
    )
    # A competing relayer's copy (or our own retry) is not sent again; nothing new is planned.
    nonce = setup.w3.eth.get_transaction_count(setup.submitter_account)
    assert setup.client.submit_light_client_update(ORIGIN, updates[-1], 60) == (b"", target)
    assert setup.w3.eth.get_transaction_count(setup.submitter_account) == nonce
    assert origin.updates_to_reach(target, after) == []
    assert origin.updates_to_reach(target + 1, after) == []  # not finalized on the origin yet


def test_a_destination_light_client_that_answers_nothing_readable_is_rpc_unavailable(setup: Setup) -> None:
    from relay.errors import RpcUnavailable

    rpc_url = str(setup.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    chain = EvmChainConfig.model_validate(
        {
            "name": "destination",
            "domain": DESTINATION,
            "rpc_urls": [rpc_url],
            "gateway": "0x" + "42" * 20,
            # no code at this address: every view answers empty data, which does not decode
            "light_client_origins": {ORIGIN: {"light_client": "0x" + "99" * 20, "inbox": "0x" + "43" * 20}},
        }
    )
    reader = EvmLightClientReader(chain, ORIGIN)
    with pytest.raises(RpcUnavailable, match="light client view did not answer"):
        reader.stored_headers()
    with pytest.raises(RpcUnavailable):
        reader.execution_header(1)
