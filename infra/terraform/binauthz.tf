# Binary Authorization: the cluster (gke.tf) admits only images from the platform's Artifact
# Registry repository and the registries of the add-ons the runbook installs (Strimzi, External
# Secrets, kube-prometheus-stack, the Dagster chart's init container); everything else is
# blocked and logged. GKE's own system images are exempt (global policy evaluation).
# To require signed images instead, add an attestor and set require_attestations_by.

resource "google_binary_authorization_policy" "platform" {
  global_policy_evaluation_mode = "ENABLE"

  dynamic "admission_whitelist_patterns" {
    for_each = concat(
      ["${var.region}-docker.pkg.dev/${var.project}/platform/*"],
      var.binauthz_allowed_images,
    )
    content {
      name_pattern = admission_whitelist_patterns.value
    }
  }

  default_admission_rule {
    evaluation_mode  = "ALWAYS_DENY"
    enforcement_mode = var.binauthz_enforcement_mode
  }

  depends_on = [google_project_service.enabled]
}
