# GKE Autopilot: Workload Identity, Shielded nodes, private nodes and release-channel upgrades
# come with it. Runs the collector, the CDC bridge, Kafka + Debezium (Strimzi), Dagster, the
# External Secrets Operator and Prometheus (infra/k8s).

resource "google_container_cluster" "platform" {
  #checkov:skip=CKV_GCP_12:Autopilot always runs GKE Dataplane V2, which enforces NetworkPolicy (infra/k8s ships policies)
  #checkov:skip=CKV_GCP_61:Autopilot manages the datapath; VPC flow logs are on for the subnetwork (network.tf)
  #checkov:skip=CKV_GCP_69:Autopilot always runs the GKE metadata server (Workload Identity) on every node
  #checkov:skip=CKV_GCP_65:Google Groups for RBAC needs a Workspace group (gke-security-groups@DOMAIN); set authenticator_groups_config when one exists
  name     = var.cluster_name
  location = var.region

  enable_autopilot    = true
  deletion_protection = var.deletion_protection

  network    = google_compute_network.platform.id
  subnetwork = google_compute_subnetwork.platform.id

  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = var.master_cidr
  }

  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.master_authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  release_channel {
    channel = "REGULAR"
  }

  workload_identity_config {
    workload_pool = local.workload_pool
  }

  cluster_autoscaling {
    auto_provisioning_defaults {
      service_account = google_service_account.platform["gke-nodes"].email
      oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    }
  }

  # Enforces the project's policy (binauthz.tf): images from the platform's repository and the
  # add-ons' registries only.
  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  resource_labels = { system = "ecommerce-data-platform" }

  depends_on = [
    google_project_service.enabled,
    google_project_iam_member.platform,
    google_binary_authorization_policy.platform,
  ]
}
