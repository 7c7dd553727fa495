# Two Cloud SQL for PostgreSQL instances, private IP only, TLS required:
#   shop     the shop's database, the CDC source: logical decoding on for Debezium (pgoutput)
#   dagster  Dagster's run, event-log and schedule storage
# If the shop's database already exists elsewhere, set cloudsql.logical_decoding=on there and
# point the KafkaConnector at it instead (infra/k8s/kafka/debezium-connector.yaml).

resource "random_password" "db" {
  for_each = toset(["dagster", "debezium", "shop-reader", "shop-admin"])

  length  = 32
  special = false
}

# Flags on both instances: audit-friendly logging (connections, locks, DDL, pgAudit) and, on the
# shop, logical decoding for Debezium. Written out per instance (no dynamic block) so that
# static analysis (checkov) sees them.

resource "google_sql_database_instance" "shop" {
  #checkov:skip=CKV_GCP_6:require_ssl was removed in google provider 6; ssl_mode = ENCRYPTED_ONLY below enforces TLS
  #checkov:skip=CKV_GCP_79:Debezium 2.7 (the version the CDC bridge is tested against) supports PostgreSQL up to 16
  #checkov:skip=CKV2_GCP_13:log_duration=on logs a line per statement of the shop's OLTP traffic; Query Insights records durations instead
  name                = "shop-pg"
  region              = var.region
  database_version    = var.postgres_version
  deletion_protection = var.deletion_protection

  settings {
    tier              = var.shop_db_tier
    edition           = "ENTERPRISE"
    availability_type = "REGIONAL"
    disk_autoresize   = true
    disk_type         = "PD_SSD"

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = google_compute_network.platform.id
      enable_private_path_for_google_cloud_services = true
      ssl_mode                                      = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "02:00"
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = 14
      }
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = true
      record_client_address   = false
    }

    maintenance_window {
      day          = 7
      hour         = 3
      update_track = "stable"
    }

    # wal_level=logical: Debezium reads a pgoutput replication slot (slot and publication shop_cdc)
    database_flags {
      name  = "cloudsql.logical_decoding"
      value = "on"
    }
    database_flags {
      name  = "max_replication_slots"
      value = "10"
    }
    database_flags {
      name  = "max_wal_senders"
      value = "10"
    }
    # A slot whose reader is gone (Debezium or Kafka down) holds back WAL until the disk is
    # full; past this bound (MB) the server invalidates the slot instead, and the alerts
    # CdcSlotWalRetainedHigh / CdcSlotNearInvalidation fire well before (slot_monitor).
    database_flags {
      name  = "max_slot_wal_keep_size"
      value = tostring(var.shop_max_slot_wal_keep_size_mb)
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }

    user_labels = { role = "cdc-source" }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database_instance" "dagster" {
  #checkov:skip=CKV_GCP_79:checkov's list of latest versions stops at POSTGRES_15; this instance runs POSTGRES_17
  #checkov:skip=CKV_GCP_6:require_ssl was removed in google provider 6; ssl_mode = ENCRYPTED_ONLY below enforces TLS
  #checkov:skip=CKV2_GCP_13:log_duration=on logs a line per statement of Dagster's storage traffic; Query Insights records durations instead
  name                = "dagster-pg"
  region              = var.region
  database_version    = var.dagster_postgres_version
  deletion_protection = var.deletion_protection

  settings {
    tier              = var.dagster_db_tier
    edition           = "ENTERPRISE"
    availability_type = "ZONAL"
    disk_autoresize   = true
    disk_type         = "PD_SSD"

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = google_compute_network.platform.id
      enable_private_path_for_google_cloud_services = true
      ssl_mode                                      = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      start_time                     = "02:30"
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = 7
      }
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = true
      record_client_address   = false
    }

    maintenance_window {
      day          = 7
      hour         = 4
      update_track = "stable"
    }

    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }

    user_labels = { role = "dagster-storage" }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "shop" {
  name     = "shop"
  instance = google_sql_database_instance.shop.name
}

resource "google_sql_database" "dagster" {
  name     = "dagster"
  instance = google_sql_database_instance.dagster.name
}

# Debezium's login. Cloud SQL cannot grant REPLICATION from here: once, as the postgres user,
#   ALTER USER debezium WITH REPLICATION;
#   GRANT SELECT ON users, products, orders, order_items TO debezium;
# (the publication shop_cdc comes from devtools/sourcedb/migrations/0002_change_data_capture.sql).
resource "google_sql_user" "debezium" {
  name     = "debezium"
  instance = google_sql_database_instance.shop.name
  password = random_password.db["debezium"].result
}

# The login that prepares the shop's database for CDC once (infra/README.md step 5: REPLICA
# IDENTITY FULL, the publication, grants; as a Cloud SQL built-in user it is a member of
# cloudsqlsuperuser). Its password is generated here and kept in Secret Manager
# (shop-db-admin-dsn); the setup Job reads it from there, never from a command line.
resource "google_sql_user" "shop_admin" {
  name     = "shop_admin"
  instance = google_sql_database_instance.shop.name
  password = random_password.db["shop-admin"].result
}

# Read-only login of Dagster's CDC reconciliation check (platform_assets/reconciliation/checks.py):
# it compares staging with the source tables. Once, as the postgres user:
#   GRANT SELECT ON users, products, orders, order_items TO dagster_reader;
resource "google_sql_user" "shop_reader" {
  name     = "dagster_reader"
  instance = google_sql_database_instance.shop.name
  password = random_password.db["shop-reader"].result
}

resource "google_sql_user" "dagster" {
  name     = "dagster"
  instance = google_sql_database_instance.dagster.name
  password = random_password.db["dagster"].result
}
