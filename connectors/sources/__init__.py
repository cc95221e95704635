"""Where raw records come from: files, a tailed audit log directory, Pub/Sub, Kinesis, backfills."""

from kubesigma.connectors.event import DeadLetter, RawRecord

# Records per batch a source hands the decoder: large enough that Beam's per-element cost is paid per
# batch, small enough that one batch is a few hundred kilobytes.
RECORD_BATCH = 500


class RecordBatch(list[RawRecord | DeadLetter]):
    """A batch of what a source read (records, and read failures as dead letters), the shape
    `DecodeAudit` takes. A type of its own so the pipeline can give it a coder that sizes a batch by
    its records' bytes: Beam's fallback sizes sampled batches by pickling every record in them."""

    def byte_size(self) -> int:
        return sum(len(r.data) if isinstance(r, RawRecord) else len(r.raw) for r in self)
