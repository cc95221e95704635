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
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from kubesigma.connectors.sinks.elasticsearch import IndexEvents, WriteToElasticsearch
from kubesigma.connectors.sinks.es_config import ElasticsearchConfig, config_from_options
from kubesigma.connectors.sinks.es_indices import install_templates
from kubesigma.connectors.sinks.jsonlines import WriteJsonLines, WriteJsonLinesWindowed, dead_letter_documents
from kubesigma.connectors.sources.files import STDIN, InputError, list_inputs
from kubesigma.detections.correlation import compile_correlations
from kubesigma.detections.engine import EngineConfig, RuleSet
from kubesigma.pipeline.alerts import CandidateAlerts, OnePerRequest, ToCandidates
from kubesigma.pipeline.correlate import Correlate
from kubesigma.pipeline.metrics import NAMESPACE, RULE_HITS, MeasureLag
from kubesigma.pipeline.options import (
    KubesigmaOptions,
    OptionError,
    duration_option,
    effective_suppress_window,
    read_limits,
    rule_paths,
    validate_args,
)
from kubesigma.pipeline.suppress import Suppress
from kubesigma.pipeline.transforms import DecodeAudit, Detect, ReadAuditFiles

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
)


# Streaming progress: event time reached by the source (tail) and the correlation stage, and the
# processing lag (wall clock minus the newest event time of each decoded batch).
GAUGES = ("source_watermark_ms", "max_event_time_ms", "correlation_watermark_ms", "tail_backlog_bytes")
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
    tail = bool(options.view_as(KubesigmaOptions).tail)
    if not standard.runner:
        # The default DirectRunner first tries to download Prism; batch runs go straight to FnApiRunner.
        # The tail source is a splittable DoFn, which only Prism runs locally in streaming mode.
        standard.runner = (
            "FnApiRunner" if not standard.streaming else "PrismRunner" if tail else "BundleBasedDirectRunner"
        )
    if standard.streaming and tail:
        _tail_runner(options)
    if options.view_as(KubesigmaOptions).pubsub_subscription and str(standard.runner).endswith("PrismRunner"):
        raise OptionError(
            "--pubsub-subscription does not run on PrismRunner (it does not implement Beam's Pub/Sub read, "
            "beam:transform:pubsub_read:v1): run it on Dataflow, or locally on BundleBasedDirectRunner "
            "(the default)."
        )
    return options


def _tail_runner(options: PipelineOptions) -> None:
    """Fail fast where the tail source cannot run, and find a locally built Prism (`make prism`)."""
    from apache_beam.options.pipeline_options import PrismRunnerOptions

    runner = str(options.view_as(StandardOptions).runner)
    if runner.split(".")[-1] in ("DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner"):
        raise OptionError(
            f"--tail does not run on {runner}: Beam's Python direct runner cannot run the tail's "
            "splittable DoFn in streaming mode. Use --runner=PrismRunner (the default with --tail; "
            "`make prism` builds it offline), or Flink/Dataflow."
        )
    prism = options.view_as(PrismRunnerOptions)
    if runner.endswith("PrismRunner") and not prism.prism_location:
        built = _local_prism()
        if built:
            prism.prism_location = built


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
    files: list[str] | None = None,
) -> None:
    """source → decode → detect → correlate → suppress → alerts, batch over files or --streaming."""
    limits = read_limits(options)
    streaming = options.view_as(StandardOptions).streaming
    events = read_records(pipeline, options, limits, streaming, files) | "DecodeAudit" >> DecodeAudit(
        options.cluster_name
    )
    decoded = events.events | "MeasureLag" >> MeasureLag() if streaming else events.events
    matches = decoded | "Detect" >> Detect(rules)
    plan = compile_correlations(rules)
    window = effective_suppress_window(options, streaming)
    allowed_lateness = duration_option(options, "allowed_lateness")
    hits = matches | "Correlate" >> Correlate(plan, allowed_lateness)
    candidates = (matches, hits) | "Candidates" >> ToCandidates(plan) | "OnePerRequest" >> OnePerRequest()
    if window is not None:
        candidates = candidates | "Suppress" >> Suppress(window)
    alerts = candidates | "Alerts" >> CandidateAlerts(limits.soft, plan)
    if streaming:
        # A document may trail the watermark by the allowed lateness (late events still correlate) plus a
        # suppression window (follow-ups are known when it closes).
        lateness = allowed_lateness + (window or 0.0)

        def write(path: str) -> beam.PTransform:
            return WriteJsonLinesWindowed(path, lateness=lateness)
    else:
        write = WriteJsonLines
    alerts | "WriteAlerts" >> write(options.alerts_out)
    dead_letters = [events.dead_letter]
    if es is not None:
        dead_letters.append((alerts | "IndexAlerts" >> WriteToElasticsearch(es, "alerts")).dead_letter)
        if es.index_events:
            dead_letters.append((events.events | "IndexEvents" >> IndexEvents(es, limits.soft)).dead_letter)
    all_dead = dead_letters[0] if len(dead_letters) == 1 else dead_letters | "DeadLetters" >> beam.Flatten()
    dead_letter_documents(all_dead) | "WriteDeadLetters" >> write(options.dead_letter)


def read_records(
    pipeline: beam.Pipeline,
    options: KubesigmaOptions,
    limits: Any,
    streaming: bool,
    files: list[str] | None = None,
) -> beam.PCollection:
    """Batches of raw records from the one source the options name (`files`: the inputs, listed)."""
    if streaming:
        if bool(options.pubsub_subscription) == bool(options.tail):
            raise OptionError("--streaming reads from exactly one of --pubsub-subscription and --tail")
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


def input_files(options: KubesigmaOptions, pipeline_options: PipelineOptions) -> list[str]:
    """The files of a batch run; standard input only where the job runs here."""
    listed = expand_inputs(options.inputs or [])
    runner = str(pipeline_options.view_as(StandardOptions).runner).split(".")[-1]
    if STDIN in listed and runner not in LOCAL_RUNNERS:
        raise OptionError(
            f"--input -: standard input is read where the job runs, which {runner} cannot do; "
            "run locally (the default FnApiRunner) or name files"
        )
    return listed


# Runners whose workers run on this machine, started by this process: they can read its standard input.
LOCAL_RUNNERS = frozenset({"FnApiRunner", "DirectRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner"})


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


def run(argv: Sequence[str], out: TextIO) -> RunReport:
    options = pipeline_options(argv)
    ks = options.view_as(KubesigmaOptions)
    if not ks.inputs and not options.view_as(StandardOptions).streaming:
        raise OptionError("--input is required (a glob of audit log files)")
    for name in ("alerts_out", "dead_letter"):
        if not getattr(ks, name):
            raise OptionError(f"--{name.replace('_', '-')} is required")
    streaming = bool(options.view_as(StandardOptions).streaming)
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
    build(pipeline, ks, rules, es, files)
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
