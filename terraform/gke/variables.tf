variable "project_id" {
  description = "Project that holds the GKE clusters, and where the detection job runs."
  type        = string
}

variable "region" {
  description = "Region of the Dataflow job and the bucket."
  type        = string
}

variable "name" {
  description = "Prefix of every resource this module creates."
  type        = string
  default     = "kubesigma"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,20}$", var.name))
    error_message = "name: 3-21 characters, lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "cluster_names" {
  description = "GKE clusters whose audit logs the sink routes; empty routes every cluster of the project."
  type        = list(string)
  default     = []
}

variable "include_data_access" {
  description = "Route Data Access audit logs too. Reads (get, list, watch: secret enumeration, discovery) are only there."
  type        = bool
  default     = true
}

variable "message_retention" {
  description = "How long Pub/Sub keeps unacknowledged audit entries: the job can be stopped this long without losing any."
  type        = string
  default     = "604800s"
}

variable "alert_retention_days" {
  description = "Days alert and dead-letter files are kept in the bucket."
  type        = number
  default     = 90
}

variable "elasticsearch_api_key_secret" {
  description = "Secret Manager secret (projects/P/secrets/S) that holds the Elasticsearch API key; the workers may read it. Null: no Elasticsearch."
  type        = string
  default     = null

  validation {
    condition     = var.elasticsearch_api_key_secret == null || can(regex("^projects/[^/]+/secrets/[^/]+$", var.elasticsearch_api_key_secret))
    error_message = "elasticsearch_api_key_secret: projects/<project>/secrets/<name>."
  }
}

variable "elasticsearch_url" {
  description = "Elasticsearch the job indexes alerts into (https://host:port), with elasticsearch_api_key_secret. Null: alerts go to the bucket only."
  type        = string
  default     = null

  validation {
    condition     = var.elasticsearch_url == null || can(regex("^https://", var.elasticsearch_url))
    error_message = "elasticsearch_url: https:// only; the API key must not travel in clear."
  }
}

variable "dataflow_job" {
  description = "Run the detection job from the Flex Template (google_dataflow_flex_template_job). Off: the module creates the plumbing and prints the job's options."
  type        = bool
  default     = false
}

variable "flex_template_spec" {
  description = "gs:// path of the Flex Template spec that `gcloud dataflow flex-template build` wrote (make flex-template prints the command)."
  type        = string
  default     = null

  validation {
    condition     = var.flex_template_spec == null || can(regex("^gs://.+\\.json$", var.flex_template_spec))
    error_message = "flex_template_spec: gs://<bucket>/<path>.json."
  }
}

variable "flex_template_image" {
  description = "The template's image (terraform/dataflow/Dockerfile), also the workers' SDK container: kubesigma is installed in it."
  type        = string
  default     = null
}

variable "max_workers" {
  description = "Most workers Dataflow's autoscaling may use."
  type        = number
  default     = 4
}

variable "subnetwork" {
  description = "Subnetwork of the workers (regions/R/subnetworks/S or a self link); it needs Private Google Access for private workers. Null: the default network."
  type        = string
  default     = null
}

variable "worker_public_ips" {
  description = "Give workers public IPs. Off: private IPs only (reach Elasticsearch outside Google through Cloud NAT or a peering)."
  type        = bool
  default     = false
}

variable "job_parameters" {
  description = "More template parameters (names as in terraform/dataflow/metadata.json, e.g. suppress_window = \"10m\"); they win over the module's."
  type        = map(string)
  default     = {}
}
