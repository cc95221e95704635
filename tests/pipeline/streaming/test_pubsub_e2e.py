"""`kubesigma run --streaming --pubsub-subscription` end to end, in its own process, against a Pub/Sub server.

The server is pstest (cloud.google.com/go/pubsub/pstest), Google's in-memory fake of the Pub/Sub gRPC
API, built from the Go module proxy by .ci/pubsub/build-pstest.sh and listening on 127.0.0.1: a test
double, used because neither the real service nor Google's emulator can run here. Everything else is
real: the google-cloud-pubsub client publishes, Beam's ReadFromPubSub pulls (both honour
PUBSUB_EMULATOR_HOST), on the BundleBasedDirectRunner (the local runner that runs Python's Pub/Sub
read). The messages are what a GKE log sink publishes (the real GKE samples, with the sink's timestamp
attribute; times moved to now, as a live sink's are) and raw audit Events from another producer.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from support.audit_records import audit_event, rfc3339
from support.beam_runs import finished_documents
from support.paths import FORMAT_SAMPLES, REPO

pytestmark = pytest.mark.slow

GKE_SAMPLES = FORMAT_SAMPLES / "gke-cloud-audit-logentries.jsonl"
PROJECT = "kubesigma-test"
SUBSCRIPTION = f"projects/{PROJECT}/subscriptions/gke-audit"
SINK_TIMESTAMP = "logging.googleapis.com/timestamp"
WAIT_LIMIT_S = 240  # alert files close with their minute: bounded wait, then the job is killed
ENUMERATION = "Kubernetes Secret Enumeration By One Identity"
ANONYMOUS_DENIED = "Kubernetes API Request By Anonymous User Denied"


def pstest_binary() -> str:
    given = os.environ.get("KUBESIGMA_PSTEST")
    if given:
        return given
    if not shutil.which("go"):
        pytest.skip("no Go toolchain to build pstest (set KUBESIGMA_PSTEST to a built server)")
    script = REPO / ".ci/pubsub/build-pstest.sh"
    try:
        out = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        detail = (getattr(err, "stderr", "") or "").strip()[-400:]
        pytest.skip(f"pstest unavailable: {script.name} failed: {detail}")
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def pubsub_host() -> Iterator[str]:
    """A pstest server on 127.0.0.1 (any free port), stopped after the module."""
    proc = subprocess.Popen(
        [pstest_binary(), "--addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        host = proc.stdout.readline().strip()
        assert host.startswith("127.0.0.1:"), f"pstest printed {host!r}"
        yield host
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def gke_sink_messages() -> list[tuple[bytes, dict[str, str]]]:
    """The GKE LogEntries as a log sink publishes them, written now."""
    out = []
    for line in GKE_SAMPLES.read_bytes().splitlines():
        if not line.strip():
            continue
        entry = orjson.loads(line)
        entry["timestamp"] = entry["receiveTimestamp"] = rfc3339(time.time())
        out.append((orjson.dumps(entry), {SINK_TIMESTAMP: entry["timestamp"]}))
    return out


@dataclass
class PubSubRun:
    alerts: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    bad_message_id: str
    running: bool
    log: str


@pytest.fixture(scope="module")
def pubsub_run(pubsub_host: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PubSubRun]:
    os.environ["PUBSUB_EMULATOR_HOST"] = pubsub_host  # for this process's client and the job's
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.create_topic(name=f"projects/{PROJECT}/topics/gke-audit").name
    subscriber.create_subscription(name=SUBSCRIPTION, topic=topic)

    tmp = tmp_path_factory.mktemp("pubsub-e2e")
    argv = [
        sys.executable, "-m", "kubesigma.pipeline.cli", "run", "--streaming",
        "--runner=BundleBasedDirectRunner", "--pubsub-subscription", SUBSCRIPTION,
        "--pubsub-timestamp-attribute", SINK_TIMESTAMP,
        "--alerts-out", str(tmp / "alerts"), "--dead-letter", str(tmp / "dead"),
    ]  # fmt: skip
    log = tmp / "job.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for data, attributes in gke_sink_messages():
            publisher.publish(topic, data, **attributes).result(timeout=30)
        now = time.time()
        for i in range(12):  # another producer: raw audit Events, no sink attribute
            doc = audit_event(2000 + i, at=now + i * 0.05, name=f"secret-{i}")
            publisher.publish(topic, orjson.dumps(doc)).result(timeout=30)
        bad_message_id = publisher.publish(topic, b'{"kind": "Event", "verb": ').result(timeout=30)

        deadline = time.monotonic() + WAIT_LIMIT_S
        while time.monotonic() < deadline and proc.poll() is None:
            alerts, dead = finished_documents(tmp / "alerts"), finished_documents(tmp / "dead")
            titles = {a["rule"]["name"] for a in alerts}
            if {ENUMERATION, ANONYMOUS_DENIED} <= titles and dead:
                break
            time.sleep(1)
        running = proc.poll() is None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        del os.environ["PUBSUB_EMULATOR_HOST"]
    yield PubSubRun(
        finished_documents(tmp / "alerts"),
        finished_documents(tmp / "dead"),
        bad_message_id,
        running,
        log.read_text()[-3000:],
    )


def titles(run: PubSubRun) -> list[str]:
    return [a["rule"]["name"] for a in run.alerts]


def test_the_job_keeps_running_on_an_unbounded_subscription(pubsub_run: PubSubRun) -> None:
    assert pubsub_run.running, pubsub_run.log


def test_gke_log_sink_entries_from_the_subscription_raise_alerts(pubsub_run: PubSubRun) -> None:
    assert ANONYMOUS_DENIED in titles(pubsub_run), pubsub_run.log


def test_a_secret_enumeration_published_as_audit_events_fires_once(pubsub_run: PubSubRun) -> None:
    assert titles(pubsub_run).count(ENUMERATION) == 1, pubsub_run.log


def test_alerts_name_the_subscription_they_came_from(pubsub_run: PubSubRun) -> None:
    enumeration = next(a for a in pubsub_run.alerts if a["rule"]["name"] == ENUMERATION)
    assert f"pubsub://{SUBSCRIPTION}" in orjson.dumps(enumeration).decode()


def test_a_bad_message_is_dead_lettered_with_its_message_id(pubsub_run: PubSubRun) -> None:
    (dead,) = pubsub_run.dead_letters
    assert dead["source"] == {"uri": f"pubsub://{SUBSCRIPTION}", "message_id": pubsub_run.bad_message_id}


def test_no_alert_is_written_twice(pubsub_run: PubSubRun) -> None:
    ids = [a["kubesigma"]["alert_id"] for a in pubsub_run.alerts]
    assert ids and len(ids) == len(set(ids))
