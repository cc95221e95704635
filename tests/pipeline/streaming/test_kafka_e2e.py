"""`kubesigma run --streaming --kafka-bootstrap ...` against a real Kafka broker (KRaft, from Apache's jars:
`make kafka-up`), on Beam's Prism runner with the SDK harness in this process (LOOPBACK).

Records are produced as log shippers write them (one JSON audit record of any known format per Kafka
record, keyed or not), then the job reads the topic and finishes once it has been idle (`--kafka-max-idle`).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import orjson
import pytest

from kubesigma.connectors.delivery import as_cloudwatch_envelope, as_gke_logentry
from kubesigma.pipeline.run import RunReport, run
from support.audit_records import audit_event
from support.beam_runs import finished_documents
from support.kafka_broker import Broker
from support.portable_runners import prism_binary

ENUMERATION = "Kubernetes Secret Enumeration By One Identity"


def kafka_job(tmp: Path, broker: Broker, topic: str, group: str, *extra: str) -> tuple[RunReport, str]:
    argv = [
        "--streaming", "--kafka-bootstrap", broker.bootstrap, "--kafka-topic", topic, "--kafka-group", group,
        "--kafka-max-idle", "4s", "--file-interval", "1s",
        "--runner=PrismRunner", f"--prism_location={prism_binary()}",
        "--alerts-out", str(tmp / "alerts"), "--dead-letter", str(tmp / "dead"), *extra,
    ]  # fmt: skip
    out = io.StringIO()
    return run(argv, out), out.getvalue()


def every_format(now: float) -> list[bytes]:
    """Twelve secret reads by one identity, delivered four ways: native Event lines, an EventList, GKE
    LogEntries and a CloudWatch subscription envelope (decompressed, as a Kafka connector writes it)."""
    reads = [audit_event(i, at=now - 600 + i, name=f"secret-{i}") for i in range(12)]
    return [
        *(orjson.dumps(e) for e in reads[:3]),
        orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": reads[3:6]}),
        *(orjson.dumps(as_gke_logentry(e)) for e in reads[6:9]),
        orjson.dumps(as_cloudwatch_envelope(reads[9:12])),
    ]


@pytest.fixture
def topic(kafka: Broker) -> str:
    return kafka.create_topic(partitions=2)


def test_records_of_every_known_format_are_decoded_keyed_or_not(
    kafka: Broker, topic: str, tmp_path: Path
) -> None:
    records = every_format(time.time())
    kafka.produce(topic, records[:4], key=b"node-1")
    kafka.produce(topic, records[4:])  # unkeyed
    report, _ = kafka_job(tmp_path, kafka, topic, "kst-formats")
    assert report.counters["read"] == 12
    assert report.counters["normalized"] == 12
    assert report.counters["dead_lettered"] == 0


def test_an_undecodable_record_is_dead_lettered_with_topic_partition_and_offset(
    kafka: Broker, topic: str, tmp_path: Path
) -> None:
    kafka.produce(topic, [orjson.dumps(audit_event(1)), b"{not json", b""], partition=1)
    report, _ = kafka_job(tmp_path, kafka, topic, "kst-dead")
    dead = sorted(finished_documents(tmp_path / "dead"), key=lambda d: d["source"]["offset"])
    assert [(d["source"]["uri"], d["source"]["offset"]) for d in dead] == [
        (f"kafka://{topic}/1", 1),
        (f"kafka://{topic}/1", 2),
    ]
    assert "not valid JSON" in dead[0]["reason"]
    assert "without a value" in dead[1]["reason"]
    assert report.counters["read"] == report.counters["normalized"] + report.counters["dead_lettered"] == 3


def test_offsets_are_committed_once_processed_and_a_new_job_resumes_after_them(
    kafka: Broker, topic: str, tmp_path: Path
) -> None:
    first = [orjson.dumps(audit_event(i, name=f"secret-{i}")) for i in range(5)]
    kafka.produce(topic, first)
    report, _ = kafka_job(tmp_path / "one", kafka, topic, "kst-resume")
    assert report.counters["read"] == 5
    # Keyless records may all land in one partition: an empty one has nothing to commit.
    written = {p: end for p, end in kafka.end_offsets(topic).items() if end}
    committed = kafka.committed(topic, "kst-resume")
    assert {p: committed[p] for p in written} == written

    kafka.produce(topic, [orjson.dumps(audit_event(100 + i)) for i in range(3)])
    again, _ = kafka_job(tmp_path / "two", kafka, topic, "kst-resume", "--kafka-replay", "0")
    assert again.counters["read"] == 3  # only what came after the committed offsets
    other, _ = kafka_job(tmp_path / "three", kafka, topic, "kst-other-group")
    assert other.counters["read"] == 8  # a group without offsets starts at the earliest record


def test_a_resuming_job_replays_the_horizon_before_its_committed_offsets(
    kafka: Broker, topic: str, tmp_path: Path
) -> None:
    """Three records stamped three hours ago, two ten minutes ago (Kafka timestamps), all read and
    committed; then three new ones. With a one-hour horizon the new job re-reads the two recent ones
    before the committed offset (not the old three), and the group's offsets do not go back."""
    now = time.time()
    old = [orjson.dumps(audit_event(i, at=now - 3 * 3600, name=f"secret-{i}")) for i in range(3)]
    recent = [orjson.dumps(audit_event(10 + i, at=now - 600, name=f"secret-{i}")) for i in range(2)]
    kafka.produce(topic, old, partition=0, at=now - 3 * 3600)
    kafka.produce(topic, recent, partition=0, at=now - 600)
    first, _ = kafka_job(tmp_path / "one", kafka, topic, "kst-replay", "--kafka-replay", "1h")
    assert first.counters["read"] == 5  # a group without offsets: no replay, everything from the start
    assert kafka.committed(topic, "kst-replay")[0] == kafka.end_offsets(topic)[0] == 5

    kafka.produce(topic, [orjson.dumps(audit_event(100 + i, at=now)) for i in range(3)], partition=0)
    again, _ = kafka_job(tmp_path / "two", kafka, topic, "kst-replay", "--kafka-replay", "1h")
    assert again.counters["read"] == 2 + 3
    assert kafka.committed(topic, "kst-replay")[0] == 8
    auto, _ = kafka_job(tmp_path / "three", kafka, topic, "kst-replay")
    # auto: twice the longest stateful window of the shipped rules (84 minutes: a 30-minute correlation
    # over a 10-minute one, 2 minutes of lateness): the recent records are replayed, the old ones not.
    assert auto.counters["read"] == 5
    assert kafka.committed(topic, "kst-replay")[0] == 8


