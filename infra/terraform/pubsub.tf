# Topics of docs/interfaces (notes/interfaces.md) and the subscriptions the Beam job reads.
#   events              one accepted event per message (collector)
#   events-dead-letter  events the collector rejected, with the reason (collector)
#   cdc                 one raw CDC row per message (CDC bridge)

locals {
  beam_inputs = {
    events      = { topic = var.topics.events, subscription = var.beam_subscriptions.events }
    dead_letter = { topic = var.topics.dead_letter, subscription = var.beam_subscriptions.dead_letter }
    cdc         = { topic = var.topics.cdc, subscription = var.beam_subscriptions.cdc }
  }
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "platform" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption keys; add a Cloud KMS key (kms_key_name) where policy requires CMEK
  for_each = tomap(var.topics)

  name = each.value
  # Topic retention lets a new or reset subscription seek back (replay into raw after an outage).
  message_retention_duration = var.message_retention

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  depends_on = [google_project_service.enabled]
}

# Pub/Sub-level dead letters (messages no subscriber could acknowledge); see
# var.pubsub_dead_letter_policy. Always created so that turning the policy on is one flag.
resource "google_pubsub_topic" "undeliverable" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption keys; add a Cloud KMS key (kms_key_name) where policy requires CMEK
  name                       = "undeliverable"
  message_retention_duration = var.message_retention

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "undeliverable_hold" {
  name                       = "undeliverable-hold"
  topic                      = google_pubsub_topic.undeliverable.id
  message_retention_duration = var.message_retention
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "beam" {
  for_each = local.beam_inputs

  name  = each.value.subscription
  topic = google_pubsub_topic.platform[each.key].id

  ack_deadline_seconds       = 60
  message_retention_duration = var.message_retention
  retain_acked_messages      = false

  # never delete a subscription because the job was down for a while
  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dynamic "dead_letter_policy" {
    for_each = var.pubsub_dead_letter_policy ? [1] : []
    content {
      dead_letter_topic     = google_pubsub_topic.undeliverable.id
      max_delivery_attempts = var.max_delivery_attempts
    }
  }
}

# With a dead-letter policy, Pub/Sub's service agent forwards messages: it must publish to the
# dead-letter topic and acknowledge on the source subscription.
resource "google_pubsub_topic_iam_member" "undeliverable_publisher" {
  count = var.pubsub_dead_letter_policy ? 1 : 0

  topic  = google_pubsub_topic.undeliverable.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_forwarder" {
  for_each = { for key, input in local.beam_inputs : key => input if var.pubsub_dead_letter_policy }

  subscription = google_pubsub_subscription.beam[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
