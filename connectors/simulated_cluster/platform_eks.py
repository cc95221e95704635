"""EKS's own traffic: the eks:* users of the managed control plane (metrics, cloud controller, network
policy, CoreDNS autoscaler, VPC resource controller, az-poller's refused lease reads), the EKS add-on
manager applying add-ons from AWS public addresses, and the AWS agents in the cluster (VPC CNI, EBS CSI
with its leader leases, CloudWatch agent and Fluent Bit, Karpenter, Grafana Alloy scraping kubelets
through the API server's node proxy)."""

from __future__ import annotations

from kubesigma.connectors.simulated_cluster.agents import AGENTS
from kubesigma.connectors.simulated_cluster.day_traffic import (
    CONFIGMAPS,
    ENDPOINTSLICES,
    NAMESPACES,
    NODES,
    PODS,
    PVCS,
    PVS,
    SERVICES,
    DayTraffic,
)
from kubesigma.connectors.simulated_cluster.identities import Identity
from kubesigma.connectors.simulated_cluster.traffic import Episode

# The add-on manager and node manager run in AWS-owned accounts and call the public endpoint.
AWS_MANAGER_IPS = ("3.248.180.27", "52.30.212.145", "54.170.88.3")


class EksTraffic(DayTraffic):
    SCENES = (
        "eks_components",
        "eks_addon_manager",
        "eks_az_poller",
        "aws_node",
        "ebs_csi",
        "cloudwatch_agent",
        "karpenter",
        "alloy_scrape",
    )

    def _eks(self, user: str, ua: str, ip: str | None = None) -> Identity:
        return self.c.system_user(user, ua, ip=ip, role=user)

    def eks_components(self, t: float) -> Episode:
        # Shares from an EKS cluster's top callers (k8s-metrics, cloud controller, network policy ...).
        kind = self.rng.random()
        if kind < 0.27:
            who = self._eks("eks:k8s-metrics", self.c.agent("eks-k8s-metrics"))
            if self.rng.random() < 0.5:
                return self.api.call(t, who, "get", None, path="/metrics")
            return self.informer(t, who, (NODES, PODS, NAMESPACES))
        if kind < 0.49:
            who = self._eks("eks:cloud-controller-manager", self.c.agent("aws-cloud-controller-manager"))
            if self.rng.random() < 0.2:
                node = self.rng.choice(self.c.nodes)
                patch = {"metadata": {"labels": {"topology.k8s.aws/zone-id": "euw1-az2"}}}
                return self.api.call(t, who, "patch", "nodes", None, node, body=patch, response=patch)
            return self.informer(t, who, (NODES, SERVICES))
        if kind < 0.62:
            who = self._eks("eks:network-policy-controller", self.c.agent("network-policy-controller"))
            res = ("networking.k8s.aws", "v1alpha1", "policyendpoints")
            return self.informer(
                t, who, (PODS, NAMESPACES, ("networking.k8s.io", "v1", "networkpolicies"), res)
            )
        if kind < 0.84:
            who = self._eks("eks:coredns-autoscaler", "cluster-proportional-autoscaler/v1.8.9")
            if self.rng.random() < 0.5:
                return self.api.call(t, who, "list", "nodes", query="limit=500")
            return self.api.call(
                t, who, "get", "deployments", "kube-system", "coredns", group="apps", sub="scale"
            )
        if kind < 0.93:
            who = self._eks("eks:vpc-resource-controller", self.c.agent("vpc-resource-controller"))
            return self.informer(t, who, (NODES, PODS, ("vpcresources.k8s.aws", "v1alpha1", "cninodes")))
        user = self.rng.choice(("eks:tagging-controller", "eks:nodewatcher", "eks:service-operations"))
        return self.informer(t, self._eks(user, self.c.agent(user.split(":")[1])), (NODES, PODS))

    def eks_addon_manager(self, t: float) -> Episode:
        """The managed add-ons reconciled with server-side apply, from an AWS-owned address."""
        who = Identity(
            "eks:addon-manager", ("system:authenticated",), "", self.rng.choice(AWS_MANAGER_IPS), "eks-addon-manager/v1.0",
            'RBAC: allowed by ClusterRoleBinding "eks:addon-manager" of ClusterRole "eks:addon-manager" to User "eks:addon-manager"',
            extra=(("arn", f"arn:aws:sts::{self.c.platform.project}:assumed-role/AWSWesleyClusterManagerLambda-Add-AddonManagerRole/1731945601"),),
        )  # fmt: skip
        agent = self.rng.choice([a for a in AGENTS["eks"] if a.namespace == "kube-system"])
        if self.rng.random() < 0.8:
            return self.api.call(t, who, "get", "daemonsets", "kube-system", agent.name, group="apps")
        body = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": agent.name, "namespace": "kube-system", "labels": {"k8s-app": agent.name}},
            "spec": {"selector": {"matchLabels": {"k8s-app": agent.name}}, "template": agent.template()},
        }
        return self.api.call(
            t, who, "patch", "daemonsets", "kube-system", agent.name, group="apps",
            query="fieldManager=eks&force=true", body=body, response=body,
        )  # fmt: skip

    def eks_az_poller(self, t: float) -> Episode:
        """eks:az-poller reads a lease it is not allowed to read: the only 403s of a quiet EKS cluster."""
        who = self._eks("eks:az-poller", "az-poller/v0.0.0")
        return self.api.call(
            t, who, "get", "leases", "kube-system", "az-poller", group="coordination.k8s.io", deny="rbac"
        )

    def aws_node(self, t: float) -> Episode:
        """The VPC CNI on each node watches its pods and node; its node agent watches policy endpoints."""
        node = self.rng.choice(self.c.nodes)
        who = self.c.workload(
            "kube-system", "aws-node", "aws-node", "amazon-vpc-cni-k8s/v1.18.3 (linux/amd64)"
        )
        if self.rng.random() < 0.6:
            return self.watch(t, who, PODS, selector=f"fieldSelector=spec.nodeName%3D{node}")
        return self.informer(
            t,
            who,
            (
                NODES,
                ("crd.k8s.amazonaws.com", "v1alpha1", "eniconfigs"),
                ("networking.k8s.aws", "v1alpha1", "policyendpoints"),
            ),
        )

    def ebs_csi(self, t: float) -> Episode:
        """The EBS CSI controller's sidecars each hold a leader lease, renewed every few seconds."""
        ua = "csi-provisioner/v5.0.2 (linux/amd64) kubernetes/$Format"
        who = self.c.workload("kube-system", "ebs-csi-controller-sa", "ebs-csi-controller", ua)
        if self.rng.random() < 0.8:
            lease = self.rng.choice(
                (
                    "ebs-csi-aws-com",
                    "external-attacher-leader-ebs-csi-aws-com",
                    "external-resizer-ebs-csi-aws-com",
                )
            )
            return self.lease(t, who, "kube-system", lease)
        return self.informer(
            t,
            who,
            (PVS, PVCS, ("storage.k8s.io", "v1", "volumeattachments"), ("storage.k8s.io", "v1", "csinodes")),
        )

    def cloudwatch_agent(self, t: float) -> Episode:
        if self.rng.random() < 0.3:
            who = self.c.workload("amazon-cloudwatch", "fluent-bit", "fluent-bit", "fluent-bit/2.32.2")
            ns, pod, _app, _node = self.app_pod()
            return self.api.call(t, who, "get", "pods", ns, pod)
        who = self.c.workload(
            "amazon-cloudwatch", "cloudwatch-agent", "cloudwatch-agent", "cwagent/1.300044.0 (linux/amd64)"
        )
        if self.rng.random() < 0.3:
            return self.api.call(t, who, "update", "configmaps", "amazon-cloudwatch", "cwagent-clusterleader")
        return self.informer(t, who, (PODS, NODES, ENDPOINTSLICES, SERVICES, ("apps", "v1", "replicasets")))

    def karpenter(self, t: float) -> Episode:
        who = self.c.workload("karpenter", "karpenter", "karpenter", "karpenter/v1.0.6")
        if self.rng.random() < 0.4:
            return self.lease(t, who, "karpenter", "karpenter-leader-election")
        crds = (
            ("karpenter.sh", "v1", "nodeclaims"),
            ("karpenter.sh", "v1", "nodepools"),
            ("karpenter.k8s.aws", "v1", "ec2nodeclasses"),
        )
        return self.informer(t, who, (*crds, NODES, PODS, CONFIGMAPS))

    def alloy_scrape(self, t: float) -> Episode:
        """Grafana Alloy scrapes each kubelet's cAdvisor metrics through the API server's node proxy."""
        who = self.c.workload("monitoring", "alloy", "alloy", "Alloy/v1.3.1 (linux; helm)")
        node = self.rng.choice(self.c.nodes)
        path = f"/api/v1/nodes/{node}/proxy/metrics/cadvisor"
        return self.api.call(
            t, who, "get", "nodes", None, node, sub="proxy", path=path, latency=self.rng.uniform(0.2, 1.5)
        )
