output "capture_service_account" {
  description = "Google service account of capture: the iam.gke.io/gcp-service-account annotation of its Kubernetes service account."
  value       = google_service_account.capture.email
}

output "sink_service_account" {
  description = "Google service account of the sink: the iam.gke.io/gcp-service-account annotation of its Kubernetes service account."
  value       = google_service_account.sink.email
}

output "topic" {
  description = "config pubsub.topic"
  value       = google_pubsub_topic.changes.name
}

output "subscription" {
  description = "config pubsub.subscription"
  value       = google_pubsub_subscription.sink.name
}

output "dead_letter_topic" {
  description = "config pubsub.dead_letter_topic"
  value       = google_pubsub_topic.dead_letter.name
}

output "dead_letter_subscription" {
  description = "Holds the dead-letters for inspection and replay."
  value       = google_pubsub_subscription.dead_letter.name
}

output "bucket" {
  description = "config gcs.bucket"
  value       = google_storage_bucket.tributary.name
}

output "dataset" {
  description = "config bigquery.dataset"
  value       = google_bigquery_dataset.tributary.dataset_id
}
