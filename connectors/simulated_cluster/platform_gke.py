"""GKE's own traffic: its control-plane users (system:gke-*, the L7/L4 load-balancer controllers, the
cluster autoscaler, konnectivity), the addon manager's kubectl applies, managed workloads in
gke-managed-* and gmp-system, the GKE metadata server minting Workload Identity tokens, Google's
service agent upgrading nodes at night, and GKE Warden refusing writes to managed namespaces."""

from __future__ import annotations

from kubesigma.connectors.simulated_cluster.day_traffic import (
    CONFIGMAPS,
    DAEMONSETS,
    DEPLOYMENTS,
    ENDPOINTSLICES,
    INGRESSES,
    NAMESPACES,
    NODES,
    PODS,
    SECRETS,
    SERVICES,
    DayTraffic,
)
from kubesigma.connectors.simulated_cluster.identities import Identity
from kubesigma.connectors.simulated_cluster.platforms import APPS
from kubesigma.connectors.simulated_cluster.traffic import Episode

PROJECT_NUMBER = "482915730164"


class GkeTraffic(DayTraffic):
    SCENES = (
        "gke_components",
        "gke_addon_manager",
        "gke_managed_workloads",
        "gke_metadata_server",
        "gke_konnectivity",
        "gke_node_upgrade",
        "gke_warden_denied",
    )

    def _user(self, user: str, component: str) -> Identity:
        return self.c.system_user(user, self.c.agent(component))

    def gke_components(self, t: float) -> Episode:
        """GKE's control-plane users: the autoscaler's status every 10 s, metrics reads, their informers."""
        autoscaler = self._user("system:cluster-autoscaler", "cluster-autoscaler")
        kind = self.rng.random()
        if kind < 0.5:
            name = "cluster-autoscaler-status"
            status = {
                "kind": "ConfigMap",
                "apiVersion": "v1",
                "metadata": {"name": name, "namespace": "kube-system"},
            }
            return self.api.call(t, autoscaler, "update", "configmaps", "kube-system", name, body=status)
        if kind < 0.6:
            who = self._user("system:clustermetrics", "clustermetrics")
            return self.api.call(t, who, "list", "nodes", group="metrics.k8s.io", version="v1beta1")
        certs = ("networking.gke.io", "v1", "managedcertificates")
        csrs = ("certificates.k8s.io", "v1", "certificatesigningrequests")
        return self.informers(
            t,
            (
                (
                    self._user("system:l7-lb-controller", "glbc"),
                    (INGRESSES, SERVICES, ENDPOINTSLICES, NODES, certs),
                    None,
                ),
                (
                    self._user("system:l4-lb-controller", "l4-lb-controller"),
                    (SERVICES, NODES, ENDPOINTSLICES),
                    None,
                ),
                (autoscaler, (PODS, NODES, ("policy", "v1", "poddisruptionbudgets"), DAEMONSETS), None),
                (
                    self._user("system:gcp-controller-manager", "gcp-controller-manager"),
                    (NODES, csrs, ("", "v1", "serviceaccounts")),
                    None,
                ),
                (
                    self._user("system:managed-certificate-controller", "managed-certificate-controller"),
                    (certs, INGRESSES),
                    None,
                ),
                (
                    self._user("system:kubestore-collector", "kubestore-collector"),
                    (PODS, NODES, NAMESPACES, DEPLOYMENTS),
                    None,
                ),
                (self._user("system:resource-tracker", "resource-tracker"), (PODS, NODES), None),
            ),
        )

    def gke_addon_manager(self, t: float) -> Episode:
        """The addon manager runs `kubectl apply --prune` over kube-system's addons: label-selected lists of
        every prunable type (Secrets too), now and then a patch carrying last-applied-configuration."""
        who = self.c.system_user(
            "system:addon-manager", "kubectl/v1.30.5 (linux/amd64) kubernetes/b5b7d1f", ip="10.128.0.2"
        )
        selector = "labelSelector=addonmanager.kubernetes.io%2Fmode%3DReconcile"
        if self.rng.random() < 0.85:
            res = self.rng.choice(
                (CONFIGMAPS, SECRETS, SERVICES, DEPLOYMENTS, DAEMONSETS, ("", "v1", "serviceaccounts"))
            )
            return self.api.call(t, who, "list", res[2], group=res[0], version=res[1], query=selector)
        name = self.rng.choice(
            ("konnectivity-agent", "kube-dns", "metrics-server-v1.30.3", "l7-default-backend")
        )
        labels = '{"addonmanager.kubernetes.io/mode":"Reconcile"}'
        applied = (
            f'{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"labels":{labels},'
            f'"name":"{name}","namespace":"kube-system"}}}}'
        )
        patch = {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied}}}
        out = self.api.call(t, who, "get", "deployments", "kube-system", name, group="apps")
        return out + self.api.call(
            t + 0.05, who, "patch", "deployments", "kube-system", name, group="apps",
            query="fieldManager=kubectl-client-side-apply", body=patch, response=patch,
        )  # fmt: skip

    def gke_managed_workloads(self, t: float) -> Episode:
        """Google Managed Prometheus and other managed components in their own namespaces."""
        kind = self.rng.random()
        if kind < 0.4:
            who = self.c.workload(
                "gmp-system", "collector", "collector", "prometheus-engine/v0.13.1 (linux/amd64)"
            )
            return self.informer(t, who, (PODS, ENDPOINTSLICES, SERVICES, SECRETS), "gmp-system")
        if kind < 0.7:
            who = self.c.workload(
                "gmp-system", "operator", "gmp-operator", "prometheus-engine/v0.13.1 (linux/amd64)"
            )
            if self.rng.random() < 0.3:
                return self.api.call(t, who, "update", "secrets", "gmp-system", "collection")
            return self.lease(t, who, "gmp-system", "gmp-operator-leader")
        who = self.c.workload(
            "gke-managed-system",
            "gke-managed-system-controller",
            "managed-system",
            self.c.agent("gke-managed-system"),
        )
        return self.informer(t, who, (NODES, PODS, CONFIGMAPS), "gke-managed-system")

    def gke_metadata_server(self, t: float) -> Episode:
        """Workload Identity: the metadata server asks for a pod's service-account token on its behalf."""
        who = self.c.workload(
            "kube-system", "gke-metadata-server", "gke-metadata-server", "gke-metadata-server/0.4.301"
        )
        ns = self.rng.choice(tuple(APPS))
        app = self.rng.choice(APPS[ns])[0]
        return self.api.call(t, who, "create", "serviceaccounts", ns, app, sub="token")

    def gke_konnectivity(self, t: float) -> Episode:
        """The konnectivity server reviews its agents' tokens."""
        who = self.c.system_user("system:konnectivity-server", "konnectivity-server/v0.30.3")
        review = {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "spec": {"audiences": ["system:konnectivity-server"]},
        }
        return self.api.call(
            t, who, "create", "tokenreviews", None, group="authentication.k8s.io", body=review
        )

    def gke_node_upgrade(self, t: float) -> Episode:
        """Google's GKE service agent upgrading a node pool: cordon a node, evict its pods."""
        who = Identity(
            f"service-{PROJECT_NUMBER}@container-engine-robot.iam.gserviceaccount.com", ("system:authenticated",), "",
            "35.187.110.4", "google-api-go-client/0.5 GKE-NodeUpgrader", "",
        )  # fmt: skip
        node = self.rng.choice(self.c.nodes)
        cordon = {"spec": {"unschedulable": True}}
        out = self.api.call(t, who, "patch", "nodes", None, node, body=cordon, response=cordon)
        for ns, pod, _app, where in self.c.pods:
            if where == node:
                t += self.rng.uniform(0.5, 3)
                eviction = {
                    "kind": "Eviction",
                    "apiVersion": "policy/v1",
                    "metadata": {"name": pod, "namespace": ns},
                }
                out += self.api.call(t, who, "create", "pods", ns, pod, sub="eviction", body=eviction)
        return out

    def gke_warden_denied(self, t: float) -> Episode:
        """A Helm chart's controller tries to hold its lock in kube-system; GKE Warden refuses, it retries."""
        who = self.c.workload(
            "gitlab", "gitlab-runner", "gitlab-runner", "gitlab-runner/17.3.1 (linux/amd64)"
        )
        out: Episode = []
        for _ in range(self.rng.randrange(3, 8)):
            message = (
                'leases.coordination.k8s.io is forbidden: User "system:serviceaccount:gitlab:gitlab-runner" cannot create '
                'resource "leases" in API group "coordination.k8s.io" in the namespace "kube-system": GKE Warden authz '
                '[denied by managed-namespaces-limitation]: the namespace "kube-system" is managed and the request\'s '
                'verb "create" is denied'
            )
            out += self.api.call(
                t,
                who,
                "create",
                "leases",
                "kube-system",
                "gitlab-runner-lock",
                group="coordination.k8s.io",
                deny="rbac",
                message=message,
            )
            t += self.rng.uniform(5, 15)
        return out
