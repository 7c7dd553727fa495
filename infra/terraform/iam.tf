# One Google service account per process, each with only what that process does:
#
#   collector        publish to events + events-dead-letter; GetTopic on events (its /readyz probe)
#   cdc-bridge       publish to cdc
#   dataflow-worker  the Beam job: read the three subscriptions, write the raw dataset
#   dagster          dbt and quality checks: read raw, write staging/mart/monitoring, run jobs,
#                    Gemini on Vertex AI, compute logs
#   external-secrets read the platform's Secret Manager secrets into Kubernetes Secrets
#   gke-nodes        Autopilot nodes: logs, metrics, image pulls
#
# Pods get theirs through Workload Identity (workload_identity.tf); no keys are ever created.

locals {
  service_accounts = {
    collector        = "Event collector (Pub/Sub publisher)"
    cdc-bridge       = "CDC bridge (Kafka to Pub/Sub)"
    dataflow-worker  = "Dataflow workers of the raw streaming job"
    dagster          = "Dagster webserver, daemon, code server and runs (dbt, checks)"
    external-secrets = "External Secrets Operator (Secret Manager reader)"
    gke-nodes        = "GKE Autopilot nodes"
  }

  topic_grants = {
    collector-events-publish      = { topic = "events", role = "roles/pubsub.publisher", sa = "collector" }
    collector-events-view         = { topic = "events", role = "roles/pubsub.viewer", sa = "collector" }
    collector-dead-letter-publish = { topic = "dead_letter", role = "roles/pubsub.publisher", sa = "collector" }
    bridge-cdc-publish            = { topic = "cdc", role = "roles/pubsub.publisher", sa = "cdc-bridge" }
  }

  subscription_grants = merge(
    { for key, input in local.beam_inputs : "${key}-subscriber" => { subscription = key, role = "roles/pubsub.subscriber" } },
    { for key, input in local.beam_inputs : "${key}-viewer" => { subscription = key, role = "roles/pubsub.viewer" } },
  )

  dataset_grants = {
    dataflow-raw-write = { dataset = "raw", role = "roles/bigquery.dataEditor", sa = "dataflow-worker" }
    dagster-raw-read   = { dataset = "raw", role = "roles/bigquery.dataViewer", sa = "dagster" }
    dagster-staging    = { dataset = "staging", role = "roles/bigquery.dataEditor", sa = "dagster" }
    dagster-mart       = { dataset = "mart", role = "roles/bigquery.dataEditor", sa = "dagster" }
    dagster-monitoring = { dataset = "monitoring", role = "roles/bigquery.dataEditor", sa = "dagster" }
  }

  project_grants = {
    dataflow-worker       = { role = "roles/dataflow.worker", sa = "dataflow-worker" }
    dagster-jobs          = { role = "roles/bigquery.jobUser", sa = "dagster" }
    dagster-read-sessions = { role = "roles/bigquery.readSessionUser", sa = "dagster" }
    dagster-vertex        = { role = "roles/aiplatform.user", sa = "dagster" }
    nodes-logs            = { role = "roles/logging.logWriter", sa = "gke-nodes" }
    nodes-metrics         = { role = "roles/monitoring.metricWriter", sa = "gke-nodes" }
    nodes-monitoring      = { role = "roles/monitoring.viewer", sa = "gke-nodes" }
    nodes-metadata        = { role = "roles/stackdriver.resourceMetadata.writer", sa = "gke-nodes" }
    nodes-autoscaling     = { role = "roles/autoscaling.metricsWriter", sa = "gke-nodes" }
  }
}

resource "google_service_account" "platform" {
  for_each = local.service_accounts

  account_id   = each.key
  display_name = each.value

  depends_on = [google_project_service.enabled]
}

resource "google_project_iam_member" "platform" {
  for_each = local.project_grants

  project = var.project
  role    = each.value.role
  member  = google_service_account.platform[each.value.sa].member
}

resource "google_pubsub_topic_iam_member" "platform" {
  for_each = local.topic_grants

  topic  = google_pubsub_topic.platform[each.value.topic].id
  role   = each.value.role
  member = google_service_account.platform[each.value.sa].member
}

resource "google_pubsub_subscription_iam_member" "dataflow" {
  for_each = local.subscription_grants

  subscription = google_pubsub_subscription.beam[each.value.subscription].id
  role         = each.value.role
  member       = google_service_account.platform["dataflow-worker"].member
}

resource "google_bigquery_dataset_iam_member" "platform" {
  for_each = local.dataset_grants

  dataset_id = google_bigquery_dataset.layer[each.value.dataset].dataset_id
  role       = each.value.role
  member     = google_service_account.platform[each.value.sa].member
}

resource "google_storage_bucket_iam_member" "dataflow_worker" {
  bucket = google_storage_bucket.dataflow.name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.platform["dataflow-worker"].member
}

resource "google_storage_bucket_iam_member" "dagster_logs" {
  bucket = google_storage_bucket.dagster_logs.name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.platform["dagster"].member
}

# Who may launch the Beam job: submit Dataflow jobs, run them as the worker service account and
# stage files in the Dataflow bucket.
resource "google_project_iam_member" "dataflow_launcher" {
  #checkov:skip=CKV_GCP_49:submitting Dataflow jobs needs roles/dataflow.developer; granted only to the launchers listed in var.dataflow_launchers
  for_each = toset(var.dataflow_launchers)

  project = var.project
  role    = "roles/dataflow.developer"
  member  = each.value

  depends_on = [google_project_service.enabled]
}

resource "google_service_account_iam_member" "dataflow_launcher_act_as" {
  for_each = toset(var.dataflow_launchers)

  service_account_id = google_service_account.platform["dataflow-worker"].name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}

resource "google_storage_bucket_iam_member" "dataflow_launcher" {
  for_each = toset(var.dataflow_launchers)

  bucket = google_storage_bucket.dataflow.name
  role   = "roles/storage.objectAdmin"
  member = each.value
}
