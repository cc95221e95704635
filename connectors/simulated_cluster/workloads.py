"""Controllers turning workloads into pods: a Deployment's rollout (new ReplicaSet, pods created by the
ReplicaSet controller, bound by the scheduler, old ones deleted), HPA scaling, CronJobs, and nodes
joining or leaving, where the DaemonSet controller creates the platform's privileged agent pods."""

from __future__ import annotations

from typing import Any

from kubesigma.connectors.simulated_cluster.agents import AGENTS, NodeAgent
from kubesigma.connectors.simulated_cluster.audit import timestamp
from kubesigma.connectors.simulated_cluster.day_traffic import DayTraffic
from kubesigma.connectors.simulated_cluster.identities import Identity
from kubesigma.connectors.simulated_cluster.kubelets import Kubelets
from kubesigma.connectors.simulated_cluster.manifests import created, owned_by, pod_spec
from kubesigma.connectors.simulated_cluster.platforms import APPS
from kubesigma.connectors.simulated_cluster.traffic import Episode

# CronJobs of the apps: (namespace, name, image, schedule in hours of the day or None for "every 15m").
CRONJOBS = (
    ("shop", "cart-cleanup", "registry.acme.dev/shop/cart:1.9.0", None),
    ("payments", "reconcile", "registry.acme.dev/payments/worker:3.2.0", None),
    ("data", "pg-backup", "registry.acme.dev/ops/pg-backup:1.4.0", 2),
    ("search", "reindex", "registry.acme.dev/search/indexer:0.18.2", 3),
)


