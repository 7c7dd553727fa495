# Warehouse layers. Raw tables are created here (day-partitioned, clustered) from the schema in
# platform_core/raw/schema.py, rendered to schemas/raw_tables.json by infra/scripts/raw_schemas.py:
# the Beam job writes with CREATE_NEVER (the Storage Write API cannot create partitioned tables).
# Staging and mart tables are dbt's; monitoring tables are the quality checks' history.

locals {
  dataset_descriptions = {
    raw        = "Append-only landing layer: events, dead letters and CDC changes as they arrived."
    staging    = "dbt staging models: deduplicated, typed, current state."
    mart       = "dbt marts: daily sales, funnel, product performance, behaviour, retention."
    monitoring = "Data-quality check history and schema snapshots (platform_assets.quality)."
  }
}

resource "google_bigquery_dataset" "layer" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption keys; add a Cloud KMS key (kms_key_name) where policy requires CMEK
  for_each = tomap(var.datasets)

  dataset_id  = each.value
  location    = var.location
  description = local.dataset_descriptions[each.key]

  delete_contents_on_destroy = false

  depends_on = [google_project_service.enabled]
}

resource "google_bigquery_table" "raw" {
  #checkov:skip=CKV_GCP_80:Google-managed encryption keys; add a Cloud KMS key (kms_key_name) where policy requires CMEK
  for_each = local.raw_tables

  dataset_id  = google_bigquery_dataset.layer["raw"].dataset_id
  table_id    = each.key
  description = each.value.description

  schema = jsonencode(each.value.schema)

  time_partitioning {
    type  = "DAY"
    field = each.value.partition_column
  }

  clustering = each.value.clustering

  deletion_protection = var.deletion_protection
}
