"""Index templates generated from the Alert model: every field mapped, raw records bounded, index names
a pure function of the timestamp."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from kubesigma.connectors.model import KUBERNETES_AUDIT, AuditEvent, Source
from kubesigma.connectors.model.alert import Alert
from kubesigma.connectors.sinks import es_mapping
from kubesigma.connectors.sinks.es_indices import install_templates


def test_every_top_level_alert_field_is_mapped():
    properties = es_mapping.alert_mappings()["properties"]
    fields = {info.alias or name for name, info in Alert.model_fields.items()}
    assert set(properties) == fields


def test_a_free_form_field_without_explicit_mapping_is_refused():
    class WithBlob(BaseModel):
        blob: dict[str, Any]

    with pytest.raises(es_mapping.MappingError, match="alert field blob"):
        es_mapping._model_properties(WithBlob, "")


def test_request_and_response_objects_never_grow_the_mapping():
    audit = es_mapping.kubernetes_audit_mapping()["properties"]
    for member in ("requestObject", "responseObject"):
        assert audit[member]["dynamic"] is False
    assert audit["annotations"]["type"] == "flattened"
    assert es_mapping.alert_mappings()["dynamic"] is False


def test_ecs_types_of_time_and_address_fields():
    paths = es_mapping.alert_mappings()["properties"]
    assert paths["@timestamp"]["type"] == "date"
    assert paths["source"]["properties"]["ip"]["type"] == "ip"


def test_index_name_is_the_utc_day_of_the_timestamp():
    assert es_mapping.index_name("ks", "alerts", "2026-11-28T23:30:00-02:00") == "ks-alerts-2026.11.29"
    assert es_mapping.index_name("ks", "alerts", "2026-11-28T23:30:00.123456Z") == "ks-alerts-2026.11.28"


def test_a_timestamp_that_is_not_rfc3339_is_named_in_the_error():
    with pytest.raises(ValueError, match="'yesterday'"):
        es_mapping.index_name("ks", "alerts", "yesterday")


def _audit_event(raw: dict[str, Any], i: int, size: int = 1000) -> AuditEvent:
    stamp = datetime.fromisoformat(raw["stageTimestamp"].replace("Z", "+00:00")).astimezone(UTC)
    return AuditEvent(
        views=((KUBERNETES_AUDIT, raw),),
        time=stamp.timestamp(),
        event_id=raw["auditID"],
        identity=f"{raw['auditID']}/{raw['stage']}/{i}",
        source=Source(uri="file:falco-traces.jsonl", line=i + 1),
        size=size,
        cluster="minikube",
        user_name=raw.get("user", {}).get("username"),
    )


def test_an_oversized_event_is_indexed_without_its_request_and_response_bodies(falco_events):
    from kubesigma.connectors.model.alert import event_document

    raw = next(e for e in falco_events if "requestObject" in e)
    doc = event_document(_audit_event(raw, 0, size=5_000_000), soft_limit=1_000_000)
    assert "requestObject" not in doc["kubernetes"]["audit"]
    assert doc["kubesigma"]["truncated_fields"][0].startswith("kubernetes.audit.requestObject: dropped")


@pytest.mark.elasticsearch
def test_event_batches_indexed_twice_leave_one_document_per_event(es, config, falco_events, ids_in, tmp_path):
    from dataclasses import replace

    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from kubesigma.connectors.sinks.elasticsearch import IndexEvents

    events_config = replace(config, index_events=True)
    install_templates(events_config)
    events = [_audit_event(raw, i) for i, raw in enumerate(falco_events)]
    batches = [events[i : i + 10] for i in range(0, len(events), 10)]  # as DecodeAudit emits them
    for _ in range(2):
        with beam.Pipeline(runner=FnApiRunner()) as p:
            _ = p | beam.Create(batches, reshuffle=False) | IndexEvents(events_config)
    ids = ids_in(es, config.index_prefix, "events")
    assert len(ids) == len(events)
    assert len(set(ids)) == len(events)


class _RecordingCluster:
    """Stands in for a cluster with x-pack (Elastic Cloud): none can run here, the test cluster has no
    ILM. Answers what install_templates asks and records what it is sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class _Ns:
            def __init__(self, prefix: str) -> None:
                self.prefix = prefix

            def __getattr__(self, name: str) -> Any:
                def call(**kwargs: Any) -> Any:
                    outer.calls.append((f"{self.prefix}.{name}", kwargs))
                    if name == "info" and self.prefix == "nodes":
                        return {
                            "nodes": {"n1": {"modules": [{"name": "x-pack-core"}, {"name": "x-pack-ilm"}]}}
                        }
                    return {"acknowledged": True}

                return call

        self.nodes, self.ilm, self.indices = _Ns("nodes"), _Ns("ilm"), _Ns("indices")

    def info(self) -> dict[str, Any]:
        return {"version": {"number": "8.17.0"}, "cluster_name": "cloud"}


def test_with_ilm_the_template_names_a_delete_phase_policy_counted_from_the_index_date():
    from kubesigma.connectors.sinks.es_config import ElasticsearchConfig

    cluster = _RecordingCluster()
    config = ElasticsearchConfig(url="https://es.example:9200", retention_days=14)
    lines = install_templates(config, client=cluster)
    policy = dict(cluster.calls)["ilm.put_lifecycle"]
    template = dict(cluster.calls)["indices.put_index_template"]
    settings = template["template"]["settings"]
    assert policy["policy"]["phases"]["delete"]["min_age"] == "14d"
    assert "rollover" not in json.dumps(policy)
    assert settings["index.lifecycle.name"] == policy["name"]
    assert settings["index.lifecycle.parse_origination_date"] is True
    assert not any("no index lifecycle management" in line for line in lines)
