"""`kubesigma run`: build the detection job from options, run it, report what it did."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import apache_beam as beam
import orjson
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions

from kubesigma.connectors.sinks.elasticsearch import IndexEvents, WriteToElasticsearch
from kubesigma.connectors.sinks.es_config import ElasticsearchConfig, config_from_options
from kubesigma.connectors.sinks.es_indices import install_templates
from kubesigma.connectors.sinks.jsonlines import (
    WriteJsonLines,
    WriteJsonLinesStreaming,
    dead_letter_documents,
)
from kubesigma.connectors.sources import kafka_config
from kubesigma.connectors.sources.files import STDIN, InputError, list_inputs
from kubesigma.connectors.sources.ranges import split_inputs
from kubesigma.detections.correlation import CorrelationPlan, compile_correlations
from kubesigma.detections.engine import EngineConfig, RuleSet
from kubesigma.pipeline.beam_import import LOCAL_RUNNERS
from kubesigma.pipeline.correlate import Correlate, CorrelateRouted
from kubesigma.pipeline.decide import decide_alerts
from kubesigma.pipeline.metrics import NAMESPACE, RULE_HITS, MeasureLag, ShowProgress
from kubesigma.pipeline.options import (
    FlinkCheckpointOptions,
    KinesisOptions,
    KubesigmaOptions,
    OptionError,
    duration_option,
    effective_suppress_window,
    read_limits,
    rule_paths,
    time_range,
    validate_args,
)
from kubesigma.pipeline.shards import ShardedDetect, routed_tag
from kubesigma.pipeline.transforms import DecodeAudit, Detect, InTimeRange, ReadAuditFiles

log = logging.getLogger("kubesigma")

COUNTERS = (
    "read",
    "normalized",
    "dead_lettered",
    "skipped",
    "truncated",
    "alerts",
    "correlation_fired",
    "alerts_folded",
    "late_dropped",
    "request_stages_merged",
    "outside_time_range",
)


# Streaming progress: event time reached by the source (tail) and the correlation stage, and the
# processing lag (wall clock minus the newest event time of each decoded batch).
GAUGES = (
    "source_watermark_ms",
    "max_event_time_ms",
    "correlation_watermark_ms",
    "tail_backlog_bytes",
    "kafka_backlog_records",
    "kinesis_millis_behind",
)
DISTRIBUTIONS = ("processing_lag_ms",)


@dataclass
class RunReport:
    counters: dict[str, int]
    rule_hits: dict[str, int] = field(default_factory=dict)
    # Streaming only: the latest value of each gauge, and min/max/mean/count of each distribution.
    progress: dict[str, Any] = field(default_factory=dict)


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """Every file the inputs name (files, directories read recursively, globs, `-` for standard input);
    an input that names nothing is an error, not an empty run."""
    files: list[str] = []
    for pattern in patterns:
        try:
            files.extend(list_inputs(pattern))
        except InputError as err:
            raise OptionError(str(err)) from None
    if files.count(STDIN) > 1:
        raise OptionError("--input -: standard input can be read once")
    return list(dict.fromkeys(files))


def load_rules(options: KubesigmaOptions) -> RuleSet:
    config = EngineConfig.from_file(Path(options.engine_config)) if options.engine_config else None
    return RuleSet.load(rule_paths(options), config=config)


def pipeline_options(argv: Sequence[str]) -> PipelineOptions:
    validate_args(argv)
    options = PipelineOptions(list(argv))
    standard = options.view_as(StandardOptions)
    ks = options.view_as(KubesigmaOptions)
    # The tail, Kafka and Kinesis sources are splittable DoFns, which only Prism runs locally in streaming mode.
    splittable = bool(
        ks.tail
        or options.view_as(kafka_config.KafkaOptions).kafka_bootstrap
        or options.view_as(KinesisOptions).kinesis_stream
    )
    if not standard.runner:
        # The default DirectRunner first tries to download Prism; batch runs go straight to FnApiRunner.
        standard.runner = (
            "FnApiRunner"
            if not standard.streaming
            else "PrismRunner"
            if splittable
            else "BundleBasedDirectRunner"
        )
    mode = options.view_as(FlinkCheckpointOptions).checkpointing_mode
    if mode is not None and mode not in ("EXACTLY_ONCE", "AT_LEAST_ONCE"):
        raise OptionError(f"--checkpointing_mode {mode}: EXACTLY_ONCE or AT_LEAST_ONCE")
    if standard.streaming and splittable:
        _splittable_runner(options)
    if standard.streaming and runner_name(options) == "FlinkRunner":
        _flink_streaming_defaults(options, argv)
    if options.view_as(KubesigmaOptions).pubsub_subscription and str(standard.runner).endswith("PrismRunner"):
        raise OptionError(
            "--pubsub-subscription does not run on PrismRunner (it does not implement Beam's Pub/Sub read, "
            "beam:transform:pubsub_read:v1): run it on Dataflow, or locally on BundleBasedDirectRunner "
            "(the default)."
        )
    return options


def _splittable_runner(options: PipelineOptions) -> None:
    """Fail fast where the tail, Kafka or Kinesis source cannot run, and find a locally built Prism
    (`make prism`)."""
    from apache_beam.options.pipeline_options import PrismRunnerOptions

    runner = str(options.view_as(StandardOptions).runner)
    source = (
        "--tail"
        if options.view_as(KubesigmaOptions).tail
        else "--kinesis-stream"
        if options.view_as(KinesisOptions).kinesis_stream
        else "--kafka-bootstrap"
    )
    if runner_name(options) in ("DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner"):
        raise OptionError(
            f"{source} does not run on {runner}: Beam's Python direct runner cannot run its "
            f"splittable DoFn in streaming mode. Use --runner=PrismRunner (the default with {source}; "
            "`make prism` builds it offline), or Flink/Dataflow."
        )
    if runner.endswith(("FlinkRunner", "PortableRunner")):
        _flink_checkpoints(options)
    prism = options.view_as(PrismRunnerOptions)
    if runner.endswith("PrismRunner") and not prism.prism_location:
        built = _local_prism()
        if built:
            prism.prism_location = built


def _flink_checkpoints(options: PipelineOptions) -> None:
    """Checkpoints that pass a splittable source on Beam's Flink runner. By default a bundle still open at
    a checkpoint is finished inside the snapshot, and what it emits waits in a buffer until the operator
    starts another bundle: the one element that starts the source (the topic, the directory, the stream)
    then never reached the reader, and the job read nothing. Finishing the bundle before the barrier
    emits it at once; without checkpoints the option does nothing."""
    flink = options.view_as(FlinkCheckpointOptions)
    if flink.checkpointing_interval and flink.shutdown_sources_after_idle_ms is not None:
        # Seen here: the reader's task stuck in the drain (jstack: DoFnOperator.finish → flushData), its
        # first checkpoint pending for minutes; once, the job ended after reading 66 records of 3,000.
        raise OptionError(
            "--shutdown_sources_after_idle_ms with --checkpointing_interval: Flink then ends the source's "
            "input and Beam drains the unbounded reader inside the operator's finish, where no checkpoint "
            "completes; leave it out (a checkpointing job's sources stay open)"
        )
    if flink.finish_bundle_before_checkpointing is None:
        flink.finish_bundle_before_checkpointing = True


# Beam's Flink runner ends a bundle after 1000 ms, and a stage's watermark, so every suppression and
# correlation timer, waits for its bundle to end: under a steady stream the timers fired only once the
# traffic stopped (bench/streaming.py, 1,000 records/s: first alert 25 s after the start, p50 18 s; 200 ms:
# first 5 s, p50 4.9 s; 100 ms with 10 ms network buffers: p50 2.6 s against 3.0 s at 200 ms, for about 6%
# more CPU a record).
FLINK_STREAMING_BUNDLE_MS = 100
# Flink sends a network buffer when it is full or after 100 ms: each shuffle and each watermark between
# stages waited up to that, which alone did little at 200 ms bundles and about 0.35 s of p50 at 100 ms.
FLINK_STREAMING_CONF = "execution.buffer-timeout.interval: 10 ms\n"
# With one SDK worker every stage's bundles share one interpreter with the decode-and-detect stage, which
# held the rest back (single-event p50 8.4 s with one worker, 4.9 s with two, at the same CPU).
FLINK_STREAMING_SDK_WORKERS = 2


def _flink_streaming_defaults(options: PipelineOptions, argv: Sequence[str]) -> None:
    """A streaming job on Flink gets short bundles, short network buffer timeouts and at least two SDK
    workers unless told otherwise (a --flink_conf_dir given is the user's configuration, whole)."""
    from apache_beam.options.pipeline_options import PortableOptions

    flink = options.view_as(FlinkCheckpointOptions)
    if flink.max_bundle_time_mills is None:
        flink.max_bundle_time_mills = FLINK_STREAMING_BUNDLE_MS
    if not any(arg.split("=", 1)[0] == "--sdk_worker_parallelism" for arg in argv):
        options.view_as(PortableOptions).sdk_worker_parallelism = FLINK_STREAMING_SDK_WORKERS
    # The job server reads the directory when the job starts: only one this process starts (no
    # --job_endpoint) runs where the directory is.
    if flink.flink_conf_dir is None and not options.view_as(PortableOptions).job_endpoint:
        flink.flink_conf_dir = _flink_conf_dir(FLINK_STREAMING_CONF)


def _flink_conf_dir(text: str) -> str:
    """A private directory holding `flink-conf.yaml` with `text`, removed when this process exits."""
    import atexit
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="kubesigma-flink-conf-")
    Path(directory, "flink-conf.yaml").write_text(text)
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def runner_name(options: PipelineOptions) -> str:
    """The runner's class name, however --runner spelled it (`FlinkRunner`, or a dotted path to it)."""
    return str(options.view_as(StandardOptions).runner).split(".")[-1]