def test_tls_and_sasl_with_the_password_from_a_file(kafka: Broker, topic: str, tmp_path: Path) -> None:
    now = time.time()
    kafka.produce(
        topic, [orjson.dumps(audit_event(i, at=now - 60 + i, name=f"secret-{i}")) for i in range(12)]
    )
    secure = [
        "--kafka-tls", "--kafka-ca-file", str(kafka.ca_file),
        "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-username", "kubesigma",
        "--kafka-sasl-password-file", str(kafka.password_file),
    ]  # fmt: skip
    tls = Broker(kafka.tls_bootstrap, "", kafka.ca_file, kafka.password_file)
    report, _ = kafka_job(tmp_path, tls, topic, "kst-tls", *secure)
    assert report.counters["normalized"] == 12
    titles = [a["rule"]["name"] for a in finished_documents(tmp_path / "alerts")]
    assert ENUMERATION in titles


def test_a_broker_certificate_from_another_ca_is_refused(kafka: Broker, tmp_path: Path) -> None:
    from kubesigma.connectors.sources.kafka import partitions
    from kubesigma.connectors.sources.kafka_config import KafkaConfig, KafkaConfigError

    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(Path("/etc/ssl/certs/ca-certificates.crt").read_bytes())
    config = KafkaConfig(
        kafka.tls_bootstrap,
        "any",
        tls=True,
        ca_file=str(other_ca),
        sasl_mechanism="PLAIN",
        sasl_username="kubesigma",
        sasl_password_file=str(kafka.password_file),
    ).validate()
    with pytest.raises(KafkaConfigError, match="cannot read the metadata"):
        partitions(config, timeout=5)
