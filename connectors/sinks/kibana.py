"""Kibana saved objects for kubesigma's alerts: data views, a dashboard and one saved search per
attack scenario, as the NDJSON that Kibana's Saved Objects import (Stack Management → Saved Objects)
reads. docs/kibana/kubesigma.ndjson is this module's output (`kubesigma kibana export`), kept in sync by
a test; every field it names exists in the index mapping (tested too)."""

from __future__ import annotations

import json
from typing import Any

from kubesigma.connectors.sinks.es_config import DEFAULT_PREFIX

ALERTS_VIEW = "kubesigma-alerts"
EVENTS_VIEW = "kubesigma-events"
SEARCH_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
# 8.0.0 throughout: Kibana 8.0 and newer run their own later migrations on import.
MIGRATION = {"coreMigrationVersion": "8.0.0", "typeMigrationVersion": "8.0.0"}

# The mission's scenarios, as an analyst would search for them (KQL over the alert documents).
SCENARIOS: list[dict[str, Any]] = [
    {
        "id": "kubesigma-anonymous-access-allowed",
        "title": "kubesigma: anonymous access allowed",
        "description": "Requests by system:anonymous (or the unauthenticated group) that the authorizer allowed.",
        "query": '(user.name : "system:anonymous" or kubernetes.audit.user.groups : "system:unauthenticated") '
        'and kubernetes.audit.annotations.authorization.k8s.io/decision : "allow"',
        "columns": [
            "rule.name",
            "user.name",
            "source.ip",
            "kubernetes.audit.verb",
            "kubernetes.audit.requestURI",
            "orchestrator.cluster.name",
        ],
    },
    {
        "id": "kubesigma-exec-into-pod",
        "title": "kubesigma: exec or attach into a pod",
        "description": "Interactive access to running containers (pods/exec, pods/attach).",
        "query": 'kubernetes.audit.objectRef.resource : "pods" and kubernetes.audit.objectRef.subresource : ("exec" or "attach")',
        "columns": [
            "rule.name",
            "user.name",
            "orchestrator.namespace",
            "kubernetes.audit.objectRef.name",
            "kubernetes.audit.requestURI",
            "source.ip",
        ],
    },
    {
        "id": "kubesigma-secret-enumeration",
        "title": "kubesigma: secret enumeration",
        "description": "Listing, watching or reading secrets, most telling across namespaces.",
        "query": 'kubernetes.audit.objectRef.resource : "secrets" and kubernetes.audit.verb : ("list" or "watch" or "get")',
        "columns": [
            "rule.name",
            "user.name",
            "kubernetes.audit.verb",
            "orchestrator.namespace",
            "kubernetes.audit.objectRef.name",
            "source.ip",
        ],
    },
    {
        "id": "kubesigma-privileged-hostpath-miner",
        "title": "kubesigma: privileged or hostPath pod, miner images",
        "description": "Workloads created privileged, with host paths or host namespaces, or running a known miner image.",
        "query": 'kubernetes.audit.verb : "create" and ('
        'kubernetes.audit.requestObject.spec.containers.securityContext.privileged : "true" '
        "or kubernetes.audit.requestObject.spec.volumes.hostPath.path : * "
        'or kubernetes.audit.requestObject.spec.template.spec.containers.securityContext.privileged : "true" '
        "or kubernetes.audit.requestObject.spec.template.spec.volumes.hostPath.path : * "
        'or kubernetes.audit.requestObject.spec.hostPID : "true" '
        "or kubernetes.audit.requestObject.spec.containers.image : (*xmrig* or *miner* or *monero*))",
        "columns": [
            "rule.name",
            "user.name",
            "orchestrator.namespace",
            "kubernetes.audit.objectRef.name",
            "kubernetes.audit.requestObject.spec.containers.image",
            "kubernetes.audit.requestObject.spec.volumes.hostPath.path",
        ],
    },
]

# Dashboard panels: (id, title, vis type, terms field or None, extra date histogram?)
PANELS: list[dict[str, Any]] = [
    {
        "id": "kubesigma-alerts-over-time-by-rule",
        "title": "Alerts over time by rule",
        "type": "histogram",
        "field": "rule.name",
        "time": True,
    },
    {
        "id": "kubesigma-alerts-by-severity",
        "title": "Alerts by severity",
        "type": "pie",
        "field": "rule.level",
    },
    {
        "id": "kubesigma-alerts-by-cluster",
        "title": "Alerts by cluster",
        "type": "pie",
        "field": "orchestrator.cluster.name",
    },
    {"id": "kubesigma-alerts-by-user", "title": "Alerts by user", "type": "table", "field": "user.name"},
    {"id": "kubesigma-top-source-ips", "title": "Top source IPs", "type": "table", "field": "source.ip"},
]


def _search_source(query: str = "") -> str:
    return json.dumps(
        {"query": {"query": query, "language": "kuery"}, "filter": [], "indexRefName": SEARCH_REF},
        sort_keys=True,
    )


