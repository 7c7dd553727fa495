# Cloud Monitoring alert policies for what stalls silently outside the cluster (Prometheus alerts
# for the cluster's own workloads are in infra/monitoring/prometheus/platform-rules.yaml):
#
#   Pub/Sub backlog and oldest unacked message on each Beam subscription: the Dataflow job is
#   down, stuck or too slow, and raw stops growing while the collector and the bridge are fine
#   Dataflow job failed, or its system lag / data watermark stuck
#   Cloud SQL disk of the shop's instance filling (WAL held by a replication slot, a backstop
#   for the slot alerts)
#
# Notifications go to var.alert_notification_channels (none: the policies still show incidents).

locals {
  beam_subscription_names = [for key, input in local.beam_inputs : input.subscription]

  subscription_filter = format(
    "resource.type = \"pubsub_subscription\" AND resource.label.subscription_id = one_of(%s)",
    join(", ", [for name in local.beam_subscription_names : "\"${name}\""]),
  )

  dataflow_filter = "resource.type = \"dataflow_job\" AND resource.label.job_name = \"${var.dataflow_job_name}\""
}

resource "google_monitoring_alert_policy" "pubsub_backlog" {
  display_name = "Pub/Sub backlog of a Beam subscription"
  combiner     = "OR"

  conditions {
    display_name = "Undelivered messages above ${var.pubsub_backlog_alert_messages} for 10 minutes"
    condition_threshold {
      filter          = "metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND ${local.subscription_filter}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.pubsub_backlog_alert_messages
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    content   = "The Beam job is not keeping up with (or not reading) a subscription: raw falls behind. Check the Dataflow job `${var.dataflow_job_name}` and its workers' logs."
    mime_type = "text/markdown"
  }

  notification_channels = var.alert_notification_channels
  depends_on            = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "pubsub_oldest_unacked" {
  display_name = "Oldest unacknowledged message of a Beam subscription"
  combiner     = "OR"

  conditions {
    display_name = "Oldest unacked message older than ${var.pubsub_oldest_unacked_alert_seconds}s"
    condition_threshold {
      filter          = "metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND ${local.subscription_filter}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.pubsub_oldest_unacked_alert_seconds
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    content   = "Messages wait on a Beam subscription: the Dataflow job is down or stuck on them. Pub/Sub keeps them ${var.message_retention}; past that they are gone."
    mime_type = "text/markdown"
  }

  notification_channels = var.alert_notification_channels
  depends_on            = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "dataflow_job" {
  display_name = "Dataflow job ${var.dataflow_job_name} failed or stalled"
  combiner     = "OR"

  conditions {
    display_name = "The job failed"
    condition_threshold {
      filter          = "metric.type = \"dataflow.googleapis.com/job/is_failed\" AND ${local.dataflow_filter}"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  conditions {
    display_name = "System lag above 10 minutes"
    condition_threshold {
      filter          = "metric.type = \"dataflow.googleapis.com/job/system_lag\" AND ${local.dataflow_filter}"
      comparison      = "COMPARISON_GT"
      threshold_value = 600
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  conditions {
    display_name = "Data watermark older than 20 minutes"
    condition_threshold {
      filter          = "metric.type = \"dataflow.googleapis.com/job/data_watermark_age\" AND ${local.dataflow_filter}"
      comparison      = "COMPARISON_GT"
      threshold_value = 1200
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  conditions {
    display_name = "The job reports no metrics (not running)"
    condition_absent {
      filter   = "metric.type = \"dataflow.googleapis.com/job/system_lag\" AND ${local.dataflow_filter}"
      duration = "1800s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    content   = "The Beam job that writes raw is failed, stuck or gone: events and CDC rows wait on Pub/Sub (see the backlog policies). Relaunch with `terraform output -raw dataflow_launch` (add --update for a running job)."
    mime_type = "text/markdown"
  }

  notification_channels = var.alert_notification_channels
  depends_on            = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "shop_db_disk" {
  display_name = "Shop database disk filling (WAL held by a replication slot?)"
  combiner     = "OR"

  conditions {
    display_name = "Disk utilization above 80%"
    condition_threshold {
      filter          = "metric.type = \"cloudsql.googleapis.com/database/disk/utilization\" AND resource.type = \"cloudsql_database\" AND resource.label.database_id = \"${var.project}:${google_sql_database_instance.shop.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0.8
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    content   = "A replication slot nobody confirms keeps WAL (see the CdcSlot* alerts in Prometheus); max_slot_wal_keep_size (${var.shop_max_slot_wal_keep_size_mb} MB) bounds it."
    mime_type = "text/markdown"
  }

  notification_channels = var.alert_notification_channels
  depends_on            = [google_project_service.enabled]
}
