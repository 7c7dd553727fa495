# Buckets: Dataflow staging/temp files, and Dagster's compute logs (GCSComputeLogManager).

resource "google_storage_bucket" "dataflow" {
  #checkov:skip=CKV_GCP_62:Cloud Audit Logs (Data Access) record object access; a second access-log bucket adds cost without information
  name     = "${var.project}-dataflow"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # temp/ holds files of running jobs only; staging/ holds the job's packages
  lifecycle_rule {
    condition {
      age            = 7
      matches_prefix = ["temp/"]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 3
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_storage_bucket" "dagster_logs" {
  #checkov:skip=CKV_GCP_62:Cloud Audit Logs (Data Access) record object access; a second access-log bucket adds cost without information
  name     = "${var.project}-dagster-logs"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 3
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}