def _local_prism() -> str | None:
    """A Prism binary built from the Go module proxy (`make prism`): $KUBESIGMA_PRISM, `prism` on the
    PATH, or $GOBIN / ~/go/bin. Without one, Beam downloads a release from GitHub."""
    import os
    import shutil

    candidates = [os.environ.get("KUBESIGMA_PRISM"), shutil.which("prism")]
    gobin = os.environ.get("GOBIN") or os.path.join(
        os.environ.get("GOPATH") or os.path.expanduser("~/go"), "bin"
    )
    candidates.append(os.path.join(gobin, "prism"))
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def build(
    pipeline: beam.Pipeline,
    options: KubesigmaOptions,
    rules: RuleSet,
    es: ElasticsearchConfig | None = None,
    progress: str | None = None,
    files: list[str] | None = None,
) -> None:
    """source → decode → detect → correlate → suppress → alerts, batch over files or --streaming.
    `progress` labels a progress line on standard error (in-process runners: `rules backtest`)."""
    limits = read_limits(options)
    streaming = options.view_as(StandardOptions).streaming
    workers = worker_count(options, streaming, es)
    since, until = time_range(options.since, options.until)
    plan = compile_correlations(rules)
    window = effective_suppress_window(options, streaming)
    allowed_lateness = duration_option(options, "allowed_lateness")
    checkpoints: list[beam.PCollection] = []  # a source's read positions, written once processed
    events = None
    if workers > 1:
        # Read, decode, detect and route in worker processes; correlation and alerts here, over all.
        listed = files if files is not None else expand_inputs(options.inputs or [])
        if STDIN in listed:
            raise OptionError(
                "--workers shares files among workers: standard input (-) goes to one, use --workers 1"
            )
        shares = split_inputs(listed, workers)
        sharded = pipeline | "ShardedDetect" >> ShardedDetect(
            rules, plan, shares, limits, options.cluster_name
        )
        matches, read_dead = sharded.matches, sharded.dead_letter
        routed = tuple(sharded[routed_tag(level)] for level in range(plan.levels))
        hits = routed | "Correlate" >> CorrelateRouted(plan, allowed_lateness) if routed else None
    else:
        records = read_records(
            pipeline,
            options,
            limits,
            streaming,
            checkpoints,
            files,
            replay_horizon(plan, window, allowed_lateness),
        )
        if progress:
            records | "ShowProgress" >> ShowProgress(progress)
        events = records | "DecodeAudit" >> DecodeAudit(options.cluster_name)
        decoded = events.events | "MeasureLag" >> MeasureLag() if streaming else events.events
        if since is not None or until is not None:
            decoded = decoded | "InTimeRange" >> InTimeRange(since, until)
        matches, read_dead = decoded | "Detect" >> Detect(rules), events.dead_letter
        hits = matches | "Correlate" >> Correlate(plan, allowed_lateness) if plan else None
    alerts = decide_alerts(matches, hits, plan, limits.soft, window)
    # Streaming files gather documents by wall-clock time: nothing decided behind the watermark is dropped.
    every = max(1.0, duration_option(options, "file_interval"))
    if streaming:

        def write(path: str) -> beam.PTransform:
            return WriteJsonLinesStreaming(path, every=every)
    else:
        write = WriteJsonLines
    written = [alerts | "WriteAlerts" >> write(options.alerts_out)]
    dead_letters = [read_dead]
    if es is not None:
        written.append((alerts | "IndexAlerts" >> WriteToElasticsearch(es, "alerts")).dead_letter)
        dead_letters.append(written[-1])
        if es.index_events and events is not None:
            dead_letters.append((events.events | "IndexEvents" >> IndexEvents(es, limits.soft)).dead_letter)
    all_dead = dead_letters[0] if len(dead_letters) == 1 else dead_letters | "DeadLetters" >> beam.Flatten()
    written.append(dead_letter_documents(all_dead) | "WriteDeadLetters" >> write(options.dead_letter))
    if checkpoints:
        from kubesigma.connectors.sources.kinesis import CommitShardPositions

        # The sinks' output passes an event time once the alerts up to it are decided; late follow-ups come
        # up to the lateness and the suppression window after it, and files are written every `every`
        # seconds (wall clock, taken as event time here: a live stream's are close).
        lateness = allowed_lateness + (window or 0.0)
        (*checkpoints, *written) | "CommitPositions" >> CommitShardPositions(lateness + every)


