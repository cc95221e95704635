"""Rule-evaluation benchmark: kubesigma against orjson-only and two peers, on the same events and rules.

Run `python bench/engine.py --json` (or `--quick` for a smoke run). Events come from the seeded demo
generator, serialized to JSON bytes up front so every engine pays for parsing. One core, pinned.
The human-readable table comes first; the last line is one JSON object with the numbers.
See bench/README.md for what each measurement includes.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from kubesigma.connectors.formats import decode_record
from kubesigma.connectors.model import AuditEvent, RawRecord, Source
from kubesigma.connectors.simulated_cluster import generate
from kubesigma.detections.engine import RuleSet
from kubesigma.detections.mapping import evaluation_pipeline

REPO = Path(__file__).resolve().parents[1]
# The SQLite peer is the tests' oracle (tests/support/sqlite_oracle.py): bench/ is run from a checkout,
# as the tests are. Appended, so nothing under tests/ can shadow an installed package.
sys.path.append(str(REPO / "tests"))
from support.sqlite_oracle import SQLiteOracle, detection_fields  # noqa: E402

SHIPPED_RULES = REPO / "detections" / "rules"
# The rule set the peers can run: SigmaHQ's Kubernetes audit rules, read in place (never copied).
PEER_RULES = (
    REPO.parent / "shared" / "datasets" / "sigmahq-rules" / "rules" / "application" / "kubernetes" / "audit"
)


# ---- measurement -----------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    eps: float | None = None
    seconds: float | None = None
    hits: int | None = None
    per_rule: Counter[str] = field(default_factory=Counter)
    note: str = ""


def pin_one_core() -> str:
    """Run on one core so numbers compare across machines with different core counts."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    return f"pinned to CPU {cpus[-1]}"


# The whole run stays within 10 minutes on a slow or busy machine: rounds stop before exceeding this.
TOTAL_BUDGET_SECONDS = 420.0


def make_events(seed: int, n: int) -> list[bytes]:
    return [orjson.dumps(e) for e in generate(seed, n, attack_ratio=0.03)]


def rule_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.yml") if p.is_file())


def detection_rule_docs(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Single-event Kubernetes audit detection rules, as YAML documents.

    Left out: other logsources, correlation rules, and the inputs correlation rules name (broad
    informational matchers such as "a workload was created" that exist only to be counted).
    """
    docs = [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]
    inputs = set()
    for doc in docs:
        corr = doc.get("correlation")
        if isinstance(corr, dict):
            rules = corr.get("rules") or []
            inputs.update(rules if isinstance(rules, list) else [rules])
    out = []
    for doc in docs:
        src = doc.get("logsource") or {}
        if (
            "detection" in doc
            and "correlation" not in doc
            and doc.get("name") not in inputs
            and doc.get("id") not in inputs
            and src.get("product") == "kubernetes"
            and src.get("service") == "audit"
        ):
            out.append(doc)
    return out


# ---- orjson only -----------------------------------------------------------------------------


def success_only_rules(rules: Path) -> set[str]:
    """Ids of the rules kubesigma gates on the request's outcome (a rule about something done, not
    naming `event.outcome`, fires only when the request succeeded: docs/detections.md)."""
    from kubesigma.detections.engine import RuleSet

    return {info.id for info in RuleSet.load([str(rules)]).rules if info.success_only}


def succeeded_lines(lines: Iterable[bytes]) -> Iterator[bytes]:
    """The lines whose request the API server let happen (or whose outcome is unknown), as the gate
    decides for audit Events."""
    from kubesigma.connectors.model import KUBERNETES_AUDIT
    from kubesigma.connectors.model.logsources import profile_of

    succeeded = profile_of(KUBERNETES_AUDIT).succeeded
    return (line for line in lines if line.strip() and succeeded(orjson.loads(line)) is not False)


def run_orjson(lines: Sequence[bytes]) -> int:
    loads = orjson.loads
    for line in lines:
        loads(line)
    return len(lines)


# ---- pySigma SQLite backend, the way Zircolite uses it ---------------------------------------


def _sigma_rules(paths: Iterable[Path]) -> list[Any]:
    from sigma.collection import SigmaCollection

    return list(SigmaCollection.load_ruleset([str(p) for p in paths]).rules)


class ZircoliteSQLite:
    """pySigma's SQLite backend the way Zircolite uses it: every event parsed, flattened into one
    in-memory table, one `SELECT COUNT(*)` per rule. The table, its flattening and its boolean policy
    are the tests' SQLite oracle (tests/support/sqlite_oracle.py), so the bench and the differential
    tests compare against the same peer."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.oracle = SQLiteOracle(paths)  # rules converted ahead of time (Zircolite ships them so)

    def run(self, lines: Sequence[bytes]) -> Counter[str]:
        loads = orjson.loads
        return self.oracle.hits([loads(line) for line in lines])


