"""Generate docs/detections.md from the shipped rules: the rule table and coverage matrices against
the Microsoft Threat Matrix for Kubernetes and the OWASP Kubernetes Top 10, with the gaps named.

    python -m kubesigma.pipeline.commands.rules_doc            # rewrite docs/detections.md
    python -m kubesigma.pipeline.commands.rules_doc --check    # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from kubesigma.connectors.model import RuleInfo
from kubesigma.detections import attack, frameworks

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "detections" / "rules"
LISTS_DIR = REPO / "detections" / "lists"
DOC = REPO / "docs" / "detections.md"

LEVEL_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "informational": 4}
_PLACEHOLDER = re.compile(r"'%([A-Za-z0-9_]+)%'")


def load_rules(paths: Sequence[str | Path]) -> list[RuleInfo]:
    from kubesigma.detections.engine import RuleSet

    return [r for r in RuleSet.load(list(paths)).rules if r.kind == "detection"]


def _rel(path: str) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(path)


def _link(info: RuleInfo) -> str:
    return f"[{info.title}](../{_rel(info.path)})"


def _techniques(info: RuleInfo) -> str:
    return ", ".join(t for t in (attack.technique_of(tag) for tag in info.tags) if t)


def _ids(info: RuleInfo, of: object) -> list[str]:
    return [x for x in (of(tag) for tag in info.tags) if x]  # type: ignore[operator]


def _lists_used(rules: list[RuleInfo]) -> dict[str, list[RuleInfo]]:
    used: dict[str, list[RuleInfo]] = defaultdict(list)
    for info in rules:
        for name in sorted(set(_PLACEHOLDER.findall(Path(info.path).read_text(encoding="utf-8")))):
            used[name].append(info)
    return used


GUIDE = """## Working with the pack

- `kubesigma rules test [PATH ...]` replays each rule's positive and negative events
  (`detections/tests/<rule file stem>.yml`) in every format the rule applies to: native audit Event,
  GKE LogEntry and EKS CloudWatch record for Kubernetes rules; CloudTrail record, CloudTrail file and
  EventBridge event for EKS control-plane rules; LogEntry for GKE control-plane rules. A rule about
  something done also sees each of its positive events refused (by the authorizer, and by admission,
  which GKE records only in the response) and must stay quiet on those. It exits 1 on any miss or
  false hit, naming the rule and the case. A case may leave a format out only with a `why`.
- `kubesigma rules coverage --policy FILE` lists the rules an audit Policy leaves blind, and why.
  `docs/audit-policy.yaml` is the recommended Policy: it leaves none blind and keeps Secrets at Metadata.
- Tune with lists (below), Sigma filters or an engine configuration, rather than by editing rules:
  rule ids are stable and correlation rules refer to them.

## Writing a rule

An end-to-end walk from an idea to a reviewed change, run from the repository's top folder on the Falco
project's audit traces (`../shared/datasets/falco-k8s-audit/traces`, 51 audit Events of a minikube
cluster). Every command below is run by `tests/detections/test_writing_a_rule.py`, in this order.

1. Scaffold a rule and its test cases in the shipped layout (`rules/kubernetes/audit/<name>.yml` and
   `tests/<name>.yml` under `--dir`, default the shipped pack), with a fresh id, the `kubernetes/audit`
   logsource, field names kubesigma maps, and tags of the three frameworks. Its example alerts when a
   person (not a `system:` component) deletes a ConfigMap; edit both files from there.

       kubesigma rules new "ConfigMap Deleted By A Person" --dir my-pack

2. Check that it loads and compiles, and run its positive and negative cases in every format it
   applies to (native, GKE and EKS deliveries; refused and dry-run variants of each positive case):

       kubesigma rules check my-pack/rules
       kubesigma rules test my-pack/rules

3. Lint it: fields no supported record format fills, rules an audit Policy leaves unable to fire, rules
   without test cases, tags outside ATT&CK, the OWASP Kubernetes Top 10 and the Threat Matrix
   (exit 1 with one line per finding):

       kubesigma rules lint my-pack/rules --policy docs/audit-policy.yaml

4. Ask why it matches (exit 0) or not (exit 1) a real record: each selection and field, the value the
   event has there after the field mapping, the condition step by step, filters, the outcome gate:

       kubesigma rules explain --rule my-pack/rules/kubernetes/audit/configmap_deleted_by_a_person.yml --event ../shared/datasets/falco-k8s-audit/traces/delete_configmap.json