def worker_count(options: KubesigmaOptions, streaming: bool, es: ElasticsearchConfig | None) -> int:
    """--workers, checked: batch only, and events stay in the workers (not indexed)."""
    workers = 1 if options.workers is None else int(options.workers)
    if workers < 1:
        raise OptionError(f"--workers {workers}: must be at least 1")
    if workers > 1 and streaming:
        raise OptionError("--workers applies to batch runs; a streaming job's parallelism is its runner's")
    if workers > 1 and es is not None and es.index_events:
        raise OptionError("--workers does not combine with --es-index-events (events stay in the workers)")
    if workers > 1 and (options.since or options.until):
        raise OptionError(
            "--workers does not combine with --since/--until yet (the workers read every event)"
        )
    return workers


def replay_horizon(plan: CorrelationPlan, suppress_window: float | None, allowed_lateness: float) -> float:
    """How far before its committed offsets a Kafka job without runner state re-reads (`--kafka-replay
    auto`): twice the longest stateful window. Suppression runs and correlation windows are chained, not
    aligned to the clock: a run opens at the first alert after the previous one closed. The window open at
    the kill began at most one window before it; starting one window earlier still, the replay opens the
    same runs and windows as the uninterrupted job (the same alert ids) for every group that paused for a
    window's length there. A chained correlation's window spans its inputs' windows: one per level."""
    correlation = sum(
        max((spec.timespan for spec in plan.at_level(level)), default=0.0) for level in range(plan.levels)
    )
    stateful = max(suppress_window or 0.0, correlation + allowed_lateness if plan else 0.0)
    return 2 * stateful


