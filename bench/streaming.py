"""Streaming speed and alert latency: `kubesigma run --streaming` on embedded Flink reading Kafka and
indexing alerts into Elasticsearch, next to the batch pipeline on the same records.

    python bench/streaming.py --json                 # parallelism 1 and 2: 1,000 records/s, then a ramp
    python bench/streaming.py --quick --json         # parallelism 1, 1,000 records/s for 20 s, no ramp

It starts what it needs: Elasticsearch (`make es-up`) and Kafka (`make kafka-up`) when nothing answers at
$KUBESIGMA_ES_URL / $KUBESIGMA_KAFKA_BOOTSTRAP (stopped again at the end), and Beam's Flink job server
(.ci/flink/job-server.sh, or $KUBESIGMA_FLINK_JOB_SERVER_JAR). Every step stops by itself: the job ends
once the topic is idle (`--kafka-max-idle 5s`), and one that does not is killed after a time limit.

Traffic: the demo generator's cluster (the events of `kubesigma demo generate`, plus `--attack-ratio` of
them from repeated attacks), produced to a fresh two-partition topic at an offered rate, keyed by auditID.
Each record is stamped when it is sent: its `requestReceivedTimestamp` (the event time the job uses) is
the send time, as on a live cluster whose shipper forwards at once, and in order on each partition: the
job runs with `--kafka-max-delay 1s` (`--max-delay`; its default, 5 s, would put every alert at least 5 s
late: docs/deploy.md says when a live cluster needs more). Per step:

1. the job starts (FlinkRunner, `--flink_master=[local]`, LOOPBACK with each SDK worker in its own
   process, `--parallelism` N, and what `kubesigma run` sets for a streaming job on Flink unless told
   otherwise: two SDK workers, 200 ms bundles), indexing alerts into fresh indices;
2. one warm-up record is sent whose alert it waits for in Elasticsearch (the job is up and the whole path
   warm; not measured), with a routine record a second on every partition meanwhile, as a live cluster
   writes (no partition goes idle);
3. `--seconds` of traffic at the offered rate, each record's send time noted by auditID;
4. the job finishes by itself; its metrics (`--metrics-out`) and every alert are read back.

Indexed time, on Elasticsearch's side: a thread refreshes and searches the step's alert indices every
`POLL_S` (0.1 s) and stamps each alert id when a search first returns it, at most a poll (plus a search)
after Elasticsearch took it. (An ingest pipeline setting a field from `_ingest.timestamp` would be exact,
but the Elasticsearch of `make es-up` runs from the server's jars alone, without the ingest-common module
that has the `set` processor.) The explicit refresh measures the write; an analyst's search sees it up to
the index template's `refresh_interval` (5 s) later.

Alert latency = indexed time - send time of the alert's triggering record: the record itself for a
single-event rule, the latest-sent contributing record for a correlation (`kubesigma.correlation.
event_ids`). Suppression follow-ups are left out: they go out when their run closes, by design
(`--suppress-window`, 10 minutes). p50/p99/max over the rest, p50/p99 of single-event and of correlation
alerts apart, and the median per third of the step by send time (a job falling behind shows a growing
latency).

Sustained: an offered rate is sustained when the producer sent at least 95% of it, the job read every
record sent, and the job's consumer lag stayed bounded: its `processing_lag_ms` (wall clock when a batch
of records is decoded minus the newest event time in it, here the newest send time) never exceeded
`LAG_BOUND_S` (5 s). A job reading slower than the offer falls behind linearly (at 85% of it, 4.5 s
behind after 30 s). The job's CPU seconds from the traffic's start to its end (every process of it,
sampled from /proc) give `records_per_cpu_second`. After the fixed rate (1,000 records/s) the ramp tries
each `--ramp` rate (2,000, 3,000, 4,000, 5,000, 6,000, 8,000) while the
previous one was sustained; the highest sustained rate is reported (a lower bound when the last was).
When even 1,000 records/s is not sustained (a busy machine), 500 and 250 are tried instead.

Batch: `kubesigma run --input FILE` (FnApiRunner, as the CLI runs it, also indexing into Elasticsearch,
`--suppress-window 10m` like the stream) over what the first step of the first parallelism sent
(`alerts_match_batch`: that step's alert ids are the batch run's), and over the most records any step of
that parallelism sent (the ramp's last step). The batch pipeline's steady rate is the records the larger
run had more over the time it took more: start-up and every other fixed cost drop out, as they do for
the stream, which is started before its traffic. `batch_rps_cpu` by CPU seconds (the batch pipeline runs
on one core), `batch_rps` by wall clock, `batch_rps_whole` the larger run's records over its whole time.
(The bench used to take 30,000 records less an empty run: fixed costs beyond the start-up, about 3 CPU
seconds, made that 4,300-7,000 records per CPU second where the steady rate is 12,000-17,000.) Targets
in `summary`: `sustained_vs_batch` (against `batch_rps_cpu`) >= 0.5 and `p99_latency_s_at_fixed_rate`
<= 5 (at 1,000 records/s: `--fixed-rate`); `sustained_vs_batch_wall` and `_whole` are printed beside it.

Wall-clock numbers depend on the machine's load: each step carries the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
# bench/elasticsearch.py is named like the client package: this folder goes last on the import path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != str(REPO / "bench")] + [
    str(REPO / "bench")
]

from services import ES_URL, KAFKA, flink_job_server_jar, prism, running  # noqa: E402

FIXED_RATE = 1000
POLL_S = 0.1
LAG_BOUND_S = 5.0
RAMP_DOWN = 2  # halvings of the fixed rate tried when it is not sustained
PARTITIONS = 2
MAX_IDLE_S = 5
# The job's --kafka-max-delay. The bench stamps each record when it sends it, in order on each partition,
# so no record is later than this; the job's default (5 s) is a floor under every alert's latency.
MAX_DELAY = "1s"
START_LIMIT_S = 300  # job start-up plus the warm-up alert
FINISH_LIMIT_S = 300  # from the last record sent to the job's exit
RECEIVED, STAGE = "@@received@@", "@@stage@@"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def rfc3339(t: float) -> bytes:
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z").encode()


@dataclass
class Traffic:
    """The demo generator's events as byte templates, stamped when sent: (auditID, parts around the two
    timestamps, stage delay)."""

    records: list[tuple[str, list[bytes], float]]

    @classmethod
    def generate(cls, n: int, seed: int, attack_ratio: float) -> Traffic:
        from kubesigma.connectors.simulated_cluster import generate

        records = []
        for event in generate(seed, n, attack_ratio=attack_ratio):
            received = _seconds(event["requestReceivedTimestamp"])
            delay = max(0.0, _seconds(event["stageTimestamp"]) - received)
            event["requestReceivedTimestamp"], event["stageTimestamp"] = RECEIVED, STAGE
            head, rest = orjson.dumps(event).split(f'"{RECEIVED}"'.encode())
            middle, tail = rest.split(f'"{STAGE}"'.encode())
            records.append((event["auditID"], [head, middle, tail], delay))
        return cls(records)

    @staticmethod
    def stamp(parts: list[bytes], delay: float, at: float) -> bytes:
        head, middle, tail = parts
        return b"".join((head, b'"', rfc3339(at), b'"', middle, b'"', rfc3339(at + delay), b'"', tail))


def _seconds(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def configmap_read(at: float, alerting: bool) -> tuple[str, bytes]:
    """A ConfigMap read. Alerting: kube-proxy's, by kube-system's default service account from a public
    address (a single-event rule alerts on it; an identity of its own, so suppression folds nothing into
    it). Else a workload reading its own ConfigMap from the pod network: no rule fires."""
    audit_id = str(uuid.uuid4())
    namespace, name, user, ip, agent = (
        ("kube-system", "kube-proxy", "system:serviceaccount:kube-system:default", "198.51.100.9",
         "kubectl/v1.29.4 (linux/amd64) kubernetes/55019c8")
        if alerting
        else ("default", "app-config", "system:serviceaccount:default:app", "10.0.0.7", "app/1.0")
    )  # fmt: skip
    event = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": audit_id,
        "stage": "ResponseComplete", "requestURI": f"/api/v1/namespaces/{namespace}/configmaps/{name}",
        "verb": "get", "user": {"username": user, "groups": ["system:serviceaccounts", "system:authenticated"]},
        "sourceIPs": [ip], "userAgent": agent,
        "objectRef": {"resource": "configmaps", "namespace": namespace, "name": name, "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": rfc3339(at).decode(), "stageTimestamp": rfc3339(at + 0.002).decode(),
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
    }  # fmt: skip
    return audit_id, orjson.dumps(event)


class Topic:
    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic

        self.name = f"kubesigma-streaming-{uuid.uuid4().hex[:8]}"
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.admin.create_topics([NewTopic(self.name, PARTITIONS, 1)])[self.name].result(timeout=30)
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 5, "queue.buffering.max.messages": 2_000_000}
        )
        self.sent: dict[str, float] = {}  # auditID -> first send time
        self.lines: list[bytes] = []  # every record sent, in order: the batch run's input

    def send(self, audit_id: str, value: bytes, at: float, partition: int | None = None) -> None:
        where = {} if partition is None else {"partition": partition}
        self.producer.produce(self.name, value, key=audit_id.encode(), **where)
        self.sent.setdefault(audit_id, at)
        self.lines.append(value)

    def offer(self, traffic: Traffic, rate: float, seconds: float) -> dict[str, float]:
        """Sends `rate` records a second for `seconds`, each stamped with its send time; returns what
        was achieved."""
        count = min(len(traffic.records), int(rate * seconds))
        start = time.time()
        for i, (audit_id, parts, delay) in enumerate(traffic.records[:count]):
            ahead = start + i / rate - time.time()
            if ahead > 0.002:
                time.sleep(ahead)
            now = time.time()
            self.send(audit_id, Traffic.stamp(parts, delay, now), now)
            if i % 500 == 0:
                self.producer.poll(0)
        elapsed = time.time() - start
        if self.producer.flush(60):
            raise RuntimeError("Kafka did not take every record within 60 s")
        return {"records": count, "seconds": round(elapsed, 2), "achieved_rps": round(count / elapsed, 1)}

    def delete(self) -> None:
        self.admin.delete_topics([self.name])[self.name].result(timeout=30)


class Job:
    """`kubesigma --verbose run ARGV` in its own process group (killed whole when it does not end)."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        self.kinds: dict[int, str] = {}
        cmd = [sys.executable, "-m", "kubesigma.pipeline.cli", "--verbose", "run", *argv]
        # LOOPBACK's process workers are started as `python`: this interpreter's.
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, limit: float) -> int | None:
        try:
            return self.proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            return None

    def cpu(self) -> dict[int, float]:
        """CPU seconds so far of every live process of the job's session (the launcher, Flink's JVM, the
        SDK workers), by pid, from /proc; what each process is (`java`, else `python`) in `self.kinds`."""
        ticks = os.sysconf("SC_CLK_TCK")
        found: dict[int, float] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                head, rest = stat.read_text().rsplit(")", 1)
            except (OSError, ValueError):
                continue  # gone meanwhile
            fields = rest.split()
            # After the command: state, ppid, pgrp, session, ..., utime (12th), stime (13th).
            if int(fields[3]) == self.proc.pid:
                pid = int(stat.parent.name)
                found[pid] = (int(fields[11]) + int(fields[12])) / ticks
                self.kinds[pid] = "jvm" if head.endswith("(java") else "python"
        return found

    def wait_measuring(
        self, limit: float, since: dict[int, float]
    ) -> tuple[int | None, float, dict[str, float]]:
        """Waits for the job like `wait`, sampling its CPU every half second: the return code, the CPU
        seconds its processes used since `since` (a process that ended counts up to its last sample),
        and those seconds by kind of process (Flink's JVM, the Python launcher and SDK workers)."""
        latest = dict(since)
        deadline = time.monotonic() + limit
        while self.alive() and time.monotonic() < deadline:
            latest.update(self.cpu())
            time.sleep(0.5)
        by_kind: dict[str, float] = {}
        for pid, seconds in latest.items():
            kind = self.kinds.get(pid, "python")
            by_kind[kind] = by_kind.get(kind, 0.0) + seconds - since.get(pid, 0.0)
        return self.wait(max(0.0, deadline - time.monotonic())), sum(by_kind.values()), by_kind

    def kill(self) -> None:
        import signal

        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


