"""A killed streaming job loses no alert: `kubesigma run --streaming --tail DIR` on Prism, killed with
SIGKILL mid-stream, then restarted; the union of both runs' alerts against the batch run's over the same
files, and how many times Elasticsearch holds each.

    python bench/restart.py --json [--lines N] [--seed S]

It starts what it needs: Elasticsearch through `make es-up` when nothing answers at $KUBESIGMA_ES_URL
(and stops it again at the end), Prism through .ci/prism/build-prism.sh. The script plays kube-apiserver:
it appends audit Events at the wall-clock time into DIR/audit.log while the job runs (secret enumerations
by several identities, which a correlation rule fires on; reads by a system identity from a public
address, which a single-event rule fires on and suppression folds; routine traffic), waits until the job
has indexed a few alerts, kills the job's whole process group with SIGKILL, rotates the log and appends the rest
as kube-apiserver goes on doing, then restarts the same command with `--tail-max-idle` so it finishes.

Prism keeps no checkpoint across restarts: the restarted job reads the directory from the start, and
alert ids are deterministic, so Elasticsearch (which upserts on the id) holds each alert once.

    python bench/restart.py --source kafka --json

does the same with a Kafka job on Prism (the broker of `make kafka-up`, started when none answers): the
records go to a topic, and the restarted job resumes from the offsets its group committed before the kill.
Prism keeps no correlation or suppression state across the restart; the restarted job rebuilds it by
re-reading the replay horizon before those offsets (`--kafka-replay`, by default twice the job's longest
stateful window: here more than the whole topic). `--kafka-replay 0` resumes exactly at the committed
offsets, which shows what a restart without runner state and without the replay loses (docs/deploy.md,
"Streaming on Flink: Kafka").

    python bench/restart.py --source kafka --runner flink --json

does the Kafka case on embedded Flink (Beam's job server, built by .ci/flink), without checkpointing:
Flink finalizes no bundle then, so the group has no committed offsets and the restarted job re-reads the
retained topic.

    python bench/restart.py --source kafka --runner flink --checkpointing --json
    python bench/restart.py --source tail --runner flink --checkpointing --json

do it with Flink's checkpoints (every 2 s, a file state backend in the run's folder; `kubesigma run`
has the bundle in flight finished before each barrier): the job is killed once a checkpoint holding
read positions has completed (Kafka: its bundles' finalization committed offsets to the group; tail: a
checkpoint completed after the alerts were indexed), and the restarted job restores the newest
completed checkpoint (`execution.savepoint.path` in a `--flink_conf_dir`, which embedded Flink
honours): the source's positions and the correlation and suppression state come from the checkpoint,
not from the group's offsets and a replay, nor from re-reading the directory. Flink keeps a
checkpointing job's sources open, so the restarted job does not finish by itself: it reads until the
source has been idle for `--kafka-max-idle` / `--tail-max-idle` (its watermark then closes every
window), and is killed once Elasticsearch holds every alert of the batch run (then 5 s more), or 300 s
after it started.

Prints the numbers as lines, the last one a JSON object: `alerts` (the batch run's), `lost` (batch alerts
in neither run), `lost_alerts` (what they are), `unexpected` (alerts of the runs that the batch run does
not have), `unexpected_alerts` (what those are), `duplicates_in_es`, `missing_in_es`, and what the killed
run had written and indexed before the kill; with --checkpointing, also the checkpoint restored
(`restored_from`), whether Flink logged starting from it (`restore_logged`), whether the restarted source
resolved start offsets from the group or `--kafka-start` (`restart_resolved_offsets`: a restored one does
not) and the group's committed offsets at the kill, or what the restored tail resumed (`restart_resumed`:
files and lines read). Always exits 0.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
# bench/elasticsearch.py is named like the client package: this folder goes last on the import path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != str(REPO / "bench")] + [
    str(REPO / "bench")
]

from services import ES_URL, KAFKA, flink_job_server_jar, prism, running  # noqa: E402

KUBECTL = "kubectl/v1.29.4 (linux/amd64) kubernetes/55019c8"
START_LIMIT_S = 180
RUN_LIMIT_S = 300
CHECKPOINT_INTERVAL_MS = 2000
SETTLE_S = 5  # after the last expected alert, for duplicates and alerts the batch run does not have


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def audit_event(n: int, user: str, resource: str, name: str, ip: str, agent: str = KUBECTL) -> bytes:
    """One ResponseComplete audit Event as kube-apiserver writes it, received now."""
    now = time.time()
    namespace = "kube-system" if user.startswith("system:") else "default"
    event = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": str(uuid.UUID(int=n + 1)),
        "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/{namespace}/{resource}/{name}",
        "verb": "get",
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": [ip],
        "userAgent": agent,
        "objectRef": {"resource": resource, "namespace": namespace, "name": name, "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": rfc3339(now),
        "stageTimestamp": rfc3339(now + 0.002),
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
    }
    return orjson.dumps(event) + b"\n"


def workload(lines: int, seed: int) -> list[tuple[str, str, str, str, str]]:
    """(user, resource, name, ip, agent) per line: a mix in which correlations and suppression have work."""
    rng = random.Random(seed)
    plan = []
    for i in range(lines):
        kind = rng.random()
        if kind < 0.35:  # secret reads: an identity reading many secrets within minutes is an enumeration
            user = f"intruder-{rng.randrange(4)}"
            plan.append((user, "secrets", f"secret-{i}", "203.0.113.66", KUBECTL))
        elif kind < 0.5:  # a system identity from a public address: one rule, repeats folded
            plan.append(
                (
                    "system:serviceaccount:kube-system:default",
                    "configmaps",
                    "kube-proxy",
                    "198.51.100.9",
                    KUBECTL,
                )
            )
        else:  # routine: a workload reading its own configmap
            plan.append(
                ("system:serviceaccount:default:app", "configmaps", f"cm-{i % 7}", "10.0.0.7", "app/1.0")
            )
    return plan


class Job:
    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        cmd = [sys.executable, "-m", "kubesigma.pipeline.cli", "--verbose", "run", *argv]
        with log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_for(self, text: str, limit: float) -> None:
        deadline = time.monotonic() + limit
        while text not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"kubesigma run: no {text!r}:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def alert_ids(directory: Path) -> list[str]:
    """Alert ids in the finished files of a streaming output directory (dot files are unfinished)."""
    if not directory.is_dir():
        return []
    return [
        orjson.loads(line)["kubesigma"]["alert_id"]
        for path in sorted(directory.iterdir())
        if path.is_file() and not path.name.startswith(".")
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]


def es_ids(es: Any, prefix: str) -> list[str]:
    from elasticsearch import ApiError

    try:
        es.indices.refresh(index=f"{prefix}-alerts-*", allow_no_indices=True, ignore_unavailable=True)
        found = es.search(
            index=f"{prefix}-alerts-*",
            size=10000,
            query={"match_all": {}},
            source=False,
            allow_no_indices=True,
        )
    except ApiError as err:
        if err.meta.status != 503:
            raise
        return []  # an index the job just created whose shard is not started yet: nothing to count yet
    return [hit["_id"] for hit in found["hits"]["hits"]]


def runner_args(runner: str, checkpoints: Path | None = None) -> list[str]:
    """Prism, or Flink embedded in Beam's job server (`[local]`) with the SDK harness in the job's process,
    checkpointing into `checkpoints` when given."""
    if runner == "prism":
        return ["--runner=PrismRunner", f"--prism_location={prism()}"]
    flink = [
        "--runner=FlinkRunner", "--flink_master=[local]", "--flink_version=1.19",
        f"--flink_job_server_jar={flink_job_server_jar()}", "--environment_type=LOOPBACK", "--parallelism=1",
    ]  # fmt: skip
    if checkpoints is None:
        return flink
    # `kubesigma run` adds --finish_bundle_before_checkpointing, without which nothing was read.
    return [
        *flink, f"--checkpointing_interval={CHECKPOINT_INTERVAL_MS}", "--state_backend=filesystem",
        f"--state_backend_storage_path={checkpoints.as_uri()}", "--externalized_checkpoints_enabled",
    ]  # fmt: skip


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest completed checkpoint (a chk-N folder with its metadata) of any job under `checkpoints`."""
    done = [meta.parent for meta in checkpoints.glob("*/chk-*/_metadata")]
    return max(done, key=checkpoint_number, default=None)