def read_records(
    pipeline: beam.Pipeline,
    options: KubesigmaOptions,
    limits: Any,
    streaming: bool,
    checkpoints: list[beam.PCollection] | None = None,
    files: list[str] | None = None,
    replay: float = 0.0,
) -> beam.PCollection:
    """Batches of raw records from the one source the options name; a source that commits its read
    positions after processing adds them to `checkpoints` (`files`: the inputs of a batch run, listed; `replay`: the Kafka replay horizon `--kafka-replay auto`
    stands for)."""
    kinesis = options.view_as(KinesisOptions)
    if kinesis.kinesis_stream:
        if options.inputs or options.pubsub_subscription or options.tail or _kafka(options):
            raise OptionError(
                "--kinesis-stream reads alone: drop --input, --pubsub-subscription, --tail and --kafka-bootstrap"
            )
        read = kinesis_read(kinesis, streaming)
        records = pipeline | "ReadKinesis" >> read
        positions = getattr(read, "positions", None)  # the streaming read's, set as it expands
        if kinesis.kinesis_checkpoint and positions is not None and checkpoints is not None:
            checkpoints.append(positions)
        return records
    if streaming:
        kafka = _kafka(options)
        if sum(map(bool, (options.pubsub_subscription, options.tail, kafka))) != 1:
            raise OptionError(
                "--streaming reads from exactly one of --pubsub-subscription, --tail, --kafka-bootstrap and "
                "--kinesis-stream"
            )
        if kafka is not None:
            from kubesigma.connectors.sources.kafka import ReadKafkaRecords

            kafka_options = options.view_as(kafka_config.KafkaOptions)
            max_idle = (
                duration_option(kafka_options, "kafka_max_idle") if kafka_options.kafka_max_idle else None
            )
            max_delay = duration_option(kafka_options, "kafka_max_delay")
            if kafka_options.kafka_replay != "auto":
                replay = duration_option(kafka_options, "kafka_replay")
            read = ReadKafkaRecords(
                kafka, limits, max_delay, max_idle, replay, finalized=finalizes_bundles(pipeline.options)
            )
            return pipeline | "ReadKafka" >> read
        if options.pubsub_subscription:
            from kubesigma.connectors.sources.pubsub import ReadPubSubRecords

            try:
                read = ReadPubSubRecords(
                    options.pubsub_subscription, timestamp_attribute=options.pubsub_timestamp_attribute
                )
            except ValueError as err:
                raise OptionError(f"--pubsub-subscription: {err}") from err
            return pipeline | "ReadPubSub" >> read
        from kubesigma.connectors.sources.tail import TailAuditDirectory

        max_idle = duration_option(options, "tail_max_idle") if options.tail_max_idle else None
        try:
            tail = TailAuditDirectory(
                options.tail,
                pattern=options.tail_pattern,
                interval=duration_option(options, "tail_interval") or 1.0,
                max_delay=duration_option(options, "tail_max_delay"),
                max_idle=max_idle,
            )
        except ValueError as err:
            raise OptionError(str(err)) from err
        return pipeline | "TailAuditLogs" >> tail
    if files is None:
        files = input_files(options, pipeline.options)
    return pipeline | "ReadAuditFiles" >> ReadAuditFiles(files, limits)


