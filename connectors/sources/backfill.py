"""Backfill: read past audit logs from where the clouds keep them. GKE: the Cloud Logging API
(`entries.list`, the filter evaluated by the API, paginated). EKS: CloudWatch Logs `FilterLogEvents`
on the cluster's log group, paginated and resumable from a checkpoint file. Credentials come only
from the standard chains: Application Default Credentials and the AWS default chain."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubesigma.connectors.formats.cloudwatch import cluster_of_log_group

GKE_PAGE_SIZE = 1000
EKS_PAGE_LIMIT = 10_000  # FilterLogEvents' maximum
AUDIT_STREAM_PREFIX = "kube-apiserver-audit"
# GKE cluster names and GCP project ids: checked before they go into a filter expression.
_GKE_CLUSTER = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?")
_GCP_PROJECT = re.compile(r"(?:[a-z][-a-z0-9.:]{4,61}[a-z0-9])")
_EKS_CLUSTER = re.compile(r"[0-9A-Za-z][A-Za-z0-9\-_]{0,99}")


class BackfillError(ValueError):
    """A backfill the user asked for cannot run as asked; the message says why."""


def _rfc3339(when: datetime) -> str:
    if when.tzinfo is None:
        raise BackfillError(f"time {when.isoformat()} has no timezone; give UTC times (…Z)")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check_window(since: datetime, until: datetime | None) -> None:
    if until is not None and until <= since:
        raise BackfillError(f"--until {_rfc3339(until)} is not after --since {_rfc3339(since)}")


# ---------------------------------------------------------------- GKE


def gke_filter(project: str, cluster: str, since: datetime, until: datetime | None) -> str:
    """The Logging query for one cluster's audit logs in [since, until): its Kubernetes API audit
    entries and the control-plane (container.googleapis.com) audit entries about it."""
    if not _GCP_PROJECT.fullmatch(project):
        raise BackfillError(f"--project {project!r} is not a GCP project id")
    if not _GKE_CLUSTER.fullmatch(cluster):
        raise BackfillError(f"--cluster {cluster!r} is not a GKE cluster name")
    _check_window(since, until)
    audit_logs = " OR ".join(
        f'"projects/{project}/logs/cloudaudit.googleapis.com%2F{log}"' for log in ("activity", "data_access")
    )
    terms = [
        f"logName=({audit_logs})",
        f'resource.type=("k8s_cluster" OR "gke_cluster") AND resource.labels.cluster_name="{cluster}"',
        f'timestamp>="{_rfc3339(since)}"',
    ]
    if until is not None:
        terms.append(f'timestamp<"{_rfc3339(until)}"')
    return "\n".join(terms)


def logging_client(project: str, client: Any = None) -> Any:
    if client is not None:
        return client
    from google.cloud import logging as cloud_logging

    # No credentials argument: Application Default Credentials, the standard chain.
    return cloud_logging.Client(project=project)


def list_gke_entries(
    project: str,
    cluster: str,
    since: datetime,
    until: datetime | None = None,
    *,
    client: Any = None,
    page_size: int = GKE_PAGE_SIZE,
) -> Iterator[dict[str, Any]]:
    """LogEntries (as JSON) of one GKE cluster's audit logs, oldest first, every page followed."""
    from google.cloud.logging import ASCENDING

    query = gke_filter(project, cluster, since, until)
    logging = logging_client(project, client)
    for entry in logging.list_entries(
        resource_names=[f"projects/{project}"], filter_=query, order_by=ASCENDING, page_size=page_size
    ):
        doc = entry.to_api_repr()
        # The library's entry objects keep receiveTimestamp as an attribute only.
        received = getattr(entry, "received_timestamp", None)
        if received is not None and "receiveTimestamp" not in doc:
            doc["receiveTimestamp"] = _rfc3339(received)
        yield doc


# ---------------------------------------------------------------- EKS


def eks_log_group(cluster: str) -> str:
    if not _EKS_CLUSTER.fullmatch(cluster):
        raise BackfillError(f"--cluster {cluster!r} is not an EKS cluster name")
    return f"/aws/eks/{cluster}/cluster"


@dataclass
class EksCheckpoint:
    """Where an EKS backfill stopped: the next page's token and, should the token have expired, the last
    timestamp written with the ids of the events written at it."""

    log_group: str
    since_ms: int
    until_ms: int | None
    next_token: str | None = None
    start_ms: int | None = None  # startTime of the request chain next_token belongs to
    last_timestamp: int | None = None
    ids_at_last: list[str] = field(default_factory=list)
    written: int = 0
    complete: bool = False

    @classmethod
    def load(cls, path: Path) -> EksCheckpoint | None:
        if not path.exists():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as err:
            raise BackfillError(f"checkpoint {path} is unreadable: {err}") from err

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)  # atomic: a crash leaves the previous checkpoint or this one

    def same_request(self, other: EksCheckpoint) -> bool:
        return (self.log_group, self.since_ms, self.until_ms) == (
            other.log_group,
            other.since_ms,
            other.until_ms,
        )


