"""When things happen: background traffic drawn by weight at a small cluster's request rate, each attack
once at a fixed point of the story plus a share of repeats, records emitted in receive-time order."""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from kubesigma.connectors.simulated_cluster.attacks import ATTACKER_IPS, Attacks
from kubesigma.connectors.simulated_cluster.audit import AuditRecorder, timestamp
from kubesigma.connectors.simulated_cluster.cluster import Cluster
from kubesigma.connectors.simulated_cluster.components import ComponentTraffic
from kubesigma.connectors.simulated_cluster.look_alikes import LookAlikes
from kubesigma.connectors.simulated_cluster.traffic import Scene
from kubesigma.connectors.simulated_cluster.users import UserTraffic

# The demo's story starts here unless told otherwise: a fixed instant, never the wall clock.
DEFAULT_START = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)
DEFAULT_CLUSTER = "demo-cluster"

# Background traffic and its weights: mostly kubelets and controllers, as in a real cluster.
BACKGROUND: tuple[tuple[str, float], ...] = (
    ("kubelet_lease", 22),
    ("kubelet_node_status", 5),
    ("kubelet_reads", 9),
    ("kubelet_pod_status", 5),
    ("kubelet_watch", 2),
    ("leader_election", 12),
    ("controllers", 14),
    ("pod_create", 4),
    ("coredns_reads", 3),
    ("ci_deploy", 1.5),
    ("kubectl", 4),
    ("health_check", 6),
    ("own_secret", 1),
    ("anonymous_denied", 0.3),
)
ATTACKS = Attacks.SCENES
# Each attack and each rare look-alike happens once at a fixed point of the story, so every run shows them.
STORY: tuple[tuple[float, str], ...] = (
    (0.10, "cni_daemonset"),
    (0.25, "anonymous_allowed"),
    (0.45, "exec_into_pod"),
    (0.60, "secret_sweep"),
    (0.80, "miner_pod"),
)


def generate(
    seed: int,
    n: int,
    *,
    attack_ratio: float = 0.03,
    start: datetime | None = None,
    cluster: str = DEFAULT_CLUSTER,
) -> Iterator[dict[str, Any]]:
    """Yield `n` audit Events of a small cluster in event-time order, the same for the same arguments.

    Each attack scenario and the CNI DaemonSet roll-out happen once at fixed points of the run (when
    `n` leaves room for them); beyond that, `attack_ratio` of the events come from attacks repeated at
    random, so a benchmark sees a few percent of hostile traffic.
    """
    if n < 0:
        raise ValueError(f"events must be >= 0, got {n}")
    if not 0.0 <= attack_ratio < 1.0:
        raise ValueError(f"attack_ratio must be in [0, 1), got {attack_ratio}")
    rng = random.Random(seed)
    world = Cluster(rng, cluster)
    audit = AuditRecorder(world)
    attacks = Attacks(world, audit)
    scenes: dict[str, Scene] = attacks.scenes()
    for family in (ComponentTraffic, UserTraffic, LookAlikes):
        scenes.update(family(world, audit).scenes())
    names = [name for name, _w in BACKGROUND]
    weights = [w for _name, w in BACKGROUND]
    # In the story, one actor probes the API anonymously and later deploys the miner from the same address.
    actor = rng.choice(ATTACKER_IPS)
    story_scenes = dict(scenes)
    story_scenes["anonymous_allowed"] = lambda t: attacks.anonymous_allowed(t, ip=actor)
    story_scenes["miner_pod"] = lambda t: attacks.miner_pod(t, ip=actor)
    story = [(int(at * n), name) for at, name in STORY] if n >= 200 else []
    clock = (start or DEFAULT_START).timestamp()
    # Episodes span seconds to minutes: a heap orders their records by (receive time, stage time).
    pending: list[tuple[str, str, int, dict[str, Any]]] = []
    seq = emitted = attack_events = produced = 0
    while emitted < n:
        clock += rng.expovariate(40.0)  # ~40 requests/s: a small, quiet cluster
        if story and produced >= story[0][0]:
            name = story.pop(0)[1]
            episode = story_scenes[name](clock)
            if name in ATTACKS:
                attack_events += len(episode)
        elif attack_ratio and attack_events < attack_ratio * produced and produced > 50:
            episode = scenes[rng.choice(ATTACKS)](clock)
            attack_events += len(episode)
        else:
            episode = scenes[rng.choices(names, weights)[0]](clock)
        produced += len(episode)
        for record in episode:
            seq += 1
            heapq.heappush(
                pending, (record["requestReceivedTimestamp"], record["stageTimestamp"], seq, record)
            )
        # Everything received before now is final: later episodes start after `clock`.
        now = timestamp(clock)
        while pending and pending[0][0] <= now and emitted < n:
            yield heapq.heappop(pending)[3]
            emitted += 1
    # `n` reached: whatever is still pending is dropped, so the count is exact.
