"""Elasticsearch housekeeping for kubesigma's indices: index templates (mappings generated from the
Alert model) and delete-phase lifecycle policies installed idempotently, and retention by index date
where the cluster has no ILM.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from kubesigma.connectors.sinks import es_mapping
from kubesigma.connectors.sinks.es_config import (
    SUPPORTED_MAJOR,
    ElasticsearchConfig,
    ElasticsearchConfigError,
    ElasticsearchUnavailable,
    error_reason,
    explain_connection_error,
    make_client,
)

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ templates, features, retention


def lifecycle_policy_name(prefix: str, kind: str) -> str:
    return f"{prefix}-{kind}-retention"


def lifecycle_policy(retention_days: int) -> dict[str, Any]:
    """The delete-phase ILM policy of one kind of date-named index (no rollover: see docs/elasticsearch.md)."""
    return {
        "_meta": {"managed_by": "kubesigma"},
        "phases": {
            "hot": {"min_age": "0ms", "actions": {}},
            "delete": {"min_age": f"{retention_days}d", "actions": {"delete": {}}},
        },
    }


def install_templates(config: ElasticsearchConfig, client: Any | None = None) -> list[str]:
    """Install (idempotently) the index templates and, where the cluster has ILM, a delete-phase
    lifecycle policy. Returns the log lines it wrote; raises ElasticsearchUnavailable with a clear
    message when the cluster cannot be reached, verified or used."""
    from elasticsearch import ApiError, AuthenticationException, AuthorizationException
    from elasticsearch import ConnectionError as EsConnectionError

    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        log.info("%s", line)

    own = client is None
    es = make_client(config) if client is None else client
    try:
        try:
            info = es.info()
        except EsConnectionError as err:
            raise ElasticsearchUnavailable(explain_connection_error(config, err)) from err
        except (AuthenticationException, AuthorizationException) as err:
            raise ElasticsearchUnavailable(
                f"Elasticsearch at {config.target} refused our credentials ({err.meta.status})"
            ) from err
        version = str(info.get("version", {}).get("number", "?"))
        major = int(version.split(".")[0]) if version[:1].isdigit() else 0
        if major != SUPPORTED_MAJOR:
            raise ElasticsearchUnavailable(
                f"Elasticsearch {version} at {config.target}: kubesigma's client speaks {SUPPORTED_MAJOR}.x only"
            )
        say(
            f"elasticsearch: {config.target} runs Elasticsearch {version} (cluster {info.get('cluster_name')})"
        )
        ilm = _has_ilm(es)
        kinds = ["alerts", "events"] if config.index_events else ["alerts"]
        for kind in kinds:
            policy = None
            if ilm:
                policy = lifecycle_policy_name(config.index_prefix, kind)
                try:
                    es.ilm.put_lifecycle(name=policy, policy=lifecycle_policy(config.retention_days))
                except AuthorizationException:
                    say(
                        f"elasticsearch: not allowed to manage ILM policies (manage_ilm); {kind} indices "
                        f"are not deleted automatically: run `kubesigma es retention --keep-days {config.retention_days}` daily"
                    )
                    policy = None
                else:
                    say(
                        f"elasticsearch: ILM policy {policy} deletes {kind} indices {config.retention_days} days after their date"
                    )
            name = f"{config.index_prefix}-{kind}"
            body = es_mapping.index_template(config.index_prefix, kind, lifecycle_policy=policy)
            try:
                es.indices.put_index_template(name=name, **body)
            except ApiError as err:
                raise ElasticsearchUnavailable(
                    f"Elasticsearch at {config.target} refused index template {name}: {error_reason(err)}"
                ) from err
            say(
                f"elasticsearch: index template {name} ({body['index_patterns'][0]}, mapping "
                f"{body['_meta']['mapping_version']}) installed"
            )
        if not ilm:
            say(
                "elasticsearch: this cluster has no index lifecycle management (ILM is an x-pack feature); "
                f"retention is not automatic: run `kubesigma es retention --keep-days {config.retention_days}` daily"
            )
        return lines
    finally:
        if own:
            es.close()


def cluster_modules(es: Any) -> set[str] | None:
    """The modules the local node runs (`x-pack-ilm`, `x-pack-security`, ...), or None when it will not say.

    Features are asked this way rather than through their endpoints: on a cluster without them those
    answer 405, which the client's node pool takes for a failing node."""
    from elasticsearch import ApiError

    try:
        info = es.nodes.info(node_id="_local", metric="plugins", filter_path="nodes.*.modules.name")
    except ApiError as err:
        log.debug("node module list answered %s", err.meta.status)
        return None
    nodes = (info.body if hasattr(info, "body") else info).get("nodes", {})
    return {m.get("name") for node in nodes.values() for m in node.get("modules", [])}


def _has_ilm(es: Any) -> bool:
    """Whether the cluster runs index lifecycle management (x-pack's `x-pack-ilm` module)."""
    from elasticsearch import ApiError

    modules = cluster_modules(es)
    if modules is not None:
        return "x-pack-ilm" in modules
    try:
        es.ilm.get_status()
        return True
    except ApiError:
        return False


def expired_indices(names: Iterable[str], prefix: str, keep_days: int, today: date) -> list[str]:
    """Date-named kubesigma indices whose day is more than `keep_days` before `today`."""
    out = []
    for name in names:
        for kind in es_mapping.KINDS:
            day = es_mapping.day_of_index(name, prefix, kind)
            if day is not None and (today - day).days > keep_days:
                out.append(name)
    return sorted(out)


def delete_expired_indices(
    config: ElasticsearchConfig, keep_days: int, *, today: date | None = None, client: Any | None = None
) -> list[str]:
    """Delete whole date-named indices older than `keep_days` (what ILM's delete phase does where the
    cluster has ILM). Returns the deleted index names."""
    if keep_days < 1:
        raise ElasticsearchConfigError("--keep-days must be at least 1")
    own = client is None
    es = make_client(config) if client is None else client
    try:
        today = today or datetime.now(UTC).date()
        names = []
        for kind in es_mapping.KINDS:
            found = es.indices.get(
                index=es_mapping.index_pattern(config.index_prefix, kind),
                expand_wildcards="open,closed",
                allow_no_indices=True,
                ignore_unavailable=True,
            )
            names.extend(found.keys())
        doomed = expired_indices(names, config.index_prefix, keep_days, today)
        for name in doomed:
            es.indices.delete(index=name)
            log.info("elasticsearch: deleted index %s (older than %d days)", name, keep_days)
        return doomed
    finally:
        if own:
            es.close()
