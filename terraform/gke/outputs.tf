output "subscription" {
  description = "The subscription `kubesigma run --pubsub-subscription` reads."
  value       = google_pubsub_subscription.audit.id
}

output "service_account_email" {
  description = "The Dataflow workers' identity."
  value       = google_service_account.worker.email
}

output "bucket" {
  description = "Staging, temp, alerts and dead letters."
  value       = google_storage_bucket.job.name
}

output "sink_filter" {
  description = "The Cloud Logging filter the sink applies."
  value       = local.sink_filter
}

# The job's options, to append to `kubesigma run` (docs/deploy.md): credentials come from the workers'
# service account, never from these arguments.
output "kubesigma_run_args" {
  description = "Options for `kubesigma run` on Dataflow, one per element."
  value = [
    "--streaming",
    "--runner=DataflowRunner",
    "--project=${var.project_id}",
    "--region=${var.region}",
    "--service_account_email=${google_service_account.worker.email}",
    "--temp_location=gs://${google_storage_bucket.job.name}/tmp",
    "--staging_location=gs://${google_storage_bucket.job.name}/staging",
    "--pubsub-subscription=${google_pubsub_subscription.audit.id}",
    "--pubsub-timestamp-attribute=logging.googleapis.com/timestamp",
    "--alerts-out=gs://${google_storage_bucket.job.name}/alerts",
    "--dead-letter=gs://${google_storage_bucket.job.name}/dead-letter",
    "--enable_streaming_engine",
  ]
}

output "elasticsearch_run_args" {
  description = "Options that make the job read its Elasticsearch API key from Secret Manager (add --es-url or --es-cloud-id)."
  value       = var.elasticsearch_api_key_secret == null ? [] : ["--es-api-key-secret=${var.elasticsearch_api_key_secret}"]
}

output "dataflow_job_id" {
  description = "The detection job's id when dataflow_job is on, else null."
  value       = one(google_dataflow_flex_template_job.detections[*].job_id)
}
