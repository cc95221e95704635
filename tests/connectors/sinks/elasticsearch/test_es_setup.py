"""`kubesigma es setup` on the real cluster: the first run installs what kubesigma needs, a second run
changes nothing and exits 0, `--check` changes nothing and exits 1 on drift, and what it installs is what
the job installs at start-up."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubesigma.connectors.sinks import es_mapping
from kubesigma.connectors.sinks.es_config import ElasticsearchConfig
from kubesigma.connectors.sinks.es_indices import install_templates
from kubesigma.connectors.sinks.es_setup import setup, writer_role
from kubesigma.pipeline.cli import main

pytestmark = pytest.mark.elasticsearch


def es_setup(
    capsys: pytest.CaptureFixture[str], es_url: str, prefix: str, *more: str
) -> tuple[int, list[str]]:
    code = main(
        ["es", "setup", f"--es-url={es_url}", f"--es-index-prefix={prefix}", "--es-index-events", *more]
    )
    return code, capsys.readouterr().out.splitlines()


def templates(es: Any, prefix: str) -> dict[str, Any]:
    found = es.indices.get_index_template(name=f"{prefix}-*")["index_templates"]
    return {t["name"]: t["index_template"] for t in found}


def test_a_second_setup_changes_nothing(es, es_url, prefix, capsys) -> None:
    code, first = es_setup(capsys, es_url, prefix)
    assert code == 0
    assert f"elasticsearch: index template {prefix}-alerts created" in first
    assert f"elasticsearch: index template {prefix}-events created" in first
    installed = templates(es, prefix)
    assert set(installed) == {f"{prefix}-alerts", f"{prefix}-events"}

    code, second = es_setup(capsys, es_url, prefix)
    assert code == 0
    assert f"elasticsearch: index template {prefix}-alerts unchanged" in second
    assert "elasticsearch: 0 of 2 objects changed" in second
    assert templates(es, prefix) == installed


def test_check_reports_drift_and_changes_nothing(es, es_url, prefix, capsys) -> None:
    assert es_setup(capsys, es_url, prefix)[0] == 0
    # Someone edits the alerts template by hand (slower refresh).
    body = es_mapping.index_template(prefix, "alerts")
    body["template"]["settings"]["index.refresh_interval"] = "30s"
    es.indices.put_index_template(name=f"{prefix}-alerts", **body)
    edited = templates(es, prefix)

    code, out = es_setup(capsys, es_url, prefix, "--check")
    assert code == 1
    assert f"elasticsearch: index template {prefix}-alerts would be updated" in out
    assert f"elasticsearch: index template {prefix}-events unchanged" in out
    assert templates(es, prefix) == edited

    code, out = es_setup(capsys, es_url, prefix)
    assert code == 0 and f"elasticsearch: index template {prefix}-alerts updated" in out
    assert es_setup(capsys, es_url, prefix, "--check")[0] == 0


def test_setup_and_the_jobs_start_up_install_the_same_thing(es, es_url, prefix) -> None:
    config = ElasticsearchConfig(url=es_url, index_prefix=prefix, index_events=True)
    install_templates(config)
    report = setup(config, apply=False)
    assert report.changes and report.drift == []
    assert any("no index lifecycle management" in note for note in report.notes)


def test_writer_role_is_limited_to_kubesigmas_indices(capsys) -> None:
    role = writer_role("acme")
    assert [entry["names"] for entry in role["indices"]] == [["acme-*"]]
    assert not {"all", "write", "delete", "delete_index", "manage"} & set(role["indices"][0]["privileges"])
    assert "all" not in role["cluster"] and "manage_security" not in role["cluster"]
    assert main(["es", "writer-role", "--es-index-prefix=acme"]) == 0
    assert json.loads(capsys.readouterr().out) == {"acme_writer": role}
