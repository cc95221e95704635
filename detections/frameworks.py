"""The two Kubernetes threat frameworks the rule pack is mapped to, as data for tag checks and docs.

Tags use two custom Sigma namespaces (documented in docs/detections.md):
  * `mtmk.ms-ta9006`: a technique of Microsoft's Threat Matrix for Kubernetes by its id (the matrix
    numbers techniques MS-TA9001..., despite the "TA" that ATT&CK uses for tactics);
  * `owasp.k8s.k01`: an item of the OWASP Kubernetes Top 10 (2022 edition).
"""

from __future__ import annotations

MTMK_PREFIX = "mtmk."
OWASP_PREFIX = "owasp.k8s."

# Microsoft Threat Matrix for Kubernetes: technique id -> (name, tactics as the matrix lists them).
MTMK: dict[str, tuple[str, tuple[str, ...]]] = {
    "MS-TA9001": ("Using cloud credentials", ("Initial Access",)),
    "MS-TA9002": ("Compromised image in registry", ("Initial Access",)),
    "MS-TA9003": ("Kubeconfig file", ("Initial Access",)),
    "MS-TA9004": ("Application vulnerability", ("Initial Access",)),
    "MS-TA9005": ("Exposed sensitive interfaces", ("Initial Access",)),
    "MS-TA9006": ("Exec into container", ("Execution",)),
    "MS-TA9007": ("bash/cmd inside container", ("Execution",)),
    "MS-TA9008": ("New container", ("Execution",)),
    "MS-TA9009": ("Application exploit (RCE)", ("Execution",)),
    "MS-TA9010": ("SSH server running inside container", ("Execution",)),
    "MS-TA9011": ("Sidecar injection", ("Execution",)),
    "MS-TA9012": ("Backdoor container", ("Persistence",)),
    "MS-TA9013": ("Writable hostPath mount", ("Persistence", "Privilege Escalation")),
    "MS-TA9014": ("Kubernetes CronJob", ("Persistence",)),
    "MS-TA9015": ("Malicious admission controller", ("Persistence", "Credential Access")),
    "MS-TA9016": ("Container service account", ("Credential Access", "Lateral Movement", "Persistence")),
    "MS-TA9017": ("Static pods", ("Persistence",)),
    "MS-TA9018": ("Privileged container", ("Privilege Escalation",)),
    "MS-TA9019": ("Cluster-admin binding", ("Privilege Escalation",)),
    "MS-TA9020": ("Access cloud resources", ("Privilege Escalation", "Lateral Movement")),
    "MS-TA9021": ("Clear container logs", ("Defense Evasion",)),
    "MS-TA9022": ("Delete Kubernetes events", ("Defense Evasion",)),
    "MS-TA9023": ("Pod / container name similarity", ("Defense Evasion",)),
    "MS-TA9024": ("Connect from proxy server", ("Defense Evasion",)),
    "MS-TA9025": ("List Kubernetes secrets", ("Credential Access",)),
    "MS-TA9026": ("Mount service principal", ("Credential Access",)),
    "MS-TA9027": (
        "Application credentials in configuration files",
        ("Credential Access", "Lateral Movement"),
    ),
    "MS-TA9028": ("Access managed identity credentials", ("Credential Access",)),
    "MS-TA9029": ("Access the Kubernetes API server", ("Discovery",)),
    "MS-TA9030": ("Access Kubelet API", ("Discovery",)),
    "MS-TA9031": ("Network mapping", ("Discovery",)),
    "MS-TA9032": ("Access Kubernetes dashboard", ("Discovery",)),
    "MS-TA9033": ("Instance Metadata API", ("Discovery",)),
    "MS-TA9034": ("Cluster internal networking", ("Lateral Movement",)),
    "MS-TA9035": ("CoreDNS poisoning", ("Lateral Movement",)),
    "MS-TA9036": ("ARP poisoning and IP spoofing", ("Lateral Movement",)),
    "MS-TA9037": ("Images from a private registry", ("Collection",)),
    "MS-TA9038": ("Data destruction", ("Impact",)),
    "MS-TA9039": ("Resource hijacking", ("Impact",)),
    "MS-TA9040": ("Denial of service", ("Impact",)),
    "MS-TA9041": ("Collecting data from pod", ("Collection",)),
    "MS-TA9042": ("Excessive operator permissions", ("Privilege Escalation", "Impact")),
}

