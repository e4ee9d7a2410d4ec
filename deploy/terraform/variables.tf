variable "project_id" {
  description = "Google Cloud project that holds every resource below (tributary's config key `project`)."
  type        = string
}

variable "region" {
  description = "Default region of the provider."
  type        = string
  default     = "europe-west4"
}

variable "bucket_name" {
  description = "GCS bucket for the Avro files, the schemas and the dead-letters (config `gcs.bucket`)."
  type        = string
}

variable "bucket_location" {
  description = "Location of the bucket. Keep it with the dataset's: BigQuery loads from a bucket in the same location."
  type        = string
  default     = "US"
}

variable "gcs_prefix" {
  description = "Object name prefix tributary writes under (config `gcs.prefix`); capture's grants are limited to its _schemas/ and _deadletter/."
  type        = string
  default     = "tributary"
}

variable "retention_days" {
  description = <<-EOT
    Bucket retention policy in days; 0 means none. The bucket is the system of record: with a
    retention policy no object can be deleted or replaced before it is this old, by anyone,
    which protects the history against mistakes and attacks but also keeps what should go
    (a table to forget, personal data to erase) until then, at its storage cost. GCS does not
    allow a retention policy and Object Versioning on the same bucket, so versioning is on only
    while this is 0. The policy is not locked here: locking is irreversible, do it by hand.
  EOT
  type        = number
  default     = 0

  validation {
    condition     = var.retention_days >= 0 && var.retention_days <= 24855 && floor(var.retention_days) == var.retention_days
    error_message = "retention_days must be a whole number of days from 0 to 24855 (GCS takes under 2^31 seconds)."
  }
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object's previous version is kept while versioning is on. tributary never replaces an object; this is for mistakes made by hand."
  type        = number
  default     = 90
}

variable "soft_delete_days" {
  description = "Days a deleted object stays restorable (GCS soft delete), 0 or 7 to 90."
  type        = number
  default     = 7

  validation {
    condition     = var.soft_delete_days == 0 || (var.soft_delete_days >= 7 && var.soft_delete_days <= 90)
    error_message = "soft_delete_days must be 0 or 7 to 90."
  }
}

variable "topic_name" {
  description = "Pub/Sub topic capture publishes to (config `pubsub.topic`)."
  type        = string
  default     = "tributary-changes"
}

variable "subscription_name" {
  description = "The sink's subscription (config `pubsub.subscription`)."
  type        = string
  default     = "tributary-sink"
}

variable "dead_letter_topic_name" {
  description = "Topic for events the sink cannot apply and for messages past max_delivery_attempts (config `pubsub.dead_letter_topic`)."
  type        = string
  default     = "tributary-dead-letter"
}

variable "message_retention" {
  description = "How long the subscription keeps unacknowledged messages: the longest sink outage that loses nothing. At most 31 days."
  type        = string
  default     = "604800s"
}

variable "ack_deadline_seconds" {
  description = "Initial ack deadline of the subscription; the client extends it while a message is being processed."
  type        = number
  default     = 60
}

variable "max_delivery_attempts" {
  description = "Deliveries of one message before Pub/Sub moves it to the dead-letter topic (5 to 100)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be 5 to 100."
  }
}

variable "dataset_id" {
  description = "BigQuery dataset the sink loads into (config `bigquery.dataset`)."
  type        = string
  default     = "tributary"
}

variable "dataset_location" {
  description = "Location of the dataset (config `bigquery.location`)."
  type        = string
  default     = "US"
}

variable "k8s_namespace" {
  description = "Kubernetes namespace tributary runs in (Workload Identity binding)."
  type        = string
  default     = "tributary"
}

variable "capture_ksa" {
  description = "Kubernetes service account of capture."
  type        = string
  default     = "tributary-capture"
}

variable "sink_ksa" {
  description = "Kubernetes service account of the sink."
  type        = string
  default     = "tributary-sink"
}
