"""`kubesigma rules export --format elastic`: our Sigma rules as Elastic Security detection rules (NDJSON
for Security → Rules → Import), through pySigma's Elasticsearch backend, entirely offline.

The backend names ATT&CK tactics and techniques from MITRE's STIX bundle, which pySigma downloads at run
time; instead we hand it a bundle built from the ATT&CK table shipped with our rules
(kubesigma.detections.attack), so exporting never touches the network. Field names go through the
kubesigma processing pipeline, so queries address `kubernetes.audit.*`, `gcp.audit.*` and
`aws.cloudtrail.*` as kubesigma's events index (and Elastic's Kubernetes integration) lay them out."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FORMATS = {"elastic": "siem_rule_ndjson"}
# Where the converted rules look: kubesigma's events index and Elastic's own Kubernetes/GCP/AWS data.
ELASTIC_INDICES = [
    "kubesigma-events-*",
    "logs-kubernetes.audit_logs-*",
    "logs-gcp.audit-*",
    "logs-aws.cloudtrail-*",
]


def _backend_class() -> type:
    import re

    from sigma.backends.elasticsearch import LuceneBackend

    class KubesigmaLuceneBackend(LuceneBackend):
        """Escapes `/` in field names too: annotation keys such as `authorization.k8s.io/decision`
        are field names here, and an unescaped `/` starts a regular expression in Lucene syntax."""

        field_escape_pattern = re.compile(r"[\s*/]")
        # a rule that a correlation also uses (generate: true) is still exported as a rule of its own
        finalize_correlation_subqueries = True

    return KubesigmaLuceneBackend


def attack_stix_bundle() -> dict[str, Any]:
    """A minimal ATT&CK STIX bundle (tactics and techniques only) from the shipped ATT&CK table."""
    from kubesigma.detections.attack import TACTICS, TECHNIQUES

    def ref(external_id: str) -> list[dict[str, str]]:
        return [{"source_name": "mitre-attack", "external_id": external_id}]

    objects: list[dict[str, Any]] = [
        {"type": "x-mitre-collection", "id": "x-mitre-collection--kubesigma", "x_mitre_version": "kubesigma"}
    ]
    for shortname, (tactic_id, name) in TACTICS.items():
        objects.append(
            {
                "type": "x-mitre-tactic",
                "id": f"x-mitre-tactic--{tactic_id}",
                "name": name,
                "x_mitre_shortname": shortname,
                "external_references": ref(tactic_id),
            }
        )
    for technique_id, (name, tactics) in TECHNIQUES.items():
        objects.append(
            {
                "type": "attack-pattern",
                "id": f"attack-pattern--{technique_id}",
                "name": name,
                "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": t} for t in tactics],
                "external_references": ref(technique_id),
            }
        )
    return {"type": "bundle", "id": "bundle--kubesigma-attack", "objects": objects}


def _offline_attack_data(workdir: Path) -> None:
    """Point pySigma's ATT&CK loader at our bundle, with a private cache (never the user's)."""
    import sigma.data.mitre_attack as mitre

    bundle = workdir / "attack.json"
    bundle.write_text(json.dumps(attack_stix_bundle()), encoding="utf-8")
    mitre.set_cache_dir(str(workdir / "cache"))
    mitre.set_url(str(bundle))
    mitre.clear_cache()


def convert_elastic(paths: Sequence[str]) -> tuple[str, list[str]]:
    """(NDJSON of detection rules, messages about rules that could not be converted)."""
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaRuleLocation
    from sigma.rule import SigmaRule

    from kubesigma.detections.mapping import kubesigma_pipeline

    files = _rule_files(paths)
    backend_class = _backend_class()
    problems: list[str] = []
    lines: list[str] = []
    collections = []
    origin: dict[int, Path] = {}
    for path in files:
        try:
            collection = SigmaCollection.from_yaml(
                path.read_text(encoding="utf-8"),
                collect_errors=True,
                source=SigmaRuleLocation(path),
                resolve_references=False,  # resolved once all files are loaded
            )
        except Exception as err:
            problems.append(f"{path}: {err}")
            continue
        for rule in collection.rules:
            origin[id(rule)] = path
        collections.append(collection)
    # one collection, so correlation rules find the rules they name in other files
    merged = SigmaCollection.merge(collections)
    with tempfile.TemporaryDirectory(prefix="kubesigma-attack-") as tmp:
        _offline_attack_data(Path(tmp))
        for rule in merged.rules:
            path = origin.get(id(rule), Path("?"))
            if getattr(rule, "errors", None):
                problems.append(f"{path}: {'; '.join(str(e) for e in rule.errors)}")
                continue
            if not isinstance(rule, SigmaRule):
                problems.append(
                    f"{path}: {type(rule).__name__} ({rule.title}) has no Elastic query-rule form; skipped"
                )
                continue
            if not getattr(rule, "_output", True):
                continue  # a building block of a correlation rule (generate: false)
            # a fresh pipeline per rule: pySigma's pipelines mutate the rules they are applied to
            backend = backend_class(processing_pipeline=kubesigma_pipeline(), index_names=ELASTIC_INDICES)
            try:
                out = backend.convert(SigmaCollection([rule]), FORMATS["elastic"])
            except Exception as err:
                problems.append(f"{path}: {rule.title}: {err}")
                continue
            # siem_rule_ndjson yields one dict per rule (older backends: NDJSON text)
            items = out if isinstance(out, list) else [out]
            for item in items:
                if isinstance(item, dict):
                    lines.append(json.dumps(item, sort_keys=True))
                else:
                    lines.extend(line for line in str(item).splitlines() if line.strip())
    return "".join(line + "\n" for line in lines), problems


def _rule_files(paths: Sequence[str]) -> list[Path]:
    from kubesigma.pipeline.options import DEFAULT_RULES

    roots = [Path(p) for p in paths] or [DEFAULT_RULES]
    files: list[Path] = []
    for root in roots:
        if root.is_dir():
            files.extend(sorted(p for p in root.rglob("*.yml") if p.is_file()))
            files.extend(sorted(p for p in root.rglob("*.yaml") if p.is_file()))
        elif root.is_file():
            files.append(root)
        else:
            raise FileNotFoundError(f"no rule file or folder {root}")
    return files


def run_export(paths: Sequence[str], fmt: str, out: str) -> int:
    """Write the converted rules to `out` ("-": stdout); report unconvertible rules on stderr.
    Exit status 1 when a rule failed to convert (not for correlation rules, which have no query form)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    text, problems = convert_elastic(paths)
    if out == "-":
        sys.stdout.write(text)
    else:
        Path(out).write_text(text, encoding="utf-8")
    for problem in problems:
        print(f"kubesigma rules export: {problem}", file=sys.stderr)
    count = text.count("\n")
    print(f"kubesigma rules export: {count} Elastic detection rule(s) written", file=sys.stderr)
    hard = [p for p in problems if "has no Elastic query-rule form" not in p]
    return 1 if hard else 0
