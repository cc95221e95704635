output "bucket" {
  description = "Where Firehose writes the audit log."
  value       = aws_s3_bucket.audit.bucket
}

output "reader_policy_arn" {
  description = "Attach to the role the detection job runs as (Flink TaskManagers, a batch runner)."
  value       = aws_iam_policy.reader.arn
}

output "firehose_stream" {
  description = "The delivery stream the subscription filter feeds."
  value       = aws_kinesis_firehose_delivery_stream.audit.name
}

# Firehose writes under <prefix>YYYY/MM/DD/HH/; Beam's `**` matches across those folders. Credentials
# come from the standard AWS chain where the job runs, never from these arguments.
output "kubesigma_run_args" {
  description = "Options for `kubesigma run` over the exported log, one per element."
  value = [
    "--input=s3://${aws_s3_bucket.audit.bucket}/${local.prefix}**",
    "--s3_region_name=${data.aws_region.current.name}",
  ]
}
