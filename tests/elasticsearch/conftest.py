"""Fixtures for the Elasticsearch tests: the real cluster of `make es-up`, real audit Events as alerts.

Integration tests need the cluster at KUBESIGMA_ES_URL (default http://127.0.0.1:9200). Locally they
skip with the reason when it is not running; under CI (CI=true) they fail, because CI starts it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesigma.connectors.sinks.elasticsearch import ElasticsearchConfig
from kubesigma.detections.alert import (
    Alert,
    ClusterFields,
    EventFields,
    KubesigmaFields,
    OrchestratorFields,
    RuleFields,
    SourceFields,
    UserFields,
    alert_id,
)

ES_URL = os.environ.get("KUBESIGMA_ES_URL", "http://127.0.0.1:9200")
TRACES = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "falco-k8s-audit" / "traces"


def audit_events() -> list[dict[str, Any]]:
    """The real Kubernetes audit Events of Falco's regression traces (dotted annotation keys,
    request and response objects of every kind)."""
    if not TRACES.is_dir():
        pytest.fail(f"third-party datasets not found at {TRACES}")
    events = []
    for path in sorted(TRACES.glob("*.json")):
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                if isinstance(record, dict) and record.get("kind") == "Event":
                    events.append(record)
    return events


def make_alert(event: dict[str, Any], rule: str = "kst-rule", *, day_offset: int = 0) -> dict[str, Any]:
    """An alert document as the pipeline writes it: the Alert model's JSON with the raw Event under
    kubernetes.audit. `day_offset` moves it to another day (another index)."""
    stamp = event.get("stageTimestamp") or event.get("requestReceivedTimestamp")
    if day_offset:
        from datetime import datetime, timedelta

        moved = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(days=day_offset)
        stamp = moved.isoformat().replace("+00:00", "Z")
    user = event.get("user", {}).get("username")
    ips = event.get("sourceIPs") or [None]
    alert = Alert(
        timestamp=stamp,
        event=EventFields(id=event["auditID"], severity=73, action=event.get("verb"), provider="kubernetes"),
        rule=RuleFields(id=rule, name=f"Test rule {rule}", level="high", tags=["attack.t1609"]),
        user=UserFields(name=user),
        source=SourceFields(ip=ips[0]),
        orchestrator=OrchestratorFields(
            cluster=ClusterFields(name="minikube"),
            namespace=(event.get("objectRef") or {}).get("namespace"),
        ),
        kubernetes={"audit": event},
        kubesigma=KubesigmaFields(
            alert_id=alert_id(rule, event["auditID"], event.get("stage", ""), str(day_offset)),
            logsource="kubernetes/audit",
        ),
    )
    return alert.to_json_dict()


def ids_in(es: Any, prefix: str, kind: str = "alerts") -> list[str]:
    """Every `_id` in the prefix's indices (a list: duplicates across indices would show)."""
    es.indices.refresh(index=f"{prefix}-{kind}-*", allow_no_indices=True, ignore_unavailable=True)
    found = es.search(
        index=f"{prefix}-{kind}-*", size=10000, query={"match_all": {}}, source=False, allow_no_indices=True
    )
    return [hit["_id"] for hit in found["hits"]["hits"]]


@pytest.fixture(name="ids_in")
def ids_in_fixture() -> Any:
    return ids_in


@pytest.fixture(name="make_alert")
def make_alert_fixture() -> Any:
    return make_alert


def _reachable(url: str) -> str | None:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(url, request_timeout=5, max_retries=0)
    try:
        client.info()
        return None
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    finally:
        client.close()


@pytest.fixture(scope="session")
def es_url() -> str:
    problem = _reachable(ES_URL)
    if problem:
        message = f"Elasticsearch not reachable at {ES_URL} ({problem}); start it with `make es-up`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return ES_URL


@pytest.fixture
def es(es_url: str) -> Iterator[Any]:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_url, request_timeout=30)
    yield client
    client.close()


@pytest.fixture
def prefix(es: Any) -> Iterator[str]:
    """A fresh index prefix per test; its indices and templates are deleted afterwards."""
    name = f"kst-{uuid.uuid4().hex[:10]}"
    yield name
    # destructive actions need explicit names (action.destructive_requires_name)
    found = es.indices.get(index=f"{name}-*", allow_no_indices=True, ignore_unavailable=True)
    if found:
        es.indices.delete(index=",".join(found))
    for kind in ("alerts", "events"):
        es.options(ignore_status=404).indices.delete_index_template(name=f"{name}-{kind}")


@pytest.fixture
def config(es_url: str, prefix: str) -> ElasticsearchConfig:
    return ElasticsearchConfig(
        url=es_url, index_prefix=prefix, request_timeout=10, backoff_initial=0.05, backoff_max=0.5
    )


@pytest.fixture(scope="session")
def alerts() -> list[dict[str, Any]]:
    """~100 alerts over several days: every real Event under two rules, half moved a day later."""
    events = audit_events()
    docs = []
    for i, event in enumerate(events):
        for rule in ("kst-rule-a", "kst-rule-b"):
            docs.append(make_alert(event, rule, day_offset=i % 2))
    return docs
