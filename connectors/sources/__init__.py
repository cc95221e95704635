"""Where raw records come from: files, a tailed audit log directory, Pub/Sub, Kafka, Kinesis, backfills.
What the sources share: the batch size, and the event time of a raw record for stamping and watermarks."""

from kubesigma.connectors.formats._time import parse_rfc3339
from kubesigma.connectors.model.records import RecordBatch

__all__ = ["RECORD_BATCH", "RecordBatch", "record_time"]

# Records per batch a source hands the decoder: large enough that Beam's per-element cost is paid per
# batch, small enough that one batch is a few hundred kilobytes.
RECORD_BATCH = 500

_TIME_KEYS = (b'"requestReceivedTimestamp":"', b'"timestamp":"', b'"eventTime":"')


def record_time(raw: bytes) -> float | None:
    """The event time of a raw audit record, found without parsing the JSON (the decoder parses it
    later): kube-apiserver's `requestReceivedTimestamp`, else a LogEntry `timestamp` or CloudTrail
    `eventTime`. None when the record has none of them."""
    for key in _TIME_KEYS:
        at = raw.find(key)
        if at >= 0:
            start = at + len(key)
            end = raw.find(b'"', start)
            if end > start:
                return parse_rfc3339(raw[start:end].decode("ascii", "replace"))
    return None
