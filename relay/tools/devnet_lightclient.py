"""`relay devnet --source-mode lightclient`: a light-client origin, verified on-chain, no attestors.

The first chain (alpha) is the Ethereum-like source; a simulated beacon chain
(`relay.tools.beacon_sim`) follows its real anvil blocks and serves the beacon light-client API on
loopback. On the second chain (beta):

- an `EthereumLightClient`, initialised from the simulation's bootstrap at a checkpoint
  (`adapters.ethereum.onchain_client.deploy_light_client`);
- an `EthereumInbox` bound to beta's Gateway, that light client, alpha's domain and Gateway,
  enrolled by the Gateway's owner as alpha's verifier (`enrollOriginVerifier`).

No attestor runs and no committee is enrolled. The relayer follows alpha as a `verification:
lightclient` source (a `kind: ethereum` chain whose `light_client` section points at the
simulation), sends light-client updates and receipt proofs through beta's submitter, and messages
flow one way, alpha -> beta. What is simulated: the beacon chain and its sync-committee keys
(derived from a public seed). What is real: anvil's blocks, hashes, receipts roots, the receipt
proofs, and the on-chain BLS and SSZ checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from relay.errors import ConfigurationError
from relay.tools.beacon_sim.chain import SimulatedBeaconChain, network_spec_config, simulated_preset
from relay.tools.beacon_sim.server import BeaconApiServer

if TYPE_CHECKING:
    from relay.tools.devnet import Devnet
    from relay.tools.devnet_options import DevnetOptions


def validate_lightclient_options(options: DevnetOptions) -> None:
    """Refuse option combinations the light-client devnet cannot run (`ConfigurationError`)."""
    from relay.tools.devnet_options import SOURCE_MODES

    if options.source_mode not in SOURCE_MODES:
        raise ConfigurationError(f"source mode is one of {', '.join(SOURCE_MODES)}", mode=options.source_mode)
    if options.source_mode != "lightclient":
        return
    # One beacon slot per block, slot s starting at genesis + s x seconds: a fractional or zero
    # block time would make the simulation sign slots that lie in the verifiers' future.
    if options.block_time < 1 or options.block_time != math.floor(options.block_time):
        raise ConfigurationError(
            "light-client mode needs a whole number of seconds per block (>= 1)",
            block_time=options.block_time,
        )
    if options.spare_members or options.committee_scheme != "bls":
        raise ConfigurationError("light-client mode has no committee: no rotation, no committee scheme")
    if not 0 < options.lightclient_participation <= 1:
        raise ConfigurationError(
            "participation is a share in (0, 1]", participation=options.lightclient_participation
        )


@dataclass
class LightClientRoute:
    """The simulated beacon chain over the source chain, and what is deployed for it on the destination."""

    chain: SimulatedBeaconChain
    server: BeaconApiServer
    trusted_block_root: bytes = b""
    trusted_slot: int = 0
    light_client: str = ""
    inbox: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The simulated beacon node's base URL."""
        return self.server.url

    def stop(self) -> None:
        """Stop serving the beacon API."""
        self.server.stop()

    def describe(self) -> str:
        """One line for the devnet summary."""
        preset = self.chain.preset
        return (
            "on-chain Ethereum light client, no attestors running; simulated beacon chain "
            f"({preset.sync_committee_size} known sync-committee keys, "
            f"{preset.slots_per_sync_committee_period}-slot periods, "
            f"{self.chain.participation:.0%} participation) over the source chain's real blocks"
        )


def summary_lines(devnet: Devnet) -> list[str]:
    """What the destination's light client reached, and the gas its updates cost, for the summary."""
    from adapters.ethereum.onchain_client import light_client_contract
    from adapters.evm.rpc import EvmEndpoint

    route: LightClientRoute = devnet.lightclient
    destination = devnet.chains[1]
    web3 = EvmEndpoint(destination.rpc_url).web3
    contract = light_client_contract(web3, route.light_client)
    finalized = int(contract.functions.finalizedSlot().call())
    block = int(contract.functions.latestExecutionBlockNumber().call())
    period = int(contract.functions.currentPeriod().call())
    # The submitter's transactions to the light client are the relayer's updates.
    from eth_account import Account

    submitter = Account.from_key(devnet.submitter_key).address.lower()
    target = route.light_client.lower()
    gas, updates = 0, 0
    for number in range(int(web3.eth.block_number) + 1):
        transactions: list[Any] = list(web3.eth.get_block(number, full_transactions=True)["transactions"])
        for transaction in transactions:
            if (
                str(transaction["from"]).lower() == submitter
                and str(transaction.get("to") or "").lower() == target
            ):
                receipt = web3.eth.get_transaction_receipt(transaction["hash"])
                gas += int(receipt["gasUsed"])
                updates += 1
    return [
        f"light client on {destination.name}: finalized slot {finalized} (period {period}), "
        f"execution block {block}; trusted checkpoint slot {route.trusted_slot}",
        f"light-client updates sent by the submitter: {updates}"
        + (f", {gas // updates:,} gas each on average" if updates else ""),
    ]


