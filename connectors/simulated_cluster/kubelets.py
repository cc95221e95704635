"""Kubelets at work: node leases and status, pod status, the watches and reads of what their pods mount,
TokenRequests for projected service-account tokens, and certificate signing requests with their
approval (client certificate rotation, serving certificates, a new node's bootstrap)."""

from __future__ import annotations

import base64
from typing import Any

from kubesigma.connectors.simulated_cluster.audit import timestamp
from kubesigma.connectors.simulated_cluster.day_traffic import NODES, PODS, SERVICES, DayTraffic
from kubesigma.connectors.simulated_cluster.identities import Identity
from kubesigma.connectors.simulated_cluster.traffic import Episode

_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")


class Kubelets(DayTraffic):
    SCENES = (
        "node_lease",
        "node_status",
        "pod_status",
        "kubelet_watches",
        "kubelet_mounts",
        "kubelet_token",
        "certificate_rotation",
    )

    def _node(self) -> tuple[str, Identity]:
        node = self.rng.choice(self.c.nodes)
        return node, self.c.node(node)

    def node_lease(self, t: float) -> Episode:
        node, who = self._node()
        return self.api.call(
            t,
            who,
            "update",
            "leases",
            "kube-node-lease",
            node,
            group="coordination.k8s.io",
            query="timeout=10s",
        )

    def node_status(self, t: float) -> Episode:
        node, who = self._node()
        beat = timestamp(t)[:19] + "Z"
        patch = {
            "status": {
                "$setElementOrder/conditions": [{"type": k} for k in _CONDITIONS],
                "conditions": [{"type": k, "lastHeartbeatTime": beat} for k in _CONDITIONS],
            }
        }
        return self.api.call(
            t, who, "patch", "nodes", None, node, sub="status", query="timeout=10s", body=patch
        )

    def pod_status(self, t: float) -> Episode:
        ns, pod, _app, node = self.app_pod()
        who = self.c.node(node)
        patch = {
            "metadata": {"uid": self.c.uid_of(f"{ns}/{pod}")},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None}]},
        }
        return self.api.call(t, who, "patch", "pods", ns, pod, sub="status", body=patch)

    def kubelet_watches(self, t: float) -> Episode:
        node, who = self._node()
        kind = self.rng.random()
        if kind < 0.4:
            return self.watch(t, who, PODS, selector=f"fieldSelector=spec.nodeName%3D{node}")
        if kind < 0.6:
            return self.watch(t, who, NODES, selector=f"fieldSelector=metadata.name%3D{node}")
        if kind < 0.8:
            return self.watch(t, who, SERVICES)
        res = self.rng.choice(
            (("node.k8s.io", "v1", "runtimeclasses"), ("storage.k8s.io", "v1", "csidrivers"))
        )
        return self.watch(t, who, res)

    def kubelet_mounts(self, t: float) -> Episode:
        """The per-object watches of the Secrets and ConfigMaps a node's pods mount."""
        ns, _pod, app, node = self.app_pod()
        who = self.c.node(node)
        resource, name = self.rng.choice(
            (
                ("configmaps", "kube-root-ca.crt"),
                ("configmaps", f"{app}-config"),
                ("secrets", f"{app}-db-credentials"),
                ("secrets", f"{app}-tls"),
            )
        )
        selector = f"fieldSelector=metadata.name%3D{name}"
        if self.rng.random() < 0.2:
            return self.relist(t, who, ("", "v1", resource), ns, selector=selector)
        return self.watch(t, who, ("", "v1", resource), ns, selector=selector)

    def kubelet_token(self, t: float) -> Episode:
        """A projected service-account token refreshed (at 80% of its hour) for a pod on the node."""
        ns, _pod, app, node = self.app_pod()
        return self.api.call(t, self.c.node(node), "create", "serviceaccounts", ns, app, sub="token")

    def certificate_rotation(self, t: float) -> Episode:
        node, _who = self._node()
        return self.csr(t, node, serving=self.rng.random() < 0.6)

    # ---- certificates -------------------------------------------------------------------------

    def approver(self, serving: bool) -> Identity:
        """Who approves kubelet CSRs on this platform (client certificates: kube-controller-manager)."""
        if not serving:
            return self.c.controller("certificate-controller")
        if self.platform == "gke":
            return self.c.system_user("system:gcp-controller-manager", self.c.agent("gcp-controller-manager"))
        if self.platform == "eks":
            return self.c.system_user(
                "eks:certificate-controller", self.c.agent("eks-certificates-controller")
            )
        return self.c.workload(
            "kube-system", "kubelet-csr-approver", "kubelet-csr-approver", "kubelet-csr-approver/v1.2.2"
        )

    def csr(self, t: float, node: str, *, serving: bool, bootstrap: Identity | None = None) -> Episode:
        """A kubelet asks for a certificate, the platform's approver approves, the signer issues it."""
        who = bootstrap or self.c.node(node)
        name = f"csr-{self.c.suffix(5)}"
        signer = "kubernetes.io/kubelet-serving" if serving else "kubernetes.io/kube-apiserver-client-kubelet"
        usages = ["digital signature", "server auth"] if serving else ["digital signature", "client auth"]
        pem = f"-----BEGIN CERTIFICATE REQUEST-----\nMIIB{self.c.suffix(40)}\n-----END CERTIFICATE REQUEST-----\n"
        body: dict[str, Any] = {
            "kind": "CertificateSigningRequest",
            "apiVersion": "certificates.k8s.io/v1",
            "metadata": {"generateName": "csr-"},
            "spec": {
                "request": base64.b64encode(pem.encode()).decode(),
                "signerName": signer,
                "usages": usages,
            },
        }
        group = "certificates.k8s.io"
        out = self.api.call(
            t,
            who,
            "create",
            "certificatesigningrequests",
            None,
            group=group,
            body=body,
            response={**body, "metadata": {"name": name}},
        )
        approved: dict[str, Any] = {
            **body,
            "metadata": {"name": name},
            "status": {
                "conditions": [
                    {
                        "type": "Approved",
                        "status": "True",
                        "reason": "AutoApproved",
                        "message": "Auto approving kubelet serving certificate after validation."
                        if serving
                        else "Auto approving kubelet client certificate after SubjectAccessReview.",
                    }
                ]
            },
        }
        t += self.rng.uniform(0.3, 3)
        out += self.api.call(
            t, self.approver(serving), "update", "certificatesigningrequests", None, name, group=group, sub="approval",
            body=approved, response=approved,
        )  # fmt: skip
        t += self.rng.uniform(0.05, 0.5)
        signed = {**approved, "status": {**approved["status"], "certificate": "LS0tLS1CRUdJTi..."}}
        out += self.api.call(
            t, self.c.controller("certificate-controller"), "update", "certificatesigningrequests", None, name,
            group=group, sub="status", body=signed, response=signed,
        )  # fmt: skip
        return out + self.api.call(t + 0.1, who, "get", "certificatesigningrequests", None, name, group=group)
