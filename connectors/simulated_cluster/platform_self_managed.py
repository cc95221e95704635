"""A self-managed cluster's own traffic: Calico (its node agent minting the CNI plugin's tokens), Longhorn
storage, MetalLB, Velero's nightly backup listing every type (Secrets too), GitLab runners executing build
scripts in the pods they create, and the kubeadm admin credential used from a control-plane node."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from kubesigma.connectors.simulated_cluster.control_plane import EVERY_TYPE
from kubesigma.connectors.simulated_cluster.day_traffic import NODES, PODS, SERVICES, DayTraffic
from kubesigma.connectors.simulated_cluster.identities import Identity
from kubesigma.connectors.simulated_cluster.manifests import created
from kubesigma.connectors.simulated_cluster.traffic import Episode

# The script GitLab's Kubernetes executor runs in each build container to find a shell.
RUNNER_SHELL_PROBE = (
    "if [ -x /usr/local/bin/bash ]; then\n\texec /usr/local/bin/bash \nelif [ -x /usr/bin/bash ]; then\n\t"
    "exec /usr/bin/bash \nelif [ -x /bin/bash ]; then\n\texec /bin/bash \nelif [ -x /usr/local/bin/sh ]; then\n\t"
    "exec /usr/local/bin/sh \nelif [ -x /usr/bin/sh ]; then\n\texec /usr/bin/sh \nelif [ -x /bin/sh ]; then\n\t"
    "exec /bin/sh \nelse\n\techo shell not found\n\texit 1\nfi\n\n"
)


class SelfManagedTraffic(DayTraffic):
    SCENES = ("calico", "longhorn", "metallb", "velero_backup", "gitlab_build", "kubeadm_admin")

    def calico(self, t: float) -> Episode:
        kind = self.rng.random()
        node_agent = self.c.workload(
            "calico-system", "calico-node", "calico-node", "calico-node/v3.28.1 (linux/amd64)"
        )
        if kind < 0.005:
            # calico-node refreshes the CNI plugin's token (valid 24 h) through the TokenRequest API.
            return self.api.call(
                t, node_agent, "create", "serviceaccounts", "calico-system", "calico-cni-plugin", sub="token"
            )
        if kind < 0.9:
            return self.informer(
                t,
                node_agent,
                (
                    NODES,
                    PODS,
                    ("crd.projectcalico.org", "v1", "ippools"),
                    ("crd.projectcalico.org", "v1", "blockaffinities"),
                ),
            )
        who = self.c.workload(
            "calico-system",
            "calico-kube-controllers",
            "calico-kube-controllers",
            "calico-kube-controllers/v3.28.1",
        )
        return self.informer(t, who, (NODES, PODS, ("", "v1", "namespaces"), ("", "v1", "serviceaccounts")))

    def longhorn(self, t: float) -> Episode:
        who = self.c.workload(
            "longhorn-system", "longhorn-service-account", "longhorn-manager", "longhorn-manager/v1.7.1"
        )
        res = self.rng.choice(("volumes", "engines", "replicas", "nodes", "instancemanagers"))
        if self.rng.random() < 0.5:
            name = f"pvc-{self.c.uuid()}"
            return self.api.call(
                t,
                who,
                "update",
                res,
                "longhorn-system",
                name,
                group="longhorn.io",
                version="v1beta2",
                sub="status",
            )
        return self.watch(t, who, ("longhorn.io", "v1beta2", res), "longhorn-system")

    def metallb(self, t: float) -> Episode:
        who = self.c.workload("metallb-system", "speaker", "speaker", "speaker/v0.14.8")
        return self.informer(
            t,
            who,
            (
                SERVICES,
                NODES,
                ("discovery.k8s.io", "v1", "endpointslices"),
                ("metallb.io", "v1beta1", "ipaddresspools"),
            ),
        )

    def velero_backup(self, t: float) -> Episode:
        """The nightly backup lists every resource type of every namespace, Secrets included."""
        who = self.c.workload("velero", "velero", "velero", "velero-server/v1.14.1 (linux/amd64) 8afe3cea")
        name = f"nightly-{int(t // 86400)}"
        out = self.api.call(t, who, "create", "backups", "velero", name, group="velero.io")
        for group, version, resource in EVERY_TYPE:
            t += self.rng.uniform(0.1, 1.5)
            out += self.api.call(t, who, "list", resource, group=group, version=version, query="limit=500")
        return out + self.api.call(t + 2, who, "update", "backups", "velero", name, group="velero.io")

    def gitlab_build(self, t: float) -> Episode:
        """A CI job in the GitLab Kubernetes executor: build pod created, shell probe exec'd, pod deleted."""
        ua = "gitlab-runner/17.3.1 (linux/amd64)"
        who = self.c.workload("gitlab-runner", "gitlab-runner", "gitlab-runner", ua)
        name = (
            f"runner-{self.c.suffix(8)}-project-{self.rng.randrange(10, 400)}-concurrent-0-{self.c.suffix(8)}"
        )
        docker_in_docker = self.rng.random() < 0.3
        build: dict[str, Any] = {
            "name": "build",
            "image": "registry.acme.dev/ci/build:2024.09",
            "command": ["sh", "-c", RUNNER_SHELL_PROBE],
        }
        containers = [build]
        if docker_in_docker:  # image builds: the docker service container runs privileged
            containers.append(
                {"name": "svc-0", "image": "docker:27.2-dind", "securityContext": {"privileged": True}}
            )
        pod = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "namespace": "gitlab-runner"},
               "spec": {"containers": containers, "restartPolicy": "Never", "serviceAccountName": "default"}}  # fmt: skip
        out = self.api.call(
            t, who, "create", "pods", "gitlab-runner", name, body=pod, response=created(self.c, pod, t, name)
        )
        t += self.rng.uniform(5, 30)
        command = "&".join(f"command={quote(a, safe='')}" for a in ("sh", "-c", RUNNER_SHELL_PROBE))
        out += self.api.call(
            t, who, "create", "pods", "gitlab-runner", name, sub="exec",
            query=f"{command}&container=build&stdin=true&stdout=true&stderr=true", latency=self.rng.uniform(30, 600),
        )  # fmt: skip
        return out + self.api.call(t + 620, who, "delete", "pods", "gitlab-runner", name)

    def kubeadm_admin(self, t: float) -> Episode:
        """The kubeadm admin kubeconfig (system:masters) used on a control-plane node during maintenance."""
        who = Identity(
            "kubernetes-admin", ("kubeadm:cluster-admins", "system:authenticated"), "", "10.20.0.11",
            "kubectl/v1.30.6 (linux/amd64) kubernetes/00f20e4",
            'RBAC: allowed by ClusterRoleBinding "kubeadm:cluster-admins" of ClusterRole "cluster-admin" to Group "kubeadm:cluster-admins"',
        )  # fmt: skip
        out = self.api.call(t, who, "list", "nodes", query="limit=500")
        return out + self.api.call(t + 3, who, "list", "pods", "kube-system", query="limit=500")
