"""The Helm chart, rendered by Helm's own Go engine (helm-python-sdk, no helm binary, offline).

Every rendered object is validated against the Kubernetes OpenAPI schema (kubernetes-validate,
strict: unknown fields fail); the checks below pin the operational contract: probes on
/healthz and /readyz, non-root with a read-only root filesystem and a writable /tmp, a PVC for
the relayer's SQLite store (one pod) or, with a PostgreSQL DSN Secret, a Deployment of replicas
with a PodDisruptionBudget and a migration hook Job, and a PrometheusRule identical to
deploy/prometheus/alerts.yml.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Imported plainly: a missing dev dependency must fail the run, not skip it.
import helm_python as helm
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "relay"
EXAMPLE = CHART / "examples" / "multichain-values.yaml"
POSTGRES_EXAMPLE = CHART / "examples" / "postgres-values.yaml"
KUBE_VERSION = "1.30.0"
# Custom resources of the Prometheus operator and cert-manager: not in the Kubernetes schema,
# checked by hand below.
CUSTOM_KINDS = {"ServiceMonitor": "monitoring.coreos.com/v1", "PrometheusRule": "monitoring.coreos.com/v1"}
CUSTOM_KINDS["Certificate"] = "cert-manager.io/v1"


def render(values: dict[str, Any] | None) -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values)
        manifests = chart.render(values, name="relay", namespace="relay", is_install=True)
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def example_with(**changes: Any) -> dict[str, Any]:
    """The multichain example with top-level `changes` (e.g. tls={...})."""
    values = yaml.safe_load(EXAMPLE.read_text())
    values.update(changes)
    return values


def postgres_example(**relayer_changes: Any) -> dict[str, Any]:
    """The multichain example with the PostgreSQL overlay (helm -f ... -f postgres-values.yaml)."""
    values = yaml.safe_load(EXAMPLE.read_text())
    values["relayer"].update(yaml.safe_load(POSTGRES_EXAMPLE.read_text())["relayer"])
    values["relayer"].update(relayer_changes)
    return values


CERT_MANAGER = {"enabled": True, "mountPath": "/etc/relay-tls", "certManager": {"enabled": True}}


@pytest.fixture(scope="module", params=["default", "multichain", "cert-manager", "plaintext", "postgres"])
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    values = {
        "default": None,
        "multichain": yaml.safe_load(EXAMPLE.read_text()),
        "cert-manager": example_with(tls=CERT_MANAGER),
        "plaintext": example_with(tls={"enabled": False, "mountPath": "/etc/relay-tls"}),
        "postgres": postgres_example(),
    }[request.param]
    return render(values)


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def workloads(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (o for o in objects if o["kind"] in {"Deployment", "StatefulSet"})


@pytest.mark.parametrize("values_file", [None, EXAMPLE, POSTGRES_EXAMPLE])
def test_chart_lints_clean(values_file: Path | None) -> None:
    values = yaml.safe_load(values_file.read_text()) if values_file else None
    if values_file == POSTGRES_EXAMPLE:
        values = postgres_example()
    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


def test_every_object_is_valid_kubernetes(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            assert obj["apiVersion"] == CUSTOM_KINDS[obj["kind"]] and obj["spec"]
            continue
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_workloads_have_probes_non_root_read_only_root_and_tmp(objects: list[dict[str, Any]]) -> None:
    found = list(workloads(objects))
    assert found
    for workload in found:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes["tmp"]
        for container in pod["containers"]:
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert mounts["/tmp"]["name"] == "tmp"
            assert container["resources"]["requests"]
            assert container["args"][1:] == ["--config", "/etc/relay/config.yaml"]
            assert container["args"][0] in {"attestor", "relayer", "submitter"}


@pytest.mark.parametrize("values_file", [None, EXAMPLE])
def test_relayer_has_a_persistent_volume_for_its_store(values_file: Path | None) -> None:
    objects = render(yaml.safe_load(values_file.read_text()) if values_file else None)
    (relayer,) = [o for o in of_kind(objects, "StatefulSet") if o["metadata"]["name"] == "relay-relayer"]
    assert not [o for o in of_kind(objects, "Deployment") if o["metadata"]["name"] == "relay-relayer"]
    assert of_kind(objects, "Job") == []  # no migration hook: SQLite migrates itself on open
    assert relayer["spec"]["replicas"] == 1
    (claim,) = relayer["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    mounts = relayer["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/var/lib/relay"} in mounts
    config = relayer_config(objects)
    assert config["store"].startswith("/var/lib/relay/")


def attestor_configs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: yaml.safe_load(o["data"]["config.yaml"])
        for o in of_kind(objects, "ConfigMap")
        if o["metadata"]["name"].startswith("relay-attestor-")
    }


@pytest.mark.parametrize("persistence", [True, False], ids=["pvc", "emptydir"])
def test_attestors_keep_their_signed_log_on_a_writable_volume(persistence: bool) -> None:
    values = yaml.safe_load(EXAMPLE.read_text())
    values.setdefault("attestor", {})["persistence"] = {"enabled": persistence}
    objects = render(values)
    attestors = [
        o for o in of_kind(objects, "StatefulSet") if o["metadata"]["name"].startswith("relay-attestor-")
    ]
    assert len(attestors) == len(values["attestors"])
    configs = attestor_configs(objects)
    for workload in attestors:
        pod = workload["spec"]["template"]["spec"]
        assert {"name": "state", "mountPath": "/var/lib/relay"} in pod["containers"][0]["volumeMounts"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        if persistence:
            (claim,) = workload["spec"]["volumeClaimTemplates"]
            assert claim["metadata"]["name"] == "state" and "state" not in volumes
            assert claim["spec"]["resources"]["requests"]["storage"] == "100Mi"
        else:
            assert "volumeClaimTemplates" not in workload["spec"] and volumes["state"] == {
                "name": "state",
                "emptyDir": {},
            }
        config = configs[workload["metadata"]["name"]]
        assert config["signed_log"] == "/var/lib/relay/signed.jsonl"


def test_an_ethereum_mode_attestor_keeps_its_state_file_on_the_volume() -> None:
    from relay.roles.attestor import AttestorConfig

    values = yaml.safe_load(EXAMPLE.read_text())
    chain = values["chains"][0]
    chain.update(kind="ethereum", light_client={"trusted_block_root": "0x" + "11" * 32})
    configs = attestor_configs(render(values))
    ethereum = [c for c in configs.values() if c["chain"]["name"] == chain["name"]]
    assert ethereum and all(
        c["chain"]["light_client"]["state_file"] == "/var/lib/relay/ethereum-state.json" for c in ethereum
    )
    others = [c for c in configs.values() if c["chain"]["name"] != chain["name"]]
    assert all("light_client" not in c["chain"] for c in others)
    for config in ethereum:
        config["bls_key"] = {"value": "0x01"}
        parsed = AttestorConfig.model_validate(config)
        assert parsed.chain.light_client.state_file == "/var/lib/relay/ethereum-state.json"  # type: ignore[union-attr]


def relayer_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (config_map,) = [o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"] == "relay-relayer"]
    return yaml.safe_load(config_map["data"]["config.yaml"])


def test_pdb_and_network_policy_cover_every_role(objects: list[dict[str, Any]]) -> None:
    roles = {w["metadata"]["labels"]["app.kubernetes.io/component"] for w in workloads(objects)}
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        covered = {
            o["spec"].get("selector", o["spec"].get("podSelector"))["matchLabels"][
                "app.kubernetes.io/component"
            ]
            for o in of_kind(objects, kind)
        }
        assert roles <= covered, (kind, roles - covered)


def test_multichain_configs_follow_the_values() -> None:
    values = yaml.safe_load(EXAMPLE.read_text())
    objects = render(values)
    config = relayer_config(objects)
    chains = {c["name"]: c for c in values["chains"]}
    assert [s["chain"] for s in config["sources"]] == [chains[n] for n in sorted(values["committees"])]
    for source in config["sources"]:
        assert isinstance(source["chain"]["gateway"], str)  # hex stays a string in YAML 1.1 parsers
        assert source["committee"] == values["committees"][source["chain"]["name"]]
        expected = [a["name"] for a in values["attestors"] if a["chain"] == source["chain"]["name"]]
        assert source["attestors"] == [f"relay-attestor-{n}.relay.svc:50051" for n in expected]
    assert config["destinations"] == [
        {
            "name": s["chain"],
            "domain": chains[s["chain"]]["domain"],
            "submitter": f"relay-submitter-{s['name']}.relay.svc:50051",
            # the relayer reads the destination's delivered flags itself
            "chain": chains[s["chain"]],
        }
        for s in values["submitters"]
    ]
    deployments = {
        d["metadata"]["name"]: d for d in workloads(objects) if d["metadata"]["name"] != "relay-relayer"
    }
    assert len(deployments) == len(values["attestors"]) + len(values["submitters"])
    # keys: existingSecret is mounted as is; an inline value becomes a chart-made Secret
    pod = deployments["relay-attestor-alpha-0"]["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["key"]["secret"]["secretName"] == "relay-alpha-0-bls"
    (secret,) = of_kind(objects, "Secret")
    assert secret["metadata"]["name"] == "relay-submitter-gamma-0-key"
    pod = deployments["relay-submitter-gamma-0"]["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["key"]["secret"]["secretName"] == secret["metadata"]["name"]


def test_prometheus_rule_equals_deploy_alerts_and_dashboard_is_shipped() -> None:
    objects = render(yaml.safe_load(EXAMPLE.read_text()))
    (rule,) = of_kind(objects, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    (monitor,) = of_kind(objects, "ServiceMonitor")
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/part-of"  # job="relay", as RelayRoleDown expects
    (dashboard,) = [o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"] == "relay-dashboard"]
    shipped = json.loads(dashboard["data"]["relay-dashboard.json"])
    assert shipped == json.loads((ROOT / "deploy" / "grafana" / "relay-dashboard.json").read_text())


def test_default_values_render_no_custom_resources(objects: list[dict[str, Any]]) -> None:
    kinds = {o["kind"] for o in objects}
    assert {"StatefulSet", "Service", "ConfigMap"} <= kinds


def test_schema_rejects_unknown_keys_and_missing_keys() -> None:
    with helm.Chart.load(str(CHART)) as chart:
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(
                {
                    "chains": [
                        {
                            "name": "alpha",
                            "domain": 1,
                            "rpc_urls": ["x"],
                            "gateway": "0x01",
                            "rpc_url": "typo",
                        }
                    ]
                }
            )
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema({"attestors": [{"name": "a-0", "chain": "alpha", "key": {}}]})


def test_a_member_on_an_undeclared_chain_fails_to_render() -> None:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmRenderError, match="not declared"):
        chart.render(
            {"submitters": [{"name": "x-0", "chain": "nowhere", "key": {"existingSecret": "s"}}]},
            name="relay",
            namespace="relay",
        )


def role_configs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each workload's config.yaml, by ConfigMap name (= workload name)."""
    return {
        o["metadata"]["name"]: yaml.safe_load(o["data"]["config.yaml"])
        for o in of_kind(objects, "ConfigMap")
        if "config.yaml" in o.get("data", {})
    }


