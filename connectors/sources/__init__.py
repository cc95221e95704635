"""Where raw records come from: files, a tailed audit log directory, Pub/Sub, Kinesis, backfills."""

from kubesigma.connectors.model.records import RecordBatch

__all__ = ["RECORD_BATCH", "RecordBatch"]

# Records per batch a source hands the decoder: large enough that Beam's per-element cost is paid per
# batch, small enough that one batch is a few hundred kilobytes.
RECORD_BATCH = 500
