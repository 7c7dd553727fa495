"""Write the project-specific deployment values from Terraform's outputs.

    uv run python infra/scripts/configure_gcp.py --tag 0123abc --collector-hostname collect.shop.com

reads `terraform -chdir=infra/terraform output -json` (or --outputs FILE) and writes
  infra/k8s/overlays/gcp/deploy.env      values of the kustomize overlay (kubectl apply -k)
  infra/k8s/dagster/values-gcp.yaml      values layered over infra/k8s/dagster/values.yaml (helm)
Both files are ignored by Git; nothing secret goes into them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "infra" / "terraform"
DEPLOY_ENV = ROOT / "infra" / "k8s" / "overlays" / "gcp" / "deploy.env"
DAGSTER_VALUES = ROOT / "infra" / "k8s" / "dagster" / "values.yaml"
DAGSTER_GCP_VALUES = ROOT / "infra" / "k8s" / "dagster" / "values-gcp.yaml"
DEBEZIUM_IMAGE_TAG = "2.7.3"
GSA_ANNOTATION = "iam.gke.io/gcp-service-account"


def terraform_outputs(path: str | None) -> dict[str, Any]:
    """{name: value} of `terraform output -json` (from a file, or by running terraform)."""
    if path:
        raw = json.loads(Path(path).read_text())
    else:
        text = subprocess.run(
            ["terraform", f"-chdir={TERRAFORM_DIR}", "output", "-json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        raw = json.loads(text)
    return {
        name: item["value"] if isinstance(item, dict) and "value" in item else item
        for name, item in raw.items()
    }


def deploy_env(
    outputs: dict[str, Any],
    tag: str,
    collector_hostname: str,
    cors_origins: str,
    dagster_ui_url: str,
) -> dict[str, str]:
    repo = outputs["image_repository"]
    accounts = outputs["service_accounts"]
    return {
        "GCP_PROJECT": outputs["project"],
        "GCP_REGION": outputs["region"],
        "BQ_LOCATION": outputs["bq_location"],
        "PLATFORM_IMAGE": f"{repo}/platform:{tag}",
        "CONNECT_IMAGE": f"{repo}/kafka-connect-debezium:{DEBEZIUM_IMAGE_TAG}",
        "SHOP_DB_HOST": outputs["shop_db_private_ip"],
        "COLLECTOR_GSA": accounts["collector"],
        "CDC_BRIDGE_GSA": accounts["cdc-bridge"],
        "COLLECTOR_HOSTNAME": collector_hostname,
        "COLLECTOR_CORS_ORIGINS": cors_origins,
        "DAGSTER_UI_URL": dagster_ui_url,
    }


def dagster_values(outputs: dict[str, Any], tag: str) -> dict[str, Any]:
    """The project-specific layer over values.yaml. Helm replaces lists whole, so the user code
    deployment is copied from values.yaml with only its image changed."""
    base = yaml.safe_load(DAGSTER_VALUES.read_text())
    image = {
        "repository": f"{outputs['image_repository']}/platform",
        "tag": tag,
        "pullPolicy": "IfNotPresent",
    }
    deployments = []
    for deployment in base["dagster-user-deployments"]["deployments"]:
        deployments.append({**deployment, "image": dict(image)})
    return {
        "serviceAccount": {"annotations": {GSA_ANNOTATION: outputs["service_accounts"]["dagster"]}},
        "dagsterWebserver": {"image": dict(image)},
        "dagsterDaemon": {"image": dict(image)},
        "dagster-user-deployments": {"deployments": deployments},
        "postgresql": {"postgresqlHost": outputs["dagster_db_private_ip"]},
        "computeLogManager": {
            "config": {"gcsComputeLogManager": {"bucket": outputs["dagster_logs_bucket"]}}
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tag", required=True, help="tag of the platform image to deploy")
    parser.add_argument(
        "--collector-hostname",
        required=True,
        help="public DNS name of the collector (managed certificate)",
    )
    parser.add_argument(
        "--cors-origins",
        default="",
        help="browser origins allowed by the collector, comma separated",
    )
    parser.add_argument(
        "--dagster-ui-url",
        default="http://dagster-webserver.data-platform.svc:3000",
        help="base URL of the Dagster UI used in alert links",
    )
    parser.add_argument("--outputs", help="file with `terraform output -json` (default: run it)")
    args = parser.parse_args(argv)
    outputs = terraform_outputs(args.outputs)
    env = deploy_env(
        outputs, args.tag, args.collector_hostname, args.cors_origins, args.dagster_ui_url
    )
    DEPLOY_ENV.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    header = "# Written by infra/scripts/configure_gcp.py from terraform outputs. Do not edit.\n"
    DAGSTER_GCP_VALUES.write_text(
        header + yaml.safe_dump(dagster_values(outputs, args.tag), sort_keys=False)
    )
    print(f"wrote {DEPLOY_ENV.relative_to(ROOT)} and {DAGSTER_GCP_VALUES.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
