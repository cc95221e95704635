"""MITRE ATT&CK data the rule pack uses, shipped with the code so tags are checked offline.

`sigma check`'s ATT&CK validators download MITRE data at run time; CI runs them excluded and checks
the pack against this table instead (tests/detections). Names and tactics follow ATT&CK Enterprise
v16 (Containers and IaaS platforms). Add a technique here when a rule starts using it.
"""

from __future__ import annotations

import re

# Tactic tag (as Sigma writes it) -> ATT&CK id and name.
TACTICS: dict[str, tuple[str, str]] = {
    "initial-access": ("TA0001", "Initial Access"),
    "execution": ("TA0002", "Execution"),
    "persistence": ("TA0003", "Persistence"),
    "privilege-escalation": ("TA0004", "Privilege Escalation"),
    "defense-evasion": ("TA0005", "Defense Evasion"),
    "credential-access": ("TA0006", "Credential Access"),
    "discovery": ("TA0007", "Discovery"),
    "lateral-movement": ("TA0008", "Lateral Movement"),
    "collection": ("TA0009", "Collection"),
    "command-and-control": ("TA0011", "Command and Control"),
    "exfiltration": ("TA0010", "Exfiltration"),
    "impact": ("TA0040", "Impact"),
    "reconnaissance": ("TA0043", "Reconnaissance"),
}

# Technique id -> (name, tactics it belongs to).
TECHNIQUES: dict[str, tuple[str, tuple[str, ...]]] = {
    "T1005": ("Data from Local System", ("collection",)),
    "T1046": ("Network Service Discovery", ("discovery",)),
    "T1053.007": (
        "Scheduled Task/Job: Container Orchestration Job",
        ("execution", "persistence", "privilege-escalation"),
    ),
    "T1059": ("Command and Scripting Interpreter", ("execution",)),
    "T1059.004": ("Command and Scripting Interpreter: Unix Shell", ("execution",)),
    "T1070": ("Indicator Removal", ("defense-evasion",)),
    "T1078": ("Valid Accounts", ("defense-evasion", "persistence", "privilege-escalation", "initial-access")),
    "T1078.001": (
        "Valid Accounts: Default Accounts",
        ("defense-evasion", "persistence", "privilege-escalation", "initial-access"),
    ),
    "T1078.004": (
        "Valid Accounts: Cloud Accounts",
        ("defense-evasion", "persistence", "privilege-escalation", "initial-access"),
    ),
    "T1069": ("Permission Groups Discovery", ("discovery",)),
    "T1098": ("Account Manipulation", ("persistence", "privilege-escalation")),
    "T1098.003": ("Account Manipulation: Additional Cloud Roles", ("persistence", "privilege-escalation")),
    "T1098.006": (
        "Account Manipulation: Additional Container Cluster Roles",
        ("persistence", "privilege-escalation"),
    ),
    "T1105": ("Ingress Tool Transfer", ("command-and-control",)),
    "T1110": ("Brute Force", ("credential-access",)),
    "T1133": ("External Remote Services", ("persistence", "initial-access")),
    "T1140": ("Deobfuscate/Decode Files or Information", ("defense-evasion",)),
    "T1190": ("Exploit Public-Facing Application", ("initial-access",)),
    "T1204.003": ("User Execution: Malicious Image", ("execution",)),
    "T1219": ("Remote Access Software", ("command-and-control",)),
    "T1485": ("Data Destruction", ("impact",)),
    "T1496": ("Resource Hijacking", ("impact",)),
    "T1496.001": ("Resource Hijacking: Compute Hijacking", ("impact",)),
    "T1525": ("Implant Internal Image", ("persistence",)),
    "T1528": ("Steal Application Access Token", ("credential-access",)),
    "T1546": ("Event Triggered Execution", ("privilege-escalation", "persistence")),
    "T1550.001": (
        "Use Alternate Authentication Material: Application Access Token",
        ("defense-evasion", "lateral-movement"),
    ),
    "T1552": ("Unsecured Credentials", ("credential-access",)),
    "T1552.001": ("Unsecured Credentials: Credentials In Files", ("credential-access",)),
    "T1552.005": ("Unsecured Credentials: Cloud Instance Metadata API", ("credential-access",)),
    "T1552.007": ("Unsecured Credentials: Container API", ("credential-access",)),
    "T1557": ("Adversary-in-the-Middle", ("credential-access", "collection")),
    "T1562": ("Impair Defenses", ("defense-evasion",)),
    "T1562.001": ("Impair Defenses: Disable or Modify Tools", ("defense-evasion",)),
    "T1562.007": ("Impair Defenses: Disable or Modify Cloud Firewall", ("defense-evasion",)),
    "T1562.008": ("Impair Defenses: Disable or Modify Cloud Logs", ("defense-evasion",)),
    "T1572": ("Protocol Tunneling", ("command-and-control",)),
    "T1578": ("Modify Cloud Compute Infrastructure", ("defense-evasion",)),
    "T1595": ("Active Scanning", ("reconnaissance",)),
    "T1609": ("Container Administration Command", ("execution",)),
    "T1610": ("Deploy Container", ("defense-evasion", "execution")),
    "T1611": ("Escape to Host", ("privilege-escalation",)),
    "T1613": ("Container and Resource Discovery", ("discovery",)),
    "T1649": ("Steal or Forge Authentication Certificates", ("credential-access",)),
}

_TECHNIQUE_TAG = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$")


def technique_of(tag: str) -> str | None:
    """`attack.t1552.007` -> `T1552.007`; None for tags that are not technique tags."""
    m = _TECHNIQUE_TAG.match(tag)
    return m.group(1).upper() if m else None


def tactic_of(tag: str) -> str | None:
    """`attack.credential-access` -> `credential-access`; None for other tags."""
    if tag.startswith("attack.") and technique_of(tag) is None:
        name = tag.removeprefix("attack.")
        return name if not re.match(r"^[gs]\d{4}$", name) else None
    return None


def check_tags(tags: list[str] | tuple[str, ...]) -> list[str]:
    """Problems with a rule's ATT&CK tags: unknown ids or tactics, techniques without one of their tactics."""
    problems: list[str] = []
    techniques = [t for t in (technique_of(tag) for tag in tags) if t]
    tactics = {t for t in (tactic_of(tag) for tag in tags) if t}
    for tactic in sorted(tactics):
        if tactic not in TACTICS:
            problems.append(f"unknown ATT&CK tactic attack.{tactic}")
    for technique in techniques:
        known = TECHNIQUES.get(technique)
        if known is None:
            problems.append(f"unknown ATT&CK technique {technique} (add it to detections/attack.py)")
        elif not tactics & set(known[1]):
            problems.append(
                f"{technique} ({known[0]}) belongs to {', '.join(known[1])}; the rule names none of them"
            )
    if not techniques:
        problems.append("no ATT&CK technique tag")
    if not tactics:
        problems.append("no ATT&CK tactic tag")
    return problems
