"""Streaming source options fail fast with a message that names the input, before any runner starts."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import StandardOptions

from kubesigma.pipeline.options import OptionError
from kubesigma.pipeline.run import finalizes_bundles, pipeline_options, run


def outputs(tmp_path: Path) -> list[str]:
    return ["--alerts-out", str(tmp_path / "alerts"), "--dead-letter", str(tmp_path / "dead")]


def test_tail_runs_on_prism_unless_a_runner_is_named(tmp_path: Path) -> None:
    options = pipeline_options(["--streaming", "--tail", str(tmp_path)])
    assert options.view_as(StandardOptions).runner == "PrismRunner"


def test_tail_on_the_direct_runner_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="splittable DoFn in streaming mode"):
        pipeline_options(["--streaming", "--tail", str(tmp_path), "--runner=BundleBasedDirectRunner"])


def test_a_missing_tail_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-audit-dir"
    with pytest.raises(OptionError, match="no-such-audit-dir"):
        run(["--streaming", "--tail", str(missing), *outputs(tmp_path)], io.StringIO())


def test_a_subscription_beam_cannot_read_is_refused_by_name(tmp_path: Path) -> None:
    bad = "projects/p/subscriptions/audit"  # project ids have at least 6 characters
    with pytest.raises(OptionError, match="projects/p/subscriptions/audit"):
        run(["--streaming", "--pubsub-subscription", bad, *outputs(tmp_path)], io.StringIO())


def test_a_bad_max_idle_is_refused(tmp_path: Path) -> None:
    argv = ["--streaming", "--tail", str(tmp_path), "--tail-max-idle", "soon", *outputs(tmp_path)]
    with pytest.raises(OptionError, match="--tail-max-idle 'soon'"):
        run(argv, io.StringIO())


def test_pubsub_on_prism_is_refused_with_the_reason() -> None:
    argv = [
        "--streaming",
        "--pubsub-subscription",
        "projects/kubesigma-test/subscriptions/a",
        "--runner=PrismRunner",
    ]
    with pytest.raises(OptionError, match="pubsub_read"):
        pipeline_options(argv)


def test_kafka_runs_on_prism_unless_a_runner_is_named() -> None:
    options = pipeline_options(["--streaming", "--kafka-bootstrap", "127.0.0.1:9092", "--kafka-topic", "a"])
    assert options.view_as(StandardOptions).runner == "PrismRunner"


def test_kafka_on_the_direct_runner_is_refused_with_the_reason() -> None:
    argv = ["--streaming", "--kafka-bootstrap", "127.0.0.1:9092", "--kafka-topic", "a"]
    with pytest.raises(OptionError, match="splittable DoFn in streaming mode"):
        pipeline_options([*argv, "--runner=BundleBasedDirectRunner"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--kafka-bootstrap", "127.0.0.1:9092"], "--kafka-bootstrap needs --kafka-topic"),
        (["--kafka-topic", "audit"], "--kafka-topic needs --kafka-bootstrap"),
        (["--kafka-bootstrap", "127.0.0.1:9092", "--kafka-topic", "a", "--tail", "."], "exactly one of"),
        (["--kafka-bootstrap", "127.0.0.1:9092", "--kafka-topic", "a", "--kafka-max-idle", "soon"], "'soon'"),
    ],
)
def test_bad_kafka_option_combinations_fail_fast(tmp_path: Path, argv: list[str], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        run(["--streaming", *argv, *outputs(tmp_path)], io.StringIO())


def test_kafka_without_streaming_is_refused(tmp_path: Path) -> None:
    argv = ["--kafka-bootstrap", "127.0.0.1:9092", "--kafka-topic", "a", "--input", str(tmp_path)]
    with pytest.raises(OptionError, match="add --streaming"):
        run([*argv, *outputs(tmp_path)], io.StringIO())


def test_a_password_on_the_command_line_is_refused(tmp_path: Path) -> None:
    argv = ["--streaming", "--kafka-bootstrap", "127.0.0.1:9092", "--kafka-topic", "a"]
    with pytest.raises(OptionError, match="unknown option"):
        run([*argv, "--kafka-sasl-password", "s3cret", *outputs(tmp_path)], io.StringIO())


def test_flink_checkpoint_options_are_accepted_and_passed_on() -> None:
    """The Flink runner's checkpoint options are among the options the portable runner sends its job server
    (`get_all_options`); left out, none is sent and Flink's defaults hold."""
    argv = ["--streaming", "--kafka-bootstrap", "127.0.0.1:9092", "--kafka-topic", "a"]
    flink = [
        "--checkpointing_interval=60000", "--state_backend=rocksdb",
        "--state_backend_storage_path=file:///var/lib/kubesigma/checkpoints",
        "--externalized_checkpoints_enabled", "--savepoint_path=/var/lib/kubesigma/savepoints/sp-1",
    ]  # fmt: skip
    options = pipeline_options([*argv, *flink]).get_all_options(drop_default=True)
    assert options["checkpointing_interval"] == 60000
    assert options["state_backend"] == "rocksdb"
    assert options["externalized_checkpoints_enabled"] is True
    assert options["savepoint_path"] == "/var/lib/kubesigma/savepoints/sp-1"
    bare = pipeline_options(argv).get_all_options(drop_default=True)
    assert (
        "checkpointing_interval" not in bare and "retain_externalized_checkpoints_on_cancellation" not in bare
    )


