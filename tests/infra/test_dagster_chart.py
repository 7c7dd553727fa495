"""The Dagster Helm values (infra/k8s/dagster/values.yaml) against what the chart of the locked
Dagster release and dagster-k8s really do with them.

* Run pods get the run launcher's resources. The chart (dagster-user-deployments subchart,
  template helper ``dagsterUserDeployments.k8sContainerContext``) puts a code server's
  ``resources`` into the container context it includes in launched runs when
  ``includeConfigInLaunchedRuns.enabled``; dagster-k8s's ``K8sContainerContext.create_for_run``
  merges that context after the run launcher's. The test runs the installed dagster-k8s merge
  on what the chart would render from these values.
* The user deployment validates against the subchart's values schema (vendored in
  tests/infra/schemas, see its README for the source).
* The instance migration is not a release resource: the chart renders it as a plain Job
  (templates/job-instance-migrate.yaml has no hook annotation), so a release with
  ``migrate.enabled`` cannot be upgraded to a new image. The runbook renders it on its own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from dagster_k8s.container_context import K8sContainerContext

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "infra" / "k8s" / "dagster" / "values.yaml"
RUNBOOK = ROOT / "infra" / "README.md"
NAMESPACE = "data-platform"


def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def launcher(config: dict[str, Any]) -> SimpleNamespace:
    """The K8sRunLauncher the chart configures from runLauncher.config.k8sRunLauncher."""
    run = config.get("runK8sConfig", {})
    return SimpleNamespace(
        image_pull_policy=config.get("imagePullPolicy"),
        image_pull_secrets=[],
        service_account_name="dagster",
        env_config_maps=[m["name"] for m in config.get("envConfigMaps", [])],
        env_secrets=[s["name"] for s in config.get("envSecrets", [])],
        env_vars=[],
        volume_mounts=config.get("volumeMounts", []),
        volumes=config.get("volumes", []),
        labels={},
        job_namespace=NAMESPACE,
        resources=config.get("resources"),
        scheduler_name=None,
        security_context=None,
        run_k8s_config={
            "container_config": run.get("containerConfig", {}),
            "pod_spec_config": run.get("podSpecConfig", {}),
            "job_spec_config": run.get("jobSpecConfig", {}),
        },
        only_allow_user_defined_k8s_config_fields=None,
        only_allow_user_defined_env_vars=None,
    )


def code_server_context(deployment: dict[str, Any]) -> dict[str, Any] | None:
    """The container context the chart includes in launched runs (None when it includes
    none); the keys of the chart's k8sContainerContext helper that these values set."""
    include = deployment.get("includeConfigInLaunchedRuns") or {"enabled": True}
    if not include["enabled"]:
        return None
    k8s: dict[str, Any] = {
        "image_pull_policy": deployment["image"]["pullPolicy"],
        "env_config_maps": [f"dagster-{deployment['name']}-user-env"]
        + [m["name"] for m in deployment.get("envConfigMaps", [])],
        "namespace": NAMESPACE,
        "service_account_name": "dagster",
    }
    if deployment.get("envSecrets"):
        k8s["env_secrets"] = [s["name"] for s in deployment["envSecrets"]]
    if deployment.get("resources"):
        k8s["resources"] = deployment["resources"]
    return {"k8s": k8s}


def run_pod_resources(chart_values: dict[str, Any]) -> dict[str, Any]:
    deployment = chart_values["dagster-user-deployments"]["deployments"][0]
    context = code_server_context(deployment)
    origin = SimpleNamespace(repository_origin=SimpleNamespace(container_context=context))
    run = SimpleNamespace(job_code_origin=origin, tags={})
    merged = K8sContainerContext.create_for_run(
        run,  # type: ignore[arg-type]
        launcher(chart_values["runLauncher"]["config"]["k8sRunLauncher"]),  # type: ignore[arg-type]
        include_run_tags=False,
    )
    return merged.run_k8s_config.container_config["resources"]


def test_run_pods_get_the_resources_meant_for_runs() -> None:
    chart_values = values()
    meant = chart_values["runLauncher"]["config"]["k8sRunLauncher"]["resources"]
    code_server = chart_values["dagster-user-deployments"]["deployments"][0]["resources"]
    assert meant != code_server  # otherwise this test could not tell them apart
    assert run_pod_resources(chart_values) == meant


def test_including_the_code_server_context_would_override_them() -> None:
    """Why includeConfigInLaunchedRuns is off: dagster-k8s merges the code server's context
    last, so its resources win."""
    chart_values = values()
    deployment = chart_values["dagster-user-deployments"]["deployments"][0]
    deployment["includeConfigInLaunchedRuns"] = {"enabled": True}
    assert run_pod_resources(chart_values) == deployment["resources"]


def test_run_pods_keep_their_settings_secrets_and_security_context() -> None:
    config = values()["runLauncher"]["config"]["k8sRunLauncher"]
    assert {"name": "platform-settings"} in config["envConfigMaps"]
    assert {"name": "dagster-secrets"} in config["envSecrets"]
    container = config["runK8sConfig"]["containerConfig"]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False


def test_the_release_never_holds_the_migration_job() -> None:
    assert values()["migrate"]["enabled"] is False
    runbook = RUNBOOK.read_text()
    # Dagster's documented procedure: render only the migration Job and apply it on its own
    command = re.search(r"helm template[^\n]*(?:\\\n[^\n]*)*", runbook)
    assert command, "the runbook renders the migration Job with helm template"
    text = command.group(0)
    assert "--show-only templates/job-instance-migrate.yaml" in text
    assert "--set migrate.enabled=true" in text
    assert "delete job dagster-instance-migrate" in runbook


# --- the subchart's own values schema ------------------------------------------------------------

SCHEMA = Path(__file__).parent / "schemas" / "dagster-user-deployments.values.schema.json"


def user_deployment_validator() -> Any:
    """Validator of one user deployment against the vendored subchart schema, its Kubernetes
    references resolved to kubernetes-validate's bundled definitions."""
    import kubernetes_validate
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    definitions = json.loads(
        (
            Path(kubernetes_validate.__file__).parent
            / "kubernetes-json-schema"
            / "v1.33.0-local"
            / "_definitions.json"
        ).read_text()
    )

    # the bundled file keeps its definitions under $defs; the chart points at /definitions
    contents = {**definitions, "definitions": definitions["$defs"]}
    contents.pop("$id", None)

    def retrieve(uri: str) -> Resource:
        assert uri.startswith("https://kubernetesjsonschema.dev/"), uri
        return Resource.from_contents(contents, default_specification=DRAFT202012)

    schema = json.loads(SCHEMA.read_text())
    return Draft202012Validator(
        {"$ref": "#/$defs/UserDeployment", "$defs": schema["$defs"]},
        registry=Registry(retrieve=retrieve),
    )


def test_the_user_deployment_matches_the_charts_schema() -> None:
    validator = user_deployment_validator()
    for deployment in values()["dagster-user-deployments"]["deployments"]:
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(deployment)]
        assert not errors, errors


def test_the_schema_check_catches_a_wrong_value() -> None:
    validator = user_deployment_validator()
    deployment = values()["dagster-user-deployments"]["deployments"][0]
    broken = {
        **deployment,
        "readinessProbe": {**deployment["readinessProbe"], "periodSeconds": "20s"},
    }
    assert list(validator.iter_errors(broken))
    assert list(validator.iter_errors({**deployment, "port": "3030"}))