def checkpoint_number(checkpoint: Path | None) -> int:
    return int(checkpoint.name.removeprefix("chk-")) if checkpoint is not None else 0


def restore_from(checkpoint: Path, conf_dir: Path) -> list[str]:
    """Options that start embedded Flink from `checkpoint`: Beam's `--savepoint_path` is applied only when
    submitting to a cluster, while `[local]` Flink reads `execution.savepoint.path` from its configuration."""
    conf_dir.mkdir(exist_ok=True)
    (conf_dir / "flink-conf.yaml").write_text(f"execution.savepoint.path: {checkpoint.as_uri()}\n")
    return ["--flink_conf_dir", str(conf_dir)]


def batch_alerts(inputs: str, tmp: Path) -> dict[str, str]:
    """`kubesigma run` in batch (FnApiRunner) over the files the stream followed, suppressing as it does:
    alert id -> what the alert is (rule, time, folded repeats), to name an alert the runs lost."""
    from kubesigma.pipeline.run import run

    out = tmp / "batch.jsonl"
    argv = [
        "--input", inputs, "--suppress-window", "10m", "--runner=FnApiRunner",
        "--alerts-out", str(out), "--dead-letter", str(tmp / "batch-dead.jsonl"),
    ]  # fmt: skip
    run(argv, io.StringIO())
    return {
        doc["kubesigma"]["alert_id"]: described(doc)
        for doc in map(orjson.loads, out.read_bytes().splitlines())
    }


