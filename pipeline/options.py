"""Options of a kubesigma job, as Beam PipelineOptions so they reach Dataflow and Flink unchanged.

Unknown or malformed options fail fast with a message: a typo must not silently run a different job.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions

from kubesigma.connectors.sources import kafka_config  # noqa: F401  (its options are `kubesigma run`'s)
from kubesigma.connectors.sources.files import MiB, ReadLimits

DEFAULT_RULES = Path(__file__).resolve().parent.parent / "detections" / "rules"
# Shipped correlation rules (and their input rules), loaded with the pack by default.
DEFAULT_CORRELATION_RULES = Path(__file__).resolve().parent.parent / "detections" / "correlation" / "rules"


class OptionError(ValueError):
    """An option the user gave is wrong; the message says which and why."""


def _size(text: str) -> int:
    units = {"k": 1024, "kib": 1024, "m": MiB, "mib": MiB, "g": 1024 * MiB, "gib": 1024 * MiB}
    lowered = text.strip().lower()
    for unit in sorted(units, key=len, reverse=True):
        if lowered.endswith(unit):
            return int(float(lowered[: -len(unit)]) * units[unit])
    return int(lowered)


def _duration(text: str) -> float:
    """Seconds from `300`, `300s`, `5m`, `1h`."""
    lowered = text.strip().lower()
    for unit, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)):
        if lowered.endswith(unit) and lowered[: -len(unit)].replace(".", "", 1).isdigit():
            return float(lowered[: -len(unit)]) * factor
    return float(lowered)


class KubesigmaOptions(PipelineOptions):
    """Inputs, outputs and detection settings of `kubesigma run`."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--input",
            dest="inputs",
            action="append",
            default=None,
            help="Audit log file, directory (every file below it, recursively), glob, or - for standard input; "
            "plain or gzip; local, gs:// or s3://. Repeatable.",
        )
        parser.add_argument("--alerts-out", dest="alerts_out", help="Write alerts here as JSON lines.")
        parser.add_argument(
            "--dead-letter",
            dest="dead_letter",
            help="Write records that could not be processed here, as JSON lines with reason and source.",
        )
        parser.add_argument(
            "--metrics-out", dest="metrics_out", help="Write the run's counters here as JSON."
        )
        parser.add_argument(
            "--rules",
            dest="rules",
            action="append",
            default=None,
            help="Folder or file of Sigma rules (default: the shipped pack). Repeatable.",
        )
        parser.add_argument("--engine-config", dest="engine_config", help="YAML: disabled rules and filters.")
        parser.add_argument(
            "--cluster-name", dest="cluster_name", help="Cluster name for events whose envelope names none."
        )
        parser.add_argument(
            "--max-record-bytes",
            dest="max_record_bytes",
            default="16MiB",
            help="Hard limit: larger records go to the dead letters unparsed (default 16MiB).",
        )
        parser.add_argument(
            "--soft-record-bytes",
            dest="soft_record_bytes",
            default="1MiB",
            help="Soft limit: outputs of larger records drop request/response objects (default 1MiB).",
        )
        parser.add_argument(
            "--suppress-window",
            dest="suppress_window",
            default=None,
            help="Fold repeats of a rule and group within this event-time window (e.g. 10m). Streaming default 10m, batch default off; 0 turns it off.",
        )
        parser.add_argument(
            "--pubsub-subscription",
            dest="pubsub_subscription",
            help="Streaming: read JSON audit records (GKE log sink LogEntries, audit Events) from this "
            "subscription (projects/<p>/subscriptions/<s>).",
        )
        parser.add_argument(
            "--pubsub-timestamp-attribute",
            dest="pubsub_timestamp_attribute",
            default=None,
            help="Streaming: take each message's timestamp (and the source's watermark) from this attribute "
            "instead of the publish time; logging.googleapis.com/timestamp for a Cloud Logging sink.",
        )
        parser.add_argument(
            "--tail",
            dest="tail",
            help="Streaming: follow the kube-apiserver audit logs of this directory (audit.log and its rotations).",
        )
        parser.add_argument(
            "--tail-interval", dest="tail_interval", default="1s", help="How often --tail polls (default 1s)."
        )
        parser.add_argument(
            "--tail-pattern",
            dest="tail_pattern",
            default="audit*.log",
            help="File names --tail follows in its directory (default audit*.log: audit.log and its rotations).",
        )
        parser.add_argument(
            "--tail-max-delay",
            dest="tail_max_delay",
            default="5s",
            help="--tail's watermark trails the newest event time read by this much (audit lines are written "
            "when requests complete, so event times arrive slightly out of order; default 5s). With nothing "
            "new to read, the watermark follows the wall clock minus this delay.",
        )
        parser.add_argument(
            "--tail-max-idle",
            dest="tail_max_idle",
            default=None,
            help="Finish the job once --tail found nothing new for this long (e.g. 30s): every window closes "
            "and the job ends. For replays and tests; default: tail forever.",
        )
        parser.add_argument(
            "--since",
            dest="since",
            default=None,
            help="Batch: only events at or after this time (ISO 8601, e.g. 2026-11-01T00:00:00Z).",
        )
        parser.add_argument(
            "--until",
            dest="until",
            default=None,
            help="Batch: only events before this time (ISO 8601).",
        )
        parser.add_argument(
            "--file-interval",
            dest="file_interval",
            default="60s",
            help="Streaming: --alerts-out and --dead-letter are directories; a new file holding what was "
            "decided since the last one is written this often (default 60s), whatever the event time.",
        )
        parser.add_argument(
            "--workers",
            dest="workers",
            type=int,
            default=1,
            help="Batch: read, decode and match in this many worker processes (one per core helps; "
            "large JSON-lines files are split by byte ranges, gzip files go whole to one worker). "
            "Correlation and alerts see every worker's matches: the alerts are the same as with 1.",
        )
        parser.add_argument(
            "--allowed-lateness",
            dest="allowed_lateness",
            default="2m",
            help="Events up to this much older than what a correlation group already evaluated are still "
            "counted (default 2m); older ones are dropped and counted in the late_dropped metric.",
        )


