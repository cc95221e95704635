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
