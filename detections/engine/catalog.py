"""What fields the events kubesigma reads actually carry, for `rules check` warnings.

A rule over a field no event has is legal Sigma but never matches: usually a typo or a field
name from another schema that needs a mapping.
"""

from __future__ import annotations

import re

from sigma.types import SigmaString, SpecialChars

from kubesigma.connectors.model.logsources import PROFILES, KnownFields

# Top-level fields per (product, service) and their known sub-fields (None: any sub-path), from the
# logsource profiles.
KNOWN_FIELDS: dict[tuple[str, str], KnownFields] = {key: p.known_fields for key, p in PROFILES.items()}


def unknown_field(product: str | None, service: str | None, path: str) -> bool:
    """True when no event of this logsource carries `path` (unknown logsources: never)."""
    known = KNOWN_FIELDS.get(((product or "").lower(), (service or "").lower()))
    if known is None:
        return False
    parts = path.split(".")
    top = parts[0]
    if top not in known:
        return True
    subs = known[top]
    if subs is None or len(parts) == 1:
        return False
    return parts[1] not in subs if subs else True


# Fields holding event time, which time-part modifiers (`|hour`, `|day`, ...) read.
TIME_FIELDS = frozenset().union(*(p.time_fields for p in PROFILES.values()))

GKE_VERBS = (
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "get",
    "list",
    "watch",
    "connect",
    "proxy",
)
_UPPER = re.compile(r"[A-Z]")


def gke_method_problem(value: SigmaString) -> str | None:
    """Why a methodName value cannot match GKE's `io.k8s.<group>.<version>.<resource>.<verb>`, or None."""
    parts = [p for p in value.s]
    text = "".join(p if isinstance(p, str) else "*" for p in parts)
    if "k8s" not in text.lower():
        return None  # a Google API method (google.container.v1.ClusterManager.CreateCluster), not Kubernetes
    if parts and isinstance(parts[0], str) and not text.startswith("io.k8s."):
        return f"method name {text!r} does not start with `io.k8s.` as GKE method names do"
    verbs = GKE_VERBS if parts and not isinstance(parts[0], str) else tuple("." + v for v in GKE_VERBS)
    if parts and isinstance(parts[-1], str) and not text.endswith(verbs):
        return f"method name {text!r} does not end with a Kubernetes verb (`.create`, `.patch`, ...)"
    if _UPPER.search(text):
        return f"method name {text!r} has capitals; GKE method names use lowercase plural resources"
    return None


def is_plain_string(value: object) -> bool:
    return isinstance(value, SigmaString) and not any(isinstance(p, SpecialChars) for p in value.s)