def test_every_role_mounts_its_cert_manager_secret_and_runs_mutual_tls() -> None:
    objects = render(yaml.safe_load(EXAMPLE.read_text()))
    configs = role_configs(objects)
    found = list(workloads(objects))
    assert len(found) == 1 + 10 + 3
    for workload in found:
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        (tls,) = [v for v in pod["volumes"] if v["name"] == "tls"]
        assert tls["secret"]["secretName"] == f"{name}-tls"
        assert [i["key"] for i in tls["secret"]["items"]] == ["ca.crt", "tls.crt", "tls.key"]
        # Root-owned, group (fsGroup) readable, never world-readable: what the roles accept.
        assert tls["secret"]["defaultMode"] == 0o440
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["tls"] == {"name": "tls", "mountPath": "/etc/relay-tls", "readOnly": True}
        assert configs[name]["tls"] == {
            "ca": "/etc/relay-tls/ca.crt",
            "cert": "/etc/relay-tls/tls.crt",
            "key": "/etc/relay-tls/tls.key",
        }
        assert "insecure_plaintext" not in configs[name]
    relayer = configs["relay-relayer"]
    assert relayer["operator_listen"] == "0.0.0.0:50052" and relayer["listen"] == "0.0.0.0:50051"
    (service,) = [o for o in of_kind(objects, "Service") if o["metadata"]["name"] == "relay-relayer"]
    assert {"name": "operator", "port": 50052, "targetPort": "operator", "protocol": "TCP"} in service[
        "spec"
    ]["ports"]
    # Nobody reaches the operator port unless networkPolicy.relayerOperatorFrom names them.
    (policy,) = [o for o in of_kind(objects, "NetworkPolicy") if o["metadata"]["name"] == "relay-relayer"]
    assert all(rule["ports"][0]["port"] != "operator" for rule in policy["spec"]["ingress"])


