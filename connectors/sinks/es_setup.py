"""The Elasticsearch side of a kubesigma deployment as code: the index templates, lifecycle policies and
the writer role kubesigma needs, compared with what the cluster has and changed only where they differ.
`kubesigma es setup` runs it from CI: a second run changes nothing, and `--check` reports drift without
changing anything. The definitions are the ones the job itself installs at start-up (es_indices), generated
from the Alert model, so a deployment tool and the job can never disagree about a mapping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from kubesigma.connectors.sinks import es_mapping
from kubesigma.connectors.sinks.es_config import ElasticsearchConfig, make_client
from kubesigma.connectors.sinks.es_indices import cluster_modules, lifecycle_policy, lifecycle_policy_name

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


def writer_role(prefix: str) -> dict[str, Any]:
    """What the job's identity may do, and no more: read the cluster's version and features, install its
    templates and lifecycle policies at start-up, create its date-named indices and add documents to them
    (`create_doc`: it can neither overwrite nor delete an alert)."""
    return {
        "cluster": ["monitor", "manage_index_templates", "manage_ilm"],
        "indices": [
            {
                "names": [f"{prefix}-*"],
                "privileges": ["create_doc", "create_index", "view_index_metadata"],
                "allow_restricted_indices": False,
            }
        ],
        "metadata": {"managed_by": "kubesigma"},
    }


def writer_role_name(prefix: str) -> str:
    return f"{prefix}_writer"


@dataclass(frozen=True)
class Change:
    kind: str  # "index template" | "lifecycle policy" | "role"
    name: str
    outcome: str  # created | updated | unchanged

    def line(self, system: str, applied: bool) -> str:
        verb = self.outcome if applied or self.outcome == UNCHANGED else f"would be {self.outcome}"
        return f"{system}: {self.kind} {self.name} {verb}"


def flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Index settings as dotted keys and string values: how Elasticsearch answers whatever form was sent."""
    out: dict[str, str] = {}
    for key, value in settings.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{path}."))
        else:
            out[path] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def contains(have: Any, want: Any) -> bool:
    """Whether `have` holds everything `want` says; Elasticsearch may add defaults of its own around it."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and contains(have[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(have) == len(want) and all(map(contains, have, want))
    return bool(have == want)


def _same_template(have: dict[str, Any], want: dict[str, Any]) -> bool:
    have_template, want_template = have.get("template", {}), want["template"]
    return (
        have.get("index_patterns") == want["index_patterns"]
        and have.get("priority") == want["priority"]
        and have.get("_meta") == want["_meta"]
        and not have.get("composed_of")
        and flatten(have_template.get("settings", {})) == flatten(want_template["settings"])
        and have_template.get("mappings") == want_template["mappings"]
    )


def _converge(
    kind: str,
    name: str,
    current: Any,
    same: Callable[[Any], bool],
    put: Callable[[], Any],
    apply: bool,
) -> Change:
    if current is not None and same(current):
        return Change(kind, name, UNCHANGED)
    if apply:
        put()
    return Change(kind, name, CREATED if current is None else UPDATED)


@dataclass
class SetupReport:
    changes: list[Change]
    notes: list[str]  # what the cluster lacks, and what to do instead

    @property
    def drift(self) -> list[Change]:
        return [c for c in self.changes if c.outcome != UNCHANGED]


def setup(config: ElasticsearchConfig, *, apply: bool = True, client: Any | None = None) -> SetupReport:
    """Bring kubesigma's templates, lifecycle policies (where the cluster has ILM) and writer role (where
    it has security) to their definitions; with apply=False, only say what would change."""
    from elasticsearch import NotFoundError

    own = client is None
    es = make_client(config) if client is None else client
    lenient = es.options(ignore_status=404)
    try:
        modules = cluster_modules(es) or set()
        changes: list[Change] = []
        notes: list[str] = []
        if "x-pack-ilm" not in modules:
            notes.append(
                "elasticsearch: no index lifecycle management on this cluster: run "
                f"`kubesigma es retention --keep-days {config.retention_days}` daily"
            )
        if "x-pack-security" not in modules:
            notes.append("elasticsearch: no security on this cluster: no writer role to install")
        kinds = ["alerts", "events"] if config.index_events else ["alerts"]
        for kind in kinds:
            policy_name = None
            if "x-pack-ilm" in modules:
                policy_name = lifecycle_policy_name(config.index_prefix, kind)
                policy = lifecycle_policy(config.retention_days)
                found = lenient.ilm.get_lifecycle(name=policy_name)
                current = found.body.get(policy_name, {}).get("policy") if found.meta.status == 200 else None
                changes.append(
                    _converge(
                        "lifecycle policy",
                        policy_name,
                        current,
                        partial(contains, want=policy),
                        partial(es.ilm.put_lifecycle, name=policy_name, policy=policy),
                        apply,
                    )
                )
            name = f"{config.index_prefix}-{kind}"
            template = es_mapping.index_template(config.index_prefix, kind, lifecycle_policy=policy_name)
            try:
                found_templates = es.indices.get_index_template(name=name)["index_templates"]
                current = found_templates[0]["index_template"] if found_templates else None
            except NotFoundError:
                current = None
            changes.append(
                _converge(
                    "index template",
                    name,
                    current,
                    partial(_same_template, want=template),
                    partial(es.indices.put_index_template, name=name, **template),
                    apply,
                )
            )
        if "x-pack-security" in modules:
            role_name = writer_role_name(config.index_prefix)
            role = writer_role(config.index_prefix)
            found = lenient.security.get_role(name=role_name)
            current = found.body.get(role_name) if found.meta.status == 200 else None
            changes.append(
                _converge(
                    "role",
                    role_name,
                    current,
                    partial(contains, want=role),
                    lambda: es.security.put_role(name=role_name, **role),
                    apply,
                )
            )
        return SetupReport(changes, notes)
    finally:
        if own:
            es.close()
