variable "project" {
  description = "GCP project id (the platform's GCP_PROJECT)."
  type        = string
}

variable "region" {
  description = "Region of Dataflow, GKE, Cloud SQL, Pub/Sub storage and the buckets (GCP_REGION)."
  type        = string
  default     = "europe-west1"
}

variable "location" {
  description = "BigQuery location of the datasets (BQ_LOCATION): a multi-region (EU, US) or a region."
  type        = string
  default     = "EU"
}

variable "labels" {
  description = "Extra labels on every resource that takes labels."
  type        = map(string)
  default     = {}
}

variable "deletion_protection" {
  description = "Protect the GKE cluster, Cloud SQL instances and raw tables from terraform destroy."
  type        = bool
  default     = true
}

# --- BigQuery ---------------------------------------------------------------------------------

variable "datasets" {
  description = "BigQuery dataset ids of the warehouse layers (raw must match BQ_RAW_DATASET)."
  type = object({
    raw        = string
    staging    = string
    mart       = string
    monitoring = string
  })
  default = {
    raw        = "raw"
    staging    = "staging"
    mart       = "mart"
    monitoring = "monitoring"
  }
}

# --- Pub/Sub ----------------------------------------------------------------------------------

variable "topics" {
  description = "Pub/Sub topic names (PUBSUB_EVENTS_TOPIC, PUBSUB_DEAD_LETTER_TOPIC, PUBSUB_CDC_TOPIC)."
  type = object({
    events      = string
    dead_letter = string
    cdc         = string
  })
  default = {
    events      = "events"
    dead_letter = "events-dead-letter"
    cdc         = "cdc"
  }
}

variable "beam_subscriptions" {
  description = "Subscriptions the Beam job reads (PUBSUB_*_SUBSCRIPTION of streaming/beam/options.py)."
  type = object({
    events      = string
    dead_letter = string
    cdc         = string
  })
  default = {
    events      = "events-raw"
    dead_letter = "events-dead-letter-raw"
    cdc         = "cdc-raw"
  }
}

variable "message_retention" {
  description = "How long Pub/Sub keeps unacknowledged messages (and topic backlog for seek/replay)."
  type        = string
  default     = "604800s"
}

variable "pubsub_dead_letter_policy" {
  description = <<-EOT
    Attach a Pub/Sub dead-letter policy to the Beam subscriptions, forwarding messages after
    max_delivery_attempts to the "undeliverable" topic. Off by default: Dataflow acknowledges
    messages once they are durably in the pipeline and dead-letters bad rows itself (into
    raw.events_dead_letter), and Pub/Sub dead-letter policies are not supported for
    subscriptions read by Dataflow. Turn it on only for subscribers other than Dataflow.
  EOT
  type        = bool
  default     = false
}

variable "max_delivery_attempts" {
  description = "Delivery attempts before a message is dead-lettered (when the policy is on)."
  type        = number
  default     = 10
}

# --- Network and GKE --------------------------------------------------------------------------

variable "network_name" {
  description = "VPC of the platform (GKE, Dataflow workers, Cloud SQL private IP)."
  type        = string
  default     = "data-platform"
}

variable "subnet_cidr" {
  description = "Primary range of the platform subnet (nodes, Dataflow workers)."
  type        = string
  default     = "10.10.0.0/20"
}

variable "pods_cidr" {
  description = "Secondary range for GKE pods."
  type        = string
  default     = "10.20.0.0/14"
}

variable "services_cidr" {
  description = "Secondary range for GKE services."
  type        = string
  default     = "10.24.0.0/20"
}

variable "master_cidr" {
  description = "Range of the GKE control plane's private endpoint."
  type        = string
  default     = "172.16.0.0/28"
}

variable "master_authorized_networks" {
  description = "CIDR blocks allowed to reach the GKE control plane (your office/VPN, CI runners)."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  default = []
}

variable "cluster_name" {
  description = "GKE Autopilot cluster name."
  type        = string
  default     = "data-platform"
}

variable "k8s_namespace" {
  description = "Namespace of the collector, CDC bridge and Dagster (infra/k8s)."
  type        = string
  default     = "data-platform"
}

variable "external_secrets_namespace" {
  description = "Namespace of the External Secrets Operator (its service account reads Secret Manager)."
  type        = string
  default     = "external-secrets"
}

# --- Cloud SQL --------------------------------------------------------------------------------

variable "postgres_version" {
  description = "Cloud SQL PostgreSQL version (Debezium 2.7 supports PostgreSQL 10 to 16)."
  type        = string
  default     = "POSTGRES_16"
}

variable "dagster_postgres_version" {
  description = "Cloud SQL PostgreSQL version of Dagster's storage instance."
  type        = string
  default     = "POSTGRES_17"
}

variable "shop_db_tier" {
  description = "Machine tier of the shop's (CDC source) Cloud SQL instance."
  type        = string
  default     = "db-custom-2-7680"
}

variable "dagster_db_tier" {
  description = "Machine tier of Dagster's run/event/schedule storage instance."
  type        = string
  default     = "db-custom-1-3840"
}

# --- Access -----------------------------------------------------------------------------------

variable "dataflow_launchers" {
  description = "IAM members allowed to launch the Beam job on Dataflow (e.g. a CI service account)."
  type        = list(string)
  default     = []
}

variable "image_pushers" {
  description = "IAM members allowed to push images to the Artifact Registry repository (CI)."
  type        = list(string)
  default     = []
}

# --- CDC, edge, admission, alerting -------------------------------------------------------------

variable "shop_max_slot_wal_keep_size_mb" {
  description = "Cloud SQL flag max_slot_wal_keep_size of the shop's instance (MB): the most WAL a replication slot may hold back before the server invalidates it."
  type        = number
  default     = 20480
}

variable "collector_rate_limit_per_minute" {
  description = "Requests per minute one client IP may send to the collector (Cloud Armor answers 429 above)."
  type        = number
  default     = 1200
}

variable "binauthz_enforcement_mode" {
  description = "Binary Authorization: ENFORCED_BLOCK_AND_AUDIT_LOG, or DRYRUN_AUDIT_LOG_ONLY while trying it out."
  type        = string
  default     = "ENFORCED_BLOCK_AND_AUDIT_LOG"
}

variable "binauthz_allowed_images" {
  description = "Image patterns besides the platform's repository that the cluster may run (the add-ons the runbook installs with Helm)."
  type        = list(string)
  default = [
    "quay.io/strimzi/*",
    "ghcr.io/external-secrets/*",
    "oci.external-secrets.io/external-secrets/*",
    "quay.io/prometheus/*",
    "quay.io/prometheus-operator/*",
    "quay.io/kiwigrid/*",
    "docker.io/grafana/*",
    "registry.k8s.io/kube-state-metrics/*",
    "registry.k8s.io/ingress-nginx/kube-webhook-certgen*",
    "docker.io/library/busybox*",
    "docker.io/busybox*",
    "docker.io/library/postgres:16-alpine",
  ]
}

variable "alert_notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) of the alert policies in monitoring.tf."
  type        = list(string)
  default     = []
}

variable "pubsub_backlog_alert_messages" {
  description = "Undelivered messages on a Beam subscription that raise an alert (with the oldest-age alert)."
  type        = number
  default     = 100000
}

variable "pubsub_oldest_unacked_alert_seconds" {
  description = "Age of the oldest unacknowledged message on a Beam subscription that raises an alert."
  type        = number
  default     = 900
}

variable "dataflow_job_name" {
  description = "Name of the Beam job on Dataflow (streaming/beam: raw-stream), for its alert policy."
  type        = string
  default     = "raw-stream"
}
