terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # State holds generated database passwords: keep it in a versioned, access-controlled bucket.
  #   terraform init -backend-config="bucket=<state bucket>" -backend-config="prefix=data-platform"
  backend "gcs" {}
}

provider "google" {
  project = var.project
  region  = var.region

  default_labels = merge({ system = "ecommerce-data-platform", managed-by = "terraform" }, var.labels)
}
