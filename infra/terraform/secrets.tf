# Secret Manager holds every secret; the External Secrets Operator copies them into Kubernetes
# Secrets (infra/k8s/base/external-secrets.yaml). Values never live in this repository:
#
#   collector-write-keys       COLLECTOR_WRITE_KEYS ("key=source,key2=source2")   added by hand
#   slack-webhook-url          SLACK_WEBHOOK_URL                                   added by hand
#   slack-bot-token            SLACK_BOT_TOKEN (optional alternative)              added by hand
#   dagster-postgres-password  password of the "dagster" Cloud SQL user           generated here
#   debezium-db-password       password of the "debezium" Cloud SQL user           generated here
#   shop-db-reader-dsn         SOURCE_DB_DSN of Dagster's reconciliation check     generated here
#   shop-db-admin-dsn          the one-off CDC setup of the shop's database         generated here
#
#   printf '%s' 'key1=web,key2=ios' | gcloud secrets versions add collector-write-keys --data-file=-

locals {
  manual_secrets = toset(["collector-write-keys", "slack-webhook-url", "slack-bot-token"])

  # Secrets whose value Terraform generates (database logins).
  generated_secrets = toset(["dagster-postgres-password", "debezium-db-password", "shop-db-reader-dsn", "shop-db-admin-dsn"])
  generated_secret_values = {
    dagster-postgres-password = random_password.db["dagster"].result
    debezium-db-password      = random_password.db["debezium"].result
    # SOURCE_DB_DSN of Dagster's reconciliation check (TLS is required by the instance)
    shop-db-reader-dsn = format(
      "postgresql://%s:%s@%s:5432/%s?sslmode=require",
      google_sql_user.shop_reader.name,
      random_password.db["shop-reader"].result,
      google_sql_database_instance.shop.private_ip_address,
      google_sql_database.shop.name,
    )
    shop-db-admin-dsn = format(
      "postgresql://%s:%s@%s:5432/%s?sslmode=require",
      google_sql_user.shop_admin.name,
      random_password.db["shop-admin"].result,
      google_sql_database_instance.shop.private_ip_address,
      google_sql_database.shop.name,
    )
  }
}

resource "google_secret_manager_secret" "platform" {
  for_each = setunion(local.manual_secrets, local.generated_secrets)

  secret_id = each.value

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_version" "generated" {
  for_each = local.generated_secrets

  secret      = google_secret_manager_secret.platform[each.key].id
  secret_data = local.generated_secret_values[each.key]
}

resource "google_secret_manager_secret_iam_member" "external_secrets" {
  for_each = google_secret_manager_secret.platform

  secret_id = each.value.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.platform["external-secrets"].member
}
