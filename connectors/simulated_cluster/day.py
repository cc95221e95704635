"""A busy cluster's day, per platform: background scenes drawn by weight, with office-hours and night
profiles, over 24 hours of event time; each attack scenario injected once at a drawn moment; records
emitted in the order the audit backend writes them (stage time), each with the attack it belongs to.

The day is a sample: `n` records stand for a day that would log millions. Weights keep each family's
share of the log realistic, and each episode keeps its real inner timing (a retry loop every 30 s, a
secret sweep in a minute), so per-identity bursts look as they would; only the background between
episodes is thinned."""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from kubesigma.connectors.simulated_cluster.addons import AddOns
from kubesigma.connectors.simulated_cluster.api_server import ApiServer
from kubesigma.connectors.simulated_cluster.audit import timestamp
from kubesigma.connectors.simulated_cluster.control_plane import ControlPlane
from kubesigma.connectors.simulated_cluster.gitops import GitOps
from kubesigma.connectors.simulated_cluster.intrusions import SCENARIOS, Intrusions
from kubesigma.connectors.simulated_cluster.kubelets import Kubelets
from kubesigma.connectors.simulated_cluster.misconfigured import Misconfigured
from kubesigma.connectors.simulated_cluster.people import People
from kubesigma.connectors.simulated_cluster.platform_eks import EksTraffic
from kubesigma.connectors.simulated_cluster.platform_gke import GkeTraffic
from kubesigma.connectors.simulated_cluster.platform_self_managed import SelfManagedTraffic
from kubesigma.connectors.simulated_cluster.platforms import PLATFORMS, BusyCluster
from kubesigma.connectors.simulated_cluster.probes import Probes
from kubesigma.connectors.simulated_cluster.traffic import Scene
from kubesigma.connectors.simulated_cluster.workloads import Workloads

# A Monday, from midnight UTC; never the wall clock.
DAY_START = datetime(2026, 11, 30, 0, 0, 0, tzinfo=UTC)
DAY = 86_400.0


def _normalized(values: list[float]) -> tuple[float, ...]:
    mean = sum(values) / len(values)
    return tuple(v / mean for v in values)


# Office hours of a team in Europe, hour by hour from midnight UTC.
_OFFICE: tuple[float, ...] = (0.02, 0.01, 0.01, 0.01, 0.02, 0.05, 0.2, 0.5, 0.9, 1.0, 1.0, 0.95)
_OFFICE += (0.7, 0.9, 1.0, 1.0, 0.9, 0.7, 0.4, 0.2, 0.1, 0.08, 0.05, 0.03)
# Share of a scene's daily episodes per hour (UTC), mean 1; backups and upgrades run at night.
PROFILES: dict[str, tuple[float, ...]] = {
    "flat": (1.0,) * 24,
    "work": _normalized(list(_OFFICE)),
    "night": _normalized([0.3, 1.0, 1.0, 1.0, 0.6, 0.2] + [0.02] * 18),
}
# How busy the API server is per hour, relative to the day's mean (controllers never sleep).
ACTIVITY = _normalized([0.85 + 0.15 * w for w in PROFILES["work"]])

