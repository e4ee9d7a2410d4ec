# tributary's Google Cloud resources and the least each component may do with them.
#
#   capture: publishes to the topic; writes schemas and dead-letters to GCS.
#   sink:    pulls the subscription; writes Avro to GCS; loads into BigQuery;
#            publishes what it cannot apply to the dead-letter topic.
#   Pub/Sub: moves messages past max_delivery_attempts to the dead-letter topic.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # Object names start with the prefix and a slash, or at the root when it is empty.
  object_prefix = var.gcs_prefix == "" ? "" : "${var.gcs_prefix}/"
  objects       = "projects/_/buckets/${google_storage_bucket.tributary.name}/objects/${local.object_prefix}"

  # The service agent Pub/Sub uses to forward messages to a dead-letter topic.
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  workload_pool = "${var.project_id}.svc.id.goog"
}

# ---------------------------------------------------------------------------
# Pub/Sub

resource "google_pubsub_topic" "changes" {
  name = var.topic_name
}

resource "google_pubsub_topic" "dead_letter" {
  name = var.dead_letter_topic_name
}

# A topic keeps nothing without a subscription: this one holds the dead-letters
# until someone looks at them (and replays or discards them).
resource "google_pubsub_subscription" "dead_letter" {
  name                       = "${var.dead_letter_topic_name}-hold"
  topic                      = google_pubsub_topic.dead_letter.id
  message_retention_duration = "2678400s"
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "sink" {
  name  = var.subscription_name
  topic = google_pubsub_topic.changes.id

  # Rows' changes arrive in commit order per ordering key (docs/events.md).
  enable_message_ordering    = true
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = var.message_retention

  # Never delete the subscription for inactivity: a sink outage must not lose it.
  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  # A message that fails max_delivery_attempts times goes to the dead-letter
  # topic, and its ordering key moves on.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }
}

# Pub/Sub requires its service agent to publish to the dead-letter topic...
resource "google_pubsub_topic_iam_member" "agent_publishes_dead_letters" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

# ...and to acknowledge the forwarded message on the source subscription.
# Both are set on the resource itself, not the project.
resource "google_pubsub_subscription_iam_member" "agent_acks_dead_letters" {
  subscription = google_pubsub_subscription.sink.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# ---------------------------------------------------------------------------
# GCS: the system of record

resource "google_storage_bucket" "tributary" {
  name                        = var.bucket_name
  location                    = var.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  # Never destroyed with the stack: emptying it is a decision, not a side effect.
  force_destroy = false

  # Versioning keeps what a mistake replaces or deletes; GCS refuses it
  # alongside a retention policy, which protects more (see retention_days).
  versioning {
    enabled = var.retention_days == 0
  }

  dynamic "retention_policy" {
    for_each = var.retention_days > 0 ? [var.retention_days] : []
    content {
      retention_period = retention_policy.value * 86400
      is_locked        = false
    }
  }

  soft_delete_policy {
    retention_duration_seconds = var.soft_delete_days * 86400
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle {
    prevent_destroy = true
  }
}

# ---------------------------------------------------------------------------
# BigQuery

resource "google_bigquery_dataset" "tributary" {
  dataset_id  = var.dataset_id
  location    = var.dataset_location
  description = "tributary: <table>_changelog and <table> (current state) per captured Postgres table."

  # Tables are rebuilt from GCS if need be, but never dropped with the stack.
  delete_contents_on_destroy = false
}

# ---------------------------------------------------------------------------
# Service accounts and their grants

resource "google_service_account" "capture" {
  account_id   = "tributary-capture"
  display_name = "tributary capture"
  description  = "Reads Postgres logical replication and publishes to ${var.topic_name}."
}

resource "google_service_account" "sink" {
  account_id   = "tributary-sink"
  display_name = "tributary sink"
  description  = "Pulls ${var.subscription_name}, writes Avro to GCS, loads BigQuery."
}

# capture publishes every row change to the topic; on this topic only.
resource "google_pubsub_topic_iam_member" "capture_publishes" {
  topic  = google_pubsub_topic.changes.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.capture.member
}

# capture writes each table's Avro schema before the first message that uses
# it (<prefix>/_schemas/), rows it cannot represent (<prefix>/_deadletter/),
# the record of the slot it created (<prefix>/_state/) and, for the initial
# snapshot, chunk objects beside the sink's (<prefix>/<database>/…) with their
# pending markers (<prefix>/_sink/pending/) — always with ifGenerationMatch=0:
# create, never replace. Only under the prefix.
resource "google_storage_bucket_iam_member" "capture_creates_objects" {
  bucket = google_storage_bucket.tributary.name
  role   = "roles/storage.objectCreator"
  member = google_service_account.capture.member

  condition {
    title       = "under-the-prefix"
    description = "Only objects under ${local.object_prefix}"
    expression  = "resource.name.startsWith(\"${local.objects}\")"
  }
}

# Reading back what it wrote (an existing schema object, the slot record).
resource "google_storage_bucket_iam_member" "capture_reads_objects" {
  bucket = google_storage_bucket.tributary.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.capture.member

  condition {
    title       = "under-the-prefix"
    description = "Only objects under ${local.object_prefix}"
    expression  = "resource.name.startsWith(\"${local.objects}\")"
  }
}

# The initial snapshot records its progress per table in
# <prefix>/_backfill/ and replaces that record after each chunk (with a
# generation precondition): replacing needs delete, there only.
resource "google_storage_bucket_iam_member" "capture_keeps_snapshot_progress" {
  bucket = google_storage_bucket.tributary.name
  role   = "roles/storage.objectUser"
  member = google_service_account.capture.member

  condition {
    title       = "snapshot-progress"
    description = "Only ${local.object_prefix}_backfill/"
    expression  = "resource.name.startsWith(\"${local.objects}_backfill/\")"
  }
}

# The sink pulls and acknowledges messages on its subscription only.
resource "google_pubsub_subscription_iam_member" "sink_pulls" {
  subscription = google_pubsub_subscription.sink.id
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.sink.member
}

# The sink publishes events it cannot apply to the dead-letter topic
# (config pubsub.dead_letter_topic).
resource "google_pubsub_topic_iam_member" "sink_publishes_dead_letters" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.sink.member
}

# The sink creates the Avro object files (never replacing one: files are
# immutable) and its own dead-letters.
resource "google_storage_bucket_iam_member" "sink_creates_objects" {
  bucket = google_storage_bucket.tributary.name
  role   = "roles/storage.objectCreator"
  member = google_service_account.sink.member
}

# The sink reads schemas to decode messages, and BigQuery load jobs read the
# files with the sink's credentials. No delete of data: the history stays.
resource "google_storage_bucket_iam_member" "sink_reads_objects" {
  bucket = google_storage_bucket.tributary.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.sink.member
}

# The sink's load bookkeeping (<prefix>/_sink/: a marker per object waiting
# for a load, a manifest per load in progress) is deleted once done: delete
# there only.
resource "google_storage_bucket_iam_member" "sink_keeps_load_bookkeeping" {
  bucket = google_storage_bucket.tributary.name
  role   = "roles/storage.objectUser"
  member = google_service_account.sink.member

  condition {
    title       = "load-bookkeeping"
    description = "Only ${local.object_prefix}_sink/"
    expression  = "resource.name.startsWith(\"${local.objects}_sink/\")"
  }
}

# The sink creates and writes the changelog and current-state tables, in this
# dataset only.
resource "google_bigquery_dataset_iam_member" "sink_edits_dataset" {
  dataset_id = google_bigquery_dataset.tributary.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.sink.member
}

# Load and query jobs run in a project: jobUser lets the sink run them, and
# nothing more (what a job may touch is the dataset grant above).
resource "google_project_iam_member" "sink_runs_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.sink.member
}

# ---------------------------------------------------------------------------
# Workload Identity: each Kubernetes service account acts as its own Google
# service account, and nothing else may.

# capture's pods (their Kubernetes service account) act as tributary-capture.
resource "google_service_account_iam_member" "capture_workload_identity" {
  service_account_id = google_service_account.capture.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${local.workload_pool}[${var.k8s_namespace}/${var.capture_ksa}]"
}

# The sink's pods act as tributary-sink.
resource "google_service_account_iam_member" "sink_workload_identity" {
  service_account_id = google_service_account.sink.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${local.workload_pool}[${var.k8s_namespace}/${var.sink_ksa}]"
}
