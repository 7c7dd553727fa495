# The GCP side of the platform: see infra/README.md for the deployment order.

data "google_project" "this" {
  project_id = var.project
}

locals {
  raw_tables = jsondecode(file("${path.module}/schemas/raw_tables.json")).tables

  workload_pool = "${var.project}.svc.id.goog"

  # Kubernetes service accounts ("namespace/name") that impersonate a Google service account.
  # The names match infra/k8s and infra/k8s/dagster/values.yaml.
  workload_identities = {
    collector        = "${var.k8s_namespace}/collector"
    cdc-bridge       = "${var.k8s_namespace}/cdc-bridge"
    dagster          = "${var.k8s_namespace}/dagster"
    external-secrets = "${var.external_secrets_namespace}/external-secrets"
  }

  services = toset([
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "bigquerystorage.googleapis.com",
    "binaryauthorization.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "dataflow.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
  ])
}

resource "google_project_service" "enabled" {
  for_each = local.services

  project            = var.project
  service            = each.value
  disable_on_destroy = false
}