class IndexedAt(threading.Thread):
    """When each alert reached Elasticsearch, seen from Elasticsearch: every `POLL_S` the prefix's alert
    indices are refreshed and searched, and each alert id is stamped the first time a search returns it.
    The stamp is at most `POLL_S` (plus a search's time) after Elasticsearch took the document. (An ingest
    pipeline setting a field from `_ingest.timestamp` would stamp it exactly, but the Elasticsearch of
    `make es-up` runs from the server's jars alone, without the ingest-common module: no `set` processor.)
    The explicit refresh makes a written alert visible at once; without it the template's
    `index.refresh_interval` (5 s) adds up to that much before an analyst's search finds it."""

    FIELDS = ["kubesigma.alert_id", "kubesigma.correlation.event_ids", "kubesigma.suppression", "event.id"]

    def __init__(self, es_url: str, prefix: str) -> None:
        from elasticsearch import Elasticsearch

        super().__init__(daemon=True)
        self.es, self.prefix = Elasticsearch(es_url, request_timeout=30), prefix
        self.seen: dict[str, tuple[float, dict[str, Any]]] = {}  # alert id -> (first seen, document)
        self.stopping = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.poll()
            self.stopping.wait(POLL_S)

    def poll(self) -> None:
        from elasticsearch import ApiError

        index = f"{self.prefix}-alerts-*"
        try:
            self.es.indices.refresh(index=index, allow_no_indices=True, ignore_unavailable=True)
            found = self.es.search(
                index=index, size=10000, source_includes=self.FIELDS, allow_no_indices=True,
                ignore_unavailable=True, query={"match_all": {}},
            )  # fmt: skip
        except ApiError as err:
            if err.meta.status != 503:  # an index whose shard has not started yet: nothing to see yet
                raise
            return
        now = time.time()
        for hit in found["hits"]["hits"]:
            self.seen.setdefault(hit["_source"]["kubesigma"]["alert_id"], (now, hit["_source"]))

    def has(self, event_id: str) -> bool:
        return any(doc["event"]["id"] == event_id for _, doc in list(self.seen.values()))

    def stop(self) -> None:
        self.stopping.set()
        self.join()
        self.poll()  # anything indexed since the last poll

    def drop(self) -> None:
        drop_prefix(self.es, self.prefix)
        self.es.close()


