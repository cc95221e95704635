# EKS audit logs into a detection job: a subscription filter on the cluster's CloudWatch log group
# feeds Kinesis Data Firehose, which writes the subscription's gzip envelopes to S3 unchanged (record
# format conversion and "message extraction" stay off, so each envelope keeps the account and log group
# that become cloud.account.id and the cluster name). `kubesigma run --input 's3://...'` reads them.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  log_group = "/aws/eks/${var.cluster_name}/cluster"
  prefix    = "eks/${var.cluster_name}/"
}

resource "aws_s3_bucket" "audit" {
  # checkov:skip=CKV_AWS_18:server access logs need a second bucket; CloudTrail data events record who read or wrote audit objects
  # checkov:skip=CKV_AWS_144:the bucket is a replayable copy of the cluster's CloudWatch log group, which stays the source; replication would double the storage of the same audit log
  # checkov:skip=CKV2_AWS_62:nothing consumes object events: the detection job lists the prefix
  bucket_prefix = "${var.name}-eks-audit-"
}

# The exported audit log is evidence: an overwritten or deleted object keeps its previous version for a week.
resource "aws_s3_bucket_versioning" "audit" {
  bucket = aws_s3_bucket.audit.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_public_access_block" "audit" {
  bucket                  = aws_s3_bucket.audit.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id
  rule {
    id     = "expire-audit-log"
    status = "Enabled"
    filter {
      prefix = "eks/"
    }
    expiration {
      days = var.retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
  }
  # Bucket-wide: Firehose writes under errors/ too, and a failed upload's parts would be kept (and billed).
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "firehose_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "firehose" {
  name_prefix        = "${var.name}-firehose-"
  assume_role_policy = data.aws_iam_policy_document.firehose_assume.json
}

data "aws_iam_policy_document" "firehose_writes" {
  statement {
    actions   = ["s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.audit.arn]
  }
  statement {
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["${aws_s3_bucket.audit.arn}/*"]
  }
}

resource "aws_iam_role_policy" "firehose_writes" {
  role   = aws_iam_role.firehose.id
  policy = data.aws_iam_policy_document.firehose_writes.json
}

resource "aws_kinesis_firehose_delivery_stream" "audit" {
  # checkov:skip=CKV_AWS_241:records wait in Firehose's buffer for buffer_seconds at most, encrypted with an AWS-owned key; the bucket that keeps them is KMS-encrypted
  name        = "${var.name}-${var.cluster_name}-audit"
  destination = "extended_s3"

  server_side_encryption {
    enabled  = true
    key_type = "AWS_OWNED_CMK"
  }

  extended_s3_configuration {
    role_arn            = aws_iam_role.firehose.arn
    bucket_arn          = aws_s3_bucket.audit.arn
    prefix              = local.prefix
    error_output_prefix = "errors/${var.cluster_name}/!{firehose:error-output-type}/"
    buffering_interval  = var.buffer_seconds
    buffering_size      = 5
    # The subscription already gzips every envelope; compressing again would hide them from the reader.
    compression_format = "UNCOMPRESSED"
  }
}

data "aws_iam_policy_document" "logs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["logs.${data.aws_region.current.name}.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "aws:SourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:*"]
    }
  }
}

resource "aws_iam_role" "logs_to_firehose" {
  name_prefix        = "${var.name}-logs-"
  assume_role_policy = data.aws_iam_policy_document.logs_assume.json
}

data "aws_iam_policy_document" "logs_put" {
  statement {
    actions   = ["firehose:PutRecord", "firehose:PutRecordBatch"]
    resources = [aws_kinesis_firehose_delivery_stream.audit.arn]
  }
}

resource "aws_iam_role_policy" "logs_put" {
  role   = aws_iam_role.logs_to_firehose.id
  policy = data.aws_iam_policy_document.logs_put.json
}

resource "aws_cloudwatch_log_subscription_filter" "audit" {
  name           = "${var.name}-audit"
  log_group_name = local.log_group
  # No pattern: a JSON pattern would drop audit events CloudWatch cut at 256 KiB (invalid JSON), and
  # kubesigma recovers those. The group's other streams arrive too and are counted as skipped.
  filter_pattern  = ""
  destination_arn = aws_kinesis_firehose_delivery_stream.audit.arn
  role_arn        = aws_iam_role.logs_to_firehose.arn
}

# What the detection job's identity needs: read the exported objects, nothing else.
data "aws_iam_policy_document" "reader" {
  statement {
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.audit.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.prefix}*"]
    }
  }
  statement {
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.audit.arn}/${local.prefix}*"]
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${data.aws_region.current.name}.amazonaws.com"]
    }
  }
}

resource "aws_iam_policy" "reader" {
  name_prefix = "${var.name}-reader-"
  description = "Read access to ${var.cluster_name}'s exported audit log, for the kubesigma job."
  policy      = data.aws_iam_policy_document.reader.json
}