# Scene -> (episodes per hour in the real cluster, profile). Calibrated on a 12-node cluster with ~40 app
# pods: leaders renew every 2 s (get + update), node leases every 10 s, each (client, type) watch restarts
# every 5-10 minutes, and on EKS the callers' volumes of a measured cluster (research notes 2.4: EBS CSI
# leases ~4.3k requests/h, anonymous probes ~3.6k/h, eks:* components ~8k/h, az-poller 403s ~50/h).
COMMON: tuple[tuple[str, float, str], ...] = (
    ("leader_election", 4500, "flat"),
    ("apiserver_self", 550, "flat"),
    ("kcm_informers", 224, "flat"),
    ("scheduler_informers", 104, "flat"),
    ("metadata_informers", 512, "flat"),
    ("controller_writes", 1000, "flat"),
    ("node_lease", 4320, "flat"),
    ("node_status", 150, "flat"),
    ("pod_status", 150, "flat"),
    ("kubelet_watches", 480, "flat"),
    ("kubelet_mounts", 860, "flat"),
    ("kubelet_token", 50, "flat"),
    ("certificate_rotation", 0.2, "flat"),
    ("pod_churn", 20, "work"),
    ("cronjob_run", 8, "flat"),
    ("node_scale_up", 0.25, "work"),
    ("node_scale_down", 0.25, "night"),
    ("daemonset_rollout", 0.1, "work"),
    ("coredns", 30, "flat"),
    ("kube_state_metrics", 150, "flat"),
    ("metrics_server", 100, "flat"),
    ("cert_manager", 560, "flat"),
    ("cainjector_patch", 0.3, "flat"),
    ("certificate_renewal", 0.3, "flat"),
    ("ingress_nginx", 780, "flat"),
    ("policy_engine", 800, "flat"),
    ("policy_webhook_rewrite", 2, "flat"),
    ("operators", 140, "flat"),
    ("external_secrets_refresh", 9, "flat"),
    ("gitops_informers", 256, "flat"),
    ("gitops_credentials", 200, "flat"),
    ("gitops_sync", 20, "flat"),
    ("gitops_status", 300, "flat"),
    ("ci_deploy", 2.5, "work"),
    ("admin_kubectl", 20, "work"),
    ("admin_exec", 2, "work"),
    ("admin_port_forward", 0.5, "work"),
    ("admin_debug", 0.15, "work"),
    ("admin_secrets", 1, "work"),
    ("admin_helm_kube_system", 0.05, "work"),
    ("missing_rbac_retries", 1, "work"),
    ("removed_crd_retries", 3, "flat"),
    ("stale_token", 2, "flat"),
    ("expired_login", 1, "work"),
    ("admission_refused", 0.5, "work"),
    ("update_conflict", 30, "flat"),
)
PLATFORM_SCENES: dict[str, tuple[tuple[str, float, str], ...]] = {
    "gke": (
        ("gke_components", 700, "flat"),
        ("gke_addon_manager", 600, "flat"),
        ("gke_managed_workloads", 1100, "flat"),
        ("gke_metadata_server", 40, "flat"),
        ("gke_konnectivity", 12, "flat"),
        ("gke_node_upgrade", 0.2, "night"),
        ("gke_warden_denied", 1, "flat"),
        ("kube_probe", 700, "flat"),
        ("internet_scanner", 10, "flat"),
    ),
    "eks": (
        ("eks_components", 5000, "flat"),
        ("eks_addon_manager", 30, "flat"),
        ("eks_az_poller", 50, "flat"),
        ("aws_node", 384, "flat"),
        ("ebs_csi", 2200, "flat"),
        ("cloudwatch_agent", 600, "flat"),
        ("karpenter", 300, "flat"),
        ("alloy_scrape", 720, "flat"),
        ("kube_probe", 1800, "flat"),
        ("load_balancer_check", 1800, "flat"),
        ("internet_scanner", 10, "flat"),
    ),
    "self-managed": (
        ("calico", 430, "flat"),
        ("longhorn", 500, "flat"),
        ("metallb", 200, "flat"),
        ("velero_backup", 0.04, "night"),
        ("gitlab_build", 6, "work"),
        ("kubeadm_admin", 0.05, "work"),
        ("kube_probe", 700, "flat"),
    ),
}
FAMILIES = (ControlPlane, Kubelets, Workloads, AddOns, GitOps, People, Misconfigured, Probes)
PLATFORM_FAMILY = {"gke": GkeTraffic, "eks": EksTraffic, "self-managed": SelfManagedTraffic}


def scenarios_of(platform: str) -> tuple[str, ...]:
    """The attack scenarios injected into this platform's day."""
    return tuple(name for name, platforms in SCENARIOS.items() if platform in platforms)


def busy_day(
    platform: str, seed: int, n: int, *, start: datetime | None = None, attacks: bool = True
) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Yield about `n` native audit Events of `platform`'s day, each with the attack scenario it belongs to
    (None: benign), in stage-time order. The same arguments give the same records."""
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}; expected one of {', '.join(PLATFORMS)}")
    if n < 1:
        raise ValueError(f"events must be >= 1, got {n}")
    rng = random.Random(seed)
    cluster = BusyCluster(rng, PLATFORMS[platform])
    api = ApiServer(cluster, cluster.platform.policy)
    scenes: dict[str, Scene] = {}
    for family in (*FAMILIES, PLATFORM_FAMILY[platform]):
        scenes.update(family(cluster, api).scenes())
    intrusions = Intrusions(cluster, api).scenes()
    table = COMMON + PLATFORM_SCENES[platform]
    names = [name for name, _w, _p in table]
    by_hour = []
    for hour in range(24):
        total, cumulative = 0.0, []
        for _name, weight, profile in table:
            total += weight * PROFILES[profile][hour]
            cumulative.append(total)
        by_hour.append(cumulative)
    injected = sorted((rng.uniform(0.03, 0.97), name) for name in scenarios_of(platform)) if attacks else []
    origin = (start or DAY_START).timestamp()
    clock, spacing = origin, DAY / n
    pending: list[tuple[str, int, dict[str, Any], str | None]] = []
    produced = seq = 0
    while produced < n:
        hour = int((clock - origin) // 3600) % 24
        label: str | None = None
        if injected and produced >= injected[0][0] * n:
            label = injected.pop(0)[1]
            episode = intrusions[label](clock)
        else:
            episode = scenes[rng.choices(names, cum_weights=by_hour[hour])[0]](clock)
        produced += len(episode)
        for record in episode:
            seq += 1
            heapq.heappush(pending, (record["stageTimestamp"], seq, record, label))
        clock += rng.expovariate(1.0) * len(episode) * spacing / ACTIVITY[hour]
        now = timestamp(clock)
        while pending and pending[0][0] <= now:
            _when, _seq, record, label = heapq.heappop(pending)
            yield record, label
    while injected:  # a tiny `n` ends the day early: the remaining attacks still happen
        label = injected.pop(0)[1]
        for record in intrusions[label](clock):
            seq += 1
            heapq.heappush(pending, (record["stageTimestamp"], seq, record, label))
        clock += 60
    while pending:
        _when, _seq, record, label = heapq.heappop(pending)
        yield record, label
