"""Benign requests that look like attacks at first sight, so rules are tested against them: anonymous
health checks, a webhook reading its own secret, a CNI DaemonSet's privileged pods, refused scanners."""

from __future__ import annotations

from kubesigma.connectors.simulated_cluster.attacks import ATTACKER_IPS
from kubesigma.connectors.simulated_cluster.audit import api_path, object_ref
from kubesigma.connectors.simulated_cluster.identities import PUBLIC_INFO_VIEWER, anonymous, rbac_reason
from kubesigma.connectors.simulated_cluster.manifests import cni_pod_spec, created
from kubesigma.connectors.simulated_cluster.traffic import Episode, Traffic


class LookAlikes(Traffic):
    """Benign look-alikes of the attacks."""

    SCENES = ("health_check", "own_secret", "cni_daemonset", "anonymous_denied")

    def health_check(self, t: float) -> Episode:
        """kube-probe and the load balancer ask /healthz, /livez, /readyz unauthenticated: allowed, harmless."""
        path = self.rng.choice(("/healthz", "/livez", "/readyz", "/readyz?verbose", "/livez?exclude=etcd"))
        ip, ua = self.rng.choice((("127.0.0.1", "kube-probe/1.29"), ("10.0.0.4", "ELB-HealthChecker/2.0")))
        who = anonymous(ip, ua, PUBLIC_INFO_VIEWER)
        return self.audit.request(t, who, "get", path, None)

    def own_secret(self, t: float) -> Episode:
        """A controller reads the secret it owns (the ingress admission webhook's certificate)."""
        who = self.cluster.service_account(
            "ingress-nginx",
            "ingress-nginx-admission",
            "10.244.2.17",
            "kube-webhook-certgen/v1.4.1 (linux/amd64) kubernetes/$Format",
            rbac_reason(
                "RoleBinding",
                "ingress-nginx-admission",
                "ingress-nginx-admission",
                "ServiceAccount",
                "ingress-nginx/ingress-nginx-admission",
            ),
            pod="ingress-nginx-admission-create-6pz4k",
        )
        name = "ingress-nginx-admission"
        return self.audit.request(
            t,
            who,
            "get",
            api_path("secrets", "ingress-nginx", name),
            object_ref("secrets", "ingress-nginx", name),
        )

    def cni_daemonset(self, t: float) -> Episode:
        """The addon manager installs the CNI DaemonSet; the DaemonSet controller creates its privileged pods."""
        who = self.cluster.component(
            "system:addon-manager", "kubectl/v1.29.4 (linux/amd64) kubernetes/55019c8"
        )
        image = "quay.io/cilium/cilium:v1.15.4"
        template = {
            "metadata": {"labels": {"k8s-app": "cilium"}},
            "spec": cni_pod_spec(image),
        }
        ds = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "cilium", "namespace": "kube-system", "labels": {"k8s-app": "cilium"}},
            "spec": {"selector": {"matchLabels": {"k8s-app": "cilium"}}, "template": template},
        }
        out = self.audit.request(
            t,
            who,
            "create",
            api_path("daemonsets", "kube-system", group="apps/v1"),
            object_ref("daemonsets", "kube-system", "cilium", apiGroup="apps"),
            code=201,
            level="RequestResponse",
            request_object=ds,
            response_object=created(self.cluster, ds, t, "cilium"),
        )
        dsc = self.cluster.controller("daemon-set-controller")
        for i, node in enumerate(self.cluster.nodes):
            name = f"cilium-{self.cluster.suffix(5)}"
            pod = {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": {
                    "generateName": "cilium-",
                    "namespace": "kube-system",
                    "labels": {"k8s-app": "cilium", "controller-revision-hash": self.cluster.suffix(10)},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "DaemonSet",
                            "name": "cilium",
                            "uid": self.cluster.uid_of("kube-system/cilium"),
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": {**cni_pod_spec(image), "nodeName": node},
                "status": {},
            }
            out += self.audit.request(
                t + 0.4 + 0.03 * i,
                dsc,
                "create",
                api_path("pods", "kube-system"),
                object_ref("pods", "kube-system", name),
                code=201,
                level="RequestResponse",
                request_object=pod,
                response_object=created(self.cluster, pod, t, name),
                annotations={"pod-security.kubernetes.io/enforce-policy": "privileged:latest"},
            )
        return out

    def anonymous_denied(self, t: float) -> Episode:
        """Internet scanners probing the API: refused, as they should be."""
        who = anonymous(self.rng.choice(ATTACKER_IPS), "Go-http-client/1.1")
        path = self.rng.choice(
            ("/api/v1/namespaces/kube-system/secrets", "/apis/apps/v1/deployments", "/api/v1/nodes")
        )
        resource = path.rsplit("/", 1)[1]
        ns = "kube-system" if "namespaces" in path else None
        return self.audit.request(
            t, who, "list", path, object_ref(resource, ns), code=403, decision="forbid", reason=""
        )
