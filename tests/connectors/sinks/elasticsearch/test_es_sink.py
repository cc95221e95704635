"""The Elasticsearch sink against the real cluster: exactly once across runs, date-named indices,
dead letters with Elasticsearch's reason, templates installed idempotently."""

from __future__ import annotations

import pytest

from kubesigma.connectors.sinks import es_mapping
from kubesigma.connectors.sinks.elasticsearch import BulkWriter, bulk_item
from kubesigma.connectors.sinks.es_config import make_client
from kubesigma.connectors.sinks.es_indices import install_templates

pytestmark = pytest.mark.elasticsearch


def test_running_the_same_alerts_twice_leaves_one_document_per_alert_id(
    es, config, alerts, ids_in, tmp_path, run_sink
):
    install_templates(config)
    first, dead1 = run_sink(alerts, config, tmp_path)
    second, dead2 = run_sink(alerts, config, tmp_path)
    ids = ids_in(es, config.index_prefix)
    expected = {a["kubesigma"]["alert_id"] for a in alerts}
    assert not dead1 and not dead2
    assert sorted(ids) == sorted(expected)  # a list: a duplicate in any index would show
    assert set(first) == set(second) == expected


def test_alerts_land_in_the_index_of_their_timestamp_day(es, config, alerts, tmp_path, run_sink):
    install_templates(config)
    run_sink(alerts[:20], config, tmp_path)
    es.indices.refresh(index=f"{config.index_prefix}-alerts-*")
    for doc in alerts[:20]:
        index = es_mapping.index_name(config.index_prefix, "alerts", doc["@timestamp"])
        got = es.get(index=index, id=doc["kubesigma"]["alert_id"])
        assert got["_source"]["@timestamp"] == doc["@timestamp"]


def test_document_refused_by_the_mapping_goes_to_dead_letter_with_elasticsearch_reason(
    config, alerts, tmp_path, run_sink
):
    install_templates(config)
    bad = {**alerts[0], "event": {**alerts[0]["event"], "severity": "very high"}}
    bad["kubesigma"] = {**bad["kubesigma"], "alert_id": "bad-severity-alert"}
    written, dead = run_sink([bad, alerts[1]], config, tmp_path)
    assert written == [alerts[1]["kubesigma"]["alert_id"]]
    assert len(dead) == 1
    assert dead[0].stage == "sink"
    assert "mapper_parsing_exception" in dead[0].reason or "document_parsing_exception" in dead[0].reason
    assert dead[0].source.uri.startswith(f"elasticsearch:{config.index_prefix}-alerts-")
    assert b"very high" in dead[0].raw


def test_document_without_alert_id_goes_to_dead_letter_naming_the_problem(config, alerts, tmp_path, run_sink):
    doc = {k: v for k, v in alerts[0].items() if k != "kubesigma"}
    written, dead = run_sink([doc], config, tmp_path)
    assert written == []
    assert "not an indexable alerts document" in dead[0].reason


def test_install_templates_twice_is_idempotent_and_says_ilm_is_missing(es, config):
    first = install_templates(config)
    second = install_templates(config)
    assert first == second
    assert any("no index lifecycle management" in line for line in first)
    template = es.indices.get_index_template(name=f"{config.index_prefix}-alerts")
    assert template["index_templates"][0]["index_template"]["index_patterns"] == [
        f"{config.index_prefix}-alerts-*"
    ]


def test_alert_indexes_with_dotted_annotations_and_large_request_objects(es, config, alerts):
    install_templates(config)
    doc = dict(alerts[0])
    audit = dict(doc["kubernetes"]["audit"])
    audit["annotations"] = {"authorization.k8s.io/decision": "allow", "authorization.k8s.io": "x"}
    audit["requestObject"] = {"data": {f"key.{i}": str(i) for i in range(3000)}, "kind": "ConfigMap"}
    doc["kubernetes"] = {"audit": audit}
    client = make_client(config)
    outcome = BulkWriter(client, config).write([bulk_item(doc, config.index_prefix, "alerts")])
    client.close()
    assert outcome.created and not outcome.failed
    es.indices.refresh(index=f"{config.index_prefix}-alerts-*")
    hits = es.search(
        index=f"{config.index_prefix}-alerts-*",
        query={"term": {"kubernetes.audit.annotations.authorization.k8s.io/decision": "allow"}},
    )
    assert hits["hits"]["total"]["value"] == 1
    mapping = es.indices.get_mapping(index=f"{config.index_prefix}-alerts-*")
    fields = next(iter(mapping.values()))["mappings"]["properties"]["kubernetes"]["properties"]["audit"]
    assert "data" not in fields["properties"]["requestObject"].get("properties", {})
