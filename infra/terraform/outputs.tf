output "service_accounts" {
  description = "Google service account emails (annotate the Kubernetes service accounts with them)."
  value       = { for key, sa in google_service_account.platform : key => sa.email }
}

output "image_repository" {
  description = "Docker repository of the platform images."
  value       = "${google_artifact_registry_repository.platform.location}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.platform.repository_id}"
}

output "dataflow_bucket" {
  description = "Bucket for the Beam job's --temp_location and --staging_location."
  value       = google_storage_bucket.dataflow.name
}

output "dagster_logs_bucket" {
  description = "Bucket of Dagster's GCSComputeLogManager."
  value       = google_storage_bucket.dagster_logs.name
}

output "subnetwork" {
  description = "Subnetwork for the Dataflow workers (--subnetwork)."
  value       = "regions/${var.region}/subnetworks/${google_compute_subnetwork.platform.name}"
}

output "shop_db_private_ip" {
  description = "Private IP of the shop's Cloud SQL instance (Debezium database.hostname)."
  value       = google_sql_database_instance.shop.private_ip_address
}

output "dagster_db_private_ip" {
  description = "Private IP of Dagster's Cloud SQL instance (postgresql.postgresqlHost)."
  value       = google_sql_database_instance.dagster.private_ip_address
}

output "get_credentials" {
  description = "Command that points kubectl at the cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.platform.name} --region ${var.region} --project ${var.project}"
}

output "dataflow_launch" {
  description = "Command that launches the raw streaming job on Dataflow (from the repository root)."
  value = join(" ", [
    "PLATFORM_ENV=gcp GCP_PROJECT=${var.project} GCP_REGION=${var.region}",
    "uv run python -m streaming.beam --runner DataflowRunner",
    "--project ${var.project} --region ${var.region}",
    "--pubsub_project ${var.project} --bq_project ${var.project}",
    "--temp_location gs://${google_storage_bucket.dataflow.name}/temp",
    "--staging_location gs://${google_storage_bucket.dataflow.name}/staging",
    "--service_account_email ${google_service_account.platform["dataflow-worker"].email}",
    "--subnetwork regions/${var.region}/subnetworks/${google_compute_subnetwork.platform.name}",
    "--no_use_public_ips",
    "--sdk_container_image ${google_artifact_registry_repository.platform.location}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.platform.repository_id}/platform-dataflow:TAG",
    "--sdk_location container",
    "--bq_dataset ${var.datasets.raw}",
  ])
}

output "collector_ip" {
  description = "Public address of the collector's load balancer (DNS A record of COLLECTOR_HOSTNAME)."
  value       = google_compute_global_address.collector.address
}

output "project" {
  description = "GCP project id."
  value       = var.project
}

output "region" {
  description = "Region of the deployment."
  value       = var.region
}

output "bq_location" {
  description = "BigQuery location of the datasets."
  value       = var.location
}