def validate_args(argv: Sequence[str]) -> None:
    """Reject options no PipelineOptions class knows (Beam itself only warns and drops them)."""
    # Every options class of the job must be declared, whatever the caller happened to import first.
    from kubesigma.connectors.sinks import es_config  # noqa: F401  (ElasticsearchOptions)

    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    seen: set[type] = set()
    stack = list(PipelineOptions.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        # An option declared by two classes is fine (Beam allows it when identical).
        with contextlib.suppress(argparse.ArgumentError):
            cls._add_argparse_args(parser)  # type: ignore[arg-type]
    _, unknown = parser.parse_known_args(list(argv))
    flags = [a for a in unknown if a.startswith("-")]
    if flags:
        raise OptionError(f"unknown option(s): {' '.join(flags)} (see `kubesigma run --help`)")


def read_limits(options: KubesigmaOptions) -> ReadLimits:
    try:
        return ReadLimits(hard=_size(options.max_record_bytes), soft=_size(options.soft_record_bytes))
    except ValueError as err:
        raise OptionError(f"--max-record-bytes/--soft-record-bytes: {err}") from err


def suppress_window(options: KubesigmaOptions) -> float | None:
    if options.suppress_window in (None, ""):
        return None
    try:
        seconds = _duration(options.suppress_window)
    except ValueError as err:
        raise OptionError(
            f"--suppress-window {options.suppress_window!r}: not a duration such as 10m"
        ) from err
    if seconds < 0:
        raise OptionError("--suppress-window must not be negative")
    return seconds


STREAMING_SUPPRESS_WINDOW = 600.0


def effective_suppress_window(options: KubesigmaOptions, streaming: bool) -> float | None:
    """Suppression is on by default in streaming (10m), off in batch unless --suppress-window is given."""
    window = suppress_window(options)
    if window is None:
        return STREAMING_SUPPRESS_WINDOW if streaming else None
    return window or None


def duration_option(options: PipelineOptions, name: str) -> float:
    text = getattr(options, name)
    try:
        seconds = _duration(text)
    except ValueError as err:
        raise OptionError(f"--{name.replace('_', '-')} {text!r}: not a duration such as 2m") from err
    if seconds < 0:
        raise OptionError(f"--{name.replace('_', '-')} must not be negative")
    return seconds


def iso_time_option(text: str | None, name: str) -> float | None:
    """Seconds since the epoch from an ISO 8601 time; a time without zone is UTC."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as err:
        raise OptionError(f"--{name} {text!r}: not an ISO 8601 time such as 2026-11-01T00:00:00Z") from err
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def time_range(since_text: str | None, until_text: str | None) -> tuple[float | None, float | None]:
    """The event-time range of --since/--until (either may be open)."""
    since = iso_time_option(since_text, "since")
    until = iso_time_option(until_text, "until")
    if since is not None and until is not None and since >= until:
        raise OptionError(f"--since {since_text} is not before --until {until_text}")
    return since, until


def rule_paths(options: KubesigmaOptions) -> list[str]:
    paths = options.rules or [str(DEFAULT_RULES), str(DEFAULT_CORRELATION_RULES)]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise OptionError(f"--rules: no such file or folder: {', '.join(missing)}")
    return paths


class FlinkCheckpointOptions(PipelineOptions):
    """Options of Beam's Flink runner that a streaming job on Flink needs, declared here so `kubesigma run`
    accepts them (the job server describes the rest of its options only once it runs). They go to the job
    server as given; an option left out keeps Flink's default."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        flag: dict = {"action": "store_true", "default": None}
        parser.add_argument(
            "--checkpointing_interval",
            type=int,
            default=None,
            help="Flink: take a checkpoint of sources' positions and correlation/suppression state every N ms.",
        )
        parser.add_argument(
            "--checkpointing_mode",
            default=None,
            help="Flink: EXACTLY_ONCE (Flink's default: barriers aligned) or AT_LEAST_ONCE (not aligned; "
            "records may be replayed after a restore, which deterministic alert ids absorb).",
        )
        parser.add_argument(
            "--checkpoint_timeout_millis",
            type=int,
            default=None,
            help="Flink: a checkpoint not complete after this many ms is dropped.",
        )
        parser.add_argument(
            "--min_pause_between_checkpoints",
            type=int,
            default=None,
            help="Flink: at least this many ms between the end of a checkpoint and the start of the next.",
        )
        parser.add_argument(
            "--unaligned_checkpoint_enabled",
            **flag,
            help="Flink: unaligned checkpoints (barriers overtake buffered records: faster under backpressure).",
        )
        parser.add_argument(
            "--state_backend",
            default=None,
            help="Flink: where state lives: filesystem (memory, checkpoints to files) or rocksdb.",
        )
        parser.add_argument(
            "--state_backend_storage_path",
            default=None,
            help="Flink: where checkpoints are written (file:///..., s3://..., hdfs://...).",
        )
        parser.add_argument(
            "--externalized_checkpoints_enabled", **flag, help="Flink: keep checkpoints after the job stops."
        )
        parser.add_argument(
            "--retain_externalized_checkpoints_on_cancellation",
            **flag,
            help="Flink: keep them after a cancel too (not only after a failure).",
        )
        parser.add_argument(
            "--savepoint_path",
            default=None,
            help="Flink: start from this savepoint or retained checkpoint (chk-N directory).",
        )
        parser.add_argument(
            "--flink_conf_dir",
            default=None,
            help="Flink: a directory with Flink's configuration file (config.yaml or flink-conf.yaml).",
        )
        parser.add_argument(
            "--shutdown_sources_after_idle_ms",
            type=int,
            default=None,
            help="Flink: end a finished source (Beam's Impulse) after this many ms (with checkpointing it stays "
            "open); refused with --checkpointing_interval, where it stops checkpoints of a streaming source.",
        )
        parser.add_argument(
            "--finish_bundle_before_checkpointing",
            **flag,
            help="Flink: finish the bundle in flight before each checkpoint; set for a streaming source on Flink "
            "(without it, the source's starting element could wait in a snapshot buffer for good).",
        )
        parser.add_argument(
            "--allow_non_restored_state",
            **flag,
            help="Flink: start from a savepoint even if some of its state belongs to no operator any more.",
        )
        parser.add_argument(
            "--max_bundle_size",
            type=int,
            default=None,
            help="Flink: a bundle ends after this many elements (Flink's default 1000).",
        )
        # Beam's Flink runner spells it maxBundleTimeMills: the job server drops max_bundle_time_millis
        # (camel-cased maxBundleTimeMillis) as unknown, so both spellings land in its own.
        parser.add_argument(
            "--max_bundle_time_mills",
            "--max_bundle_time_millis",
            dest="max_bundle_time_mills",
            type=int,
            default=None,
            help="Flink: a bundle ends after this long (Flink's default 1000 ms); each stateful stage waits "
            "for its bundles to end before its watermark moves on, so this adds to alert latency.",
        )


class KinesisOptions(PipelineOptions):
    """The EKS stream: a Kinesis data stream that a CloudWatch Logs subscription filter feeds."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--kinesis-stream",
            dest="kinesis_stream",
            help="Read CloudWatch subscription envelopes of EKS audit logs from this Kinesis stream: with "
            "--streaming it keeps polling and follows splits and merges; without, it reads every shard up "
            "to the tip (a catch-up run). Credentials and region from the AWS default chain.",
        )
        parser.add_argument(
            "--kinesis-region", dest="kinesis_region", default=None, help="The stream's AWS region."
        )
        parser.add_argument(
            "--kinesis-checkpoint",
            dest="kinesis_checkpoint",
            default=None,
            help="Streaming: a JSON file of the last sequence number per shard whose records were processed "
            "(alerts written); the job resumes after them and rewrites it as the sinks catch up.",
        )
        parser.add_argument(
            "--kinesis-interval",
            dest="kinesis_interval",
            default="1s",
            help="How often shards are polled once caught up (default 1s).",
        )
        parser.add_argument(
            "--kinesis-max-delay",
            dest="kinesis_max_delay",
            default="5s",
            help="The watermark trails the oldest shard's newest event time by this much (default 5s).",
        )
        parser.add_argument(
            "--kinesis-max-idle",
            dest="kinesis_max_idle",
            default=None,
            help="Finish the job once no shard had anything new for this long (replays and tests; default: "
            "poll forever).",
        )
