"""The deployment's sharp edges (issue 12), each checked where it lives:

* Terraform: every resource waits for the API it needs (a resource created before its API is
  enabled fails the first `apply`), Binary Authorization has its API and a policy, the
  collector's edge has a Cloud Armor policy, the shop database bounds a slot's WAL.
* The Ingress routes only the Segment API: the collector's operations endpoints stay private.
* The runbook sets no password that nothing creates and puts none on a command line.
* The platform image's dbt manifest names no GCP project (one image for every project).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.routes import OPERATIONS_PATHS
from streaming.beam.launcher import DATAFLOW_DEFAULTS
from tests.infra.test_infra import hcl, terraform_locals, terraform_variables

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TERRAFORM = INFRA / "terraform"
OVERLAY = INFRA / "k8s" / "overlays" / "gcp"

# The API a resource type needs, by the type's prefix (longest first wins).
API_OF_TYPE = {
    "google_compute_": "compute.googleapis.com",
    "google_container_": "container.googleapis.com",
    "google_sql_": "sqladmin.googleapis.com",
    "google_pubsub_": "pubsub.googleapis.com",
    "google_bigquery_": "bigquery.googleapis.com",
    "google_secret_manager_": "secretmanager.googleapis.com",
    "google_artifact_registry_": "artifactregistry.googleapis.com",
    "google_storage_": "storage.googleapis.com",
    "google_service_account": "iam.googleapis.com",
    "google_binary_authorization_": "binaryauthorization.googleapis.com",
    "google_monitoring_": "monitoring.googleapis.com",
    "google_service_networking_": "servicenetworking.googleapis.com",
    "google_project_iam_": "cloudresourcemanager.googleapis.com",
}
ENABLER = "google_project_service.enabled"


@cache
def resources() -> dict[str, Any]:
    """{"type.name": body} of every resource of the configuration."""
    found = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        for block in hcl(path).get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    found[f"{kind}.{name}"] = body
    return found


def references(body: Any) -> set[str]:
    """Resources a body refers to (expressions and depends_on)."""
    text = json.dumps(body)
    known = resources()
    return {
        f"{kind}.{name}"
        for kind, name in re.findall(r"\b((?:google|random)_[a-z0-9_]+)\.([A-Za-z0-9_-]+)", text)
        if f"{kind}.{name}" in known
    }


def waits_for_apis(address: str) -> bool:
    seen, todo = set(), [address]
    while todo:
        current = todo.pop()
        if current == ENABLER:
            return True
        if current in seen:
            continue
        seen.add(current)
        todo += references(resources()[current])
    return False


def api_of(address: str) -> str | None:
    kind = address.split(".")[0]
    matches = [p for p in API_OF_TYPE if kind.startswith(p)]
    return API_OF_TYPE[max(matches, key=len)] if matches else None


def test_every_resource_waits_for_the_api_it_needs() -> None:
    enabled = set(
        re.findall(r'"([a-z.]+googleapis\.com)"', terraform_locals("main.tf")["services"])
    )
    late = []
    for address in resources():
        api = api_of(address)
        if api is None or address == ENABLER:
            continue
        assert api in enabled, f"{address} needs {api}, which main.tf does not enable"
        if not waits_for_apis(address):
            late.append(address)
    assert not late, f"created without waiting for their API (depends_on {ENABLER}): {late}"


def test_the_dependency_check_sees_a_missing_dependency() -> None:
    """Guards the check above: the collector's address (no reference to anything) only waits
    for the Compute API through its depends_on."""
    body = resources()["google_compute_global_address.collector"]
    assert ENABLER in references(body)
    assert not references({k: v for k, v in body.items() if k != "depends_on"})


def test_binary_authorization_has_its_api_and_a_policy() -> None:
    cluster = resources()["google_container_cluster.platform"]
    assert (
        cluster["binary_authorization"][0]["evaluation_mode"] == "PROJECT_SINGLETON_POLICY_ENFORCE"
    )
    policy = resources()["google_binary_authorization_policy.platform"]
    assert "google_binary_authorization_policy.platform" in references(cluster)
    rule = policy["default_admission_rule"][0]
    assert rule["evaluation_mode"] == "ALWAYS_DENY"
    assert terraform_variables()["binauthz_enforcement_mode"] == "ENFORCED_BLOCK_AND_AUDIT_LOG"
    patterns = json.dumps(policy["dynamic"])
    assert "-docker.pkg.dev/${var.project}/platform/*" in patterns  # the images the repo builds


def test_the_collector_edge_has_a_rate_limit_and_the_backend_uses_it() -> None:
    armor = resources()["google_compute_security_policy.collector"]
    limits = [r for r in armor["rule"] if r["action"] == "throttle"]
    assert limits and limits[0]["rate_limit_options"][0]["exceed_action"] == "deny(429)"
    docs = list(yaml.safe_load_all((OVERLAY / "collector-ingress.yaml").read_text()))
    backend = next(d for d in docs if d["kind"] == "BackendConfig")
    assert backend["spec"]["securityPolicy"]["name"] == armor["name"]
    service = yaml.safe_load_all((INFRA / "k8s/base/collector/service.yaml").read_text())
    annotations = next(iter(service))["metadata"]["annotations"]
    assert json.loads(annotations["cloud.google.com/backend-config"]) == {
        "default": backend["metadata"]["name"]
    }


def test_the_ingress_routes_only_the_segment_api() -> None:
    ingress = next(
        d
        for d in yaml.safe_load_all((OVERLAY / "collector-ingress.yaml").read_text())
        if d["kind"] == "Ingress"
    )
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert "defaultBackend" not in ingress["spec"]  # unmatched paths get the LB's 404

    def routed(path: str) -> bool:
        for item in paths:
            prefix = item["path"]
            if item["pathType"] == "Exact" and path == prefix:
                return True
            if item["pathType"] == "Prefix" and (
                path == prefix.rstrip("/") or path.startswith(prefix.rstrip("/") + "/")
            ):
                return True
        return False

    for private in sorted(OPERATIONS_PATHS):
        assert not routed(private), f"{private} is reachable from the internet"
    for public in ("/v1/batch", "/v1/track", "/v1/identify", "/v1/page", "/v1/import"):
        assert routed(public), public


def test_the_shop_database_bounds_the_wal_a_slot_holds() -> None:
    shop = resources()["google_sql_database_instance.shop"]
    flags = {f["name"]: f["value"] for f in shop["settings"][0]["database_flags"]}
    assert flags["max_slot_wal_keep_size"] == "${tostring(var.shop_max_slot_wal_keep_size_mb)}"
    assert 0 < terraform_variables()["shop_max_slot_wal_keep_size_mb"] <= 100 * 1024


def test_alert_policies_cover_what_prometheus_cannot_see() -> None:
    metrics = json.dumps(
        {k: v for k, v in resources().items() if k.startswith("google_monitoring_alert_policy.")}
    )
    for metric in (
        "pubsub.googleapis.com/subscription/num_undelivered_messages",
        "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
        "dataflow.googleapis.com/job/is_failed",
        "dataflow.googleapis.com/job/system_lag",
        "cloudsql.googleapis.com/database/disk/utilization",
    ):
        assert metric in metrics, metric
    assert terraform_variables()["dataflow_job_name"] == DATAFLOW_DEFAULTS["job_name"]


@pytest.mark.slow  # dbt parses the project for BigQuery (~10 s)
def test_the_image_manifest_names_no_gcp_project(tmp_path: Path) -> None:
    """The image's dbt manifest is parsed with the Dockerfile's own settings: every relation is
    in the placeholder project, none in a real one, so the image can be promoted."""
    dockerfile = (INFRA / "docker" / "platform.Dockerfile").read_text()
    assert not re.search(r"^ARG GCP_PROJECT", dockerfile, re.MULTILINE), "a build argument"
    prepare = next(
        line for line in dockerfile.splitlines() if "GCP_PROJECT=" in line and "RUN " in line
    )
    placeholder = re.search(r"GCP_PROJECT=(\S+)", prepare).group(1)
    assert placeholder == "gcp-project-placeholder"
    env = {
        **os.environ,
        "PLATFORM_ENV": "gcp",
        "GCP_PROJECT": placeholder,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "parse",
            "--target",
            "prod",
            "--profiles-dir",
            ".",
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        cwd=ROOT / "dbt_project",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    text = (tmp_path / "target" / "manifest.json").read_text()
    manifest = json.loads(text)
    databases = {
        node["database"]
        for node in [*manifest["nodes"].values(), *manifest["sources"].values()]
        if node.get("database")
    }
    assert databases == {placeholder}
    example = (OVERLAY / "deploy.env.example").read_text()
    real_project = re.search(r"^GCP_PROJECT=(\S+)", example, re.MULTILINE).group(1)
    # (the manifest keeps the sources' unrendered config, env_var('GCP_PROJECT', ...) text,
    # which is resolved again at run time)
    assert real_project not in text


def test_the_runbook_puts_no_password_on_a_command_line() -> None:
    """Every database login the runbook uses is one Terraform creates, with its password in
    Secret Manager; nothing is typed in a DSN or a command."""
    for document in (INFRA / "README.md", ROOT / "README.md"):
        text = document.read_text()
        assert not re.search(r"postgres(?:ql)?://[^\s:/@]+:[^\s@]+@", text), document
        assert "PASSWORD@" not in text and "--password" not in text, document
    setup = INFRA / "k8s" / "setup"
    job = next(
        d
        for d in yaml.safe_load_all((setup / "shop-cdc-setup.yaml").read_text())
        if d["kind"] == "Job"
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert not any("postgres" in arg and "@" in arg for arg in container["command"])
    secret = next(
        d
        for d in yaml.safe_load_all((setup / "shop-cdc-setup.yaml").read_text())
        if d["kind"] == "ExternalSecret"
    )
    key = secret["spec"]["data"][0]["remoteRef"]["key"]
    assert key in terraform_locals("secrets.tf")["generated_secret_values"]
    assert "google_sql_user.shop_admin" in json.dumps(terraform_locals("secrets.tf"))
    # the SQL the Job runs prepares the same things the local migration does
    sql = (setup / "cdc-setup.sql").read_text().lower()
    migration = (ROOT / "devtools/sourcedb/migrations/0002_change_data_capture.sql").read_text()
    for statement in re.findall(r"alter table \w+ replica identity full;", migration.lower()):
        assert statement in sql
    assert "create publication shop_cdc for table users, products, orders, order_items" in sql


def test_every_checkov_skip_gives_its_reason() -> None:
    skips = []
    for path in sorted(INFRA.rglob("*")):
        if path.suffix not in (".tf", ".yaml", ".yml") and not path.name.endswith("Dockerfile"):
            continue
        for line in path.read_text().splitlines():
            match = re.search(r"checkov(?::skip=|\.io/skip\d+: )(CKV2?_[A-Z]+_\d+)[:=](.*)", line)
            if match:
                skips.append((path.name, match.group(1), match.group(2).strip()))
    assert len(skips) >= 10
    for name, check, reason in skips:
        assert len(reason.split()) >= 4, f"{name}: {check} is skipped without a reason"