@pytest.mark.parametrize("runner", ["FlinkRunner", "PortableRunner"])
def test_a_streaming_source_on_flink_finishes_its_bundle_before_each_checkpoint(runner: str) -> None:
    """Without it, a bundle finished inside Flink's snapshot buffers its output until the operator's next
    bundle, and the source's one starting element never reached the reader (bench/restart.py
    --checkpointing reads nothing without it); sent to the job server like the other Flink options."""
    argv = ["--streaming", "--kafka-bootstrap", "127.0.0.1:9092", "--kafka-topic", "a", f"--runner={runner}"]
    sent = pipeline_options(argv).get_all_options(drop_default=True)
    assert sent["finish_bundle_before_checkpointing"] is True
    on_prism = pipeline_options([*argv[:-1], "--runner=PrismRunner", "--prism_location=/bin/true"])
    assert "finish_bundle_before_checkpointing" not in on_prism.get_all_options(drop_default=True)


KAFKA_ON_FLINK = [
    "--streaming",
    "--kafka-bootstrap",
    "127.0.0.1:9092",
    "--kafka-topic",
    "a",
    "--runner=FlinkRunner",
]


def test_flinks_checkpoint_tuning_options_reach_the_job_server_under_its_names() -> None:
    """Beam camel-cases each option for the job server: these are FlinkPipelineOptions' names
    (checkpointingMode, checkpointTimeoutMillis, minPauseBetweenCheckpoints, unalignedCheckpointEnabled)."""
    tuning = [
        "--checkpointing_interval=10000",
        "--checkpointing_mode=AT_LEAST_ONCE",
        "--checkpoint_timeout_millis=60000",
        "--min_pause_between_checkpoints=5000",
        "--unaligned_checkpoint_enabled",
    ]
    sent = pipeline_options([*KAFKA_ON_FLINK, *tuning]).get_all_options(drop_default=True)
    assert sent["checkpointing_mode"] == "AT_LEAST_ONCE" and sent["unaligned_checkpoint_enabled"] is True
    assert (sent["checkpoint_timeout_millis"], sent["min_pause_between_checkpoints"]) == (60000, 5000)
    with pytest.raises(OptionError, match="--checkpointing_mode SOMETIMES: EXACTLY_ONCE or AT_LEAST_ONCE"):
        pipeline_options([*KAFKA_ON_FLINK, "--checkpointing_mode=SOMETIMES"])


def test_closing_a_checkpointing_flink_jobs_sources_is_refused_with_the_reason() -> None:
    argv = KAFKA_ON_FLINK
    pipeline_options([*argv, "--shutdown_sources_after_idle_ms=1000"])  # without checkpoints: Beam's default
    with pytest.raises(OptionError, match="no checkpoint completes"):
        pipeline_options([*argv, "--checkpointing_interval=2000", "--shutdown_sources_after_idle_ms=1000"])


@pytest.mark.parametrize("flag", ["--max_bundle_time_millis", "--max_bundle_time_mills"])
def test_the_bundle_time_reaches_the_flink_runner_under_its_own_name(flag: str) -> None:
    """Beam's Flink runner reads `maxBundleTimeMills` (FlinkPipelineOptions.getMaxBundleTimeMills): a
    `max_bundle_time_millis` option reached it camel-cased as maxBundleTimeMillis and was dropped."""
    argv = ["--streaming", "--kafka-bootstrap", "127.0.0.1:9092", "--kafka-topic", "a", f"{flag}=200"]
    options = pipeline_options(argv).get_all_options(drop_default=True)
    assert options["max_bundle_time_mills"] == 200
    assert "max_bundle_time_millis" not in options


def test_a_streaming_job_on_flink_gets_short_bundles_and_two_sdk_workers_unless_told_otherwise() -> None:
    """Flink's 1000 ms bundles held every watermark timer until the traffic stopped; one SDK worker put
    every stage behind the decode stage (bench/streaming.py)."""
    flink = ["--runner=FlinkRunner", "--flink_master=[local]"]
    argv = ["--streaming", "--kafka-bootstrap", "127.0.0.1:9092", "--kafka-topic", "a", *flink]
    options = pipeline_options(argv).get_all_options(drop_default=True)
    assert options["max_bundle_time_mills"] == 100 and options["sdk_worker_parallelism"] == 2
    given = pipeline_options([*argv, "--max_bundle_time_mills=1000", "--sdk_worker_parallelism=1"])
    assert given.get_all_options()["max_bundle_time_mills"] == 1000
    assert int(given.get_all_options()["sdk_worker_parallelism"]) == 1  # Beam parses it as text
    batch = pipeline_options(["--input", "x.jsonl", *flink]).get_all_options()
    assert batch["max_bundle_time_mills"] is None and int(batch["sdk_worker_parallelism"]) == 1
    assert batch["flink_conf_dir"] is None
    prism = pipeline_options(argv[:5]).get_all_options()
    assert prism["max_bundle_time_mills"] is None and prism["flink_conf_dir"] is None


