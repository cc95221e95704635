"""Builders for realistic audit records used across the foundation tests."""

from __future__ import annotations

import uuid
from typing import Any


def audit_event(n: int, **overrides: Any) -> dict[str, Any]:
    """A Kubernetes audit Event (audit.k8s.io/v1) as kube-apiserver writes it, numbered n."""
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": str(uuid.UUID(int=n + 1)),
        "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/default/configmaps/cm-{n}",
        "verb": "get",
        "user": {"username": "system:serviceaccount:default:app", "groups": ["system:serviceaccounts"]},
        "sourceIPs": ["10.0.0.7"],
        "userAgent": "app/1.0",
        "objectRef": {
            "resource": "configmaps",
            "namespace": "default",
            "name": f"cm-{n}",
            "apiVersion": "v1",
        },
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2026-11-28T10:00:00.000000Z",
        "stageTimestamp": "2026-11-28T10:00:00.002000Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
    }
    event.update(overrides)
    return event
