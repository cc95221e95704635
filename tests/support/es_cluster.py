"""The real Elasticsearch of `make es-up` for tests that index: where it is, the ids a test's indices hold,
and dropping them afterwards.

Locally a test skips with the reason when the cluster is not running; under CI (CI=true) it fails, because
CI starts it.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

ES_URL = os.environ.get("KUBESIGMA_ES_URL", "http://127.0.0.1:9200")


def reachable(url: str) -> str | None:
    """None when the cluster answers, else why not."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(url, request_timeout=5, max_retries=0)
    try:
        client.info()
        return None
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    finally:
        client.close()


def es_url_or_skip() -> str:
    problem = reachable(ES_URL)
    if problem:
        message = f"Elasticsearch not reachable at {ES_URL} ({problem}); start it with `make es-up`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return ES_URL


def ids_in(es: Any, prefix: str, kind: str = "alerts") -> list[str]:
    """Every `_id` in the prefix's indices (a list: duplicates across indices would show)."""
    es.indices.refresh(index=f"{prefix}-{kind}-*", allow_no_indices=True, ignore_unavailable=True)
    found = es.search(
        index=f"{prefix}-{kind}-*", size=10000, query={"match_all": {}}, source=False, allow_no_indices=True
    )
    return [hit["_id"] for hit in found["hits"]["hits"]]


def drop_prefix(es: Any, prefix: str) -> None:
    """Deletes the prefix's indices and index templates (destructive actions need explicit names)."""
    found = es.indices.get(index=f"{prefix}-*", allow_no_indices=True, ignore_unavailable=True)
    if found:
        es.indices.delete(index=",".join(found))
    for kind in ("alerts", "events"):
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-{kind}")