def test_a_streaming_job_on_flink_flushes_network_buffers_every_10_ms_unless_configured(
    tmp_path: Path,
) -> None:
    """Flink sends a network buffer when full or after 100 ms: every shuffle and watermark between stages
    waited for it. The job server this process starts reads a private configuration directory; a
    directory the user gives is theirs, whole, and a remote job server (--job_endpoint) cannot see ours."""
    argv = KAFKA_ON_FLINK
    conf = Path(pipeline_options(argv).get_all_options()["flink_conf_dir"])
    assert (conf / "flink-conf.yaml").read_text() == "execution.buffer-timeout.interval: 10 ms\n"
    assert oct(conf.stat().st_mode & 0o777) == "0o700"
    given = pipeline_options([*argv, f"--flink_conf_dir={tmp_path}"]).get_all_options()
    assert given["flink_conf_dir"] == str(tmp_path) and not list(tmp_path.iterdir())
    remote = pipeline_options([*argv, "--job_endpoint=flink-jobserver:8099"]).get_all_options()
    assert remote["flink_conf_dir"] is None


def test_the_kafka_source_asks_for_finalization_only_where_the_runner_finalizes() -> None:
    """Beam's Flink runner finalizes bundles when a checkpoint completes: without checkpoints a bundle
    that asks keeps its SDK bundle processor for ever, and every read built a new one."""
    argv = ["--streaming", "--kafka-bootstrap", "127.0.0.1:9092", "--kafka-topic", "a"]
    flink = [*argv, "--runner=FlinkRunner", "--flink_master=[local]"]
    assert not finalizes_bundles(pipeline_options(flink))
    assert finalizes_bundles(pipeline_options([*flink, "--checkpointing_interval=60000"]))
    assert finalizes_bundles(pipeline_options(argv))  # Prism finalizes each bundle
    portable = [*argv, "--runner=PortableRunner", "--job_endpoint=localhost:8099"]  # maybe Flink's
    assert not finalizes_bundles(pipeline_options(portable))
    assert finalizes_bundles(pipeline_options([*portable, "--checkpointing_interval=60000"]))


def test_kinesis_streaming_runs_on_prism_unless_a_runner_is_named() -> None:
    options = pipeline_options(["--streaming", "--kinesis-stream", "eks-audit"])
    assert options.view_as(StandardOptions).runner == "PrismRunner"


def test_kinesis_on_the_direct_runner_is_refused_with_the_reason() -> None:
    argv = ["--streaming", "--kinesis-stream", "eks-audit", "--runner=BundleBasedDirectRunner"]
    with pytest.raises(OptionError, match="--kinesis-stream does not run on BundleBasedDirectRunner"):
        pipeline_options(argv)


def test_kinesis_with_another_source_is_refused(tmp_path: Path) -> None:
    argv = ["--streaming", "--kinesis-stream", "eks-audit", "--tail", str(tmp_path), *outputs(tmp_path)]
    with pytest.raises(OptionError, match="--kinesis-stream reads alone"):
        run(argv, io.StringIO())


def test_a_kinesis_checkpoint_outside_streaming_is_refused(tmp_path: Path) -> None:
    argv = [
        "--kinesis-stream",
        "eks-audit",
        "--kinesis-checkpoint",
        str(tmp_path / "k.json"),
        *outputs(tmp_path),
    ]
    with pytest.raises(OptionError, match="need --streaming"):
        run(argv, io.StringIO())


def test_an_unreadable_kinesis_checkpoint_is_named(tmp_path: Path) -> None:
    checkpoint = tmp_path / "kinesis-checkpoint.json"
    checkpoint.write_text("{not json")
    argv = ["--streaming", "--kinesis-stream", "eks-audit", "--kinesis-checkpoint", str(checkpoint)]
    with pytest.raises(OptionError, match=r"kinesis-checkpoint\.json is unreadable"):
        run([*argv, *outputs(tmp_path)], io.StringIO())


def test_a_bad_kinesis_max_idle_is_refused(tmp_path: Path) -> None:
    argv = ["--streaming", "--kinesis-stream", "eks-audit", "--kinesis-max-idle", "soon", *outputs(tmp_path)]
    with pytest.raises(OptionError, match="--kinesis-max-idle 'soon'"):
        run(argv, io.StringIO())
