"""The simulated audit log as files: JSON lines, one audit Event a line, as kube-apiserver's log backend
writes them; and a platform's busy day as the platform delivers it (GKE: Cloud Logging LogEntries, EKS:
CloudWatch Logs subscription envelopes in a gzip file as Firehose writes them, self-managed: Events),
with the side table of which delivered records belong to which injected attack."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from kubesigma.connectors import delivery
from kubesigma.connectors.simulated_cluster.day import busy_day
from kubesigma.connectors.simulated_cluster.platforms import PLATFORMS

# EKS runs at least two API server instances; each writes its own audit log stream.
EKS_STREAMS = (
    "kube-apiserver-audit-5d9f0c1b7e2a4f3c8b6d1e0a9f8c7b6a",
    "kube-apiserver-audit-0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b",
)
EKS_EVENTS_PER_ENVELOPE = 25


def write_jsonl(events: Iterable[dict[str, Any]], out: str | Path) -> int:
    """Write events as JSON lines; returns how many were written."""
    count = 0
    with open(out, "wb") as fh:
        for event in events:
            fh.write(orjson.dumps(event))
            fh.write(b"\n")
            count += 1
    return count


@dataclass
class DayLog:
    """A written day: where, how many records the detection job will read, and the side table of the
    injected attacks (scenario -> the ids alerts name its records by: auditID, and on GKE insertId)."""

    platform: str
    path: Path
    cluster: str
    records: int = 0
    attacks: dict[str, set[str]] = field(default_factory=dict)
    first: str = ""
    last: str = ""


def write_day(platform: str, seed: int, n: int, out_dir: str | Path, *, attacks: bool = True) -> DayLog:
    """Generate `platform`'s busy day (about `n` records) and write it as the platform delivers it."""
    spec = PLATFORMS[platform]
    suffix = {"gke": "gke-logentries.jsonl", "eks": "eks-cloudwatch.jsonl.gz", "self-managed": "audit.jsonl"}[
        platform
    ]
    log = DayLog(platform, Path(out_dir) / f"{platform}-{suffix}", spec.cluster)
    records = busy_day(platform, seed, n, attacks=attacks)
    if platform == "eks":
        # No name or time in the gzip header: the same day is the same bytes.
        with open(log.path, "wb") as raw, gzip.GzipFile("", "wb", 3, raw, mtime=0) as out:
            _write_eks(records, out, log, spec.project)
        return log
    with open(log.path, "wb") as out:
        for event, scenario in records:
            record = event
            if platform == "gke":
                record = delivery.as_gke_logentry(
                    event, spec.project, spec.cluster, spec.region, as_written=True
                )
            out.write(orjson.dumps(record) + b"\n")
            _count(log, event, scenario, record.get("insertId"))
    return log


def _count(log: DayLog, event: dict[str, Any], scenario: str | None, insert_id: str | None = None) -> None:
    log.records += 1
    log.first = log.first or event["stageTimestamp"]
    log.last = event["stageTimestamp"]
    if scenario is not None:
        ids = log.attacks.setdefault(scenario, set())
        ids.add(event["auditID"])
        if insert_id:
            ids.add(insert_id)


def _write_eks(
    records: Iterable[tuple[dict[str, Any], str | None]], out: gzip.GzipFile, log: DayLog, account: str
) -> None:
    """Envelopes of up to 25 events per API server stream, one envelope a line (Firehose's form)."""
    batches: dict[str, list[dict[str, Any]]] = {stream: [] for stream in EKS_STREAMS}
    for event, scenario in records:
        # One request is served (and logged) by one API server: both its stages land in the same stream.
        stream = EKS_STREAMS[int(event["auditID"][:2], 16) % len(EKS_STREAMS)]
        batch = batches[stream]
        batch.append(event)
        _count(log, event, scenario)
        if len(batch) == EKS_EVENTS_PER_ENVELOPE:
            out.write(
                orjson.dumps(delivery.as_cloudwatch_envelope(batch, log.cluster, account, stream)) + b"\n"
            )
            batch.clear()
    for stream, batch in batches.items():
        if batch:
            out.write(
                orjson.dumps(delivery.as_cloudwatch_envelope(batch, log.cluster, account, stream)) + b"\n"
            )
