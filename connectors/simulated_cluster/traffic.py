"""What a family of scenes shares: the cluster they act in and how its API server records them. A scene
turns a start time into one episode: the audit records of one thing happening (a lease renewal, a
deploy, an attack)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubesigma.connectors.simulated_cluster.audit import AuditRecorder
from kubesigma.connectors.simulated_cluster.cluster import Cluster

Episode = list[dict[str, Any]]
Scene = Callable[[float], Episode]


class Traffic:
    """A family of scenes; `SCENES` names the methods the timeline may play, each `(t) -> Episode`."""

    SCENES: tuple[str, ...] = ()

    def __init__(self, cluster: Cluster, audit: AuditRecorder) -> None:
        self.rng = cluster.rng
        self.cluster = cluster
        self.audit = audit

    def scenes(self) -> dict[str, Scene]:
        return {name: getattr(self, name) for name in self.SCENES}