def logs_client(region: str, client: Any = None) -> Any:
    if client is not None:
        return client
    import boto3

    # No keys: the AWS default credential chain (env, profile, SSO, instance or pod role).
    return boto3.client("logs", region_name=region)


def log_group_owner(logs: Any, log_group: str) -> str | None:
    """The account that owns a log group, from its ARN (arn:aws:logs:<region>:<account>:log-group:...)."""
    answer = logs.describe_log_groups(logGroupNamePrefix=log_group)
    for group in answer.get("logGroups", []):
        if group.get("logGroupName") == log_group:
            parts = str(group.get("arn", "")).split(":")
            return parts[4] if len(parts) > 4 and parts[4] else None
    raise BackfillError(f"log group {log_group} does not exist (is control-plane audit logging enabled?)")


def _millis(when: datetime) -> int:
    if when.tzinfo is None:
        raise BackfillError(f"time {when.isoformat()} has no timezone; give UTC times (…Z)")
    return int(when.timestamp() * 1000)


def filter_eks_pages(
    cluster: str,
    region: str,
    since: datetime,
    until: datetime | None = None,
    *,
    checkpoint: str | Path | None = None,
    client: Any = None,
    page_limit: int = EKS_PAGE_LIMIT,
) -> Iterator[tuple[list[dict[str, Any]], EksCheckpoint]]:
    """Pages of subscription envelopes (one per log stream in a page) of an EKS cluster's audit streams
    in [since, until), oldest first. Each page comes with the checkpoint to save once it is written;
    a checkpoint from an earlier, interrupted run of the same request resumes after its last page."""
    _check_window(since, until)
    log_group = eks_log_group(cluster)
    state = EksCheckpoint(log_group, _millis(since), _millis(until) if until else None)
    path = Path(checkpoint) if checkpoint else None
    if path is not None:
        saved = EksCheckpoint.load(path)
        if saved is not None:
            if not saved.same_request(state):
                raise BackfillError(
                    f"checkpoint {path} belongs to another backfill ({saved.log_group}, since {saved.since_ms} ms, "
                    f"until {saved.until_ms} ms); give a new checkpoint file"
                )
            state = saved
    if state.complete:
        return
    logs = logs_client(region, client)
    owner = log_group_owner(logs, log_group)
    seen_at_last = set(state.ids_at_last)
    while True:
        args: dict[str, Any] = {
            "logGroupName": log_group,
            "logStreamNamePrefix": AUDIT_STREAM_PREFIX,
            "startTime": state.start_ms if state.start_ms is not None else state.since_ms,
            "limit": page_limit,
        }
        if state.until_ms is not None:
            args["endTime"] = state.until_ms - 1  # the API's endTime is inclusive; ours is not
        if state.next_token:
            args["nextToken"] = state.next_token
        try:
            answer = logs.filter_log_events(**args)
        except logs.exceptions.InvalidParameterException:
            if not state.next_token:
                raise
            # Next tokens expire (24 h): start again at the last timestamp written, minus what was written.
            state.next_token = None
            state.start_ms = state.last_timestamp
            continue
        events = [e for e in answer.get("events", []) if _wanted(e, state, seen_at_last)]
        state.next_token = answer.get("nextToken")
        if events:
            last = max(e["timestamp"] for e in events)
            if last != state.last_timestamp:
                seen_at_last = set()
            seen_at_last.update(e["eventId"] for e in events if e["timestamp"] == last)
            state.last_timestamp = last
            state.ids_at_last = sorted(seen_at_last)
            state.written += len(events)
        state.complete = not state.next_token
        if events or state.complete:
            yield _envelopes(events, owner, log_group, region), state
        if state.complete:
            return


def _wanted(event: dict[str, Any], state: EksCheckpoint, seen_at_last: set[str]) -> bool:
    # Checked here as well as by the API: emulators (and older API versions) ignore some parameters.
    stream = event.get("logStreamName", "")
    ts = event.get("timestamp")
    if not isinstance(ts, int) or not stream.startswith(AUDIT_STREAM_PREFIX):
        return False
    if ts < state.since_ms or (state.until_ms is not None and ts >= state.until_ms):
        return False
    if state.last_timestamp is not None and ts < state.last_timestamp:
        return False
    return not (ts == state.last_timestamp and event.get("eventId") in seen_at_last)


def _envelopes(
    events: list[dict[str, Any]], owner: str | None, log_group: str, region: str
) -> list[dict[str, Any]]:
    """Events of a page as CloudWatch subscription envelopes, one per log stream, so the decoder reads
    backfilled and streamed records the same way (`region` added: deliveries do not carry it)."""
    by_stream: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_stream.setdefault(event["logStreamName"], []).append(
            {"id": event["eventId"], "timestamp": event["timestamp"], "message": event["message"]}
        )
    assert cluster_of_log_group(log_group) is not None
    return [
        {
            "messageType": "DATA_MESSAGE",
            "owner": owner,
            "logGroup": log_group,
            "logStream": stream,
            "subscriptionFilters": [],
            "logEvents": items,
            "region": region,
        }
        for stream, items in by_stream.items()
    ]
