# Kubernetes service accounts impersonate their Google service account (annotation
# iam.gke.io/gcp-service-account in infra/k8s). The cluster's pool is PROJECT.svc.id.goog.

resource "google_service_account_iam_member" "workload_identity" {
  for_each = local.workload_identities

  service_account_id = google_service_account.platform[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${local.workload_pool}[${each.value}]"

  depends_on = [google_container_cluster.platform]
}