def test_cert_manager_certificates_write_the_secrets_the_workloads_mount() -> None:
    values = example_with(tls=CERT_MANAGER)
    values["attestors"][0]["tlsSecret"] = "alpha-0-from-vault"
    values["networkPolicy"]["relayerOperatorFrom"] = [{"podSelector": {"matchLabels": {"role": "ops"}}}]
    values["relayer"]["operatorToken"] = {"existingSecret": "relay-operator", "secretKey": "token"}
    objects = render(values)
    certificates = {c["spec"]["secretName"]: c for c in of_kind(objects, "Certificate")}
    mounted = {
        v["secret"]["secretName"]
        for w in workloads(objects)
        for v in w["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "tls"
    }
    assert set(certificates) == mounted and "alpha-0-from-vault" in mounted
    for certificate in certificates.values():
        spec = certificate["spec"]
        assert {"server auth", "client auth"} <= set(spec["usages"])
        assert spec["issuerRef"]["name"] == "relay-ca"
        assert any(name.endswith(".relay.svc") for name in spec["dnsNames"])
    # Each relayer's address of an attestor is a DNS name of that attestor's certificate.
    config = role_configs(objects)["relay-relayer"]
    by_service = {c["spec"]["commonName"]: c for c in certificates.values()}
    for source in config["sources"]:
        for address in source["attestors"]:
            host = address.rsplit(":", 1)[0]
            assert host in by_service[host.split(".")[0]]["spec"]["dnsNames"]
    (policy,) = [o for o in of_kind(objects, "NetworkPolicy") if o["metadata"]["name"] == "relay-relayer"]
    assert {
        "ports": [{"port": "operator", "protocol": "TCP"}],
        "from": values["networkPolicy"]["relayerOperatorFrom"],
    } in policy["spec"]["ingress"]
    assert config["operator_token"] == {"file": "/etc/relay-operator/token"}
    (relayer,) = [w for w in workloads(objects) if w["metadata"]["name"] == "relay-relayer"]
    volumes = {v["name"]: v for v in relayer["spec"]["template"]["spec"]["volumes"]}
    assert volumes["operator-token"]["secret"]["secretName"] == "relay-operator"


def test_tls_disabled_renders_plaintext_configs_without_operator_port() -> None:
    objects = render(example_with(tls={"enabled": False, "mountPath": "/etc/relay-tls"}))
    for name, config in role_configs(objects).items():
        assert config.get("insecure_plaintext") is True and "tls" not in config, name
        assert "operator_listen" not in config
    for workload in workloads(objects):
        assert all(v["name"] != "tls" for v in workload["spec"]["template"]["spec"]["volumes"])
    assert of_kind(objects, "Certificate") == []


def test_schema_rejects_unknown_tls_keys() -> None:
    with helm.Chart.load(str(CHART)) as chart:
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema({"tls": {"enabled": True, "mountPath": "/x", "insecure": True}})
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema({"relayer": {"tlsSecret": "Not_A_Name"}})


@pytest.mark.parametrize("tls_enabled", [True, False], ids=["tls", "plaintext"])
@pytest.mark.parametrize(
    "role, model_path",
    [
        ("attestor", "relay.roles.attestor:AttestorConfig"),
        ("submitter", "relay.roles.submitter:SubmitterConfig"),
        ("relayer", "relay.relayer:RelayerConfig"),
    ],
)
def test_rendered_configs_are_accepted_by_the_roles_strict_models(
    role: str, model_path: str, tls_enabled: bool
) -> None:
    import importlib

    module_name, _, class_name = model_path.partition(":")
    model = getattr(importlib.import_module(module_name), class_name)
    assert "metrics_listen" in model.model_fields  # the probes need /healthz and /readyz served
    configs = [
        yaml.safe_load(o["data"]["config.yaml"])
        for o in render(example_with(tls={"enabled": tls_enabled, "mountPath": "/etc/relay-tls"}))
        if o["kind"] == "ConfigMap"
        and o["metadata"]["labels"]["app.kubernetes.io/component"] == role
        and "config.yaml" in o.get("data", {})
    ]
    assert configs
    for config in configs:
        model.model_validate(config)  # unknown or missing keys raise: the chart drifted from the role


def test_an_attestor_follows_its_committee_on_the_chain_it_names() -> None:
    values = yaml.safe_load(EXAMPLE.read_text())
    values["attestors"][0]["committeeChain"] = "beta"
    objects = render(values)
    configs = {
        o["metadata"]["name"]: yaml.safe_load(o["data"]["config.yaml"])
        for o in of_kind(objects, "ConfigMap")
        if "-attestor-" in o["metadata"]["name"]
    }
    chains = {c["name"]: c for c in values["chains"]}
    assert configs["relay-attestor-alpha-0"]["committee_chain"] == chains["beta"]
    assert "committee_chain" not in configs["relay-attestor-alpha-1"]


def test_an_attestor_mounts_its_operator_token_secret_for_sign_handover() -> None:
    values = yaml.safe_load(EXAMPLE.read_text())
    values["attestors"][0]["operatorTokenSecret"] = "alpha-0-operator"
    objects = render(values)
    configs = {
        o["metadata"]["name"]: yaml.safe_load(o["data"]["config.yaml"])
        for o in of_kind(objects, "ConfigMap")
        if "-attestor-" in o["metadata"]["name"]
    }
    assert configs["relay-attestor-alpha-0"]["operator_token"] == {"file": "/etc/relay-operator/token"}
    assert "operator_token" not in configs["relay-attestor-alpha-1"]
    pods = {o["metadata"]["name"]: o["spec"]["template"]["spec"] for o in of_kind(objects, "StatefulSet")}
    volumes = {v["name"]: v for v in pods["relay-attestor-alpha-0"]["volumes"]}
    assert volumes["operator-token"]["secret"]["secretName"] == "alpha-0-operator"
    assert volumes["operator-token"]["secret"]["defaultMode"] == 0o440
    (container,) = pods["relay-attestor-alpha-0"]["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["operator-token"] == {
        "name": "operator-token",
        "mountPath": "/etc/relay-operator",
        "readOnly": True,
    }
    assert "operator-token" not in {v["name"] for v in pods["relay-attestor-alpha-1"]["volumes"]}


def relayer_workload(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (relayer,) = [w for w in workloads(objects) if w["metadata"]["name"] == "relay-relayer"]
    return relayer


def test_postgres_relayer_is_a_deployment_of_replicas_sharing_the_store() -> None:
    objects = render(postgres_example(replicas=None, leaseSeconds=20))
    relayer = relayer_workload(objects)
    assert relayer["kind"] == "Deployment" and relayer["spec"]["replicas"] == 2  # PostgreSQL's default
    assert "volumeClaimTemplates" not in relayer["spec"] and "serviceName" not in relayer["spec"]
    # A rolling update never goes below the replicas it has: the leases move, work does not stop.
    assert relayer["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = relayer["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "store" not in volumes and all(
        m["mountPath"] != "/var/lib/relay" for m in container["volumeMounts"]
    )
    env = {e["name"]: e for e in container["env"]}
    # The DSN only from its Secret (RELAY_STORE overrides `store`); each pod's name is its replica id.
    assert env["RELAY_STORE"] == {
        "name": "RELAY_STORE",
        "valueFrom": {"secretKeyRef": {"name": "relay-store", "key": "dsn"}},
    }
    assert env["RELAY_REPLICA_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    config = relayer_config(objects)
    assert "store" not in config  # no SQLite path a pod could fall back to
    assert config["lease_seconds"] == 20
    # The password: a read-only Secret file, root-owned and group-readable (what the config accepts).
    assert config["store_password_file"] == "/etc/relay-store/password"
    assert volumes["store-password"]["secret"] == {
        "secretName": "relay-store",
        "defaultMode": 0o440,
        "items": [{"key": "password", "path": "password"}],
    }
    # The server's CA for the DSN's sslrootcert (verify-full), mounted the same way.
    assert volumes["store-ca"]["secret"] == {
        "secretName": "relay-store",
        "defaultMode": 0o440,
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["store-ca"] == {"name": "store-ca", "mountPath": "/etc/relay-store-ca", "readOnly": True}
    assert mounts["store-password"] == {
        "name": "store-password",
        "mountPath": "/etc/relay-store",
        "readOnly": True,
    }
    # Probes as for every role.
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # Replicas prefer different nodes; the term selects exactly the relayer's pods.
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    selector = term["podAffinityTerm"]["labelSelector"]["matchLabels"]
    assert selector == relayer["spec"]["selector"]["matchLabels"]
    assert selector.items() <= relayer["spec"]["template"]["metadata"]["labels"].items()
    # A drain keeps at least one replica serving.
    (budget,) = [
        o for o in of_kind(objects, "PodDisruptionBudget") if o["metadata"]["name"] == "relay-relayer"
    ]
    assert budget["spec"]["selector"]["matchLabels"] == relayer["spec"]["selector"]["matchLabels"]
    assert budget["spec"]["maxUnavailable"] < relayer["spec"]["replicas"]


def test_postgres_relayer_without_password_secret_mounts_nothing_and_keeps_user_affinity() -> None:
    values = postgres_example(replicas=3)
    values["relayer"]["store"]["postgres"]["passwordSecret"] = {"name": ""}
    del values["relayer"]["store"]["postgres"]["caSecret"]
    own = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}}
    values["affinity"] = own | {"nodeAffinity": {}}
    objects = render(values)
    relayer = relayer_workload(objects)
    assert relayer["spec"]["replicas"] == 3
    pod = relayer["spec"]["template"]["spec"]
    assert not {"store-password", "store-ca"} & {v["name"] for v in pod["volumes"]}
    assert "store_password_file" not in relayer_config(objects)
    assert pod["affinity"] == values["affinity"]  # an operator's own anti-affinity wins
    (job,) = of_kind(objects, "Job")
    assert "--password-file" not in job["spec"]["template"]["spec"]["containers"][0]["args"]


@pytest.mark.parametrize("replicas", [2, 5])
def test_sqlite_relayer_refuses_more_than_one_replica(replicas: int) -> None:
    values = yaml.safe_load(EXAMPLE.read_text())
    values["relayer"]["replicas"] = replicas
    with (
        helm.Chart.load(str(CHART)) as chart,
        pytest.raises(helm.HelmRenderError, match="needs a shared store"),
    ):
        chart.render(values, name="relay", namespace="relay")


@pytest.mark.parametrize("replicas", [0, 1])
def test_sqlite_relayer_may_run_zero_or_one_replica(replicas: int) -> None:
    values = yaml.safe_load(EXAMPLE.read_text())
    values["relayer"]["replicas"] = replicas
    relayer = relayer_workload(render(values))
    assert relayer["kind"] == "StatefulSet" and relayer["spec"]["replicas"] == replicas


def test_postgres_migration_runs_as_a_pre_install_and_pre_upgrade_hook_job() -> None:
    objects = render(postgres_example())
    (job,) = of_kind(objects, "Job")
    hooks = job["metadata"]["annotations"]
    assert set(hooks["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in hooks["helm.sh/hook-delete-policy"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert (
        container["image"] == relayer_workload(objects)["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    # The DSN is expanded from the Secret by the kubelet; it is never written into the Job.
    assert container["args"] == [
        "store",
        "migrate",
        "--store",
        "$(STORE_DSN)",
        "--password-file",
        "/etc/relay-store/password",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["STORE_DSN"]["valueFrom"] == {"secretKeyRef": {"name": "relay-store", "key": "dsn"}}
    assert not [name for name in env if name.startswith("RELAY_") and name != "RELAY_LOG_LEVEL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["store-password"]["secret"]["defaultMode"] == 0o440
    assert volumes["store-ca"]["secret"]["defaultMode"] == 0o440
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["store-ca"] == "/etc/relay-store-ca" and mounts["store-password"] == "/etc/relay-store"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["restartPolicy"] == "Never"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    kubernetes_validate.validate(job, KUBE_VERSION, strict=True)
    values = postgres_example()
    values["relayer"]["store"]["postgres"]["migrate"] = {"enabled": False}
    assert of_kind(render(values), "Job") == []


@pytest.mark.parametrize(
    "relayer",
    [
        {"store": {"postgres": {"dsnSecret": {"name": "s", "key": "dsn"}, "dsn": "postgresql://x"}}},
        {"store": {"postgres": {"dsnSecret": {"name": "s", "key": "../etc/passwd"}}}},
        {"store": {"postgres": {"dsnSecret": {"name": "Not_A_Name"}}}},
        {"store": {"postgres": {"passwordSecret": {"name": "s", "key": "a/b"}}}},
        {"store": {"postgres": {"caSecret": {"name": "s", "key": "ca.crt", "mountPath": "/"}}}},
        {"store": {"sqlite": {}}},
        {"replicas": -1},
        {"replicas": 1.5},
        {"leaseSeconds": 0},
        {"store": {"postgres": {"migrate": {"enabled": True, "hook": "post-install"}}}},
    ],
    ids=[
        "inline-dsn",
        "key-path",
        "bad-secret-name",
        "password-key-path",
        "ca-unknown-key",
        "unknown-backend",
        "negative-replicas",
        "fractional-replicas",
        "zero-lease",
        "unknown-migrate-key",
    ],
)
def test_schema_rejects_bad_store_values(relayer: dict[str, Any]) -> None:
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"relayer": relayer})


def test_schema_accepts_both_store_shapes() -> None:
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema({"relayer": {"replicas": None, "persistence": {"size": "5Gi"}}})
        chart.validate_schema(postgres_example())


def relayer_config_fields() -> set[str]:
    from relay.relayer import RelayerConfig

    return set(RelayerConfig.model_fields)


@pytest.mark.xfail(
    not {"lease_seconds", "replica_id", "store_password_file"} <= relayer_config_fields(),
    reason="the relayer's PostgreSQL config keys arrive with the replicas branch (issue 11)",
    strict=True,
)
def test_postgres_relayer_config_with_the_pods_environment_is_accepted(tmp_path: Path) -> None:
    """The ConfigMap plus the env the pod gets (DSN from the Secret, name from the downward API)."""
    from relay.config import load_config
    from relay.relayer import RelayerConfig

    objects = render(postgres_example())
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(relayer_config(objects)))
    environ = {
        # As the example's Secret holds it: the env value is read as a YAML scalar and stays a string.
        "RELAY_STORE": "postgresql://relay@pg.db.svc:5432/relay?sslmode=verify-full&sslrootcert=/etc/relay-store-ca/ca.crt",
        "RELAY_REPLICA_ID": "relay-relayer-7c9-x2",
    }
    config = load_config(RelayerConfig, path, environ)
    assert config.store == environ["RELAY_STORE"]
    assert config.replica_id == environ["RELAY_REPLICA_ID"]
    assert config.lease_seconds == 15
    assert config.store_password_file == "/etc/relay-store/password"


def test_an_ecdsa_committee_renders_ecdsa_keys_for_its_attestors() -> None:
    from relay.config import CommitteeConfig
    from relay.roles.attestor import AttestorConfig

    values = yaml.safe_load(EXAMPLE.read_text())
    addresses = ["0x" + f"{i:02x}" * 20 for i in range(1, 5)]
    values["committees"]["alpha"] = {
        "scheme": "ecdsa",
        "epoch": 1,
        "members": [{"address": address, "weight": 1} for address in addresses],
    }
    objects = render(values)
    configs = attestor_configs(objects)
    alpha = [c for c in configs.values() if c["chain"]["name"] == "alpha"]
    others = [c for c in configs.values() if c["chain"]["name"] != "alpha"]
    assert alpha and all("ecdsa_key" in c and "bls_key" not in c for c in alpha)
    assert others and all("bls_key" in c and "ecdsa_key" not in c for c in others)
    for config in alpha:
        AttestorConfig.model_validate(config)  # the role's strict model takes the rendered config
    (source,) = [s for s in relayer_config(objects)["sources"] if s["chain"]["name"] == "alpha"]
    assert CommitteeConfig.model_validate(source["committee"]).build().hash()  # scheme: ecdsa, 4 addresses


def test_a_light_client_source_renders_with_no_committee_and_parses() -> None:
    from relay.relayer.config import RelayerConfig

    values = yaml.safe_load(EXAMPLE.read_text())
    origin = values["chains"][0]
    origin.update(kind="ethereum", light_client={"trusted_block_root": "0x" + "11" * 32})
    values["committees"].pop(origin["name"], None)
    values["attestors"] = [a for a in values["attestors"] if a["chain"] != origin["name"]]
    values["lightClientSources"] = [origin["name"]]
    for chain in values["chains"][1:]:
        chain["light_client_origins"] = {
            origin["domain"]: {"light_client": "0x" + "12" * 20, "inbox": "0x" + "13" * 20}
        }
    config = relayer_config(render(values))
    (light,) = [s for s in config["sources"] if s.get("verification") == "lightclient"]
    assert light["chain"]["name"] == origin["name"] and "committee" not in light and "attestors" not in light
    config["operator_token"] = None
    transport = {"insecure_plaintext": True, "tls": None, "operator_listen": None}
    parsed = RelayerConfig.model_validate({**config, **transport})
    assert [s.is_light_client for s in parsed.sources].count(True) == 1