def finalizes_bundles(options: PipelineOptions) -> bool:
    """Whether the runner finalizes bundles: Beam's Flink runner does only when a checkpoint completes,
    so never without `--checkpointing_interval`. A PortableRunner's job server may be Flink's: taken as
    such (without finalization no offsets are committed, and a restart reads again from the group's
    last commit: more work, nothing lost)."""
    return runner_name(options) not in ("FlinkRunner", "PortableRunner") or bool(
        options.view_as(FlinkCheckpointOptions).checkpointing_interval
    )


def _kafka(options: KubesigmaOptions) -> kafka_config.KafkaConfig | None:
    try:
        return kafka_config.config_from_options(options)
    except kafka_config.KafkaConfigError as err:
        raise OptionError(str(err)) from err


def kinesis_read(options: KinesisOptions, streaming: bool) -> beam.PTransform:
    from kubesigma.connectors.sources.kinesis import ReadKinesisRecords, ReadKinesisStream

    if not streaming:
        if options.kinesis_checkpoint or options.kinesis_max_idle:
            raise OptionError("--kinesis-checkpoint and --kinesis-max-idle need --streaming")
        return ReadKinesisRecords(options.kinesis_stream, region=options.kinesis_region)
    try:
        return ReadKinesisStream(
            options.kinesis_stream,
            region=options.kinesis_region,
            checkpoint=options.kinesis_checkpoint,
            interval=duration_option(options, "kinesis_interval") or 1.0,
            max_delay=duration_option(options, "kinesis_max_delay"),
            max_idle=duration_option(options, "kinesis_max_idle") if options.kinesis_max_idle else None,
        )
    except ValueError as err:
        raise OptionError(f"--kinesis-stream: {err}") from err


