"""What the end-to-end benchmarks start and find: Elasticsearch and Kafka (through `make es-up` /
`make kafka-up` when none answers, stopped again afterwards), Prism and Beam's Flink job server (built by
the .ci scripts, or named by the environment)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ES_URL = os.environ.get("KUBESIGMA_ES_URL", "http://127.0.0.1:9200")
KAFKA = os.environ.get("KUBESIGMA_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


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


def kafka_answers(bootstrap: str) -> bool:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=5)
        return True
    except KafkaException:
        return False


@contextmanager
def running(es_url: str, kafka: str | None = None) -> Iterator[None]:
    """Elasticsearch (and Kafka, when `kafka` is given) answering while the block runs: started with make
    when they do not, and stopped again at the end."""
    started: list[str] = []  # make targets to stop again at the end
    try:
        if not es_answers(es_url):
            subprocess.run(["make", "-C", str(REPO), "es-up"], check=True)
            started.append("es-down")
        if kafka is not None and not kafka_answers(kafka):
            subprocess.run(["make", "-C", str(REPO), "kafka-up"], check=True)
            started.append("kafka-down")
        yield
    finally:
        for target in started:
            subprocess.run(["make", "-C", str(REPO), target], check=False)


def _built(script: str, env_var: str) -> str:
    """$`env_var`, else the path the .ci script prints (it builds once and caches)."""
    if os.environ.get(env_var):
        return os.environ[env_var]
    out = subprocess.run(
        ["bash", str(REPO / script)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    return out.stdout.strip().splitlines()[-1]


def prism() -> str:
    """Prism built from the Go module proxy, or $KUBESIGMA_PRISM."""
    return _built(".ci/prism/build-prism.sh", "KUBESIGMA_PRISM")


def flink_job_server_jar() -> str:
    """Beam's Flink job server (published, or built from Maven Central), or $KUBESIGMA_FLINK_JOB_SERVER_JAR."""
    return _built(".ci/flink/job-server.sh", "KUBESIGMA_FLINK_JOB_SERVER_JAR")
