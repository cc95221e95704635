"""kubesigma against RSigma (a Rust Sigma engine), whole processes on one core each, same events and rules.

    python bench/peer.py --json [--events 500000] [--cpu N]

Events: the demo generator's audit log (one JSON Event a line). Rules: SigmaHQ's Kubernetes audit
rules that need no field mapping (bench/engine.py's peer set, minus the rules kubesigma's evaluation
mapping rewrites: RSigma reads raw field names). Three processes, one after another, each pinned to
the same core with taskset, each a whole process (start-up, rule loading, reading the file):

- engine: kubesigma's engine through its Python API (read, decode, `RuleSet.match`), in a child;
- run: `kubesigma run` (batch, default runner) writing alert documents;
- rsigma: `rsigma engine eval -r RULES -e @FILE --output-format ndjson`.

Figures are CPU seconds (user + system) of each child: a busy shared machine disturbs them least.
`engine_vs_rsigma` and `run_vs_rsigma` are RSigma's CPU seconds over kubesigma's (above 1: kubesigma
faster). Hits must agree: per rule, the engine's matches and RSigma's detections (per event), and the
run's alerts with the engine's matches counted once per request (the run alerts once per request).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from engine import PEER_RULES, mapped_rule_ids, rule_files, succeeded_lines, success_only_rules  # noqa: E402

RSIGMA = os.environ.get("RSIGMA") or shutil.which("rsigma") or str(Path.home() / ".cargo" / "bin" / "rsigma")


def write_events(path: Path, n: int, seed: int) -> None:
    """The demo generator's events, written as they are generated (never all in memory)."""
    from kubesigma.connectors.simulated_cluster import generate

    with path.open("wb") as out:
        for event in generate(seed, n, attack_ratio=0.03):
            out.write(orjson.dumps(event) + b"\n")


def unmapped_rules(folder: Path) -> list[Path]:
    """The peer rules as written (as links in `folder`): those no field mapping rewrites."""
    paths = rule_files(PEER_RULES)
    mapped = mapped_rule_ids(paths)
    import yaml

    kept = [p for p in paths if str(yaml.safe_load(p.read_text()).get("id")) not in mapped]
    for p in kept:
        (folder / p.name).symlink_to(p)
    return kept


def timed(cmd: Sequence[str], cpu: int, stdout: Any = subprocess.DEVNULL) -> tuple[float, float]:
    """CPU seconds (user + system) and wall seconds of a child pinned to one core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(["taskset", "-c", str(cpu), *cmd], check=True, stdout=stdout, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def engine_child(rules: str, events: str, out: str) -> int:
    """In the pinned child: read, decode and match every line; per-rule hits to `out`."""
    from kubesigma.connectors.formats import DecodeContext, decode_record
    from kubesigma.connectors.model import AuditEvent, RawRecord
    from kubesigma.connectors.sources.files import read_file
    from kubesigma.detections.engine import RuleSet

    ruleset = RuleSet.load([rules])
    match, context = ruleset.match, DecodeContext()
    hits: Counter[str] = Counter()
    requests: set[tuple[str, str]] = set()
    for record in read_file(events):
        if type(record) is RawRecord:
            for event in decode_record(record, context):
                if type(event) is AuditEvent:
                    for rule in match(event):
                        hits[rule.id] += 1
                        requests.add((rule.id, event.request_id))
    per_request = Counter(rule_id for rule_id, _ in requests)
    Path(out).write_bytes(orjson.dumps({"events": hits, "requests": per_request}))
    return 0


def alert_hits(path: Path) -> Counter[str]:
    with path.open("rb") as handle:
        return Counter(orjson.loads(line)["rule"]["id"] for line in handle if line.strip())


def rsigma_hits(path: Path) -> Counter[str]:
    """Rule ids of RSigma's NDJSON detections (`rule_id`, or `rule.id`, whichever its version writes)."""
    hits: Counter[str] = Counter()
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip().startswith(b"{"):
                continue
            doc = orjson.loads(line)
            rule = doc.get("rule_id") or doc.get("id") or (doc.get("rule") or {}).get("id")
            if rule:
                hits[str(rule)] += 1
    return hits


