"""The node agents each platform runs as DaemonSets with access to the host (CNI, CSI, kube-proxy, log,
metrics and security agents), and the pods the DaemonSet controller creates for them: the privileged,
hostPath and host-namespace specs that system identities write every time a node joins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NodeAgent:
    name: str
    namespace: str
    service_account: str
    image: str
    host_network: bool = False
    host_pid: bool = False
    privileged: bool = False
    capabilities: tuple[str, ...] = ()
    host_paths: tuple[tuple[str, str], ...] = ()  # (host path, mount path)
    read_only_root: bool = False  # mounts the node's / read-only (metrics and log agents)
    # A privileged init container prepares the node (the VPC CNI's aws-vpc-cni-init).
    privileged_init: bool = False

    def template(self) -> dict[str, Any]:
        """The pod template of the DaemonSet (what its manifests and the addon managers apply)."""
        mounts: list[dict[str, Any]] = [
            {"name": self._volume(i), "mountPath": m} for i, (_p, m) in enumerate(self.host_paths)
        ]
        volumes: list[dict[str, Any]] = [
            {"name": self._volume(i), "hostPath": {"path": p, "type": ""}}
            for i, (p, _m) in enumerate(self.host_paths)
        ]
        if self.read_only_root:
            mounts.append({"name": "rootfs", "mountPath": "/rootfs", "readOnly": True})
            volumes.append({"name": "rootfs", "hostPath": {"path": "/", "type": ""}})
        security: dict[str, Any] = {}
        if self.privileged:
            security["privileged"] = True
        if self.capabilities:
            security["capabilities"] = {"add": list(self.capabilities)}
        container: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
            "volumeMounts": mounts,
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
        }
        if security:
            container["securityContext"] = security
        spec: dict[str, Any] = {
            "containers": [container],
            "volumes": volumes,
            "serviceAccountName": self.service_account,
            "priorityClassName": "system-node-critical",
            "tolerations": [{"operator": "Exists"}],
            "dnsPolicy": "ClusterFirstWithHostNet" if self.host_network else "ClusterFirst",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
        }
        if self.host_network:
            spec["hostNetwork"] = True
        if self.host_pid:
            spec["hostPID"] = True
        if self.privileged_init:
            spec["initContainers"] = [
                {
                    "name": f"{self.name}-init",
                    "image": self.image.replace(self.name, f"{self.name}-init"),
                    "securityContext": {"privileged": True},
                    "volumeMounts": mounts[:1],
                }
            ]
        return {"metadata": {"labels": {"k8s-app": self.name}}, "spec": spec}

    @staticmethod
    def _volume(i: int) -> str:
        return f"host-{i}"


_XTABLES = ("/run/xtables.lock", "/run/xtables.lock")
_CNI = (("/opt/cni/bin", "/host/opt/cni/bin"), ("/etc/cni/net.d", "/host/etc/cni/net.d"))
_KUBELET_CSI = (
    ("/var/lib/kubelet", "/var/lib/kubelet"),
    ("/var/lib/kubelet/plugins_registry", "/registration"),
    ("/dev", "/dev"),
)
NODE_EXPORTER = NodeAgent(
    "node-exporter",
    "monitoring",
    "node-exporter",
    "quay.io/prometheus/node-exporter:v1.8.2",
    host_network=True,
    host_pid=True,
    host_paths=(("/proc", "/host/proc"), ("/sys", "/host/sys")),
    read_only_root=True,
)

AGENTS: dict[str, tuple[NodeAgent, ...]] = {
    "gke": (
        NodeAgent(
            "fluentbit-gke",
            "kube-system",
            "fluentbit-gke",
            "gke.gcr.io/fluent-bit:v1.8.12-gke.29",
            host_paths=(
                ("/var/log", "/var/log"),
                ("/var/lib/docker/containers", "/var/lib/docker/containers"),
            ),
        ),
        NodeAgent(
            "gke-metrics-agent",
            "kube-system",
            "gke-metrics-agent",
            "gke.gcr.io/gke-metrics-agent:1.14.3-gke.0",
            host_network=True,
            host_paths=(("/proc", "/host/proc"),),
        ),
        NodeAgent(
            "pdcsi-node",
            "kube-system",
            "pdcsi-node-sa",
            "gke.gcr.io/gcp-compute-persistent-disk-csi-driver:v1.13.2-gke.0",
            privileged=True,
            host_paths=_KUBELET_CSI,
        ),
        NodeAgent(
            "netd",
            "kube-system",
            "netd",
            "gke.gcr.io/netd:v0.5.1-gke.3",
            host_network=True,
            privileged=True,
            host_paths=_CNI,
        ),
        NodeAgent(
            "gke-metadata-server",
            "kube-system",
            "gke-metadata-server",
            "gke.gcr.io/gke-metadata-server:20240814_2300_RC0",
            host_network=True,
            privileged=True,
            host_paths=(("/var/lib/kubelet/pod-resources", "/var/lib/kubelet/pod-resources"),),
        ),
    ),
    "eks": (
        NodeAgent(
            "aws-node",
            "kube-system",
            "aws-node",
            "602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni:v1.18.3-eksbuild.2",
            host_network=True,
            capabilities=("NET_ADMIN", "NET_RAW"),
            host_paths=(
                *_CNI,
                ("/var/log/aws-routed-eni", "/host/var/log/aws-routed-eni"),
                ("/var/run/aws-node", "/var/run/aws-node"),
                _XTABLES,
            ),
            privileged_init=True,
        ),
        NodeAgent(
            "kube-proxy",
            "kube-system",
            "kube-proxy",
            "602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/kube-proxy:v1.30.3-minimal-eksbuild.5",
            host_network=True,
            privileged=True,
            host_paths=(("/var/log", "/var/log"), _XTABLES, ("/lib/modules", "/lib/modules")),
        ),
        NodeAgent(
            "ebs-csi-node",
            "kube-system",
            "ebs-csi-node-sa",
            "602401143452.dkr.ecr.eu-west-1.amazonaws.com/eks/aws-ebs-csi-driver:v1.34.0",
            privileged=True,
            host_paths=_KUBELET_CSI,
        ),
        NodeAgent(
            "cloudwatch-agent",
            "amazon-cloudwatch",
            "cloudwatch-agent",
            "public.ecr.aws/cloudwatch-agent/cloudwatch-agent:1.300044.0b793",
            host_paths=(
                ("/run/containerd/containerd.sock", "/run/containerd/containerd.sock"),
                ("/sys", "/sys"),
                ("/dev/disk", "/dev/disk"),
            ),
            read_only_root=True,
        ),
        NodeAgent(
            "fluent-bit",
            "amazon-cloudwatch",
            "fluent-bit",
            "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.2.20240820",
            host_paths=(("/var/log", "/var/log"), ("/var/fluent-bit/state", "/var/fluent-bit/state")),
        ),
        NodeAgent(
            "aws-guardduty-agent",
            "amazon-guardduty",
            "aws-guardduty-agent",
            "602401143452.dkr.ecr.eu-west-1.amazonaws.com/aws-guardduty-agent:v1.7.1",
            host_pid=True,
            capabilities=("SYS_ADMIN", "SYS_RESOURCE", "SYS_PTRACE", "BPF", "PERFMON"),
            host_paths=(("/proc", "/host/proc"), ("/sys/kernel/debug", "/sys/kernel/debug")),
        ),
        NODE_EXPORTER,
    ),
    "self-managed": (
        NodeAgent(
            "kube-proxy",
            "kube-system",
            "kube-proxy",
            "registry.k8s.io/kube-proxy:v1.30.6",
            host_network=True,
            privileged=True,
            host_paths=(_XTABLES, ("/lib/modules", "/lib/modules")),
        ),
        NodeAgent(
            "calico-node",
            "calico-system",
            "calico-node",
            "docker.io/calico/node:v3.28.1",
            host_network=True,
            privileged=True,
            host_paths=(
                *_CNI,
                ("/lib/modules", "/lib/modules"),
                ("/var/run/calico", "/var/run/calico"),
                ("/var/lib/calico", "/var/lib/calico"),
                ("/sys/fs/bpf", "/sys/fs/bpf"),
                _XTABLES,
            ),
            privileged_init=True,
        ),
        NodeAgent(
            "longhorn-manager",
            "longhorn-system",
            "longhorn-service-account",
            "docker.io/longhornio/longhorn-manager:v1.7.1",
            privileged=True,
            host_paths=(
                ("/dev", "/host/dev"),
                ("/proc", "/host/proc"),
                ("/var/lib/longhorn", "/var/lib/longhorn"),
            ),
        ),
        NodeAgent(
            "speaker",
            "metallb-system",
            "speaker",
            "quay.io/metallb/speaker:v0.14.8",
            host_network=True,
            capabilities=("NET_RAW",),
        ),
        NODE_EXPORTER,
    ),
}