class Workloads(DayTraffic):
    SCENES = ("pod_churn", "cronjob_run", "node_scale_up", "node_scale_down", "daemonset_rollout")

    def _pod(
        self,
        t: float,
        who: Identity,
        ns: str,
        spec: dict[str, Any],
        name: str,
        node: str,
        psa: str = "baseline:latest",
    ) -> Episode:
        """A controller creates a pod, the scheduler binds it, its kubelet reports it running."""
        # Controllers create pods by generateName: the request names no pod yet, the response does.
        out = self.api.call(
            t, who, "create", "pods", ns, body=spec, response=created(self.c, spec, t, name),
            annotations={"pod-security.kubernetes.io/enforce-policy": psa},
        )  # fmt: skip
        scheduler = self.c.system_user("system:kube-scheduler", self.c.agent("kube-scheduler", "scheduler"))
        binding = {
            "kind": "Binding",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "uid": self.c.uid_of(f"{ns}/{name}")},
            "target": {"kind": "Node", "name": node},
        }
        t += self.rng.uniform(0.005, 0.2)
        ok = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        out += self.api.call(
            t, scheduler, "create", "pods", ns, name, sub="binding", body=binding, response=ok
        )
        t += self.rng.uniform(1, 8)
        status = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
        return out + self.api.call(t, self.c.node(node), "patch", "pods", ns, name, sub="status", body=status)

    def _delete_pod(self, t: float, who: Identity, ns: str, name: str) -> Episode:
        options = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "preconditions": {"uid": self.c.uid_of(f"{ns}/{name}")},
        }
        gone = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "deletionTimestamp": timestamp_of(t)},
        }
        return self.api.call(t, who, "delete", "pods", ns, name, body=options, response=gone)

    def rollout(self, t: float, ns: str, app: str, image: str, port: int) -> Episode:
        """A Deployment's pod template changed: a new ReplicaSet takes over pod by pod."""
        dc = self.c.controller("deployment-controller")
        rsc = self.c.controller("replicaset-controller")
        rs = f"{app}-{self.c.suffix(10)}"
        template = pod_spec(self.c, ns, None, app, image, port, None)
        replica_set = owned_by(
            {
                "kind": "ReplicaSet",
                "apiVersion": "apps/v1",
                "metadata": {"name": rs, "namespace": ns, "labels": {"app": app}},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": app}},
                    "template": {"spec": template["spec"]},
                },
            },
            self.c,
            "Deployment",
            app,
        )
        out = self.api.call(
            t,
            dc,
            "create",
            "replicasets",
            ns,
            group="apps",
            body=replica_set,
            response=created(self.c, replica_set, t, rs),
        )
        old = [p for p in self.c.pods if p[0] == ns and p[2] == app]
        for i, (_ns, old_pod, _app, _node) in enumerate(old):
            t += self.rng.uniform(0.05, 0.3)
            name = f"{rs}-{self.c.suffix(5)}"
            node = self.rng.choice(self.c.nodes)
            spec = pod_spec(self.c, ns, None, app, image, port, None, owner=("ReplicaSet", rs))
            out += self._pod(t, rsc, ns, spec, name, node)
            t += self.rng.uniform(5, 20)
            scaled = {
                "kind": "ReplicaSet",
                "apiVersion": "apps/v1",
                "metadata": {"name": rs, "namespace": ns},
                "spec": {"replicas": i + 1},
            }
            out += self.api.call(
                t, dc, "update", "replicasets", ns, rs, group="apps", body=scaled, response=scaled
            )
            out += self._delete_pod(t + 0.2, rsc, ns, old_pod)
            self.c.pods[self.c.pods.index((ns, old_pod, app, _node))] = (ns, name, app, node)
        return out

    def pod_churn(self, t: float) -> Episode:
        """A pod is replaced (evicted, OOM-killed, or scaled by its HPA): created anew and bound."""
        ns, old, app, node = self.app_pod()
        _a, image, port = next(a for a in APPS[ns] if a[0] == app)
        rs = old.rsplit("-", 1)[0]
        name = f"{rs}-{self.c.suffix(5)}"
        rsc = self.c.controller("replicaset-controller")
        spec = pod_spec(self.c, ns, None, app, image, port, None, owner=("ReplicaSet", rs))
        new_node = self.rng.choice(self.c.nodes)
        out = self._pod(t, rsc, ns, spec, name, new_node)
        self.c.pods[self.c.pods.index((ns, old, app, node))] = (ns, name, app, new_node)
        return out + self._delete_pod(t + self.rng.uniform(1, 30), rsc, ns, old)

    def cronjob_run(self, t: float) -> Episode:
        """The CronJob controller creates a Job, the Job controller its pod; it runs and is cleaned up."""
        hour = int(t // 3600 % 24)
        due = [c for c in CRONJOBS if c[3] is None or c[3] == hour] or [CRONJOBS[0]]
        ns, cron, image, _hour = self.rng.choice(due)
        job = f"{cron}-{int(t // 60)}"
        body = owned_by(
            {
                "kind": "Job",
                "apiVersion": "batch/v1",
                "metadata": {"name": job, "namespace": ns, "labels": {"app": cron}},
                "spec": {
                    "backoffLimit": 2,
                    "ttlSecondsAfterFinished": 300,
                    "template": {"spec": {"restartPolicy": "Never"}},
                },
            },
            self.c,
            "CronJob",
            cron,
            "batch/v1",
        )
        out = self.api.call(
            t, self.c.controller("cronjob-controller"), "create", "jobs", ns, group="batch", version="v1", body=body,
            response=created(self.c, body, t, job),
        )  # fmt: skip
        spec = owned_by(pod_spec(self.c, ns, None, cron, image, 8080, None), self.c, "Job", job, "batch/v1")
        spec["spec"]["restartPolicy"] = "Never"
        pod = f"{job}-{self.c.suffix(5)}"
        out += self._pod(
            t + 0.1, self.c.controller("job-controller"), ns, spec, pod, self.rng.choice(self.c.nodes)
        )
        done = {
            "kind": "Job",
            "apiVersion": "batch/v1",
            "metadata": {"name": job, "namespace": ns},
            "status": {"succeeded": 1},
        }
        t += self.rng.uniform(20, 240)
        out += self.api.call(
            t,
            self.c.controller("job-controller"),
            "update",
            "jobs",
            ns,
            job,
            group="batch",
            sub="status",
            body=done,
            response=done,
        )
        return out + self.api.call(
            t + 300, self.c.controller("ttl-after-finished-controller"), "delete", "jobs", ns, job, group="batch",
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
        )  # fmt: skip

    def daemon_pod(self, t: float, agent: NodeAgent, node: str) -> Episode:
        """The DaemonSet controller creates an agent's pod on a node (privileged, host paths ...)."""
        name = f"{agent.name}-{self.c.suffix(5)}"
        template = agent.template()
        spec = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "generateName": f"{agent.name}-",
                "namespace": agent.namespace,
                "labels": {**template["metadata"]["labels"], "controller-revision-hash": self.c.suffix(10)},
            },
            "spec": {
                **template["spec"],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchFields": [
                                        {"key": "metadata.name", "operator": "In", "values": [node]}
                                    ]
                                }
                            ]
                        }
                    }
                },
            },
            "status": {},
        }
        spec = owned_by(spec, self.c, "DaemonSet", agent.name)
        dsc = self.c.controller("daemon-set-controller")
        return self._pod(t, dsc, agent.namespace, spec, name, node, psa="privileged:latest")

    def node_scale_up(self, t: float) -> Episode:
        """The autoscaler adds a node: it registers, gets certificates, and every DaemonSet puts a pod on it."""
        spare = [n for n in self.c.spare_nodes if n not in self.c.nodes]
        if not spare:
            return self.pod_churn(t)
        node = spare[0]
        who = self.c.node(node)
        out: Episode = []
        certs = Kubelets(self.c, self.api)
        if self.platform != "eks":  # EKS nodes authenticate with IAM from the start
            boot = Identity(
                "kubelet-bootstrap" if self.platform == "gke" else "system:bootstrap:abcdef",
                ("system:bootstrappers", "system:authenticated"),
                "",
                who.source_ip,
                who.user_agent,
                'RBAC: allowed by ClusterRoleBinding "kubeadm:kubelet-bootstrap" of ClusterRole '
                '"system:node-bootstrapper" to Group "system:bootstrappers"',
            )
            out += certs.csr(t, node, serving=False, bootstrap=boot)
        labels = {
            "kubernetes.io/hostname": node.split(".")[0],
            "node.kubernetes.io/instance-type": "e2-standard-8",
        }
        body = {"kind": "Node", "apiVersion": "v1", "metadata": {"name": node, "labels": labels}, "spec": {}}
        t += self.rng.uniform(2, 6)
        out += self.api.call(
            t, who, "create", "nodes", None, body=body, response=created(self.c, body, t, node)
        )
        out += certs.csr(t + 1, node, serving=True)
        self.c.nodes = (*self.c.nodes, node)
        for agent in AGENTS[self.platform]:
            t += self.rng.uniform(0.02, 0.4)
            out += self.daemon_pod(t, agent, node)
        return out

    def node_scale_down(self, t: float) -> Episode:
        """The autoscaler removes an idle node: taints it, evicts its pods, deletes the Node."""
        extra = [n for n in self.c.nodes if n in self.c.spare_nodes]
        if not extra:
            return self.pod_churn(t)
        node = extra[-1]
        if self.platform == "eks":
            who = self.c.workload("karpenter", "karpenter", "karpenter", "karpenter/v1.0.6")
        else:
            who = self.c.system_user(
                "system:cluster-autoscaler"
                if self.platform == "gke"
                else "system:serviceaccount:kube-system:cluster-autoscaler",
                "cluster-autoscaler/v1.30.2",
            )
        taint = {
            "spec": {
                "taints": [
                    {"key": "ToBeDeletedByClusterAutoscaler", "value": str(int(t)), "effect": "NoSchedule"}
                ]
            }
        }
        out = self.api.call(
            t,
            who,
            "patch",
            "nodes",
            None,
            node,
            body=taint,
            response={"kind": "Node", "metadata": {"name": node}, **taint},
        )
        for agent in AGENTS[self.platform][:2]:
            name = f"{agent.name}-{self.c.suffix(5)}"
            eviction = {
                "kind": "Eviction",
                "apiVersion": "policy/v1",
                "metadata": {"name": name, "namespace": agent.namespace},
            }
            t += self.rng.uniform(0.1, 1)
            out += self.api.call(
                t, who, "create", "pods", agent.namespace, name, sub="eviction", body=eviction
            )
        self.c.nodes = tuple(n for n in self.c.nodes if n != node)
        return out + self.api.call(t + self.rng.uniform(20, 60), who, "delete", "nodes", None, node)

    def daemonset_rollout(self, t: float) -> Episode:
        """An agent's DaemonSet was updated: its pods are replaced node after node."""
        agent = self.rng.choice(AGENTS[self.platform])
        out: Episode = []
        for node in self.rng.sample(self.c.nodes, 3):
            out += self._delete_pod(
                t,
                self.c.controller("daemon-set-controller"),
                agent.namespace,
                f"{agent.name}-{self.c.suffix(5)}",
            )
            out += self.daemon_pod(t + self.rng.uniform(1, 3), agent, node)
            t += self.rng.uniform(10, 40)
        return out


def timestamp_of(t: float) -> str:
    """An object's timestamp (seconds, as Kubernetes stores them)."""
    return timestamp(t)[:19] + "Z"