def described(doc: dict[str, Any]) -> str:
    """What an alert is: rule, time, folded repeats."""
    folded = (doc["kubesigma"].get("suppression") or {}).get("count")
    return f"{doc['rule']['name']} at {doc['@timestamp']}" + (f", folding {folded}" if folded else "")


def run_alerts(directory: Path) -> dict[str, str]:
    """Alert id -> what it is, over the finished files of a streaming output directory."""
    if not directory.is_dir():
        return {}
    return {
        doc["kubesigma"]["alert_id"]: described(doc)
        for path in sorted(directory.iterdir())
        if path.is_file() and not path.name.startswith(".")
        for doc in map(orjson.loads, filter(bytes.strip, path.read_bytes().splitlines()))
    }


class TailFeed:
    """kube-apiserver's log directory: appended to, rotated while the job is down."""

    source = "tail"
    idle = "--tail-max-idle"

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "audit"
        self.dir.mkdir()
        self.argv = ["--tail", str(self.dir), "--tail-interval", "0.5s"]
        self.started = "tail: following"

    def write(self, lines: list[bytes]) -> None:
        with (self.dir / "audit.log").open("ab") as log:
            for line in lines:
                log.write(line)
                log.flush()
                time.sleep(0.01)

    def while_down(self) -> None:
        (self.dir / "audit.log").rename(self.dir / f"audit-{time.strftime('%Y-%m-%dT%H-%M-%S')}.000.log")

    def batch_input(self) -> str:
        return str(self.dir / "audit*.log")