5. Backtest the change: `kubesigma run`'s batch job (correlation and suppression as configured) over
   archived logs, once with the pack plus the new rule and once with the pack alone. It prints per rule
   the alerts, alerts per day, distinct identities, sources and namespaces and the top group, then the
   difference: alerts only the new rules raise (`new`), alerts they no longer raise (`lost`), level
   changes. `--json` writes one JSON document to standard output instead (progress stays on standard
   error); `--html` a self-contained page with a daily histogram per rule; `--since`/`--until` (ISO 8601)
   keep a slice of the archive. GKE LogEntries and EKS CloudWatch deliveries work the same way.

       kubesigma rules backtest --input '../shared/datasets/falco-k8s-audit/traces/*.json' --rules my-pack/rules --rules detections/rules --rules detections/correlation/rules --baseline detections/rules --baseline detections/correlation/rules --html backtest.html

   On the traces this reports 24 alerts against the baseline's 23: `1 new, 0 lost, 0 level changes`,
   the new one the trace's deletion of `default/configmaps/my-config` by `minikube-user`.

To ship the rule, write it with `--dir detections` (the default), fill in its description, references and
false positives, and regenerate this page (`python -m kubesigma.pipeline.commands.rules_doc`).

## How the rules read a request

**The outcome decides.** A rule about something done (created, changed, bound, granted, read,
executed) fires only when the API server let it happen. kubesigma normalizes the outcome into one
field, `event.outcome`, the same for every format: `failure` when the record shows a refusal or a
failure (native and EKS: `responseStatus.code` of 400 or more, or the authorizer's `forbid`; GKE: a
non-zero `protoPayload.status.code`, a refused `authorizationInfo[].granted`, or a failure Status in
`protoPayload.response` where admission refused it; GCP: the same without the Kubernetes view;
CloudTrail: an `errorCode`), `success` otherwise, except for a record written before the API server
decided (stage `RequestReceived`). A record without any response status counts as a success, so rules
do not go blind on logs that leave it out. Every rule that does not name the outcome itself gets
`event.outcome: success` from the processing pipeline (`detections/normalized.py`); a rule written
for raw records that selects a refusal in the format's own fields (`responseStatus.code: 403`, the
`forbid` decision, `granted: false`, an `errorCode`) names it too and is left alone; rules about
attempts name it (`... Attempt Refused`, at level low, where an attempt is worth knowing: binding
cluster-admin, exec into a pod, a privileged pod in a platform namespace, a node reading a secret).
Alerts carry the same answer as ECS `event.outcome`. Admission refusals (PodSecurity, policy webhooks)
are 403s the authorizer allowed: the decision annotation alone is not the outcome.

