"""The cluster's own components at work, most of any cluster's audit log: kubelets (leases, status,
the reads and token requests of their pods), the controller manager and scheduler, CoreDNS."""

from __future__ import annotations

from kubesigma.connectors.simulated_cluster.audit import api_path, object_ref, timestamp
from kubesigma.connectors.simulated_cluster.cluster import APPS
from kubesigma.connectors.simulated_cluster.manifests import created, pod_spec
from kubesigma.connectors.simulated_cluster.traffic import Episode, Traffic


class ComponentTraffic(Traffic):
    """Kubelets, control plane and CoreDNS."""

    SCENES = (
        "kubelet_lease",
        "kubelet_node_status",
        "kubelet_reads",
        "kubelet_pod_status",
        "kubelet_watch",
        "leader_election",
        "controllers",
        "pod_create",
        "coredns_reads",
    )

    # ---- kubelets -------------------------------------------------------------------------------

    def kubelet_lease(self, t: float) -> Episode:
        node = self.rng.choice(self.cluster.nodes)
        who = self.cluster.node(node)
        uri = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}?timeout=10s"
        ref = object_ref("leases", "kube-node-lease", node, apiGroup="coordination.k8s.io", apiVersion="v1")
        return self.audit.request(t, who, "update", uri, ref, latency=self.rng.uniform(0.002, 0.02))

    def kubelet_node_status(self, t: float) -> Episode:
        node = self.rng.choice(self.cluster.nodes)
        who = self.cluster.node(node)
        heartbeat = timestamp(t)[:19] + "Z"
        patch = {
            "status": {
                "$setElementOrder/conditions": [
                    {"type": k} for k in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
                ],
                "conditions": [
                    {"type": k, "lastHeartbeatTime": heartbeat}
                    for k in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
                ],
            }
        }
        ref = object_ref("nodes", None, node, subresource="status")
        return self.audit.request(
            t,
            who,
            "patch",
            f"/api/v1/nodes/{node}/status?timeout=10s",
            ref,
            level="Request",
            request_object=patch,
        )

    def kubelet_reads(self, t: float) -> Episode:
        ns, pod, app, node = self.rng.choice(self.cluster.pods)
        who = self.cluster.node(node)
        kind = self.rng.random()
        if kind < 0.35:
            return self.audit.request(t, who, "get", api_path("pods", ns, pod), object_ref("pods", ns, pod))
        if kind < 0.6:
            uri = (
                api_path("configmaps", ns)
                + "?fieldSelector=metadata.name%3Dkube-root-ca.crt&resourceVersion=0"
            )
            return self.audit.request(t, who, "list", uri, object_ref("configmaps", ns, "kube-root-ca.crt"))
        if kind < 0.8:
            # Projected service-account tokens: TokenRequest against the pod's service account.
            uri = api_path("serviceaccounts", ns, app) + "/token"
            ref = object_ref("serviceaccounts", ns, app, subresource="token")
            return self.audit.request(t, who, "create", uri, ref, code=201)
        secret = f"{app}-db-credentials"
        uri = api_path("secrets", ns) + f"?fieldSelector=metadata.name%3D{secret}&resourceVersion=0"
        return self.audit.request(t, who, "list", uri, object_ref("secrets", ns, secret))

    def kubelet_pod_status(self, t: float) -> Episode:
        ns, pod, _app, node = self.rng.choice(self.cluster.pods)
        who = self.cluster.node(node)
        patch = {
            "metadata": {"uid": self.cluster.uid_of(f"{ns}/{pod}")},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": timestamp(t)[:19] + "Z"}
                ]
            },
        }
        ref = object_ref("pods", ns, pod, subresource="status")
        return self.audit.request(
            t, who, "patch", api_path("pods", ns, pod) + "/status", ref, level="Request", request_object=patch
        )

    def kubelet_watch(self, t: float) -> Episode:
        node = self.rng.choice(self.cluster.nodes)
        who = self.cluster.node(node)
        timeout = self.rng.randrange(300, 600)
        uri = (
            f"/api/v1/pods?allowWatchBookmarks=true&fieldSelector=spec.nodeName%3D{node}"
            f"&resourceVersion={self.cluster.next_rv()}&timeout={timeout // 60}m{timeout % 60}s&timeoutSeconds={timeout}&watch=true"
        )
        return self.audit.request(
            t, who, "watch", uri, object_ref("pods"), latency=float(timeout), started=True
        )

    # ---- control plane --------------------------------------------------------------------------

    def leader_election(self, t: float) -> Episode:
        who, name = (
            (self.cluster.controller_manager, "kube-controller-manager")
            if self.rng.random() < 0.6
            else (self.cluster.scheduler, "kube-scheduler")
        )
        uri = f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}?timeout=5s"
        ref = object_ref("leases", "kube-system", name, apiGroup="coordination.k8s.io")
        verb = "get" if self.rng.random() < 0.5 else "update"
        return self.audit.request(t, who, verb, uri, ref)

    def controllers(self, t: float) -> Episode:
        ns = self.rng.choice(tuple(APPS))
        app = self.rng.choice(APPS[ns])[0]
        kind = self.rng.random()
        if kind < 0.4:
            who = self.cluster.controller("endpointslice-controller")
            name = f"{app}-{self.cluster.suffix(5)}"
            ref = object_ref("endpointslices", ns, name, apiGroup="discovery.k8s.io")
            return self.audit.request(
                t, who, "update", api_path("endpointslices", ns, name, "discovery.k8s.io/v1"), ref
            )
        if kind < 0.6:
            who = self.cluster.controller("replicaset-controller")
            name = f"{app}-{self.cluster.suffix(9)}"
            ref = object_ref("replicasets", ns, name, apiGroup="apps", subresource="status")
            return self.audit.request(
                t, who, "update", api_path("replicasets", ns, name, "apps/v1") + "/status", ref
            )
        if kind < 0.75:
            who = self.cluster.controller("deployment-controller")
            ref = object_ref("deployments", ns, app, apiGroup="apps", subresource="status")
            return self.audit.request(
                t, who, "update", api_path("deployments", ns, app, "apps/v1") + "/status", ref
            )
        if kind < 0.9:
            who = self.cluster.controller("generic-garbage-collector")
            uri = "/apis/apps/v1/replicasets?limit=500&resourceVersion=0"
            return self.audit.request(t, who, "list", uri, object_ref("replicasets", apiGroup="apps"))
        who = self.cluster.controller("namespace-controller")
        return self.audit.request(
            t, who, "get", f"/api/v1/namespaces/{ns}", object_ref("namespaces", None, ns)
        )

    def pod_create(self, t: float) -> Episode:
        """A ReplicaSet scales up: the controller creates a Pod, the scheduler binds it."""
        ns = self.rng.choice(tuple(APPS))
        app, image, port = self.rng.choice(APPS[ns])
        rs = f"{app}-{self.cluster.suffix(9)}"
        name = f"{rs}-{self.cluster.suffix(5)}"
        node = self.rng.choice(self.cluster.nodes)
        spec = pod_spec(self.cluster, ns, None, app, image, port, None, owner=("ReplicaSet", rs))
        who = self.cluster.controller("replicaset-controller")
        out = self.audit.request(
            t,
            who,
            "create",
            api_path("pods", ns),
            object_ref("pods", ns, name),
            code=201,
            level="RequestResponse",
            request_object=spec,
            response_object=created(self.cluster, spec, t, name),
            annotations={"pod-security.kubernetes.io/enforce-policy": "restricted:latest"},
        )
        binding = {
            "kind": "Binding",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "uid": self.cluster.uuid()},
            "target": {"kind": "Node", "name": node},
        }
        t2 = t + self.rng.uniform(0.005, 0.05)
        out += self.audit.request(
            t2,
            self.cluster.scheduler,
            "create",
            api_path("pods", ns, name) + "/binding",
            object_ref("pods", ns, name, subresource="binding"),
            code=201,
            level="RequestResponse",
            request_object=binding,
            response_object={
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "code": 201,
            },
        )
        self.cluster.pods[self.rng.randrange(len(self.cluster.pods))] = (ns, name, app, node)
        return out

    def coredns_reads(self, t: float) -> Episode:
        resource, group = self.rng.choice(
            (("endpointslices", "discovery.k8s.io/v1"), ("services", ""), ("namespaces", ""))
        )
        ref = object_ref(resource, apiGroup=group.split("/")[0]) if group else object_ref(resource)
        if self.rng.random() < 0.5:
            return self.audit.request(
                t,
                self.cluster.coredns,
                "list",
                api_path(resource, group=group) + "?limit=500&resourceVersion=0",
                ref,
            )
        timeout = self.rng.randrange(300, 600)
        uri = (
            api_path(resource, group=group)
            + f"?allowWatchBookmarks=true&resourceVersion={self.cluster.next_rv()}&timeoutSeconds={timeout}&watch=true"
        )
        return self.audit.request(
            t, self.cluster.coredns, "watch", uri, ref, latency=float(timeout), started=True
        )
