# GKE audit logs into a detection job: a Cloud Logging sink routes the clusters' audit entries into a
# Pub/Sub topic, `kubesigma run --streaming` reads its subscription on Dataflow as a dedicated service
# account, and writes alerts and dead letters to a bucket (and to Elasticsearch when given).

locals {
  audit_logs = concat(
    ["projects/${var.project_id}/logs/cloudaudit.googleapis.com%2Factivity"],
    var.include_data_access ? ["projects/${var.project_id}/logs/cloudaudit.googleapis.com%2Fdata_access"] : [],
  )
  # The filter kubesigma's decoders expect (docs/cloud-sources.md): the API server's audit entries and the
  # control-plane audit entries of container.googleapis.com.
  sink_filter = join(" AND ", compact([
    "logName=(${join(" OR ", [for log in local.audit_logs : "\"${log}\""])})",
    "resource.type=(\"k8s_cluster\" OR \"gke_cluster\")",
    length(var.cluster_names) == 0 ? "" : "resource.labels.cluster_name=(${join(" OR ", [for c in var.cluster_names : "\"${c}\""])})",
  ]))
}

resource "google_pubsub_topic" "audit" {
  project                    = var.project_id
  name                       = "${var.name}-gke-audit"
  message_retention_duration = var.message_retention
}

resource "google_pubsub_subscription" "audit" {
  project                    = var.project_id
  name                       = "${var.name}-gke-audit"
  topic                      = google_pubsub_topic.audit.id
  ack_deadline_seconds       = 60
  message_retention_duration = var.message_retention

  expiration_policy {
    ttl = "" # never expires while the job is stopped
  }
}

resource "google_logging_project_sink" "gke_audit" {
  project                = var.project_id
  name                   = "${var.name}-gke-audit"
  destination            = "pubsub.googleapis.com/${google_pubsub_topic.audit.id}"
  filter                 = local.sink_filter
  unique_writer_identity = true
}

resource "google_pubsub_topic_iam_member" "sink_publishes" {
  project = var.project_id
  topic   = google_pubsub_topic.audit.name
  role    = "roles/pubsub.publisher"
  member  = google_logging_project_sink.gke_audit.writer_identity
}

resource "google_service_account" "worker" {
  project      = var.project_id
  account_id   = "${var.name}-worker"
  display_name = "kubesigma detection job workers"
}

resource "google_project_iam_member" "worker_runs_dataflow" {
  project = var.project_id
  role    = "roles/dataflow.worker"
  member  = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_pubsub_subscription_iam_member" "worker_reads" {
  for_each     = toset(["roles/pubsub.subscriber", "roles/pubsub.viewer"])
  project      = var.project_id
  subscription = google_pubsub_subscription.audit.name
  role         = each.value
  member       = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_storage_bucket" "job" {
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name}"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  lifecycle_rule {
    condition {
      age            = var.alert_retention_days
      matches_prefix = ["alerts/", "dead-letter/"]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age            = 7
      matches_prefix = ["tmp/", "staging/"]
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_iam_member" "worker_writes" {
  bucket = google_storage_bucket.job.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.worker.email}"
}

# The workers read the Elasticsearch API key themselves (--es-api-key-secret); nobody passes it around.
resource "google_secret_manager_secret_iam_member" "worker_reads_es_key" {
  count     = var.elasticsearch_api_key_secret == null ? 0 : 1
  project   = split("/", var.elasticsearch_api_key_secret)[1]
  secret_id = split("/", var.elasticsearch_api_key_secret)[3]
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.worker.email}"
}
