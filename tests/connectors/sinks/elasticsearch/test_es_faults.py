"""Exactly once when the cluster pushes back or fails: a local proxy in front of the real Elasticsearch
answers 429 and 503, resets connections (before and after the cluster applied the bulk), stalls, and
rejects single items; afterwards every alert is in Elasticsearch exactly once.

The proxy is a test double of a misbehaving network and cluster (nothing here can make the real node
fail on demand); the documents always reach the real Elasticsearch."""

from __future__ import annotations

import pytest

from kubesigma.connectors.sinks.elasticsearch import BulkWriter, bulk_item
from kubesigma.connectors.sinks.es_config import ElasticsearchConfig, make_client
from kubesigma.connectors.sinks.es_indices import install_templates

pytestmark = pytest.mark.elasticsearch

FAULTS = [
    "429",
    "503",
    "reset",
    "stall",
    "reset_after_apply",
    "partial",
    "429",
    "partial",
    "503",
    "reset_after_apply",
]


def _through(config: ElasticsearchConfig, url: str, **changes) -> ElasticsearchConfig:
    from dataclasses import replace

    return replace(config, url=url, **changes)


def test_every_alert_is_indexed_exactly_once_through_rejections_resets_and_stalls(
    es, config, alerts, proxy, ids_in, tmp_path, run_sink
):
    install_templates(config)
    with proxy(config.url, list(FAULTS), stall_seconds=3.0) as p:
        faulty = _through(config, p.url, batch_size=40, request_timeout=1.0, max_attempts=20)
        _, dead = run_sink(alerts, faulty, tmp_path)
    assert {k for k in p.injected if k != "pass"} == set(FAULTS)  # every fault really happened
    assert dead == []
    ids = ids_in(es, config.index_prefix)
    assert sorted(ids) == sorted({a["kubesigma"]["alert_id"] for a in alerts})


def test_items_rejected_inside_a_bulk_are_retried_until_written(es, config, alerts, proxy, ids_in):
    install_templates(config)
    docs = alerts[:30]
    with proxy(config.url, ["partial", "partial"]) as p:
        client = make_client(_through(config, p.url))
        outcome = BulkWriter(client, config).write(
            [bulk_item(d, config.index_prefix, "alerts") for d in docs]
        )
        client.close()
    assert outcome.retried_items > 0
    assert len(outcome.created) + len(outcome.existed) == len(docs)
    assert sorted(ids_in(es, config.index_prefix)) == sorted(d["kubesigma"]["alert_id"] for d in docs)


def test_a_bulk_applied_before_the_connection_broke_counts_as_written_on_retry(config, alerts, proxy):
    install_templates(config)
    docs = alerts[:10]
    with proxy(config.url, ["reset_after_apply"]) as p:
        client = make_client(_through(config, p.url))
        outcome = BulkWriter(client, config).write(
            [bulk_item(d, config.index_prefix, "alerts") for d in docs]
        )
        client.close()
    assert outcome.attempts == 2
    assert len(outcome.existed) == len(docs)  # 409 on the retry: already written, not duplicated
    assert outcome.failed == []


def test_gives_up_after_max_attempts_with_the_last_reason(config, alerts, proxy):
    install_templates(config)
    with proxy(config.url, ["503"] * 3) as p:
        limited = _through(config, p.url, max_attempts=3)
        client = make_client(limited)
        outcome = BulkWriter(client, limited).write([bulk_item(alerts[0], config.index_prefix, "alerts")])
        client.close()
    assert len(outcome.failed) == 1
    assert outcome.failed[0][1].startswith("gave up after 3 attempts: 503 unavailable_shards_exception")


def test_a_bulk_over_the_request_size_limit_is_split_until_it_fits(config, alerts, proxy, ids_in, es):
    install_templates(config)
    docs = alerts[:8]
    with proxy(config.url, ["413"]) as p:
        client = make_client(_through(config, p.url))
        outcome = BulkWriter(client, config).write(
            [bulk_item(d, config.index_prefix, "alerts") for d in docs]
        )
        client.close()
    assert outcome.failed == []
    assert p.injected["413"] >= 3  # refused at 8, 4 and 2 operations, then single operations pass
    assert sorted(ids_in(es, config.index_prefix)) == sorted(d["kubesigma"]["alert_id"] for d in docs)
