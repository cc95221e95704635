"""What the busy day's families of scenes share: the cluster of one platform, its API server logging
under the platform's audit Policy, and the shapes most of a cluster's requests take (an informer's
list and watch, a leader-election lease, a kubectl session's discovery)."""

from __future__ import annotations

from collections.abc import Sequence

from kubesigma.connectors.simulated_cluster.api_server import ApiServer
from kubesigma.connectors.simulated_cluster.identities import Identity
from kubesigma.connectors.simulated_cluster.platforms import BusyCluster
from kubesigma.connectors.simulated_cluster.traffic import Episode, Traffic

Resource = tuple[str, str, str]  # (API group, version, resource)
PODS: Resource = ("", "v1", "pods")
NODES: Resource = ("", "v1", "nodes")
SERVICES: Resource = ("", "v1", "services")
NAMESPACES: Resource = ("", "v1", "namespaces")
SECRETS: Resource = ("", "v1", "secrets")
CONFIGMAPS: Resource = ("", "v1", "configmaps")
ENDPOINTSLICES: Resource = ("discovery.k8s.io", "v1", "endpointslices")
DEPLOYMENTS: Resource = ("apps", "v1", "deployments")
REPLICASETS: Resource = ("apps", "v1", "replicasets")
DAEMONSETS: Resource = ("apps", "v1", "daemonsets")
STATEFULSETS: Resource = ("apps", "v1", "statefulsets")
JOBS: Resource = ("batch", "v1", "jobs")
INGRESSES: Resource = ("networking.k8s.io", "v1", "ingresses")
PVCS: Resource = ("", "v1", "persistentvolumeclaims")
PVS: Resource = ("", "v1", "persistentvolumes")


class DayTraffic(Traffic):
    """A family of the busy day's scenes; `SCENES` names the methods the day may play."""

    def __init__(self, cluster: BusyCluster, api: ApiServer) -> None:
        super().__init__(cluster, api)
        self.c = cluster
        self.api = api
        self.platform = cluster.platform.name

    def watch(
        self, t: float, who: Identity, res: Resource, ns: str | None = None, *, selector: str = ""
    ) -> Episode:
        """A reflector's watch: open for its timeout (5-10 minutes), then restarted by the client."""
        group, version, resource = res
        timeout = self.rng.randrange(300, 600)
        query = "allowWatchBookmarks=true" + (f"&{selector}" if selector else "")
        query += f"&resourceVersion={self.c.next_rv()}&timeout={timeout // 60}m{timeout % 60}s"
        query += f"&timeoutSeconds={timeout}&watch=true"
        return self.api.call(
            t, who, "watch", resource, ns, group=group, version=version, query=query, latency=float(timeout)
        )

    def relist(
        self, t: float, who: Identity, res: Resource, ns: str | None = None, *, selector: str = ""
    ) -> Episode:
        group, version, resource = res
        query = (f"{selector}&" if selector else "") + "limit=500&resourceVersion=0"
        return self.api.call(t, who, "list", resource, ns, group=group, version=version, query=query)

    def informer(
        self,
        t: float,
        who: Identity,
        resources: Sequence[Resource],
        ns: str | None = None,
        relist: float = 0.1,
    ) -> Episode:
        """An informer's steady traffic: a watch restart of one of its resources, sometimes a relist."""
        res = self.rng.choice(resources)
        if self.rng.random() < relist:
            return self.relist(t, who, res, ns)
        return self.watch(t, who, res, ns)

    def informers(
        self,
        t: float,
        clients: Sequence[tuple[Identity, Sequence[Resource], str | None]],
        relist: float = 0.1,
    ) -> Episode:
        """One of several clients' informers: every (client, type) pair is equally likely, as each type's
        watch is restarted on the same timeout whoever watches it."""
        pick = self.rng.randrange(sum(len(types) for _who, types, _ns in clients))
        for who, types, ns in clients:
            if pick < len(types):
                if self.rng.random() < relist:
                    return self.relist(t, who, types[pick], ns)
                return self.watch(t, who, types[pick], ns)
            pick -= len(types)
        raise AssertionError("unreachable: pick is below the total")

    def lease(self, t: float, who: Identity, ns: str, name: str) -> Episode:
        """A leader renewing its lock: client-go gets the Lease, then updates it."""
        out = self.api.call(
            t, who, "get", "leases", ns, name, group="coordination.k8s.io", query="timeout=5s"
        )
        t += self.rng.uniform(0.002, 0.02)
        out += self.api.call(
            t, who, "update", "leases", ns, name, group="coordination.k8s.io", query="timeout=5s"
        )
        return out

    def discovery(self, t: float, who: Identity) -> Episode:
        """What a kubectl without a warm discovery cache asks first (aggregated discovery)."""
        out = self.api.call(t, who, "get", None, path="/api", query="timeout=32s")
        return out + self.api.call(
            t + self.rng.uniform(0.01, 0.05), who, "get", None, path="/apis", query="timeout=32s"
        )

    def app_pod(self) -> tuple[str, str, str, str]:
        """(namespace, pod, app, node) of a running application pod."""
        return self.rng.choice(self.c.pods)
