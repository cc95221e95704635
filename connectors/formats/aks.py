"""AKS audit logs as Azure diagnostic settings export them (`category` kube-audit or kube-audit-admin):
the audit Event sits in `properties.log`, as a JSON string or an object. Cheap to read, so read, with
cloud.provider azure; AKS control-plane (Activity log) records are not decoded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from kubesigma.connectors.formats import DecodeContext, Format, Outcome, register
from kubesigma.connectors.formats._json import refusal
from kubesigma.connectors.formats.kubernetes import audit_event, is_audit_event
from kubesigma.connectors.model import Cloud, DeadLetter, Source

AUDIT_CATEGORIES = frozenset({"kube-audit", "kube-audit-admin"})


def is_aks_diagnostic(value: Any) -> bool:
    return (
        type(value) is dict
        and value.get("category") in AUDIT_CATEGORIES
        and isinstance(value.get("properties"), dict)
        and "log" in value["properties"]
    )


def _cloud_and_cluster(resource_id: Any) -> tuple[Cloud, str | None]:
    # /SUBSCRIPTIONS/<id>/RESOURCEGROUPS/<rg>/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/<name>;
    # diagnostic exports upper-case it, while AKS names are lower-case by convention and case-insensitive.
    parts = resource_id.split("/") if isinstance(resource_id, str) else []
    upper = [p.upper() for p in parts]
    subscription = parts[upper.index("SUBSCRIPTIONS") + 1].lower() if "SUBSCRIPTIONS" in upper[:-1] else None
    cluster = parts[upper.index("MANAGEDCLUSTERS") + 1].lower() if "MANAGEDCLUSTERS" in upper[:-1] else None
    return Cloud("azure", subscription or None, None), cluster or None


def _decode(value: Any, source: Source, size: int, raw: bytes, ctx: DecodeContext) -> Iterator[Outcome]:
    log = value["properties"]["log"]
    if isinstance(log, str):
        try:
            log = orjson.loads(log)
        except orjson.JSONDecodeError as err:
            yield DeadLetter(
                "decode", f"AKS diagnostic record: properties.log is not valid JSON: {err}", source, raw
            )
            return
    refused = refusal(log)
    if refused is not None:
        yield DeadLetter("decode", f"AKS diagnostic record: properties.log is {refused}", source, raw)
        return
    if not is_audit_event(log):
        yield DeadLetter(
            "decode", "AKS diagnostic record: properties.log is not a Kubernetes audit Event", source, raw
        )
        return
    cloud, cluster = _cloud_and_cluster(value.get("resourceId"))
    yield audit_event(log, source, size, raw, ctx, cloud=cloud, cluster=cluster)


register(Format("aks-diagnostic", is_aks_diagnostic, _decode, priority=40))
