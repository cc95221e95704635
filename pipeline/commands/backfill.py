"""`kubesigma backfill gke|eks`: fetch a cluster's past audit logs into a JSON lines file (gzip when it
ends in .gz) that `kubesigma run --input` reads. Credentials come from the standard chains only."""

from __future__ import annotations

import gzip
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from kubesigma.connectors.formats._time import parse_rfc3339
from kubesigma.connectors.sources.backfill import (
    BackfillError,
    EksCheckpoint,
    filter_eks_pages,
    list_gke_entries,
)

_RELATIVE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(
    text: str | None, name: str, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> datetime | None:
    """An RFC 3339 time (`2026-11-28T00:00:00Z`) or a duration before now (`90m`, `24h`, `7d`)."""
    if text is None:
        return None
    relative = _RELATIVE.fullmatch(text.strip())
    if relative:
        return now() - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    if not re.search(r"(Z|z|[+-]\d\d:\d\d)$", text.strip()):
        raise BackfillError(
            f"--{name} {text!r} has no timezone: give RFC 3339 with Z or an offset, or e.g. 24h"
        )
    epoch = parse_rfc3339(text)
    if epoch is None:
        raise BackfillError(f"--{name} {text!r} is neither an RFC 3339 time nor a duration such as 24h")
    return datetime.fromtimestamp(epoch, UTC)


def is_relative(text: str | None) -> bool:
    return text is not None and _RELATIVE.fullmatch(text.strip()) is not None


def _open_out(out: str, append: bool) -> IO[bytes]:
    target = Path(out)
    if not target.parent.is_dir():
        raise BackfillError(f"directory of --out {out!r} does not exist")
    mode = "ab" if append else "wb"
    # Appending to gzip adds a member: readers (ours, zcat) take multi-member files.
    if out.endswith(".gz"):
        return gzip.open(target, mode)  # type: ignore[return-value]
    return open(target, mode)


def _fail(command: str, err: Exception) -> int:
    print(f"kubesigma backfill {command}: {err}", file=sys.stderr)
    return 2 if isinstance(err, BackfillError) else 1


def run_backfill_gke(
    project: str, cluster: str, since: str, until: str | None, out: str, *, client: Any = None
) -> int:
    """Write the cluster's audit LogEntries in [since, until) to `out`; exit status 0, 2 for bad
    options, 1 when the Logging API fails (what was fetched by then stays written)."""
    try:
        start = parse_time(since, "since")
        end = parse_time(until, "until")
        assert start is not None
        written = 0
        with _open_out(out, append=False) as sink:
            for entry in list_gke_entries(project, cluster, start, end, client=client):
                sink.write(orjson.dumps(entry) + b"\n")
                written += 1
    except Exception as err:  # the API's errors are many; each ends the command with its message
        return _fail("gke", err)
    print(f"wrote {written} GKE audit log entries of {project}/{cluster} to {out}")
    return 0


def run_backfill_eks(
    cluster: str,
    region: str,
    since: str,
    until: str | None,
    out: str,
    checkpoint: str | None = None,
    *,
    client: Any = None,
) -> int:
    """Write the cluster's audit events in [since, until) to `out` as CloudWatch subscription envelopes,
    page by page; with a checkpoint file, an interrupted run resumes after its last written page (and
    appends to `out`). Exit status 0, 2 for bad options, 1 when CloudWatch Logs fails."""
    written = 0
    try:
        start = parse_time(since, "since")
        end = parse_time(until, "until")
        assert start is not None
        saved = EksCheckpoint.load(Path(checkpoint)) if checkpoint else None
        resuming = saved is not None
        if saved is not None and is_relative(since) and (until is None or is_relative(until)):
            # `--since 24h` means another window on every run: resuming keeps the window recorded.
            start = datetime.fromtimestamp(saved.since_ms / 1000, UTC)
            end = datetime.fromtimestamp(saved.until_ms / 1000, UTC) if saved.until_ms is not None else None
            print(
                f"resuming the backfill recorded in {checkpoint} (from {start.isoformat()})", file=sys.stderr
            )
        pages = filter_eks_pages(cluster, region, start, end, checkpoint=checkpoint, client=client)
        _open_out(out, append=resuming).close()
        for envelopes, state in pages:
            # Each page is closed (a whole gzip member) before the checkpoint moves past it, so a crash
            # leaves a readable file and at worst one page written twice.
            with _open_out(out, append=True) as sink:
                for envelope in envelopes:
                    sink.write(orjson.dumps(envelope) + b"\n")
                    written += len(envelope["logEvents"])
            if checkpoint:
                state.save(Path(checkpoint))
    except Exception as err:
        return _fail("eks", err)
    print(f"wrote {written} EKS audit events of {cluster} ({region}) to {out}")
    return 0