def drop_prefix(es: Any, prefix: str) -> None:
    """Deletes a run's indices and index templates."""
    found = es.indices.get(index=f"{prefix}-*", allow_no_indices=True, ignore_unavailable=True)
    if found:
        es.indices.delete(index=",".join(found))
    quiet = es.options(ignore_status=404)
    for name in ("alerts", "alerts-indexed-at", "events"):
        quiet.indices.delete_index_template(name=f"{prefix}-{name}")


def trigger_ids(alert: dict[str, Any]) -> list[str]:
    correlation = alert.get("kubesigma", {}).get("correlation")
    if correlation and correlation.get("event_ids"):
        return list(correlation["event_ids"])
    return [alert["event"]["id"]]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def latencies(
    seen: dict[str, tuple[float, dict[str, Any]]], sent: dict[str, float], skip: str
) -> dict[str, Any]:
    measured: list[tuple[float, float]] = []  # (trigger sent, latency)
    by_kind: dict[str, list[float]] = {"single": [], "correlation": []}
    follow_ups = unknown = 0
    for at, alert in seen.values():
        if alert["event"]["id"] == skip:
            continue
        if "suppression" in alert["kubesigma"]:
            follow_ups += 1
            continue
        times = [sent[i] for i in trigger_ids(alert) if i in sent]
        if not times:
            unknown += 1
            continue
        measured.append((max(times), at - max(times)))
        by_kind["correlation" if alert["kubesigma"].get("correlation") else "single"].append(at - max(times))
    measured.sort()
    values = [latency for _, latency in measured]
    thirds = [values[i * len(values) // 3 : (i + 1) * len(values) // 3] for i in range(3)]
    return {
        "alerts": len(seen) - (skip in {doc["event"]["id"] for _, doc in seen.values()}),
        "measured": len(measured),
        "follow_ups": follow_ups,
        "unmeasured": unknown,
        "p50_latency_s": _percentile(values, 0.5),
        "p99_latency_s": _percentile(values, 0.99),
        "max_latency_s": round(max(values), 3) if values else None,
        # Single-event alerts wait for the source's watermark; a correlation's for each correlation stage's.
        **{
            f"p{q}_latency_s_{kind}": _percentile(kind_values, q / 100)
            for kind, kind_values in by_kind.items()
            for q in (50, 99)
        },
        # By when the trigger was sent: a job that falls behind shows a growing latency.
        "p50_latency_s_by_third": [_percentile(third, 0.5) for third in thirds],
    }


@dataclass
class Setup:
    es_url: str
    kafka: str
    jar: str
    tmp: Path
    traffic: Traffic
    seconds: float
    extra: list[str] = field(default_factory=list)  # more `kubesigma run` options (tuning experiments)
    runner: str = "flink"
    fixed_rate: float = FIXED_RATE
    max_delay: str = MAX_DELAY


def runner_args(setup: Setup, parallelism: int) -> list[str]:
    if setup.runner == "prism":
        return ["--runner=PrismRunner", f"--prism_location={prism()}"]
    return [
        "--runner=FlinkRunner", "--flink_master=[local]", "--flink_version=1.19",
        f"--flink_job_server_jar={setup.jar}", "--environment_type=LOOPBACK",
        "--experiments=use_loopback_process_worker", f"--parallelism={parallelism}",
    ]  # fmt: skip


def stream_step(setup: Setup, parallelism: int, rate: float) -> tuple[dict[str, Any], Topic, set[str]]:
    """One job at one offered rate: its figures, the topic it read, and the alert ids it indexed."""
    name = f"p{parallelism}-{int(rate)}"
    tmp = setup.tmp / name
    tmp.mkdir()
    prefix = f"kubesigma-streaming-{uuid.uuid4().hex[:8]}"
    indexed_at = IndexedAt(setup.es_url, prefix)
    topic = Topic(setup.kafka)
    argv = [
        "--streaming", "--kafka-bootstrap", setup.kafka, "--kafka-topic", topic.name,
        "--kafka-group", topic.name, "--kafka-max-idle", f"{MAX_IDLE_S}s", "--kafka-max-delay", setup.max_delay,
        "--es-url", setup.es_url, "--es-index-prefix", prefix,
        "--alerts-out", str(tmp / "alerts"), "--dead-letter", str(tmp / "dead"),
        "--metrics-out", str(tmp / "metrics.json"), *runner_args(setup, parallelism), *setup.extra,
    ]  # fmt: skip
    load_before = load()
    started = time.monotonic()
    job = Job(argv, tmp / "job.log")
    try:
        warm_id, warm = configmap_read(time.time(), alerting=True)
        topic.send(warm_id, warm, time.time())
        while not indexed_at.has(warm_id):
            if not job.alive() or time.monotonic() - started > START_LIMIT_S:
                raise RuntimeError(f"{name}: no warm-up alert from the job:\n{job.tail()}")
            # A live cluster never stops writing: routine reads on every partition, so none goes idle.
            for partition in range(PARTITIONS):
                topic.send(*configmap_read(time.time(), alerting=False), time.time(), partition)
            topic.producer.poll(0)
            time.sleep(1)
        start_up = time.monotonic() - started
        cpu_start = job.cpu()
        traffic_start = time.time()
        offered = topic.offer(setup.traffic, rate, setup.seconds)
        returncode, cpu_seconds, cpu_by_kind = job.wait_measuring(FINISH_LIMIT_S, cpu_start)
        if returncode is None:
            raise RuntimeError(f"{name}: the job did not finish within {FINISH_LIMIT_S} s:\n{job.tail()}")
        if returncode:
            raise RuntimeError(f"{name}: the job failed ({returncode}):\n{job.tail()}")
        metrics = orjson.loads((tmp / "metrics.json").read_bytes())
    finally:
        job.kill()
        indexed_at.stop()
        indexed_at.drop()
    lag = metrics.get("processing_lag_ms") or {}
    read = metrics.get("read", 0)
    sent = len(topic.lines)
    sustained = (
        offered["achieved_rps"] >= 0.95 * rate
        and read >= sent
        and (lag.get("max") or 0) <= LAG_BOUND_S * 1000
    )
    result = {
        "parallelism": parallelism,
        "offered_rps": rate,
        **offered,
        "read": read,
        "dead_lettered": metrics.get("dead_lettered"),
        "processing_lag_ms": lag,
        "sustained": sustained,
        # The job's CPU from the traffic's start to its end (idle wait included): what a record costs it.
        "cpu_seconds": round(cpu_seconds, 1),
        # Flink's JVM (JIT compilation of a new job included: each step starts its own) against Python.
        "cpu_seconds_by_process": {kind: round(seconds, 1) for kind, seconds in sorted(cpu_by_kind.items())},
        "records_per_cpu_second": round(read / cpu_seconds, 1) if cpu_seconds > 0 else None,
        **latencies(indexed_at.seen, topic.sent, warm_id),
        # When alerts reached Elasticsearch, in seconds after the traffic started: [first, median, last].
        "alerts_seen_s": [
            _percentile(
                [at - traffic_start for at, doc in indexed_at.seen.values() if doc["event"]["id"] != warm_id],
                q,
            )
            for q in (0.0, 0.5, 1.0)
        ],
        "start_up_s": round(start_up, 1),
        "load_before": load_before,
        "load_after": load(),
    }
    print(f"{name}: {json.dumps(result)}", file=sys.stderr, flush=True)
    return result, topic, set(indexed_at.seen)


def batch_runs(setup: Setup, inputs: dict[str, list[bytes]]) -> dict[str, dict[str, Any]]:
    """`kubesigma run` in batch (the CLI: FnApiRunner) over each input, indexing into Elasticsearch like
    the stream: per input its records, wall and CPU seconds, and the alert ids it wrote."""
    from elasticsearch import Elasticsearch

    es = Elasticsearch(setup.es_url, request_timeout=30)
    runs: dict[str, dict[str, Any]] = {}
    for name, data in inputs.items():
        source = setup.tmp / f"batch-{name}.jsonl"
        source.write_bytes(b"".join(line + b"\n" for line in data))
        prefix = f"kubesigma-streaming-{uuid.uuid4().hex[:8]}"
        out = setup.tmp / f"batch-{name}-alerts.jsonl"
        argv = [
            "--input", str(source), "--suppress-window", "10m", "--es-url", setup.es_url,
            "--es-index-prefix", prefix, "--alerts-out", str(out),
            "--dead-letter", str(setup.tmp / f"batch-{name}-dead.jsonl"),
        ]  # fmt: skip
        began, cpu_began = time.monotonic(), _children_cpu()
        subprocess.run(
            [sys.executable, "-m", "kubesigma.pipeline.cli", "run", *argv], check=True, capture_output=True
        )
        runs[name] = {
            "records": len(data),
            "seconds": time.monotonic() - began,
            "cpu_seconds": _children_cpu() - cpu_began,
            "ids": {orjson.loads(line)["kubesigma"]["alert_id"] for line in out.read_bytes().splitlines()},
        }
        drop_prefix(es, prefix)
        source.unlink()
    es.close()
    return runs


def batch_rate(runs: dict[str, dict[str, Any]], small: str, large: str) -> dict[str, Any]:
    """The batch pipeline's steady rate: the records `large` had more than `small` over the time they
    took more, so start-up and every other fixed cost (Elasticsearch set-up, the stages a run with no
    records skips) drop out. `batch_rps_cpu` by CPU seconds (the batch pipeline runs on one core;
    steadier on a busy machine), `batch_rps` by wall clock, `batch_rps_whole` the large run's records
    over its whole time (start-up included)."""
    big, little = runs[large], runs[small]
    records = big["records"] - little["records"]
    more, more_cpu = big["seconds"] - little["seconds"], big["cpu_seconds"] - little["cpu_seconds"]
    return {
        "rate_from": f"{small} ({little['records']} records) to {large} ({big['records']})",
        "seconds": {name: round(run["seconds"], 2) for name, run in runs.items()},
        "cpu_seconds": {name: round(run["cpu_seconds"], 2) for name, run in runs.items()},
        "batch_rps": round(records / more, 1) if more > 0 else None,
        "batch_rps_cpu": round(records / more_cpu, 1) if more_cpu > 0 else None,
        "batch_rps_whole": round(big["records"] / big["seconds"], 1),
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    setup: Setup, parallelisms: list[int], ramp: list[float], with_batch: bool = True
) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    batch: dict[str, Any] = {}
    for parallelism in parallelisms:
        fixed, topic, stream_ids = stream_step(setup, parallelism, setup.fixed_rate)
        steps = [fixed]
        first = parallelism == parallelisms[0] and with_batch
        if first:
            same = batch_runs(setup, {"empty": [], "fixed": topic.lines})
            batch = {
                "records": len(topic.lines),
                "alerts": len(same["fixed"]["ids"]),
                "alerts_match_batch": stream_ids == same["fixed"]["ids"],
                "alerts_only_in_stream": len(stream_ids - same["fixed"]["ids"]),
                "alerts_only_in_batch": len(same["fixed"]["ids"] - stream_ids),
            }
        most = topic.lines
        topic.delete()
        # Up the ramp while sustained; when even the fixed rate is not (a busy machine), down by halves.
        rates = ramp if fixed["sustained"] else [setup.fixed_rate / 2**n for n in range(1, 1 + RAMP_DOWN)]
        for rate in rates:
            step, topic, _ = stream_step(setup, parallelism, rate)
            most = max(most, topic.lines, key=len)
            topic.delete()
            steps.append(step)
            if step["sustained"] != fixed["sustained"]:
                break
        if first:
            # The rate from the most records any step sent (the ramp's last, up to 120,000): the fixed
            # step's 30,000 leave too little after the start-up for a steady figure.
            if len(most) > batch["records"]:
                same.update(batch_runs(setup, {"most": most}))
            rate = batch_rate(same, "fixed", "most") if "most" in same else batch_rate(same, "empty", "fixed")
            batch.update(rate, load=load())
        sustained = [s["offered_rps"] for s in steps if s["sustained"]]
        top = max(sustained, default=None)
        runs[f"parallelism_{parallelism}"] = {
            "fixed_rate": fixed,
            "ramp": steps[1:],
            "sustained_rps": top,
            # The ramp's last rate sustained too: the job may sustain more.
            "sustained_rps_is_lower_bound": bool(
                top and fixed["sustained"] and steps[-1]["sustained"] and len(steps) > 1
            ),
        }
    summary: dict[str, Any] = {}
    for key, run in runs.items():
        fixed = run["fixed_rate"]
        summary[key] = {
            "fixed_rate_rps": fixed["offered_rps"],
            "p50_latency_s_at_fixed_rate": fixed["p50_latency_s"],
            "p99_latency_s_at_fixed_rate": fixed["p99_latency_s"],
            "p99_target_met": fixed["p99_latency_s"] is not None and fixed["p99_latency_s"] <= 5.0,
            "sustained_rps": run["sustained_rps"],
        }
        # Against the batch pipeline's steady rate by CPU (what it does with a core to itself: the target),
        # by wall clock, and over its whole run, start-up included (a short input flatters the stream).
        for name, field_name in (
            ("", "batch_rps_cpu"),
            ("_wall", "batch_rps"),
            ("_whole", "batch_rps_whole"),
        ):
            summary[key][f"sustained_vs_batch{name}"] = (
                round(run["sustained_rps"] / batch[field_name], 2)
                if run["sustained_rps"] and batch.get(field_name)
                else None
            )
        summary[key]["throughput_target_met"] = (summary[key]["sustained_vs_batch"] or 0) >= 0.5
    return {"summary": summary, "batch": batch, **runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="parallelism 1, 1,000 records/s for 20 s, no ramp up"
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="seconds of traffic per step (default 30)"
    )
    parser.add_argument("--parallelism", default=None, help="comma-separated (default 1,2)")
    parser.add_argument(
        "--ramp",
        default=None,
        help="offered rates tried after 1,000/s, in order, while sustained (default 2000,3000,4000,5000,6000,8000)",
    )
    parser.add_argument(
        "--fixed-rate",
        type=float,
        default=FIXED_RATE,
        help="the fixed offered rate, records/s (default 1000)",
    )
    parser.add_argument(
        "--max-delay",
        default=MAX_DELAY,
        help=f"the streaming job's --kafka-max-delay (default {MAX_DELAY}: no record of the bench is later)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--attack-ratio",
        type=float,
        default=0.01,
        help="share of events from repeated attacks (default 0.01)",
    )
    parser.add_argument(
        "--job-option",
        action="append",
        default=[],
        help="one more `kubesigma run` option for the streaming job",
    )
    parser.add_argument(
        "--runner",
        choices=("flink", "prism"),
        default="flink",
        help="flink (the measurement) or prism (Beam's Go runner, for comparison; parallelism is its own)",
    )
    parser.add_argument("--no-batch", action="store_true", help="leave the batch run out (tuning the stream)")
    parser.add_argument("--keep", help="keep each step's job log, alert files and metrics in this directory")
    parser.add_argument("--json", action="store_true", help="end with one JSON line (printed in any case)")
    args = parser.parse_args(argv)
    seconds = args.seconds or (20.0 if args.quick else 30.0)
    parallelisms = [int(p) for p in (args.parallelism or ("1" if args.quick else "1,2")).split(",")]
    ramp = (
        []
        if args.quick and args.ramp is None
        else [float(r) for r in (args.ramp or "2000,3000,4000,5000,6000,8000").split(",") if r]
    )
    most = int(max([args.fixed_rate, *ramp]) * seconds)
    print(f"generating {most} demo events (seed {args.seed}); load {load()}", file=sys.stderr, flush=True)
    traffic = Traffic.generate(most, args.seed, args.attack_ratio)
    with running(ES_URL, KAFKA), tempfile.TemporaryDirectory(prefix="kubesigma-streaming-") as tmp:
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=args.keep)) if args.keep else Path(tmp)
        setup = Setup(
            ES_URL,
            KAFKA,
            flink_job_server_jar(),
            work,
            traffic,
            seconds,
            args.job_option,
            args.runner,
            args.fixed_rate,
            args.max_delay,
        )
        result = {
            "runner": "FlinkRunner [local], Flink 1.19, Beam 2.62 job server, LOOPBACK process workers"
            if args.runner == "flink"
            else "PrismRunner",
            "seconds_per_step": seconds,
            "attack_ratio": args.attack_ratio,
            "kafka_max_delay": args.max_delay,
            **({"job_options": " ".join(args.job_option)} if args.job_option else {}),
            **measure(setup, parallelisms, ramp, not args.no_batch),
            "load": load(),
        }
    for key, value in result["summary"].items():
        print(f"{key}: {json.dumps(value)}")
    print(f"batch: {json.dumps(result['batch'])}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