**One alert per request.** kube-apiserver writes long-running requests (exec, attach, port-forward,
proxy, logs, watch) when the response starts and again when it completes, with the same audit ID; GKE
writes them as two entries of one operation. kubesigma alerts once per request and rule, whatever
stages the audit policy keeps and in whatever order they arrive: the alert id is a function of the rule
and the request (the audit ID, or the LogEntry's operation id), and `event.id` stays the record's own
(auditID, insertId). Correlation counts a request once. Records that name no request (hand-made test
records) stand for their own, named by a hash of their content.

**The command of an exec.** kube-apiserver keeps it only in the request URI (`?command=tar&command=cf`,
URL-encoded, arguments apart); GKE keeps it in the LogEntry label `command.gke.io/command` (arguments
joined by spaces). Rules match `exec.command` as the user typed it: the pipeline tries every spelling
clients send (a space between arguments or inside one, `+` or `%20`, escaped or plain characters) and
GKE's label. `startswith` means an argument starts with the value.

**What GKE records.** A GKE LogEntry (`protoPayload` of serviceName `k8s.io`) becomes the Kubernetes
audit Event it records, so Kubernetes rules match it: the verb and object from `methodName` and
`resourceName`, the user from `authenticationInfo.principalEmail` (else `authoritySelector`; when both
differ, the principal impersonates the selector, which becomes `impersonatedUser`), the decision from
the `authorization.k8s.io/decision` label or else `authorizationInfo[].granted`, the status as above,
the exec command label as an annotation. GKE records no user groups and no query string: rules on
groups, and the few that read the query string (an informer's `resourceVersion`, Helm's label
selector), see native and EKS records only, as their test cases say. A successful request carries no
HTTP status on GKE, so a server-side apply that creates an object reads as one that updates it.

## Tuning for your site

Rules never name a platform's identities or namespaces: they read named lists
(`detections/lists/`), and a site extends them without editing a rule. An engine configuration
(`--engine-config`) names extra list folders; a list there extends the shipped list of the same name:

    # engine.yaml
    lists: [lists/]
    # lists/platform_identities/our-operators.txt
    system:serviceaccount:platform:our-deployer
    # lists/platform_namespaces/ours.txt
    platform-system

- `platform_identities/`: who runs the cluster (control plane and kube-controller-manager's
  per-controller service accounts; GKE's components and Google service agents; EKS's `eks:` users and
  managed add-ons; AKS's; common add-ons: CoreDNS, kube-state-metrics, metrics-server, cert-manager,
  ingress-nginx, CNI agents, policy engines). Rules that leave out what the cluster does to itself
  read this list.
- `platform_namespaces/`: where the platform runs (kube-system, kube-public, kube-node-lease, GKE's
  gke-system, gke-managed-*, gmp-system, EKS's eks-* and amazon-*, AKS's). Workloads and service
  accounts created there by anyone else raise an alert; secrets there are platform credentials.
- `addon_namespaces`: where CNI, storage and node agents run with host access by design; host-access
  rules leave out the platform's own pods there.

## Known limits

- Lists in events are matched element by element, field by field: a ClusterRole with `get` on pods
  and `create` on secrets matches the secret-read rule. Review such hits; Sigma cannot tie two fields
  to one list element.
- `sourceIPs` includes X-Forwarded-For entries the client sent: the public-address rule needs every
  address to be public, so a forged private entry hides a request from it.
- Pods that workload controllers create repeat the finding of their template (a privileged Deployment
  raises one alert for the Deployment and one per pod); a DaemonSet's pods do not (node agents come as
  DaemonSets: the DaemonSet's own write is judged), nor do the platform's pods in platform or add-on
  namespaces.
- Exemptions by name trust the name: an identity an administrator may name freely (an EKS access entry,
  an aws-auth mapping) is exempt only where it is listed one by one, never by prefix."""


def render(rules: list[RuleInfo]) -> str:
    rules = sorted(rules, key=lambda r: (str(r.logsource), LEVEL_ORDER.get(r.level, 9), r.title))
    by_source: dict[str, int] = defaultdict(int)
    by_level: dict[str, int] = defaultdict(int)
    for r in rules:
        by_source[str(r.logsource)] += 1
        by_level[r.level] += 1
    out: list[str] = []
    w = out.append
    w("# kubesigma detections")
    w("")
    w(
        "<!-- Generated by `python -m kubesigma.pipeline.commands.rules_doc` from detections/rules: do not edit. -->"
    )
    w("")
    w(
        f"{len(rules)} single-event Sigma rules: "
        + ", ".join(f"{n} for `{s}`" for s, n in sorted(by_source.items()))
        + ". Levels: "
        + ", ".join(f"{by_level[lv]} {lv}" for lv in LEVEL_ORDER if by_level.get(lv))
        + "."
    )
    w("")
    w(
        "Levels are chosen for the analyst: plain activity (creating a DaemonSet, a cluster, an access entry) is"
    )
    w("low, never high; medium needs a look; high is rarely benign. Correlation rules (bursts, enumeration")
    w("sequences) live with the streaming pipeline and reference these rules by id.")
    w("")
    out.extend(GUIDE.splitlines())
    w("")
    w("## Tags")
    w("")
    w(
        "- `attack.tNNNN[.NNN]` and tactic tags: MITRE ATT&CK (Enterprise, Containers and IaaS). The ids and names"
    )
    w("  ship in `detections/attack.py`; tests check every tag against them offline.")
    w("- `mtmk.ms-ta9NNN`: a technique of the [Microsoft Threat Matrix for Kubernetes]")
    w(
        "  (https://microsoft.github.io/Threat-Matrix-for-Kubernetes/), by the id the matrix gives it (MS-TA9006 is"
    )
    w("  *Exec into container*). Data in `detections/frameworks.py`.")
    w(
        "- `owasp.k8s.kNN`: an item of the [OWASP Kubernetes Top 10](https://owasp.org/www-project-kubernetes-top-ten/)"
    )
    w("  (2022).")
    w("")
    w("`sigma check` reports the two custom namespaces as unknown (a medium-severity warning, not an error).")
    w("")
    w("## Rules")
    w("")
    w("| Rule | Logsource | Level | ATT&CK | Threat Matrix | OWASP | Rule id |")
    w("|---|---|---|---|---|---|---|")
    for r in rules:
        w(
            f"| {_link(r)} | `{r.logsource}` | {r.level} | {_techniques(r)} | "
            f"{', '.join(_ids(r, frameworks.mtmk_of))} | {', '.join(_ids(r, frameworks.owasp_of))} | `{r.id}` |"
        )
    w("")

    # Threat Matrix coverage, by tactic in the matrix's order.
    covered: dict[str, list[RuleInfo]] = defaultdict(list)
    for r in rules:
        for m in _ids(r, frameworks.mtmk_of):
            covered[m].append(r)
    w("## Coverage: Microsoft Threat Matrix for Kubernetes")
    w("")
    tactics: list[str] = []
    for _name, ts in frameworks.MTMK.values():
        for t in ts:
            if t not in tactics:
                tactics.append(t)
    n_cov = sum(1 for t in frameworks.MTMK if covered.get(t))
    w(
        f"{n_cov} of {len(frameworks.MTMK)} techniques have at least one rule. A technique appears under each of its tactics."
    )
    w("")
    for tactic in tactics:
        w(f"### {tactic}")
        w("")
        w("| Technique | Rules |")
        w("|---|---|")
        for tid, (name, ts) in frameworks.MTMK.items():
            if tactic not in ts:
                continue
            rs = covered.get(tid, [])
            if rs:
                cell = "; ".join(_link(r) for r in rs)
            elif tid in frameworks.MTMK_OUT_OF_SCOPE:
                cell = f"**gap (not visible in audit logs)**: {frameworks.MTMK_OUT_OF_SCOPE[tid]}"
            else:
                cell = "**gap**: no rule yet"
            w(f"| {tid} {name} | {cell} |")
        w("")

    w("## Coverage: OWASP Kubernetes Top 10 (2022)")
    w("")
    w("| Item | Rules |")
    w("|---|---|")
    owasp: dict[str, list[RuleInfo]] = defaultdict(list)
    for r in rules:
        for o in _ids(r, frameworks.owasp_of):
            owasp[o].append(r)
    for oid, name in frameworks.OWASP_K8S.items():
        rs = owasp.get(oid, [])
        if rs:
            cell = f"{len(rs)}: " + "; ".join(_link(r) for r in rs)
        elif oid in frameworks.OWASP_OUT_OF_SCOPE:
            cell = f"**gap (not visible in audit logs)**: {frameworks.OWASP_OUT_OF_SCOPE[oid]}"
        else:
            cell = "**gap**: no rule yet"
        w(f"| {oid} {name} | {cell} |")
    w("")

    w("## Coverage: MITRE ATT&CK techniques")
    w("")
    w("| Technique | Tactics | Rules |")
    w("|---|---|---|")
    tech: dict[str, list[RuleInfo]] = defaultdict(list)
    for r in rules:
        for t in _techniques(r).split(", "):
            if t:
                tech[t].append(r)
    for tid in sorted(tech):
        name, ts = attack.TECHNIQUES.get(tid, ("(unknown)", ()))
        w(f"| {tid} {name} | {', '.join(ts)} | {len(tech[tid])} |")
    w("")

    w("## Indicator lists")
    w("")
    w("Rules name these lists with Sigma `expand` placeholders (`field|expand: '%name%'`); each is")
    w("`detections/lists/<name>.txt` (or a folder `<name>/` of such files), one value per line (`*` and `?`")
    w("are wildcards, `#` starts a comment). Update a list to follow a campaign without touching the rules;")
    w("an engine configuration's list folders extend these by name (see Tuning for your site above).")
    w("")
    w("| List | Values | Used by |")
    w("|---|---|---|")
    from kubesigma.detections.lists import load_value_lists

    values = load_value_lists([LISTS_DIR])
    for name, users in sorted(_lists_used(rules).items()):
        w(f"| `{name}` | {len(values.get(name, []))} | {'; '.join(_link(r) for r in users)} |")
    w("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rules_doc", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--out", default=str(DOC), help="where to write (default docs/detections.md)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from the rules")
    parser.add_argument("paths", nargs="*", default=[str(RULES_DIR)], help="rule files or folders")
    args = parser.parse_args(argv)
    text = render(load_rules(args.paths))
    out = Path(args.out)
    if args.check:
        current = out.read_text(encoding="utf-8") if out.is_file() else ""
        if current != text:
            print(
                f"{out} is out of date: run python -m kubesigma.pipeline.commands.rules_doc", file=sys.stderr
            )
            return 1
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