def write_succeeded(events: Path, out: Path) -> None:
    with events.open("rb") as source, out.open("wb") as sink:
        sink.writelines(succeeded_lines(source))


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)), help="core to pin to")
    parser.add_argument("--engine-child", nargs=3, metavar=("RULES", "EVENTS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.engine_child:
        return engine_child(*args.engine_child)
    result: dict[str, Any] = {"events": args.events, "cpu": args.cpu, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="kubesigma-peer-") as tmp:
        work = Path(tmp)
        rules = work / "rules"
        rules.mkdir()
        kept = unmapped_rules(rules)
        events = work / "events.jsonl"
        write_events(events, args.events, args.seed)
        result["rules"] = len(kept)
        result["events_bytes"] = events.stat().st_size

        engine_out = work / "engine.json"
        cpu, wall = timed(
            [sys.executable, __file__, "--engine-child", str(rules), str(events), str(engine_out)], args.cpu
        )
        counted = orjson.loads(engine_out.read_bytes())
        engine, engine_requests = Counter(counted["events"]), Counter(counted["requests"])
        result["engine"] = {
            "cpu_s": round(cpu, 2),
            "wall_s": round(wall, 2),
            "hits": sum(engine.values()),
            "requests_hit": sum(engine_requests.values()),
        }

        kubesigma = str(Path(sys.executable).with_name("kubesigma"))
        alerts = work / "alerts.jsonl"
        run = [kubesigma, "run", "--input", str(events), "--rules", str(rules), "--alerts-out", str(alerts)]
        cpu, wall = timed([*run, "--dead-letter", str(work / "dead.jsonl")], args.cpu)
        run_hits = alert_hits(alerts)
        result["run"] = {"cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "hits": sum(run_hits.values())}

        hit_sets = {"engine": engine, "run": run_hits}
        if Path(RSIGMA).is_file() and os.access(RSIGMA, os.X_OK):
            detections = work / "rsigma.ndjson"
            with detections.open("wb") as out:
                cmd = [
                    RSIGMA,
                    "engine",
                    "eval",
                    "-r",
                    str(rules),
                    "-e",
                    f"@{events}",
                    "--output-format",
                    "ndjson",
                ]
                cpu, wall = timed(cmd, args.cpu, stdout=out)
            peer = rsigma_hits(detections)
            # kubesigma fires a rule about something done only when the request succeeded (the outcome
            # gate, docs/detections.md); RSigma has no such gate. For those rules, the peer's hits to
            # compare are its hits over the successful requests (untimed second run).
            gated = success_only_rules(rules)
            if gated:
                succeeded = work / "succeeded.jsonl"
                write_succeeded(events, succeeded)
                on_success = work / "rsigma-succeeded.ndjson"
                with on_success.open("wb") as out:
                    subprocess.run(
                        [*cmd[:6], f"@{succeeded}", *cmd[7:]],
                        stdout=out,
                        stderr=subprocess.DEVNULL,
                        check=True,
                    )
                peer_on_success = rsigma_hits(on_success)
                result["rsigma"] = {"gated_rules": len(gated), "hits_ungated": sum(peer.values())}
                peer = Counter(
                    {rule: peer_on_success[rule] if rule in gated else n for rule, n in peer.items()}
                )
                peer += Counter({rule: peer_on_success[rule] for rule in gated if rule not in peer})
            hit_sets["rsigma"] = +peer
            result["rsigma"] = {
                "cpu_s": round(cpu, 2),
                "wall_s": round(wall, 2),
                "hits": sum(peer.values()),
                **(result.get("rsigma") or {}),
            }
            result["engine_vs_rsigma"] = round(result["rsigma"]["cpu_s"] / result["engine"]["cpu_s"], 3)
            result["run_vs_rsigma"] = round(result["rsigma"]["cpu_s"] / result["run"]["cpu_s"], 3)
        else:
            result["rsigma"] = f"not found at {RSIGMA}: `cargo install rsigma --version 0.23.0 --locked`"
        # The run alerts once per request (a request's stages share it); the engines count events.
        result["hits_agree"] = run_hits == engine_requests and all(
            hits == engine for name, hits in hit_sets.items() if name != "run"
        )
        if not result["hits_agree"]:
            result["hits_per_rule"] = {name: dict(hits) for name, hits in hit_sets.items()}
    result["load_after"] = os.getloadavg()
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0 if result["hits_agree"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
