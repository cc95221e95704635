"""The objects requests carry when a RequestResponse Policy records them: Pods as controllers create
them, the CNI agent's privileged pod spec, and the object as the API server answers a create."""

from __future__ import annotations

from typing import Any

from kubesigma.connectors.simulated_cluster.audit import timestamp
from kubesigma.connectors.simulated_cluster.cluster import Cluster


def pod_spec(
    c: Cluster,
    ns: str,
    name: str | None,
    app: str,
    image: str,
    port: int,
    node: str | None,
    *,
    owner: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A Pod as a ReplicaSet controller creates it: what a RequestResponse audit policy records."""
    rng = c.rng
    meta: dict[str, Any] = {"namespace": ns, "labels": {"app": app, "pod-template-hash": c.suffix(10)}}
    if name:
        meta["name"] = name
    if owner:
        meta["generateName"] = f"{owner[1]}-"
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner[0],
                "name": owner[1],
                "uid": c.uid_of(f"{ns}/{owner[1]}"),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    cpu = rng.choice(("100m", "250m", "500m"))
    mem = rng.choice(("128Mi", "256Mi", "512Mi"))
    container: dict[str, Any] = {
        "name": app,
        "image": image,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [
            {"name": "LOG_LEVEL", "value": rng.choice(("info", "warn", "debug"))},
            {
                "name": "POD_NAME",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
            },
            {
                "name": "DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": f"{app}-db-credentials", "key": "password"}},
            },
        ],
        "resources": {"limits": {"cpu": cpu, "memory": mem}, "requests": {"cpu": cpu, "memory": mem}},
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": port, "scheme": "HTTP"},
            "periodSeconds": 5,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "volumeMounts": [
            {
                "name": "kube-api-access",
                "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            }
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    spec: dict[str, Any] = {
        "volumes": [
            {
                "name": "kube-api-access",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "path": "namespace",
                                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                    }
                                ]
                            }
                        },
                    ],
                    "defaultMode": 420,
                },
            }
        ],
        "containers": [container],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": app,
        "serviceAccount": app,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
        "priority": 0,
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
    }
    if node:
        spec["nodeName"] = node
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": {}}


def created(c: Cluster, obj: dict[str, Any], t: float, name: str) -> dict[str, Any]:
    """The object as the API server answers a create: name, uid, resourceVersion, creation time."""
    resp = dict(obj)
    meta = dict(obj["metadata"])
    meta.update(
        name=name,
        uid=c.uuid(),
        resourceVersion=c.next_rv(),
        creationTimestamp=timestamp(t)[:19] + "Z",
    )
    resp["metadata"] = meta
    if obj.get("kind") == "Pod":
        resp["status"] = {"phase": "Pending", "qosClass": "Guaranteed"}
    return resp


def cni_pod_spec(image: str) -> dict[str, Any]:
    """The CNI agent's pod spec (Cilium's): host network, privileged, the node's CNI and BPF paths mounted."""
    mounts = (
        ("cni-path", "/opt/cni/bin", "/host/opt/cni/bin"),
        ("etc-cni-netd", "/etc/cni/net.d", "/host/etc/cni/net.d"),
        ("lib-modules", "/lib/modules", "/lib/modules"),
        ("xtables-lock", "/run/xtables.lock", "/run/xtables.lock"),
        ("bpf-maps", "/sys/fs/bpf", "/sys/fs/bpf"),
    )
    return {
        "hostNetwork": True,
        "priorityClassName": "system-node-critical",
        "serviceAccountName": "cilium",
        "containers": [
            {
                "name": "cilium-agent",
                "image": image,
                "command": ["cilium-agent"],
                "args": ["--config-dir=/tmp/cilium/config-map"],
                "securityContext": {
                    "privileged": True,
                    "capabilities": {"add": ["NET_ADMIN", "SYS_MODULE", "SYS_ADMIN"]},
                },
                "volumeMounts": [{"name": n, "mountPath": m} for n, _p, m in mounts],
            }
        ],
        "volumes": [{"name": n, "hostPath": {"path": p, "type": "DirectoryOrCreate"}} for n, p, _m in mounts],
        "tolerations": [{"operator": "Exists"}],
    }


# ---- the objects of a busy cluster's deploys (CI, GitOps, operators) ----------------------------


def pod_template(c: Cluster, ns: str, app: str, image: str, port: int) -> dict[str, Any]:
    """A Deployment's pod template: the Pod of `pod_spec` without kind, apiVersion and status."""
    pod = pod_spec(c, ns, None, app, image, port, None)
    meta = {"labels": {"app": app}, "annotations": {"prometheus.io/scrape": "true"}}
    return {"metadata": meta, "spec": pod["spec"]}


def deployment(c: Cluster, ns: str, app: str, image: str, port: int, replicas: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "namespace": ns, "labels": {"app": app, "app.kubernetes.io/part-of": ns}},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app": app}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": pod_template(c, ns, app, image, port),
        },
    }


def service(ns: str, app: str, port: int, kind: str = "ClusterIP") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": kind,
        "selector": {"app": app},
        "ports": [{"name": "http", "port": 80, "targetPort": port, "protocol": "TCP"}],
    }
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "namespace": ns}, "spec": spec}


def config_map(ns: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    }


def ingress(ns: str, app: str, host: str, tls: bool) -> dict[str, Any]:
    rule = {
        "host": host,
        "http": {
            "paths": [
                {
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": app, "port": {"number": 80}}},
                }
            ]
        },
    }
    spec: dict[str, Any] = {"ingressClassName": "nginx", "rules": [rule]}
    annotations = {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"}
    if tls:
        spec["tls"] = [{"hosts": [host], "secretName": f"{app}-tls"}]
        annotations["cert-manager.io/cluster-issuer"] = "letsencrypt"
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": app, "namespace": ns, "annotations": annotations},
        "spec": spec,
    }


def autoscaler(ns: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": app, "namespace": ns},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
            "minReplicas": 3,
            "maxReplicas": 12,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }


def owned_by(
    obj: dict[str, Any], c: Cluster, kind: str, name: str, api_version: str = "apps/v1"
) -> dict[str, Any]:
    """`obj` with the ownerReferences its controller sets (a ReplicaSet's Deployment, a Pod's Job ...)."""
    meta = dict(obj.get("metadata", {}))
    ns = meta.get("namespace", "")
    meta["ownerReferences"] = [
        {
            "apiVersion": api_version,
            "kind": kind,
            "name": name,
            "uid": c.uid_of(f"{ns}/{name}"),
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    return {**obj, "metadata": meta}