# Techniques an API-server audit log cannot show (they happen inside containers, on nodes or in
# registries), with the telemetry that can: named as gaps in docs/detections.md, not failures.
MTMK_OUT_OF_SCOPE: dict[str, str] = {
    "MS-TA9004": "exploitation happens in the application; only its follow-up API calls are audited",
    "MS-TA9009": "code execution inside the application process; needs runtime (syscall) telemetry",
    "MS-TA9010": "a process inside a container; needs runtime telemetry",
    "MS-TA9017": "static pod manifests are files on the node; the API server only sees mirror pods",
    "MS-TA9021": "log files deleted inside containers or on nodes; needs runtime telemetry",
    "MS-TA9024": "needs IP reputation (Tor exit lists) joined with source addresses",
    "MS-TA9026": "files read on the node; needs runtime telemetry",
    "MS-TA9028": "token requests to the cloud metadata service from pods; needs network or runtime telemetry",
    "MS-TA9030": "requests to the kubelet's own port bypass the API server and its audit log",
    "MS-TA9032": "dashboard traffic is proxied; only the dashboard's service account calls are audited",
    "MS-TA9034": "pod-to-pod traffic; needs network flow logs",
    "MS-TA9036": "layer-2 traffic; needs network telemetry",
    "MS-TA9037": "image pulls by the kubelet are not API requests",
    "MS-TA9040": "needs resource metrics, not audit records",
}

# OWASP Kubernetes Top 10 (2022): item -> name.
OWASP_K8S: dict[str, str] = {
    "K01": "Insecure Workload Configurations",
    "K02": "Supply Chain Vulnerabilities",
    "K03": "Overly Permissive RBAC Configurations",
    "K04": "Lack of Centralized Policy Enforcement",
    "K05": "Inadequate Logging and Monitoring",
    "K06": "Broken Authentication Mechanisms",
    "K07": "Missing Network Segmentation Controls",
    "K08": "Secrets Management Failures",
    "K09": "Misconfigured Cluster Components",
    "K10": "Outdated and Vulnerable Kubernetes Components",
}

OWASP_OUT_OF_SCOPE: dict[str, str] = {
    "K10": "component versions are inventory and vulnerability data, not audit events",
}


def mtmk_of(tag: str) -> str | None:
    """`mtmk.ms-ta9006` -> `MS-TA9006`."""
    return tag[len(MTMK_PREFIX) :].upper() if tag.startswith(MTMK_PREFIX) else None


def owasp_of(tag: str) -> str | None:
    """`owasp.k8s.k01` -> `K01`."""
    return tag[len(OWASP_PREFIX) :].upper() if tag.startswith(OWASP_PREFIX) else None


def check_tags(tags: list[str] | tuple[str, ...]) -> list[str]:
    """Problems with a rule's framework tags: unknown ids, or none of either framework."""
    problems: list[str] = []
    mtmk = [m for m in map(mtmk_of, tags) if m]
    owasp = [o for o in map(owasp_of, tags) if o]
    problems += [f"unknown Threat Matrix for Kubernetes technique {m}" for m in mtmk if m not in MTMK]
    problems += [f"unknown OWASP Kubernetes Top 10 item {o}" for o in owasp if o not in OWASP_K8S]
    if not mtmk:
        problems.append("no Threat Matrix for Kubernetes tag (mtmk.ms-ta9xxx)")
    if not owasp:
        problems.append("no OWASP Kubernetes Top 10 tag (owasp.k8s.kNN)")
    return problems
