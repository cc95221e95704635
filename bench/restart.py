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
alert ids are deterministic, so Elasticsearch (which upserts on the id) holds each alert once. Prints the
numbers as lines, the last one a JSON object: `alerts` (the batch run's), `lost` (batch alerts in neither
run), `unexpected` (alerts of the runs that the batch run does not have), `duplicates_in_es`,
`missing_in_es`, and what the killed run had written and indexed before the kill. Always exits 0.
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
# bench/elasticsearch.py is named like the client package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != str(REPO / "bench")]

ES_URL = os.environ.get("KUBESIGMA_ES_URL", "http://127.0.0.1:9200")
KUBECTL = "kubectl/v1.29.4 (linux/amd64) kubernetes/55019c8"
START_LIMIT_S = 180
RUN_LIMIT_S = 300


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
    es.indices.refresh(index=f"{prefix}-alerts-*", allow_no_indices=True, ignore_unavailable=True)
    found = es.search(
        index=f"{prefix}-alerts-*", size=10000, query={"match_all": {}}, source=False, allow_no_indices=True
    )
    return [hit["_id"] for hit in found["hits"]["hits"]]


def es_answers(url: str) -> bool:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(url, request_timeout=5, max_retries=0)
    try:
        client.info()
        return True
    except Exception:
        return False
    finally:
        client.close()


def prism() -> str:
    """$KUBESIGMA_PRISM, else Prism built from the Go module proxy (idempotent)."""
    if os.environ.get("KUBESIGMA_PRISM"):
        return os.environ["KUBESIGMA_PRISM"]
    out = subprocess.run(
        ["bash", str(REPO / ".ci/prism/build-prism.sh")], capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def batch_ids(audit_dir: Path, tmp: Path) -> set[str]:
    """`kubesigma run` in batch (FnApiRunner) over the files the stream followed, suppressing as it does."""
    from kubesigma.pipeline.run import run

    out = tmp / "batch.jsonl"
    argv = [
        "--input", str(audit_dir / "audit*.log"), "--suppress-window", "10m", "--runner=FnApiRunner",
        "--alerts-out", str(out), "--dead-letter", str(tmp / "batch-dead.jsonl"),
    ]  # fmt: skip
    run(argv, io.StringIO())
    return {orjson.loads(line)["kubesigma"]["alert_id"] for line in out.read_bytes().splitlines()}


def measure(tmp: Path, lines: int, seed: int, es_url: str) -> dict[str, Any]:
    from elasticsearch import Elasticsearch

    audit_dir = tmp / "audit"
    audit_dir.mkdir()
    prefix = f"kubesigma-restart-{uuid.uuid4().hex[:8]}"
    argv = [
        "--streaming", "--tail", str(audit_dir), "--tail-interval", "0.5s", "--file-interval", "1s",
        "--suppress-window", "10m", "--runner=PrismRunner", f"--prism_location={prism()}",
        "--es-url", es_url, "--es-index-prefix", prefix,
    ]  # fmt: skip
    plan = workload(lines, seed)
    half = len(plan) // 2
    es = Elasticsearch(es_url, request_timeout=30)
    log = (audit_dir / "audit.log").open("ab")

    def append(rows: list[tuple[str, str, str, str, str]], first: int) -> None:
        for n, row in enumerate(rows, first):
            log.write(audit_event(n, *row))
            log.flush()
            time.sleep(0.01)

    try:
        first = Job(
            [*argv, "--alerts-out", str(tmp / "alerts-1"), "--dead-letter", str(tmp / "dead-1")],
            tmp / "run-1.log",
        )
        try:
            first.wait_for("tail: following", START_LIMIT_S)
            append(plan[:half], 0)
            # Mid-stream: the job has indexed alerts and is still reading when it is killed.
            deadline = time.monotonic() + START_LIMIT_S
            while len(es_ids(es, prefix)) < 3 and time.monotonic() < deadline and first.proc.poll() is None:
                time.sleep(0.5)
            indexed_before_kill = len(set(es_ids(es, prefix)))
        finally:
            first.kill()
        written_before_kill = len(alert_ids(tmp / "alerts-1"))
        log.close()
        (audit_dir / "audit.log").rename(audit_dir / f"audit-{time.strftime('%Y-%m-%dT%H-%M-%S')}.000.log")
        log = (audit_dir / "audit.log").open("ab")
        append(plan[half:], half)
        log.close()
        second = Job(
            [
                *argv,
                "--tail-max-idle",
                "6s",
                "--alerts-out",
                str(tmp / "alerts-2"),
                "--dead-letter",
                str(tmp / "dead-2"),
            ],
            tmp / "run-2.log",
        )
        try:
            returncode = second.proc.wait(timeout=RUN_LIMIT_S)
        finally:
            second.kill()
        expected = batch_ids(audit_dir, tmp)
        union = set(alert_ids(tmp / "alerts-1")) | set(alert_ids(tmp / "alerts-2"))
        indexed = es_ids(es, prefix)
        return {
            "source": "tail",
            "runner": "PrismRunner",
            "lines": len(plan),
            "alerts": len(expected),
            "lost": len(expected - union),
            "unexpected": len(union - expected),
            "duplicates_in_es": len(indexed) - len(set(indexed)),
            "missing_in_es": len(expected - set(indexed)),
            "alerts_written_before_kill": written_before_kill,
            "alerts_indexed_before_kill": indexed_before_kill,
            "restart_exit_code": returncode,
        }
    finally:
        if not log.closed:
            log.close()
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
    parser.add_argument("--json", action="store_true", help="end with one JSON line (printed in any case)")
    args = parser.parse_args(argv)
    started_es = False
    if not es_answers(ES_URL):
        subprocess.run(["make", "-C", str(REPO), "es-up"], check=True)
        started_es = True
    try:
        with tempfile.TemporaryDirectory(prefix="kubesigma-restart-") as tmp:
            result = measure(Path(tmp), args.lines, args.seed, ES_URL)
    finally:
        if started_es:
            subprocess.run(["make", "-C", str(REPO), "es-down"], check=False)
    for key, value in result.items():
        print(f"{key}: {value}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
