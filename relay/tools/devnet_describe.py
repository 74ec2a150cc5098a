"""What `relay devnet` prints for an operator: every address, and a ready-to-paste `relay send`.

With relayer replicas each one's public, operator and metrics addresses are listed; the `relay
send` line goes through the first replica (any of them serves every message: they share the
store).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.tools.devnet_relayers import operator_name

if TYPE_CHECKING:
    from relay.tools.devnet import Devnet


def send_command(
    devnet: Devnet, source: str | int | None = None, destination: str | int | None = None
) -> str:
    """A ready-to-paste `relay send --wait` line: from the example app's user on `source` (default
    the first chain) to `destination`'s example app (default the second), through the first
    relayer's public port with the devnet's TLS files."""
    origin = devnet.chain(source) if source is not None else devnet.chains[0]
    target = devnet.chain(destination) if destination is not None else devnet.chains[1]
    parts = [
        "relay send",
        f"--rpc {origin.rpc_url}",
        f"--gateway {origin.gateway}",
        f"--key-file {devnet.run_dir}/keys/user.hex",
        f"--destination {target.domain}",
        f"--recipient {target.counter}",
        "--body 'hello'",
        f"--gas-limit {devnet.options.message_gas_limit}",
        "--wait",
        f"--relay {devnet.addresses.get(devnet.relayer)}",
    ]
    issued = devnet.certificates.get("client")
    if issued is not None:
        parts += [f"--ca {issued.ca}", f"--cert {issued.cert}", f"--key {issued.key}"]
    else:
        parts.append("--insecure")
    return " ".join(parts)


def describe_relayers(devnet: Devnet) -> list[str]:
    """One block of lines per relayer replica: public and operator ports, status page and metrics."""
    lines = []
    many = len(devnet.relayer_names) > 1
    for name in devnet.relayer_names:
        label = f"relayer replica {name}" if many else "relayer"
        lines.append(f"{label} (RelayService gRPC): {devnet.addresses.get(name)}")
        operator = operator_name(name)
        if operator in devnet.addresses:
            lines.append(f"{label} operator port (mutual TLS): {devnet.addresses[operator]}")
        if name in devnet.metrics_addresses:
            http = devnet.metrics_addresses[name]
            lines.append(f"{label} status page: http://{http}/ (metrics http://{http}/metrics)")
    return lines


def describe(devnet: Devnet) -> str:
    """The addresses an operator needs, one per line."""
    lines = [f"run folder: {devnet.run_dir}"]
    for chain in devnet.chains:
        lines.append(
            f"chain {chain.name}: domain {chain.domain}, rpc {chain.rpc_url}, gateway {chain.gateway}, "
            f"example app {chain.counter}"
        )
    if devnet.database is not None:
        lines.append(
            f"store: PostgreSQL {devnet.database.version}, {devnet.database.dsn} "
            f"(password file {devnet.database.password_file}; server log {devnet.database.server.log_path})"
        )
    else:
        lines.append(f"store: SQLite {devnet.run_dir}/relayer.db")
    lines.extend(describe_relayers(devnet))
    if "client" in devnet.certificates:
        client = devnet.certificates["client"]
        lines.append(f"TLS: CA {client.ca}, client certificate {client.cert}, key {client.key}")
    else:
        lines.append("TLS: off (--insecure): every gRPC connection is plaintext")
    if devnet.prometheus is not None:
        lines.append(f"prometheus: {devnet.prometheus.url} (alerts {devnet.prometheus.url}/alerts)")
    relayers = {name for relayer in devnet.relayer_names for name in (relayer, operator_name(relayer))}
    for name in sorted(devnet.addresses):
        if name not in relayers:
            metrics = devnet.metrics_addresses.get(name)
            suffix = f", metrics http://{metrics}/metrics" if metrics else ""
            lines.append(f"{name}: gRPC {devnet.addresses[name]}{suffix}")
    lines.append(f"operator token: {devnet.run_dir}/keys/operator-token")
    route = devnet.lightclient
    if route is not None:
        source, destination = devnet.chains
        lines.append(
            f"simulated beacon node (light-client API over {source.name}): {route.url}; trusted checkpoint "
            f"0x{route.trusted_block_root.hex()} (slot {route.trusted_slot}); network config "
            f"{devnet.run_dir}/configs/beacon-sim.yaml"
        )
        lines.append(
            f"on {destination.name}: EthereumLightClient {route.light_client}, EthereumInbox {route.inbox} "
            f"(enrolled for origin {source.domain}); no attestors, messages {source.name} -> {destination.name} only"
        )
    else:
        lines.append(f"attestors' operator token (SignHandover): {devnet.run_dir}/keys/attestor-token")
    lines.append(f"logs: {devnet.run_dir}/logs/")
    lines.append(f"send a message: {send_command(devnet)}")
    return "\n".join(lines)