# ---- sigma-rule-matcher (PyPI) ---------------------------------------------------------------


class RuleMatcherPeer:
    """sigma-rule-matcher: one RuleMatcher per pySigma rule, each evaluated on every parsed event."""

    def __init__(self, paths: Sequence[Path]) -> None:
        from sigma_rule_matcher import RuleMatcher

        self.matchers = [(str(rule.id), RuleMatcher(rule)) for rule in _sigma_rules(paths)]

    def run(self, lines: Sequence[bytes]) -> Counter[str]:
        loads = orjson.loads
        hits: Counter[str] = Counter()
        matchers = self.matchers
        for line in lines:
            event = loads(line)
            for rule_id, matcher in matchers:
                try:
                    if matcher.match(event):
                        hits[rule_id] += 1
                except NotImplementedError:
                    # It refuses fields whose value is an object or a list: no match, as for SQLite.
                    pass
        return hits


# ---- kubesigma -------------------------------------------------------------------------------


def loadable(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """The rule files kubesigma loads, and a line per file it refuses (a rule pack still in progress)."""
    refused = {}
    for report in RuleSet.check([str(p) for p in paths]):
        if not report.ok:
            refused[str(Path(report.path).resolve())] = str(report)
    ok = [p for p in paths if str(p.resolve()) not in refused]
    return ok, list(refused.values())


def mapped_rule_ids(paths: Sequence[Path]) -> set[str]:
    """Rules whose fields kubesigma's evaluation mapping rewrites (synthetic SigmaHQ fields, ALLOW quirk).

    On these the peers, which read raw field names, are expected to find fewer matches.
    """
    raw = {str(r.id): detection_fields(r) for r in _sigma_rules(paths)}
    out = set()
    for rule in _sigma_rules(paths):  # a fresh copy: pipelines mutate rules in place
        evaluation_pipeline().apply(rule)
        if detection_fields(rule) != raw[str(rule.id)]:
            out.add(str(rule.id))
    return out


class Kubesigma:
    """Decode (kubesigma's format registry and normalizer) and match with kubesigma's RuleSet."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.rules = RuleSet.load([str(p) for p in paths])

    def run(self, lines: Sequence[bytes]) -> Counter[str]:
        match = self.rules.match
        hits: Counter[str] = Counter()
        uri = "bench.jsonl"
        source, record = Source.build, RawRecord.build  # as the file reader makes them
        for i, line in enumerate(lines, 1):
            for outcome in decode_record(record(line, source(uri, i, None, None, None), None)):
                if type(outcome) is AuditEvent:
                    for m in match(outcome):
                        hits[_rule_id(m)] += 1
        return hits


def run_kubesigma_decode(lines: Sequence[bytes]) -> int:
    """kubesigma's decode and normalize alone: the part of the pipeline's cost no rule adds."""
    n = 0
    source, record = Source.build, RawRecord.build  # as the file reader makes them
    for i, line in enumerate(lines, 1):
        for _outcome in decode_record(record(line, source("bench.jsonl", i, None, None, None), None)):
            n += 1
    return n


def _rule_id(m: Any) -> str:
    for attr in ("rule", "info"):
        inner = getattr(m, attr, None)
        if inner is not None and hasattr(inner, "id"):
            return str(inner.id)
    return str(getattr(m, "id", m))


# ---- generated rule variants for the scaling run ---------------------------------------------

# Realistic values so variants look like rules a detection engineer writes, not random noise a
# dispatch index rejects for free.
VOCAB: dict[str, tuple[Any, ...]] = {
    "verb": ("create", "delete", "patch", "update", "get", "list", "watch", "deletecollection"),
    # Resources detection rules are written about (no rule pack targets lease renewals).
    "objectRef.resource": (
        "pods",
        "secrets",
        "configmaps",
        "deployments",
        "daemonsets",
        "serviceaccounts",
        "roles",
        "rolebindings",
        "clusterroles",
        "clusterrolebindings",
        "nodes",
        "cronjobs",
        "jobs",
        "services",
        "statefulsets",
        "ingresses",
        "networkpolicies",
        "certificatesigningrequests",
        "mutatingwebhookconfigurations",
        "persistentvolumes",
    ),
    "objectRef.subresource": ("exec", "attach", "portforward", "log", "status", "token", "proxy", "binding"),
    "objectRef.namespace": ("kube-system", "default", "shop", "payments", "monitoring", "ci", "kube-public"),
    "objectRef.apiGroup": (
        "apps",
        "batch",
        "rbac.authorization.k8s.io",
        "coordination.k8s.io",
        "networking.k8s.io",
    ),
    "apiGroup": ("apps", "batch", "rbac.authorization.k8s.io", "authorization.k8s.io", "policy"),
}


# Values under these modifiers are not free text (a network, a field name, a list name, a flag).
_KEEP_MODIFIERS = {"cidr", "exists", "fieldref", "expand"}


def _mutate(value: Any, field_name: str, rng: random.Random) -> Any:
    base, *modifiers = field_name.split("|")
    if _KEEP_MODIFIERS.intersection(modifiers) or value is None or isinstance(value, bool):
        return value
    if base in VOCAB and not modifiers:
        return rng.choice(VOCAB[base])
    if isinstance(value, str):
        if value.strip("*") == "":
            return value  # `field: '*'` (exists-like): nothing to vary
        token = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(4))
        # Keep the value's shape (`*x*` contains, `x*` prefix, `*x` suffix): alter only its literal core.
        core = value.strip("*")
        head = value[: len(value) - len(value.lstrip("*"))]
        tail = value[len(value.rstrip("*")) :]
        core = f"{core}{token}" if rng.random() < 0.5 else f"{token}{core}"
        return f"{head}{core}{tail}"
    if isinstance(value, int) and not isinstance(value, bool):
        return value + rng.randrange(1, 50)
    return value


def _mutate_detection(detection: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, block in detection.items():
        if name in ("condition", "timeframe") or name.startswith("filter"):
            # Exclusions stay as they are: a variant is as selective as its original.
            out[name] = block
        elif isinstance(block, dict):
            out[name] = {f: _mutate_values(v, f, rng) for f, v in block.items()}
        elif isinstance(block, list):
            out[name] = [
                {f: _mutate_values(v, f, rng) for f, v in item.items()}
                if isinstance(item, dict)
                else _mutate(item, "", rng)
                for item in block
            ]
        else:
            out[name] = block
    return out


def _mutate_values(values: Any, field_name: str, rng: random.Random) -> Any:
    if isinstance(values, list):
        return [_mutate(v, field_name, rng) for v in values]
    return _mutate(values, field_name, rng)


def write_rule_variants(docs: Sequence[dict[str, Any]], count: int, folder: Path, seed: int) -> list[Path]:
    """`count` distinct rules: the given rules as they are, then variants of them with mutated values."""
    rng = random.Random(seed)
    if not docs:
        raise ValueError("no single-event rules to make variants of")
    out: list[Path] = []
    seen: set[str] = set()
    i = 0
    while len(out) < count:
        if i > 100 * count:
            raise RuntimeError("could not make enough distinct rule variants")
        base = docs[i % len(docs)]
        doc = copy.deepcopy(base)
        if i >= len(docs):
            doc["id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            doc["title"] = f"{base.get('title', 'rule')} (variant {i})"
            doc["detection"] = _mutate_detection(base["detection"], rng)
            for key in ("related", "name"):  # a variant is a new rule, not a known one's alias
                doc.pop(key, None)
        i += 1
        key = orjson.dumps(doc["detection"], option=orjson.OPT_SORT_KEYS).decode()
        if i > len(docs) and key in seen:
            continue  # a mutation that landed on an existing rule: draw again
        seen.add(key)
        target = folder / f"rule_{len(out):05d}.yml"
        target.write_text(yaml.safe_dump(doc, sort_keys=False))
        out.append(target)
    return out


# ---- the run ---------------------------------------------------------------------------------


def print_row(res: Result) -> None:
    if res.eps is None:
        print(f"{res.name:<62} {'n/a':>12} {'':>9} {'':>8}  {res.note}")
    else:
        hits = "" if res.hits is None else str(res.hits)
        print(f"{res.name:<62} {res.eps:>12,.0f} {res.seconds:>9.3f} {hits:>8}")


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--json",
        action="store_true",
        help="(kept for the documented command; the JSON line is always printed last)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small smoke run: 3,000 events, one repetition, scaling 50/200"
    )
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--repeat", type=int, default=5, help="best of N for each measurement")
    parser.add_argument("--scaling", default="50,200,1000", help="rule counts for the scaling run")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.repeat, args.scaling = 3000, 1, "50,200"
    try:
        scaling_counts = [int(x) for x in args.scaling.split(",") if x]
    except ValueError:
        parser.error(f"--scaling takes comma-separated rule counts, got {args.scaling!r}")
    if args.events < 200:
        parser.error("--events must be at least 200")
    if not PEER_RULES.is_dir():
        parser.error(f"peer rule set not found: {PEER_RULES}")

    pinned = pin_one_core()
    t0 = time.perf_counter()
    lines = make_events(args.seed, args.events)
    mean_size = sum(map(len, lines)) / len(lines)
    print(
        f"{len(lines)} events ({mean_size:.0f} bytes on average) generated in {time.perf_counter() - t0:.1f}s; {pinned}"
    )

    peer_paths = rule_files(PEER_RULES)
    shipped_paths = rule_files(SHIPPED_RULES)
    refused: list[str] = []
    if shipped_paths:
        shipped_paths, refused = loadable(shipped_paths)
        if refused:
            print(
                f"WARNING: {len(refused)} shipped rule file(s) refused and left out, first: {refused[0]}",
                file=sys.stderr,
            )

    # Every engine is built (rules loaded and compiled) before any clock starts.
    n_peer = len(peer_paths)
    sqlite_peer, matcher_peer = ZircoliteSQLite(peer_paths), RuleMatcherPeer(peer_paths)
    runners: dict[str, tuple[str, Callable[[Sequence[bytes]], Any]]] = {
        "orjson": ("orjson parse only", run_orjson),
        "sqlite": (f"pySigma SQLite, Zircolite-style ({n_peer} SigmaHQ rules)", sqlite_peer.run),
        "matcher": (f"sigma-rule-matcher ({n_peer} SigmaHQ rules)", matcher_peer.run),
    }
    results: dict[str, Result] = {}
    n_shipped = 0
    workdir = tempfile.TemporaryDirectory(prefix="kubesigma-bench-")
    runners["kubesigma_decode"] = ("kubesigma decode+normalize only (no rules)", run_kubesigma_decode)
    if shipped_paths:
        shipped = Kubesigma(shipped_paths)
        n_shipped = len(shipped.rules)
        runners["kubesigma"] = (
            f"kubesigma decode+normalize+match ({n_shipped} shipped rules)",
            shipped.run,
        )
    runners["kubesigma_peer"] = (f"kubesigma ({n_peer} SigmaHQ rules)", Kubesigma(peer_paths).run)
    usable, _ = loadable(rule_files(SHIPPED_RULES) + peer_paths)
    bases = detection_rule_docs(usable)
    for count in scaling_counts:
        folder = Path(workdir.name) / str(count)
        folder.mkdir()
        # A few more than asked, in case a mutation makes a rule the engine refuses.
        paths, _ = loadable(write_rule_variants(bases, count + count // 10 + 5, folder, args.seed))
        runners[f"scaling_{count}"] = (f"kubesigma scaling, {count} rules", Kubesigma(paths[:count]).run)
    if "kubesigma" not in runners:
        results["kubesigma"] = Result("kubesigma, shipped rules", note="no shipped rules")

    # The engines run on a settled heap: what is loaded by now (every engine's rules, the events) is
    # frozen out of later garbage collections once, as a kubesigma worker does once its rules are
    # compiled (pipeline/transforms.settle_heap); what the engines build while they run (kubesigma's
    # specialization tables) is not, as in a worker. Otherwise every full collection walks all the
    # engines' objects, a cost of one process holding them all that no worker has.
    gc.collect()
    gc.freeze()
    # Rounds interleave the engines, so a busy moment on a shared machine does not land on one of them.
    best: dict[str, float] = {}
    outputs: dict[str, Any] = {}
    started = time.perf_counter()
    for round_no in range(1, args.repeat + 1):
        for key, (name, run) in list(runners.items()):
            gc.collect()
            t = time.perf_counter()
            try:
                out = run(lines)
            except Exception as err:  # one broken engine must not hide the others' numbers
                print(f"WARNING: {name} failed: {err!r}", file=sys.stderr)
                results[key] = Result(name, note=f"failed: {err!r}")
                del runners[key]
                continue
            took = time.perf_counter() - t
            if took < best.get(key, float("inf")):
                best[key] = took
            outputs[key] = out
        elapsed = time.perf_counter() - started
        print(f"round {round_no}/{args.repeat} done ({elapsed:.0f}s)", flush=True)
        if elapsed * (round_no + 1) / round_no > TOTAL_BUDGET_SECONDS:
            print("stopping early: another round would exceed the time budget", flush=True)
            break
    workdir.cleanup()
    for key, (name, _run) in runners.items():
        res = Result(name, eps=len(lines) / best[key], seconds=best[key])
        if isinstance(outputs[key], Counter):
            res.per_rule = outputs[key]
            res.hits = sum(outputs[key].values())
        results[key] = res
    scaling = {
        str(c): round(results[f"scaling_{c}"].eps or 0) for c in scaling_counts if f"scaling_{c}" in results
    }
    # kubesigma fires a rule about something done only when the request succeeded (the outcome gate);
    # the peers have no such gate. For those rules the peers' counts to compare are their counts over
    # the successful requests (untimed runs).
    gated = success_only_rules(PEER_RULES)
    if gated:
        on_success = list(succeeded_lines(lines))
        for key, peer in (("sqlite", sqlite_peer), ("matcher", matcher_peer)):
            if results.get(key) is None or results[key].hits is None:
                continue
            counts = peer.run(on_success)
            for rule in gated:
                results[key].per_rule[rule] = counts.get(rule, 0)
            results[key].hits = sum(results[key].per_rule.values())

    print(
        f"\n{'measurement (best of ' + str(round_no) + ')':<62} {'events/s':>12} {'seconds':>9} {'hits':>8}"
    )
    for res in results.values():
        print_row(res)

    # The three engines on the peer set must find the same (rule, event) matches, except on the
    # rules kubesigma's field mapping rewrites: there the peers read names no raw event carries.
    engines = [k for k in ("kubesigma_peer", "sqlite", "matcher") if results[k].hits is not None]
    mapped = mapped_rule_ids(peer_paths)
    titles = {str(r.id): r.title for r in _sigma_rules(peer_paths)}
    warnings: list[str] = []
    expected: list[str] = []
    for rule_id in sorted(titles):
        counts = {k: results[k].per_rule.get(rule_id, 0) for k in engines}
        if len(set(counts.values())) > 1:
            line = f"{titles[rule_id]} ({rule_id}): {counts}"
            (expected if rule_id in mapped else warnings).append(line)
    comparable = set(titles) - mapped
    peer_hits = {k: sum(results[k].per_rule.get(r, 0) for r in comparable) for k in engines}

    print(f"\nhits on the {len(comparable)} peer rules the mapping leaves as they are: {peer_hits}")
    if expected:
        print(f"rules kubesigma's field mapping rewrites ({len(mapped)}; peers read raw names there):")
        for line in expected:
            print(f"  {line}")
    if warnings:
        print("WARNING: engines disagree on the peer rule set:", file=sys.stderr)
        for w in warnings:
            print(f"  {w}", file=sys.stderr)
    print()

    def eps(key: str) -> float | None:
        value = results[key].eps
        return round(value) if value else None

    first, last = (str(scaling_counts[0]), str(scaling_counts[-1])) if scaling_counts else ("", "")
    summary = {
        "events": len(lines),
        "mean_event_bytes": round(mean_size),
        "rules": n_shipped,
        "peer_rules": len(peer_paths),
        "orjson_eps": eps("orjson"),
        "decode_eps": eps("kubesigma_decode") if "kubesigma_decode" in results else None,
        "kubesigma_eps": eps("kubesigma"),
        "kubesigma_peer_eps": eps("kubesigma_peer"),
        "sqlite_eps": eps("sqlite"),
        "matcher_eps": eps("matcher"),
        "scaling": scaling,
        "kubesigma_vs_orjson": _ratio(eps("kubesigma"), eps("orjson")),
        "peer_vs_sqlite": _ratio(eps("kubesigma_peer"), eps("sqlite")),
        "peer_vs_matcher": _ratio(eps("kubesigma_peer"), eps("matcher")),
        # What the largest rule count costs relative to the smallest (eps ratio; the target is <= 3).
        "scaling_1000_vs_50": _ratio(scaling.get("50"), scaling.get("1000")),
        f"scaling_{last}_vs_{first}": _ratio(scaling.get(first), scaling.get(last)),
        "peer_hits": peer_hits,  # on the peer rules the mapping leaves as they are
        "peer_hits_all_rules": {k: results[k].hits for k in engines},
        "mapped_peer_rules": len(mapped),
        "gated_peer_rules": len(gated),  # peers counted over successful requests for these
        "hits_agree": not warnings,
        "shipped_rules_refused": len(refused),
        "kubesigma_hits": results["kubesigma"].hits,
        "repeat": round_no,
        "seed": args.seed,
    }
    print(orjson.dumps(summary).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