def start_lightclient_route(devnet: Devnet) -> LightClientRoute:
    """Start the simulated beacon chain over the first chain and its beacon API on loopback."""
    from adapters.ethereum.transport import HttpExecutionTransport
    from relay.verify.bls import get_backend

    options = devnet.options
    source = devnet.chains[0]
    chain = SimulatedBeaconChain.follow(
        HttpExecutionTransport(source.rpc_url),
        get_backend(),
        seconds_per_slot=int(options.block_time),
        preset=simulated_preset(epochs_per_sync_committee_period=options.lightclient_period_epochs),
        participation=options.lightclient_participation,
    )
    return LightClientRoute(chain, BeaconApiServer(chain).start())


def deploy_lightclient_route(devnet: Devnet) -> None:
    """Gateways and apps on both chains; on the destination the light client and the enrolled inbox."""
    from adapters.ethereum.inbox import deploy_inbox
    from adapters.ethereum.onchain_client import deploy_light_client
    from adapters.evm import deploy
    from relay.tools.devnet_options import DEVNET_ORACLE_GAS_PRICE

    route = devnet.lightclient
    source, destination = devnet.chains
    senders = [deploy.TransactionSender(chain.rpc_url, devnet.deployer_key) for chain in devnet.chains]
    pending: list[list[bytes]] = []
    for chain, sender in zip(devnet.chains, senders, strict=True):
        deployment, hashes = deploy.start_deployment(sender, chain.domain)
        chain.gateway, chain.counter = deployment.gateway, deployment.counter
        pending.append(hashes)
    pending[0].append(
        deploy.send_gas_oracle(
            senders[0], source.gateway, destination.domain, gas_price=DEVNET_ORACLE_GAS_PRICE
        )
    )
    for sender, hashes in zip(senders, pending, strict=True):
        sender.wait(hashes)
    # The trusted checkpoint: a block the simulation already built, as an operator would pick one.
    route.trusted_slot = route.chain.checkpoint_slot()
    route.trusted_block_root = route.chain.block_root(route.trusted_slot)
    bootstrap = route.chain.bootstrap(route.trusted_block_root)
    beta = senders[1]
    route.light_client = deploy_light_client(
        beta.web3, beta, bootstrap, route.chain.network, route.trusted_block_root
    )
    route.inbox = deploy_inbox(beta, destination.gateway, route.light_client, source.domain, source.gateway)


def write_network_config(devnet: Devnet) -> str:
    """The simulated chain's consensus config, as `configs/beacon-sim.yaml` (for `network_config`)."""
    assert devnet.run_dir is not None  # noqa: S101 - set by _prepare_run_dir
    path = Path(devnet.run_dir) / "configs" / "beacon-sim.yaml"
    path.write_text(yaml.safe_dump(network_spec_config(devnet.lightclient.chain.network), sort_keys=False))
    return str(path)


def write_lightclient_configs(devnet: Devnet) -> None:
    """The destination's submitter and the relayers: one `verification: lightclient` source, no attestors."""
    route: LightClientRoute = devnet.lightclient
    source, destination = devnet.chains
    network = route.chain.network
    source_chain = {
        **devnet._chain_config(source),
        "kind": "ethereum",
        "light_client": {
            "trusted_block_root": "0x" + route.trusted_block_root.hex(),
            "beacon_url": route.url,
            "execution_url": source.rpc_url,
            "network": network.name,
            "network_config": write_network_config(devnet),
            "genesis_validators_root": "0x" + network.genesis_validators_root.hex(),
        },
    }
    destination_chain = {
        **devnet._chain_config(destination),
        "light_client_origins": {
            str(source.domain): {
                "light_client": route.light_client,
                "inbox": route.inbox,
            }
        },
    }
    destinations = [devnet.add_submitter(destination, destination_chain)]
    devnet.add_relayers([{"chain": source_chain, "verification": "lightclient"}], destinations)
