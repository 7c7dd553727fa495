# One Docker repository for the platform image (collector, CDC bridge, Dagster user code,
# Dataflow SDK container) and the Kafka Connect image with the Debezium plugin.

resource "google_artifact_registry_repository" "platform" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption keys; add a Cloud KMS key (kms_key_name) where policy requires CMEK
  location      = var.region
  repository_id = "platform"
  format        = "DOCKER"
  description   = "Images of the e-commerce data platform (infra/docker)."

  docker_config {
    immutable_tags = true
  }

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "7776000s" # 90 days
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_artifact_registry_repository_iam_member" "readers" {
  for_each = {
    gke-nodes       = google_service_account.platform["gke-nodes"].member
    dataflow-worker = google_service_account.platform["dataflow-worker"].member
  }

  location   = google_artifact_registry_repository.platform.location
  repository = google_artifact_registry_repository.platform.name
  role       = "roles/artifactregistry.reader"
  member     = each.value
}

resource "google_artifact_registry_repository_iam_member" "pushers" {
  for_each = toset(var.image_pushers)

  location   = google_artifact_registry_repository.platform.location
  repository = google_artifact_registry_repository.platform.name
  role       = "roles/artifactregistry.writer"
  member     = each.value
}