def _data_view(view_id: str, pattern: str, name: str) -> dict[str, Any]:
    return {
        "id": view_id,
        "type": "index-pattern",
        "attributes": {"title": pattern, "name": name, "timeFieldName": "@timestamp"},
        "references": [],
        **MIGRATION,
    }


def _visualization(panel: dict[str, Any]) -> dict[str, Any]:
    aggs: list[dict[str, Any]] = [
        {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}}
    ]
    if panel.get("time"):
        aggs.append(
            {
                "id": "2",
                "enabled": True,
                "type": "date_histogram",
                "schema": "segment",
                "params": {
                    "field": "@timestamp",
                    "interval": "auto",
                    "min_doc_count": 1,
                    "extended_bounds": {},
                },
            }
        )
    aggs.append(
        {
            "id": "3",
            "enabled": True,
            "type": "terms",
            "schema": "group" if panel.get("time") else ("segment" if panel["type"] == "pie" else "bucket"),
            "params": {
                "field": panel["field"],
                "size": 10,
                "order": "desc",
                "orderBy": "1",
                "missingBucket": False,
            },
        }
    )
    params: dict[str, Any] = {"addTooltip": True, "addLegend": True}
    if panel["type"] == "histogram":
        params.update(
            {
                "type": "histogram",
                "legendPosition": "right",
                "categoryAxes": [
                    {
                        "id": "CategoryAxis-1",
                        "type": "category",
                        "position": "bottom",
                        "show": True,
                        "labels": {"show": True},
                    }
                ],
                "valueAxes": [
                    {
                        "id": "ValueAxis-1",
                        "name": "LeftAxis-1",
                        "type": "value",
                        "position": "left",
                        "show": True,
                        "labels": {"show": True},
                        "title": {"text": "Alerts"},
                    }
                ],
                "seriesParams": [
                    {
                        "show": True,
                        "type": "histogram",
                        "mode": "stacked",
                        "data": {"label": "Alerts", "id": "1"},
                        "valueAxis": "ValueAxis-1",
                    }
                ],
            }
        )
    elif panel["type"] == "pie":
        params.update({"type": "pie", "isDonut": True, "legendPosition": "right", "labels": {"show": False}})
    else:
        params.update(
            {"perPage": 10, "showPartialRows": False, "showMetricsAtAllLevels": False, "showTotal": False}
        )
    vis_state = {"title": panel["title"], "type": panel["type"], "params": params, "aggs": aggs}
    return {
        "id": panel["id"],
        "type": "visualization",
        "attributes": {
            "title": panel["title"],
            "description": "",
            "uiStateJSON": "{}",
            "version": 1,
            "visState": json.dumps(vis_state, sort_keys=True),
            "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source()},
        },
        "references": [{"name": SEARCH_REF, "type": "index-pattern", "id": ALERTS_VIEW}],
        **MIGRATION,
    }


def _saved_search(scenario: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": scenario["id"],
        "type": "search",
        "attributes": {
            "title": scenario["title"],
            "description": scenario["description"],
            "columns": scenario["columns"],
            "sort": [["@timestamp", "desc"]],
            "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(scenario["query"])},
        },
        "references": [{"name": SEARCH_REF, "type": "index-pattern", "id": ALERTS_VIEW}],
        **MIGRATION,
    }


def _dashboard() -> dict[str, Any]:
    panels = []
    layout = [(0, 0, 48, 15), (0, 15, 16, 15), (16, 15, 16, 15), (32, 15, 16, 15), (0, 30, 24, 15)]
    for i, (x, y, w, h) in enumerate(layout[: len(PANELS)]):
        panels.append(
            {
                "version": "8.0.0",
                "type": "visualization",
                "gridData": {"x": x, "y": y, "w": w, "h": h, "i": str(i)},
                "panelIndex": str(i),
                "embeddableConfig": {},
                "panelRefName": f"panel_{i}",
            }
        )
    return {
        "id": "kubesigma-overview",
        "type": "dashboard",
        "attributes": {
            "title": "kubesigma: Kubernetes detections",
            "description": "Alerts over time by rule; by severity, cluster and user; top source IPs.",
            "panelsJSON": json.dumps(panels, sort_keys=True),
            "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
            "timeRestore": True,
            "timeFrom": "now-7d",
            "timeTo": "now",
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"}, "filter": []})
            },
        },
        "references": [
            {"name": f"panel_{i}", "type": "visualization", "id": panel["id"]}
            for i, panel in enumerate(PANELS)
        ],
        **MIGRATION,
    }


def saved_objects(prefix: str = DEFAULT_PREFIX) -> list[dict[str, Any]]:
    """Every saved object, referenced objects before those that reference them."""
    return [
        _data_view(ALERTS_VIEW, f"{prefix}-alerts-*", "kubesigma alerts"),
        _data_view(EVENTS_VIEW, f"{prefix}-events-*", "kubesigma events"),
        *(_visualization(p) for p in PANELS),
        *(_saved_search(s) for s in SCENARIOS),
        _dashboard(),
    ]


def saved_objects_ndjson(prefix: str = DEFAULT_PREFIX) -> str:
    return "".join(json.dumps(obj, sort_keys=True) + "\n" for obj in saved_objects(prefix))
