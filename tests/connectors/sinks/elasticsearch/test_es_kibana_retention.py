"""Kibana saved objects name only fields our mapping has; retention deletes whole old date-named indices."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest

from kubesigma.connectors.sinks import es_mapping, kibana
from kubesigma.connectors.sinks.es_indices import delete_expired_indices, expired_indices
from kubesigma.pipeline.cli import main
from support.paths import REPO

KQL_FIELD = re.compile(r"([A-Za-z_@][\w@./-]*)\s*:")


def _mapped(field: str, paths: set[str], flattened: set[str]) -> bool:
    return field in paths or any(field.startswith(f"{f}.") for f in flattened)


def _fields_named(obj: dict) -> set[str]:
    attrs = obj["attributes"]
    names: set[str] = set(attrs.get("columns", []))
    names.update(column for column, _ in attrs.get("sort", []))
    meta = attrs.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
    if meta:
        query = re.sub(r'"[^"]*"', '""', json.loads(meta)["query"]["query"])  # values are not fields
        names.update(KQL_FIELD.findall(query))
    if "visState" in attrs:
        for agg in json.loads(attrs["visState"])["aggs"]:
            if "field" in agg["params"]:
                names.add(agg["params"]["field"])
    return names


def test_every_field_in_the_saved_objects_exists_in_the_alert_mapping():
    mappings = es_mapping.alert_mappings()
    paths = es_mapping.field_paths(mappings)
    flattened = {p for p in paths if _type_of(mappings, p) == "flattened"}
    named = set().union(*(_fields_named(o) for o in kibana.saved_objects()))
    assert "kubernetes.audit.annotations.authorization.k8s.io/decision" in named
    missing = sorted(f for f in named if not _mapped(f, paths, flattened))
    assert missing == []


def _type_of(mappings: dict, path: str) -> str | None:
    node = mappings
    for part in path.split("."):
        node = node.get("properties", {}).get(part, {})
    return node.get("type")


def test_every_reference_points_to_an_object_in_the_export():
    objects = kibana.saved_objects()
    ids = {(o["type"], o["id"]) for o in objects}
    dangling = [(o["id"], r) for o in objects for r in o["references"] if (r["type"], r["id"]) not in ids]
    assert dangling == []


def test_one_saved_search_per_mission_scenario():
    titles = [o["attributes"]["title"] for o in kibana.saved_objects() if o["type"] == "search"]
    for scenario in ("anonymous access", "exec", "secret enumeration", "privileged or hostPath pod"):
        assert any(scenario in t for t in titles), scenario


def test_docs_kibana_ndjson_is_what_kibana_export_writes(tmp_path):
    out = tmp_path / "objects.ndjson"
    assert main(["kibana", "export", "--out", str(out)]) == 0
    assert out.read_text() == (REPO / "docs" / "kibana" / "kubesigma.ndjson").read_text()


def test_expired_indices_are_those_older_than_keep_days_and_only_ours():
    names = [
        "kubesigma-alerts-2026.11.01",
        "kubesigma-alerts-2026.11.20",
        "kubesigma-events-2026.10.01",
        "kubesigma-alerts-latest",
        "other-alerts-2020.01.01",
    ]
    assert expired_indices(names, "kubesigma", 10, date(2026, 11, 28)) == [
        "kubesigma-alerts-2026.11.01",
        "kubesigma-events-2026.10.01",
    ]


@pytest.mark.elasticsearch
def test_retention_deletes_whole_old_indices_and_keeps_recent_ones(es, config):
    for day in ("2026.01.01", "2026.11.27"):
        es.indices.create(index=f"{config.index_prefix}-alerts-{day}")
    deleted = delete_expired_indices(config, 30, today=date(2026, 11, 28))
    assert deleted == [f"{config.index_prefix}-alerts-2026.01.01"]
    assert list(es.indices.get(index=f"{config.index_prefix}-alerts-*")) == [
        f"{config.index_prefix}-alerts-2026.11.27"
    ]


@pytest.mark.elasticsearch
def test_es_retention_command_prints_what_it_deleted(es, config, capsys):
    old = f"{config.index_prefix}-events-2001.01.01"
    es.indices.create(index=old)
    argv = [
        "es",
        "retention",
        "--keep-days",
        "30",
        "--es-url",
        config.url,
        "--es-index-prefix",
        config.index_prefix,
    ]
    assert main(argv) == 0
    assert f"deleted {old}" in capsys.readouterr().out
    assert not es.indices.exists(index=old)


def test_es_retention_command_refuses_an_unknown_option(capsys):
    assert (
        main(["es", "retention", "--keep-days", "3", "--es-url", "http://127.0.0.1:9", "--es-bogus", "x"])
        == 2
    )
    assert "--es-bogus" in capsys.readouterr().err