def input_files(options: KubesigmaOptions, pipeline_options: PipelineOptions) -> list[str]:
    """The files of a batch run; standard input only where the job runs here."""
    listed = expand_inputs(options.inputs or [])
    runner = runner_name(pipeline_options)
    if STDIN in listed and runner not in LOCAL_RUNNERS:
        raise OptionError(
            f"--input -: standard input is read where the job runs, which {runner} cannot do; "
            "run locally (the default FnApiRunner) or name files"
        )
    return listed


class JobFailed(RuntimeError):
    """The Beam job stopped with an error (an output that cannot be written, a worker that died); the
    message is the cause's own last line."""


def check_outputs(options: KubesigmaOptions, streaming: bool) -> None:
    """Local output files of a batch run must be writable before hours of reading start."""
    names = ("alerts_out", "dead_letter", "metrics_out") if not streaming else ("metrics_out",)
    for name in names:
        path = getattr(options, name)
        if not path or "://" in path:
            continue
        flag = f"--{name.replace('_', '-')}"
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise OptionError(f"{flag} {path!r} is a directory, not a file")
        if not os.path.isdir(folder):
            raise OptionError(f"{flag} {path!r}: no such directory {folder!r}")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OptionError(f"{flag} {path!r}: cannot write in {folder!r} (permission denied)")


def _run_job(pipeline: beam.Pipeline) -> Any:
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except (KeyboardInterrupt, OptionError):
        raise
    except Exception as err:
        # Beam wraps a worker's error in its own ("... [while running 'Step']"): say the cause, in one line.
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise JobFailed(f"the job failed: {lines[-1] if lines else type(err).__name__}") from err
    return result


def run(argv: Sequence[str], out: TextIO, progress: str | None = None) -> RunReport:
    options = pipeline_options(argv)
    ks = options.view_as(KubesigmaOptions)
    batch_source = ks.inputs or options.view_as(KinesisOptions).kinesis_stream
    if not batch_source and not options.view_as(StandardOptions).streaming:
        raise OptionError("--input is required (a glob of audit log files)")
    for name in ("alerts_out", "dead_letter"):
        if not getattr(ks, name):
            raise OptionError(f"--{name.replace('_', '-')} is required")
    streaming = bool(options.view_as(StandardOptions).streaming)
    if not streaming and _kafka(ks) is not None:
        raise OptionError("--kafka-bootstrap is a streaming source: add --streaming")
    # Inputs are listed first: a typo in a path fails before the rules compile.
    files = None if streaming else input_files(ks, options)
    check_outputs(ks, streaming)
    rules = load_rules(ks)
    es = config_from_options(options)
    if es is not None:
        # Templates and retention go in before the first document, idempotently; what the cluster lacks
        # (ILM without x-pack) is said here, once.
        for line in install_templates(es):
            out.write(f"{line}\n")
    try:
        pipeline = beam.Pipeline(options=options)
    except ValueError as err:  # the runner's own validation (Dataflow: project, region, temp_location)
        lines = [line.strip() for line in str(err).splitlines()[1:] if line.strip()] or [str(err)]
        raise OptionError(f"--runner {options.view_as(StandardOptions).runner}: {'; '.join(lines)}") from None
    build(pipeline, ks, rules, es, progress, files)
    if submitted_only(options):
        pipeline.run()
        out.write(f"submitted to {options.view_as(StandardOptions).runner}; not waiting for it to finish\n")
        return RunReport(dict.fromkeys(COUNTERS, 0))
    result = _run_job(pipeline)
    report = collect(result)
    if ks.metrics_out:
        with FileSystems.create(ks.metrics_out) as handle:
            handle.write(
                orjson.dumps(
                    {**report.counters, "rule_hits": report.rule_hits, **report.progress},
                    option=orjson.OPT_INDENT_2,
                )
            )
    print_summary(report, rules, out)
    return report


