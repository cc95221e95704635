variable "cluster_name" {
  description = "EKS cluster whose audit log (control-plane logging type `audit`, turned on in the cluster) is exported."
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

variable "buffer_seconds" {
  description = "Firehose buffer interval: the detection latency floor (60 to 900 seconds)."
  type        = number
  default     = 60

  validation {
    condition     = var.buffer_seconds >= 60 && var.buffer_seconds <= 900
    error_message = "buffer_seconds: Firehose accepts 60 to 900."
  }
}

variable "retention_days" {
  description = "Days the exported audit log is kept in the bucket (replays and backfills read it)."
  type        = number
  default     = 90
}
