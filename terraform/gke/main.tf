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
  # checkov:skip=CKV_GCP_83:encrypted at rest with Google-managed keys; a customer-managed key needs a key ring this module does not own (set kms_key_name on the topic where policy requires one)
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
  # checkov:skip=CKV_GCP_62:usage logs would need a second bucket; reads and writes are recorded by Cloud Audit Logs (Data Access for storage.googleapis.com)

  # Alert and dead-letter files are evidence: an overwrite or deletion keeps the old version for a week.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

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

# ---- the detection job, from the Flex Template (terraform/dataflow, `make flex-template`); off by default ----

locals {
  # Template parameters (metadata.json names them after `kubesigma run`'s options); the job reads the
  # subscription above, writes to the bucket above and, with Elasticsearch, reads its API key itself.
  job_parameters = {
    pubsub_subscription        = google_pubsub_subscription.audit.id
    pubsub_timestamp_attribute = "logging.googleapis.com/timestamp"
    alerts_out                 = "gs://${google_storage_bucket.job.name}/alerts"
    dead_letter                = "gs://${google_storage_bucket.job.name}/dead-letter"
  }
  elasticsearch_parameters = {
    es_url            = var.elasticsearch_url
    es_api_key_secret = var.elasticsearch_api_key_secret
  }
}

resource "google_dataflow_flex_template_job" "detections" {
  provider = google-beta
  count    = var.dataflow_job ? 1 : 0

  project                 = var.project_id
  region                  = var.region
  name                    = "${var.name}-detections"
  container_spec_gcs_path = var.flex_template_spec
  sdk_container_image     = var.flex_template_image
  service_account_email   = google_service_account.worker.email
  temp_location           = "gs://${google_storage_bucket.job.name}/tmp"
  staging_location        = "gs://${google_storage_bucket.job.name}/staging"
  enable_streaming_engine = true
  max_workers             = var.max_workers
  subnetwork              = var.subnetwork
  ip_configuration        = var.worker_public_ips ? "WORKER_IP_PUBLIC" : "WORKER_IP_PRIVATE"
  parameters = merge(
    local.job_parameters,
    var.elasticsearch_url == null ? {} : local.elasticsearch_parameters,
    var.job_parameters,
  )
  labels = {
    app = "kubesigma"
  }
  # Drain, not cancel: what is read is processed, open correlation windows and suppression runs close
  # and their alerts are written before the job stops (on destroy, and when a change replaces it).
  on_delete = "drain"

  lifecycle {
    precondition {
      condition     = var.flex_template_spec != null && var.flex_template_image != null
      error_message = "dataflow_job = true needs flex_template_spec and flex_template_image (make flex-template prints both)."
    }
    precondition {
      condition     = var.elasticsearch_url == null || var.elasticsearch_api_key_secret != null
      error_message = "elasticsearch_url needs elasticsearch_api_key_secret: the workers read the key from Secret Manager."
    }
  }

  depends_on = [
    google_project_iam_member.worker_runs_dataflow,
    google_pubsub_subscription_iam_member.worker_reads,
    google_storage_bucket_iam_member.worker_writes,
    google_secret_manager_secret_iam_member.worker_reads_es_key,
  ]
}