class KafkaFeed:
    """A topic of the test broker (`make kafka-up`, started here when none answers), two partitions; the
    restarted job resumes from the offsets its group committed (Prism finalizes bundles)."""

    source = "kafka"
    idle = "--kafka-max-idle"

    def __init__(self, tmp: Path, bootstrap: str) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        self.bootstrap = bootstrap
        self.topic = f"kubesigma-restart-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(self.topic, 2, 1)])[self.topic].result(timeout=30)
        self.argv = ["--kafka-bootstrap", bootstrap, "--kafka-topic", self.topic, "--kafka-group", self.topic]
        self.started = "kafka: reading"
        self.produced = tmp / "produced.jsonl"

    def write(self, lines: list[bytes]) -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        with self.produced.open("ab") as copy:
            for n, line in enumerate(lines):
                producer.produce(self.topic, line.rstrip(b"\n"), partition=n % 2)
                copy.write(line)
                producer.poll(0)
                time.sleep(0.01)
        producer.flush(30)

    def while_down(self) -> None:
        return None

    def batch_input(self) -> str:
        return str(self.produced)

    def committed(self) -> int:
        """Offsets the job's group has committed, over all partitions (0 before its first commit)."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.topic})
        try:
            found = consumer.committed([TopicPartition(self.topic, p) for p in (0, 1)], timeout=30)
        finally:
            consumer.close()
        return sum(max(tp.offset, 0) for tp in found)


def measure(
    tmp: Path,
    feed: TailFeed | KafkaFeed,
    lines: int,
    seed: int,
    es_url: str,
    extra: list[str],
    runner: str = "prism",
    checkpointing: bool = False,
) -> dict[str, Any]:
    from elasticsearch import Elasticsearch

    prefix = f"kubesigma-restart-{uuid.uuid4().hex[:8]}"
    checkpoints = tmp / "checkpoints" if checkpointing else None
    argv = [
        "--streaming", *feed.argv, "--file-interval", "1s", "--suppress-window", "10m",
        *runner_args(runner, checkpoints), "--es-url", es_url, "--es-index-prefix", prefix,
    ]  # fmt: skip
    records = [audit_event(n, *row) for n, row in enumerate(workload(lines, seed))]
    half = len(records) // 2
    es = Elasticsearch(es_url, request_timeout=30)
    committed_before_kill = None

    def outputs(run: int) -> list[str]:
        return ["--alerts-out", str(tmp / f"alerts-{run}"), "--dead-letter", str(tmp / f"dead-{run}")]

    checkpoint_when_indexed: list[int] = []

    def ready_to_kill() -> bool:
        """Alerts indexed; with checkpoints, one holding read positions completed: for Kafka, its bundles'
        finalization committed offsets to the group; for the tail, one completed after the alerts were
        indexed (so after their records were read)."""
        if len(es_ids(es, prefix)) < 3:
            return False
        if checkpoints is None:
            return True
        if isinstance(feed, KafkaFeed):
            return feed.committed() > 0
        newest = checkpoint_number(latest_checkpoint(checkpoints))
        checkpoint_when_indexed[:] = checkpoint_when_indexed or [newest]
        return newest > checkpoint_when_indexed[0]

    try:
        first = Job([*argv, *outputs(1)], tmp / "run-1.log")
        try:
            first.wait_for(feed.started, START_LIMIT_S)
            feed.write(records[:half])
            # Mid-stream: the job has indexed alerts and is still reading when it is killed.
            deadline = time.monotonic() + START_LIMIT_S
            while not ready_to_kill() and time.monotonic() < deadline and first.proc.poll() is None:
                time.sleep(0.5)
            indexed_before_kill = len(set(es_ids(es, prefix)))
            if isinstance(feed, KafkaFeed) and checkpointing:
                committed_before_kill = feed.committed()
        finally:
            first.kill()
        written_before_kill = len(alert_ids(tmp / "alerts-1"))
        feed.while_down()
        feed.write(records[half:])
        batch = batch_alerts(feed.batch_input(), tmp)
        expected = set(batch)
        restart: dict[str, Any] = {}
        if checkpoints is None:
            second = Job([*argv, feed.idle, "6s", *extra, *outputs(2)], tmp / "run-2.log")
            try:
                restart["restart_exit_code"] = second.proc.wait(timeout=RUN_LIMIT_S)
            finally:
                second.kill()
        else:
            checkpoint = latest_checkpoint(checkpoints)
            if checkpoint is None:
                raise RuntimeError(
                    f"no completed checkpoint under {checkpoints}:\n{first.log.read_text()[-2000:]}"
                )
            restore = restore_from(checkpoint, tmp / "flink-conf")
            second = Job([*argv, feed.idle, "6s", *extra, *restore, *outputs(2)], tmp / "run-2.log")
            try:
                # Flink keeps the restored job's sources open: it runs until every expected alert is in
                # Elasticsearch (then a little longer, for duplicates), or the time limit.
                deadline = time.monotonic() + RUN_LIMIT_S
                while second.proc.poll() is None and time.monotonic() < deadline:
                    if expected <= set(es_ids(es, prefix)):
                        time.sleep(SETTLE_S)
                        break
                    time.sleep(1)
            finally:
                second.kill()
            log = second.log.read_text(errors="replace")
            restart = {"restored_from": checkpoint.name, "restore_logged": "from savepoint" in log.lower()}
            if isinstance(feed, KafkaFeed):
                # A restored source resumes at its checkpointed positions: it resolves no start offset.
                restart["restart_resolved_offsets"] = "starts at offset" in log
                restart["offsets_committed_before_kill"] = committed_before_kill
            else:
                # The restored tail names the files and lines its checkpoint had read.
                restart["restart_resumed"] = next(
                    (line.split("(", 1)[-1].rstrip(")") for line in log.splitlines() if feed.started in line),
                    None,
                )
        union = set(alert_ids(tmp / "alerts-1")) | set(alert_ids(tmp / "alerts-2"))
        indexed = es_ids(es, prefix)
        return {
            "source": feed.source,
            "runner": "FlinkRunner" if runner == "flink" else "PrismRunner",
            "checkpointing": checkpointing,
            "lines": len(records),
            "alerts": len(expected),
            "lost": len(expected - union),
            "unexpected": len(union - expected),
            "duplicates_in_es": len(indexed) - len(set(indexed)),
            "missing_in_es": len(expected - set(indexed)),
            "alerts_written_before_kill": written_before_kill,
            "alerts_indexed_before_kill": indexed_before_kill,
            **restart,
            "lost_alerts": sorted(batch[i] for i in expected - union),
            # What the runs wrote that the batch run did not (a finding to explain when not empty).
            "unexpected_alerts": sorted(
                {**run_alerts(tmp / "alerts-1"), **run_alerts(tmp / "alerts-2")}[i] for i in union - expected
            ),
            **({"restart_options": " ".join(extra)} if extra else {}),
        }
    finally:
        found = es.indices.get(index=f"{prefix}-*", allow_no_indices=True, ignore_unavailable=True)
        if found:
            es.indices.delete(index=",".join(found))
        for kind in ("alerts", "events"):
            es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-{kind}")
        es.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lines", type=int, default=1000, help="audit lines written in all (half before the kill)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--source",
        choices=("tail", "kafka"),
        default="tail",
        help="tail: a --tail job, restarted from the files (default); kafka: a Kafka job, restarted from its "
        "group's committed offsets",
    )
    parser.add_argument(
        "--kafka-replay",
        default=None,
        help="with --source kafka: the restarted job's --kafka-replay (default: the job's own, auto)",
    )
    parser.add_argument(
        "--runner",
        choices=("prism", "flink"),
        default="prism",
        help="prism (default), or flink: embedded Flink 1.19 (Beam's job server, built by .ci/flink), --source "
        "kafka, or either source with --checkpointing",
    )
    parser.add_argument(
        "--checkpointing",
        action="store_true",
        help="with --runner flink: checkpoint every 2 s, and restart from the newest completed checkpoint",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line (printed in any case)")
    args = parser.parse_args(argv)
    extra = ["--kafka-replay", args.kafka_replay] if args.kafka_replay is not None else []
    if extra and args.source != "kafka":
        parser.error("--kafka-replay goes with --source kafka")
    if args.runner == "flink" and args.source != "kafka" and not args.checkpointing:
        parser.error("--runner flink goes with --source kafka, or with --checkpointing")
    if args.checkpointing and args.runner != "flink":
        parser.error("--checkpointing goes with --runner flink (Prism keeps no checkpoint across restarts)")
    kafka = KAFKA if args.source == "kafka" else None
    with running(ES_URL, kafka), tempfile.TemporaryDirectory(prefix="kubesigma-restart-") as tmp:
        feed = TailFeed(Path(tmp)) if kafka is None else KafkaFeed(Path(tmp), kafka)
        result = measure(
            Path(tmp), feed, args.lines, args.seed, ES_URL, extra, args.runner, args.checkpointing
        )
    for key, value in result.items():
        print(f"{key}: {value}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