def submitted_only(options: PipelineOptions) -> bool:
    """Whether `run` hands the job over instead of running it: a Dataflow Flex Template launch (its launcher
    passes --template_location: the job description is written and the service starts the job, so there is
    neither a job to wait for nor counters to read) or --no_wait_until_finish (a streaming job submitted
    from CI, or Flink's application-mode driver)."""
    return bool(options.view_as(GoogleCloudOptions).template_location) or bool(
        options.view_as(StandardOptions).no_wait_until_finish
    )


def collect(result: Any) -> RunReport:
    counters = dict.fromkeys(COUNTERS, 0)
    hits: dict[str, int] = {}
    metrics = result.metrics().query(MetricsFilter())["counters"]
    for metric in metrics:
        value = metric.committed if metric.committed is not None else metric.attempted
        name = metric.key.metric.name
        if metric.key.metric.namespace == NAMESPACE and name in counters:
            counters[name] += value
        elif metric.key.metric.namespace == RULE_HITS:
            hits[name] = hits.get(name, 0) + value
    return RunReport(counters, {k: v for k, v in hits.items() if v}, _progress(result))


def _progress(result: Any) -> dict[str, Any]:
    queried = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    progress: dict[str, Any] = {}
    for metric in queried.get("gauges", []):
        name = metric.key.metric.name
        value = metric.committed or metric.attempted
        if name in GAUGES and value is not None and value.value is not None:
            progress[name] = max(progress.get(name, value.value), value.value)
    for metric in queried.get("distributions", []):
        name = metric.key.metric.name
        value = metric.committed or metric.attempted
        if name in DISTRIBUTIONS and value is not None and value.count:
            progress[name] = {"min": value.min, "max": value.max, "mean": value.mean, "count": value.count}
    return progress


def print_summary(report: RunReport, rules: RuleSet, out: TextIO) -> None:
    c = report.counters
    out.write(
        f"read {c['read']}, normalized {c['normalized']}, dead_lettered {c['dead_lettered']}, "
        f"skipped {c['skipped']}, alerts {c['alerts']}\n"
    )
    if not report.rule_hits:
        out.write("no rule fired\n")
        return
    # Building blocks of correlations (generate: false) raise no alert: they are summed on one line.
    inputs = {rid: hits for rid, hits in report.rule_hits.items() if rid in rules.correlation_only_ids}
    rows = sorted(
        ((rules.rule(rid), hits) for rid, hits in report.rule_hits.items() if rid not in inputs),
        key=lambda row: (-row[0].severity, -row[1], row[0].title),
    )
    if rows:
        width = max(len(rule.title) for rule, _ in rows)
        out.write(f"\n{'level':<14}{'hits':>6}  rule\n")
        for rule, hits in rows:
            out.write(f"{rule.level:<14}{hits:>6}  {rule.title:<{width}}  {rule.id}\n")
    if inputs:
        out.write(
            f"\ncorrelation inputs (no alerts of their own): {len(inputs)} rules matched "
            f"{sum(inputs.values())} events\n"
        )
