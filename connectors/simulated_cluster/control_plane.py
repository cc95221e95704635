"""The control plane at work, the bulk of any audit log: leader election, the API server's own loopback
client, the controller manager's and scheduler's informers, and kube-controller-manager's controllers
each writing with its own service account (system:controller:<name>)."""

from __future__ import annotations

from typing import Any

from kubesigma.connectors.simulated_cluster.day_traffic import (
    CONFIGMAPS,
    DAEMONSETS,
    DEPLOYMENTS,
    ENDPOINTSLICES,
    JOBS,
    NAMESPACES,
    NODES,
    PODS,
    PVCS,
    PVS,
    REPLICASETS,
    SECRETS,
    SERVICES,
    STATEFULSETS,
    DayTraffic,
    Resource,
)
from kubesigma.connectors.simulated_cluster.identities import Identity
from kubesigma.connectors.simulated_cluster.platforms import APPS
from kubesigma.connectors.simulated_cluster.traffic import Episode

# What the controller manager's shared informers watch (a part of it: every type a controller reads).
KCM_INFORMED: tuple[Resource, ...] = (
    PODS,
    NODES,
    SERVICES,
    NAMESPACES,
    SECRETS,
    CONFIGMAPS,
    ENDPOINTSLICES,
    DEPLOYMENTS,
    REPLICASETS,
    DAEMONSETS,
    STATEFULSETS,
    JOBS,
    PVCS,
    PVS,
    ("", "v1", "serviceaccounts"),
    ("", "v1", "endpoints"),
    ("", "v1", "resourcequotas"),
    ("", "v1", "limitranges"),
    ("batch", "v1", "cronjobs"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("storage.k8s.io", "v1", "storageclasses"),
    ("storage.k8s.io", "v1", "volumeattachments"),
    ("storage.k8s.io", "v1", "csinodes"),
    ("certificates.k8s.io", "v1", "certificatesigningrequests"),
    ("rbac.authorization.k8s.io", "v1", "clusterroles"),
    ("coordination.k8s.io", "v1", "leases"),
    ("networking.k8s.io", "v1", "ingresses"),
)
SCHEDULER_INFORMED: tuple[Resource, ...] = (
    PODS,
    NODES,
    PVCS,
    PVS,
    NAMESPACES,
    SERVICES,
    ("storage.k8s.io", "v1", "storageclasses"),
    ("storage.k8s.io", "v1", "csinodes"),
    ("storage.k8s.io", "v1", "csidrivers"),
    ("storage.k8s.io", "v1", "csistoragecapacities"),
    ("policy", "v1", "poddisruptionbudgets"),
    REPLICASETS,
    STATEFULSETS,
)
# The metadata informers of the garbage collector and quota controller cover every listable type.
EVERY_TYPE: tuple[Resource, ...] = (
    *KCM_INFORMED,
    ("networking.k8s.io", "v1", "networkpolicies"),
    ("rbac.authorization.k8s.io", "v1", "roles"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
)


class ControlPlane(DayTraffic):
    SCENES = (
        "leader_election",
        "apiserver_self",
        "kcm_informers",
        "scheduler_informers",
        "controller_writes",
        "metadata_informers",
    )

    def _kcm(self) -> Identity:
        return self.c.system_user(
            "system:kube-controller-manager", self.c.agent("kube-controller-manager", "shared-informers")
        )

    def _scheduler(self) -> Identity:
        return self.c.system_user("system:kube-scheduler", self.c.agent("kube-scheduler", "scheduler"))

    def leader_election(self, t: float) -> Episode:
        leaders = [
            ("system:kube-controller-manager", "kube-controller-manager"),
            ("system:kube-scheduler", "kube-scheduler"),
        ]
        if self.platform == "gke":
            leaders.append(("system:cloud-controller-manager", "cloud-controller-manager"))
        elif self.platform == "eks":
            leaders.append(("eks:cloud-controller-manager", "cloud-controller-manager"))
        user, name = self.rng.choice(leaders)
        who = self.c.system_user(user, self.c.agent(name, "leader-election"))
        return self.lease(t, who, "kube-system", name)

    def apiserver_self(self, t: float) -> Episode:
        """kube-apiserver's loopback client: its identity lease, its own informers, bootstrap reconcilers."""
        who = self.c.system_user("system:apiserver", self.c.agent("kube-apiserver"), role="system:masters")
        kind = self.rng.random()
        if kind < 0.65:
            lease = f"apiserver-{self.c.uid_of('apiserver').replace('-', '')[:26]}"
            return self.api.call(
                t,
                who,
                "update",
                "leases",
                "kube-system",
                lease,
                group="coordination.k8s.io",
                query="timeout=5s",
            )
        if kind < 0.8:
            return self.informer(
                t,
                who,
                (
                    SECRETS,
                    CONFIGMAPS,
                    NAMESPACES,
                    SERVICES,
                    ("", "v1", "serviceaccounts"),
                    ("rbac.authorization.k8s.io", "v1", "clusterroles"),
                    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
                    ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations"),
                    ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations"),
                    ("flowcontrol.apiserver.k8s.io", "v1", "flowschemas"),
                    ("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
                ),
            )
        # The `kubernetes` Service's endpoints and the flow-control configuration, reconciled.
        if self.rng.random() < 0.5:
            return self.api.call(t, who, "get", "services", "default", "kubernetes")
        schema = self.rng.choice(
            ("workload-leader-election", "system-nodes", "kube-controller-manager", "probes")
        )
        return self.api.call(t, who, "get", "flowschemas", None, schema, group="flowcontrol.apiserver.k8s.io")

    def kcm_informers(self, t: float) -> Episode:
        return self.informer(t, self._kcm(), KCM_INFORMED, relist=0.03)

    def scheduler_informers(self, t: float) -> Episode:
        return self.informer(t, self._scheduler(), SCHEDULER_INFORMED, relist=0.03)

    def metadata_informers(self, t: float) -> Episode:
        """The garbage collector and quota controller watch every type, secrets included, cluster-wide."""
        name = self.rng.choice(("generic-garbage-collector", "resourcequota-controller"))
        return self.informer(t, self.c.controller(name), EVERY_TYPE, relist=0.05)

    def controller_writes(self, t: float) -> Episode:
        ns = self.rng.choice(tuple(APPS))
        app = self.rng.choice(APPS[ns])[0]
        rv = self.c.next_rv()
        body: dict[str, Any]
        kind = self.rng.random()
        if kind < 0.3:
            who = self.c.controller("endpointslice-controller")
            name = f"{app}-{self.c.suffix(5)}"
            body = {
                "kind": "EndpointSlice",
                "apiVersion": "discovery.k8s.io/v1",
                "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": app}},
                "addressType": "IPv4",
                "endpoints": [
                    {"addresses": [self.c.pod_ip()], "conditions": {"ready": True}} for _ in range(3)
                ],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            }
            return self.api.call(
                t,
                who,
                "update",
                "endpointslices",
                ns,
                name,
                group="discovery.k8s.io",
                body=body,
                response=body,
            )
        if kind < 0.45:
            who = self.c.controller("endpoint-controller")
            body = {
                "kind": "Endpoints",
                "apiVersion": "v1",
                "metadata": {"name": app, "namespace": ns, "resourceVersion": rv},
                "subsets": [
                    {"addresses": [{"ip": self.c.pod_ip()} for _ in range(3)], "ports": [{"port": 8080}]}
                ],
            }
            return self.api.call(t, who, "update", "endpoints", ns, app, body=body, response=body)
        if kind < 0.65:
            who = self.c.controller("replicaset-controller")
            name = f"{app}-{self.c.suffix(9)}"
            status: dict[str, int] = {
                "replicas": 3,
                "fullyLabeledReplicas": 3,
                "readyReplicas": 3,
                "availableReplicas": 3,
            }
            body = {
                "kind": "ReplicaSet",
                "apiVersion": "apps/v1",
                "metadata": {"name": name, "namespace": ns, "resourceVersion": rv},
                "status": {**status, "observedGeneration": self.rng.randrange(1, 40)},
            }
            return self.api.call(
                t,
                who,
                "update",
                "replicasets",
                ns,
                name,
                group="apps",
                sub="status",
                body=body,
                response=body,
            )
        if kind < 0.8:
            who = self.c.controller("deployment-controller")
            body = {
                "kind": "Deployment",
                "apiVersion": "apps/v1",
                "metadata": {"name": app, "namespace": ns, "resourceVersion": rv},
                "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3},
            }
            return self.api.call(
                t, who, "update", "deployments", ns, app, group="apps", sub="status", body=body, response=body
            )
        if kind < 0.87:
            who = self.c.controller("horizontal-pod-autoscaler")
            out = self.api.call(t, who, "get", "deployments", ns, app, group="apps", sub="scale")
            out += self.api.call(
                t + 0.01,
                who,
                "list",
                "pods",
                ns,
                group="metrics.k8s.io",
                version="v1beta1",
                query=f"labelSelector=app%3D{app}",
            )
            body = {
                "kind": "HorizontalPodAutoscaler",
                "apiVersion": "autoscaling/v2",
                "metadata": {"name": app, "namespace": ns},
                "status": {"currentReplicas": 3, "desiredReplicas": 3},
            }
            return out + self.api.call(
                t + 0.03,
                who,
                "update",
                "horizontalpodautoscalers",
                ns,
                app,
                group="autoscaling",
                version="v2",
                sub="status",
                body=body,
                response=body,
            )
        if kind < 0.92:
            who = self.c.controller("disruption-controller")
            body = {
                "kind": "PodDisruptionBudget",
                "apiVersion": "policy/v1",
                "metadata": {"name": app, "namespace": ns},
                "status": {
                    "currentHealthy": 3,
                    "desiredHealthy": 2,
                    "disruptionsAllowed": 1,
                    "expectedPods": 3,
                },
            }
            return self.api.call(
                t,
                who,
                "update",
                "poddisruptionbudgets",
                ns,
                app,
                group="policy",
                sub="status",
                body=body,
                response=body,
            )
        if kind < 0.96:
            who = self.c.controller("root-ca-cert-publisher")
            return self.api.call(t, who, "get", "configmaps", ns, "kube-root-ca.crt")
        if kind < 0.98:
            who = self.c.controller("namespace-controller")
            return self.api.call(t, who, "get", "namespaces", None, ns)
        who = self.c.controller("node-controller")
        node = self.rng.choice(self.c.nodes)
        return self.api.call(t, who, "get", "nodes", None, node)
