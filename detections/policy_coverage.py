"""Which Kubernetes audit rules an audit Policy leaves blind (`kubesigma rules coverage --policy FILE`).

A rule sees only what the cluster's audit Policy records. For each rule this works out

* the audit level it needs: Metadata, unless a field it must match lives in `requestObject`
  (Request) or `responseObject` (RequestResponse); keyword rules search the request body (Request).
  Along the condition, AND takes the highest need of its parts, OR the lowest, and a negated part
  (a filter) needs nothing: a filter that cannot see its field only lets more events through;
* the requests it is about: the verbs, resources, subresources, namespaces, users and URLs its
  selections name (a probe request for each combination, or a handful of typical requests when it
  names none);

then evaluates each probe against the Policy exactly as the API server does (first matching rule
wins; users, userGroups, verbs, resources with `*`, `*/sub` and `res/*`, resourceNames, namespaces,
nonResourceURLs with a trailing `*`; omitStages). A rule is blind when no probe is recorded at the
level it needs, partly blind when some are not. Cloud control-plane rules (GCP, CloudTrail) do not
depend on the Kubernetes audit Policy and are listed as such.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LEVELS = {"None": 0, "Metadata": 1, "Request": 2, "RequestResponse": 3}
LEVEL_NAMES = {v: k for k, v in LEVELS.items()}
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")

# API group of the resources rules name (objectRef.apiGroup is rarely written in rules).
API_GROUPS: dict[str, str] = {
    "deployments": "apps",
    "daemonsets": "apps",
    "statefulsets": "apps",
    "replicasets": "apps",
    "controllerrevisions": "apps",
    "jobs": "batch",
    "cronjobs": "batch",
    "roles": "rbac.authorization.k8s.io",
    "clusterroles": "rbac.authorization.k8s.io",
    "rolebindings": "rbac.authorization.k8s.io",
    "clusterrolebindings": "rbac.authorization.k8s.io",
    "certificatesigningrequests": "certificates.k8s.io",
    "mutatingwebhookconfigurations": "admissionregistration.k8s.io",
    "validatingwebhookconfigurations": "admissionregistration.k8s.io",
    "ingresses": "networking.k8s.io",
    "networkpolicies": "networking.k8s.io",
    "leases": "coordination.k8s.io",
    "tokenreviews": "authentication.k8s.io",
}
CLUSTER_SCOPED = frozenset(
    {
        "namespaces",
        "nodes",
        "persistentvolumes",
        "clusterroles",
        "clusterrolebindings",
        "certificatesigningrequests",
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
        "customresourcedefinitions",
        "storageclasses",
        "priorityclasses",
    }
)
# What a rule that names no verb or resource is taken to be about.
TYPICAL_VERBS = ("get", "list", "create", "update", "patch", "delete")
TYPICAL_RESOURCES = ("pods", "secrets", "configmaps", "namespaces", "deployments")
GENERIC_USER = ("kubesigma-probe@example.com", ("system:authenticated",))


class PolicyError(ValueError):
    """An audit Policy file that cannot be read; the message names the file."""


# ---- the audit Policy, evaluated as the API server does -----------------------------------------


@dataclass(frozen=True)
class Request:
    user: str
    groups: tuple[str, ...]
    verb: str
    resource: str | None  # None: a non-resource request (path)
    subresource: str | None = None
    group: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    def describe(self) -> str:
        if self.resource is None:
            return f"{self.verb} {self.path} as {self.user}"
        res = self.resource + (f"/{self.subresource}" if self.subresource else "")
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.verb} {res}{where} as {self.user}"


def _matches_resources(rule: dict[str, Any], req: Request) -> bool:
    if req.resource is None:
        return False
    combined = req.resource + (f"/{req.subresource}" if req.subresource else "")
    for gr in rule.get("resources") or []:
        if (gr.get("group") or "") != req.group:
            continue
        names = gr.get("resources") or []
        if not names:
            return True
        allowed_names = gr.get("resourceNames") or []
        if allowed_names and req.name not in allowed_names:
            continue
        for res in names:
            if res in (combined, "*"):
                return True
            if req.subresource and res.startswith("*/") and req.subresource == res[2:]:
                return True
            if res.endswith("/*") and req.resource == res[:-2]:
                return True
    return False


def _matches_path(rule: dict[str, Any], req: Request) -> bool:
    if req.resource is not None:
        return False
    for pattern in rule.get("nonResourceURLs") or []:
        if pattern == "*" or pattern == req.path:
            return True
        if pattern.endswith("*") and req.path.startswith(pattern[:-1]):
            return True
    return False


def rule_matches(rule: dict[str, Any], req: Request) -> bool:
    users = rule.get("users")
    if users and req.user not in users:
        return False
    groups = rule.get("userGroups")
    if groups and not set(groups) & set(req.groups):
        return False
    verbs = rule.get("verbs")
    if verbs and req.verb not in verbs:
        return False
    namespaces = rule.get("namespaces")
    if namespaces and (req.resource is None or req.namespace not in namespaces):
        return False
    has_res, has_urls = bool(rule.get("resources")), bool(rule.get("nonResourceURLs"))
    if has_res or has_urls:
        return (has_res and _matches_resources(rule, req)) or (has_urls and _matches_path(rule, req))
    return True


@dataclass(frozen=True)
class Policy:
    path: str
    rules: tuple[dict[str, Any], ...]
    omit_stages: frozenset[str]

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise PolicyError(f"{path}: cannot read audit Policy: {e}") from e
        if not isinstance(data, dict) or data.get("kind") != "Policy":
            raise PolicyError(f"{path}: not an audit Policy (kind: Policy, apiVersion: audit.k8s.io/v1)")
        rules = data.get("rules")
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise PolicyError(f"{path}: `rules` must be a list of policy rules")
        for i, r in enumerate(rules):
            if r.get("level") not in LEVELS:
                raise PolicyError(f"{path}: rules[{i}]: level must be one of {', '.join(LEVELS)}")
        return cls(str(path), tuple(rules), frozenset(data.get("omitStages") or ()))

    def level_of(self, req: Request) -> tuple[int, int | None]:
        """(audit level, index of the deciding policy rule) for a request; level 0 when nothing matches
        or every stage that carries a response is omitted."""
        for i, rule in enumerate(self.rules):
            if rule_matches(rule, req):
                omitted = self.omit_stages | set(rule.get("omitStages") or ())
                if {"ResponseStarted", "ResponseComplete"} <= omitted:
                    return 0, i
                return LEVELS[rule["level"]], i
        return 0, None


# ---- what a rule needs ---------------------------------------------------------------------------


def field_level(name: str | None) -> int:
    if name is None:  # keywords search the whole event, the request body included
        return LEVELS["Request"]
    if name.startswith("responseObject"):
        return LEVELS["RequestResponse"]
    if name.startswith("requestObject"):
        return LEVELS["Request"]
    return LEVELS["Metadata"]


def _items(detection: Any) -> Iterable[Any]:
    for item in detection.detection_items:
        if hasattr(item, "detection_items"):
            yield from _items(item)
        else:
            yield item


def _plain(value: Any, lists: dict[str, list[str]]) -> list[str]:
    """Concrete strings a value stands for: wildcards become `x`, a list placeholder its entries."""
    from sigma.types import Placeholder, SigmaString

    if not isinstance(value, SigmaString):
        return []
    if value.contains_placeholder():
        names = [p.name for p in value.s if isinstance(p, Placeholder)]
        return [v.replace("*", "x").replace("?", "x") for n in names for v in lists.get(n, [])]
    return ["".join(p if isinstance(p, str) else "x" for p in value.s)]


@dataclass
class Needs:
    level: int = 1
    verbs: set[str] = field(default_factory=set)
    resources: set[str] = field(default_factory=set)
    subresources: set[str] = field(default_factory=set)
    namespaces: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)
    fields: dict[str, int] = field(default_factory=dict)  # field -> level, for the explanation


def needs_of(rule: Any, lists: dict[str, list[str]] | None = None) -> Needs:
    """Level and target requests of a pySigma rule (kubernetes/audit)."""
    needs = Needs()
    # Level: along the parsed condition, by identifier.
    ident_level: dict[str, int] = {}
    for name, detection in rule.detection.detections.items():
        levels = [field_level(item.field) for item in _items(detection)]
        ident_level[name] = max(levels, default=1)
        for item in _items(detection):
            if item.field is not None:
                needs.fields[item.field] = field_level(item.field)
    from sigma.conditions import ConditionAND, ConditionFieldEqualsValueExpression, ConditionNOT, ConditionOR

    parsed = [c.parse(postprocess=False) for c in rule.detection.parsed_condition]

    def level(node: Any) -> int:
        if isinstance(node, str):
            return ident_level.get(node, 1)
        if isinstance(node, ConditionNOT):
            return 0
        if isinstance(node, ConditionAND):
            return max((level(a) for a in node.args), default=0)
        if isinstance(node, ConditionOR):
            return min((level(a) for a in node.args), default=0)
        if isinstance(node, ConditionFieldEqualsValueExpression):
            return field_level(node.field)
        if type(node).__name__ == "ConditionIdentifier":
            return ident_level.get(node.identifier, 1)
        if type(node).__name__ == "ConditionValueExpression":
            return field_level(None)
        args = getattr(node, "args", None)
        return max((level(a) for a in args), default=1) if args else 1

    needs.level = max(1, min((level(p) for p in parsed), default=1))
    # Targets: values named by selections (filters only narrow, so they are left out).
    slot = {
        "verb": needs.verbs,
        "objectRef.resource": needs.resources,
        "objectRef.subresource": needs.subresources,
        "objectRef.namespace": needs.namespaces,
        "user.username": needs.users,
        "user.groups": needs.groups,
        "requestURI": needs.paths,
    }
    for name, detection in rule.detection.detections.items():
        if name.startswith("filter"):
            continue
        for item in _items(detection):
            target = slot.get(item.field or "")
            if target is None:
                continue
            for value in item.value:
                target.update(_plain(value, lists or {}))
    return needs


def _identity(user: str | None, groups: set[str]) -> tuple[str, tuple[str, ...]]:
    if user is None:
        if "system:unauthenticated" in groups:
            return "system:anonymous", ("system:unauthenticated",)
        return GENERIC_USER[0], tuple(sorted(groups)) or GENERIC_USER[1]
    if user.startswith("system:node:"):
        return user, ("system:nodes", "system:authenticated")
    if user.startswith("system:serviceaccount:"):
        ns = user.split(":")[2] if user.count(":") >= 3 else "default"
        return user, ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated")
    if user == "system:anonymous":
        return user, ("system:unauthenticated",)
    return user, ("system:authenticated",)


def probes(needs: Needs) -> list[Request]:
    users: list[str | None] = [*sorted(needs.users)] or [None]
    verbs = sorted(needs.verbs) or list(TYPICAL_VERBS)
    out: list[Request] = []
    if needs.paths and not needs.resources:
        for user, verb, path in itertools.product(users, verbs, sorted(needs.paths)):
            name, groups = _identity(user, needs.groups)
            out.append(Request(name, groups, verb, None, path=path))
        return out
    resources = sorted(needs.resources) or list(TYPICAL_RESOURCES)
    subresources: list[str | None] = [*sorted(needs.subresources)] or [None]
    for user, verb, resource, sub in itertools.product(users, verbs, resources, subresources):
        name, groups = _identity(user, needs.groups)
        namespaces = [""] if resource in CLUSTER_SCOPED else sorted(needs.namespaces) or ["default"]
        for ns in namespaces:
            out.append(Request(name, groups, verb, resource, sub, API_GROUPS.get(resource, ""), ns))
    if not needs.resources and not needs.verbs:
        name, groups = _identity(users[0], needs.groups)
        out.append(Request(name, groups, "get", None, path="/api"))
    return out


# ---- the report ---------------------------------------------------------------------------------


@dataclass
class Finding:
    rule_id: str
    title: str
    path: str
    status: str  # "blind" | "partial" | "ok" | "not-governed"
    reasons: list[str] = field(default_factory=list)


def analyse(policy: Policy, paths: Sequence[str | Path]) -> list[Finding]:
    from sigma.rule import SigmaRule

    from kubesigma.detections.engine.load import parse_file, rule_files
    from kubesigma.detections.lists import LISTS_DIR, load_value_lists

    lists = load_value_lists([LISTS_DIR])
    files, missing = rule_files(paths)
    if missing:
        raise PolicyError("; ".join(str(m) for m in missing))
    findings: list[Finding] = []
    for f in files:
        parsed = parse_file(str(f), f.read_text(encoding="utf-8"))
        for rule in parsed.rules:
            if not isinstance(rule, SigmaRule):
                continue
            logsource = (rule.logsource.product or "", rule.logsource.service or "")
            finding = Finding(str(rule.id), rule.title, str(f), "ok")
            findings.append(finding)
            if logsource != ("kubernetes", "audit"):
                finding.status = "not-governed"
                finding.reasons.append(
                    f"{logsource[0]}/{logsource[1]} records do not pass through the audit Policy"
                )
                continue
            needs = needs_of(rule, lists)
            want = LEVEL_NAMES[needs.level]
            fields = sorted(k for k, v in needs.fields.items() if v == needs.level and v > 1)
            short: list[str] = []
            for req in probes(needs):
                got, index = policy.level_of(req)
                if got < needs.level:
                    where = f"policy rule #{index + 1}" if index is not None else "no policy rule"
                    short.append(f"{req.describe()}: recorded at {LEVEL_NAMES[got]} ({where}), needs {want}")
            total = len(probes(needs))
            if short:
                finding.status = "blind" if len(short) == total else "partial"
                if fields:
                    finding.reasons.append(
                        f"reads {', '.join(fields[:3])}{' ...' if len(fields) > 3 else ''}"
                    )
                finding.reasons.extend(short)
    return findings
