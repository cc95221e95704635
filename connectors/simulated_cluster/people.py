"""People and CI at work in office hours: the CI system applying an app's Deployment, Service,
ConfigMap, Ingress and HPA (kubectl apply or Helm, then watching the rollout), and engineers with
kubectl (get and describe, logs, rollout restart and scale, exec with ordinary commands,
port-forward to a database, auth can-i, reading an app's Secrets, kubectl debug, now and then cp), and a
platform admin installing or upgrading a chart in kube-system with Helm."""

from __future__ import annotations

from urllib.parse import quote

from kubesigma.connectors.simulated_cluster.audit import timestamp
from kubesigma.connectors.simulated_cluster.day_traffic import DayTraffic
from kubesigma.connectors.simulated_cluster.gitops import GitOps
from kubesigma.connectors.simulated_cluster.identities import Identity
from kubesigma.connectors.simulated_cluster.manifests import (
    autoscaler,
    config_map,
    deployment,
    ingress,
    service,
)
from kubesigma.connectors.simulated_cluster.platforms import APPS, DATABASES, HELM, KUBECTL_OLD
from kubesigma.connectors.simulated_cluster.traffic import Episode
from kubesigma.connectors.simulated_cluster.workloads import Workloads

# What engineers run inside app containers when something looks wrong.
DEBUG_COMMANDS = (
    ("sh",),
    ("bash",),
    ("env",),
    ("ls", "-la", "/app"),
    ("cat", "/app/config/application.yaml"),
    ("ps", "aux"),
    ("df", "-h"),
    ("nslookup", "postgres.data.svc.cluster.local"),
    ("curl", "-s", "localhost:8080/healthz"),
    ("sh", "-c", "tail -n 100 /var/log/app/error.log"),
    ("java", "-version"),
    ("redis-cli", "-h", "redis-master.data", "ping"),
)


def exec_query(command: tuple[str, ...], container: str, interactive: bool) -> str:
    """An exec request's query, as kubectl encodes it (one `command` per argument)."""
    args = "&".join(f"command={quote(a, safe='')}" for a in command)
    streams = "stdin=true&stdout=true&tty=true" if interactive else "stderr=true&stdout=true"
    return f"{args}&container={container}&{streams}"


class People(DayTraffic):
    SCENES = (
        "ci_deploy",
        "admin_kubectl",
        "admin_exec",
        "admin_port_forward",
        "admin_debug",
        "admin_secrets",
        "admin_helm_kube_system",
    )

    def _workloads(self) -> Workloads:
        return Workloads(self.c, self.api)

    def ci_deploy(self, t: float) -> Episode:
        """CI ships a new version of an app: applies its manifests and waits for the rollout."""
        who = self.c.ci()
        ns = self.rng.choice(tuple(APPS))
        app, image, port = self.rng.choice(APPS[ns])
        tag = f"{self.rng.randrange(1, 6)}.{self.rng.randrange(30)}.{self.rng.randrange(12)}"
        new_image = image.rsplit(":", 1)[0] + ":" + tag
        out = self.discovery(t, who)
        t += self.rng.uniform(0.2, 1.0)
        if who.user_agent == HELM:
            out += GitOps(self.c, self.api).helm_release(t, who, ns, app)
            t += self.rng.uniform(1, 3)
        manager = "helm" if who.user_agent == HELM else "kubectl-client-side-apply"
        objects = [
            ("", "configmaps", f"{app}-config", config_map(ns, f"{app}-config", {"LOG_LEVEL": "info", "DB_HOST": "postgres.data"})),
            ("", "services", app, service(ns, app, port, "LoadBalancer" if app == "web" and self.rng.random() < 0.3 else "ClusterIP")),
            ("apps", "deployments", app, deployment(self.c, ns, app, new_image, port)),
            ("autoscaling", "horizontalpodautoscalers", app, autoscaler(ns, app)),
        ]  # fmt: skip
        if app in ("web", "auth", "api"):
            host = f"{app}.{ns}.acme.dev"
            objects.append(
                ("networking.k8s.io", "ingresses", app, ingress(ns, app, host, tls=self.rng.random() < 0.8))
            )
        dry_run = self.rng.random() < 0.3
        for group, resource, name, obj in objects:
            version = "v2" if group == "autoscaling" else "v1"
            out += self.api.call(t, who, "get", resource, ns, name, group=group, version=version)
            t += self.rng.uniform(0.02, 0.2)
            if dry_run:
                out += self.api.call(
                    t, who, "patch", resource, ns, name, group=group, version=version,
                    query=f"dryRun=All&fieldManager={manager}", body=obj, response=obj,
                )  # fmt: skip
            out += self.api.call(
                t + 0.05, who, "patch", resource, ns, name, group=group, version=version,
                query=f"fieldManager={manager}", body=obj, response=obj,
            )  # fmt: skip
            t += self.rng.uniform(0.05, 0.4)
        out += self._workloads().rollout(t + 1, ns, app, new_image, port)
        # `kubectl rollout status`: a watch of the Deployment until it is available.
        return out + self.api.call(
            t + 0.5, who, "watch", "deployments", ns, group="apps",
            query=f"fieldSelector=metadata.name%3D{app}&watch=true", latency=self.rng.uniform(30, 150),
        )  # fmt: skip

    # ---- kubectl ----------------------------------------------------------------------------------

    def admin_kubectl(self, t: float) -> Episode:
        who = self.c.person()
        ns, pod, app, _node = self.app_pod()
        kind = self.rng.random()
        out = self.discovery(t, who) if self.rng.random() < 0.3 else []
        t += 0.1
        if kind < 0.3:
            out += self.api.call(t, who, "list", "pods", ns, query="limit=500")
            return out + self.api.call(t + 2, who, "get", "pods", ns, pod)
        if kind < 0.45:
            follow = self.rng.random() < 0.3
            query = f"container={app}" + ("&follow=true" if follow else "&tailLines=200")
            latency = self.rng.uniform(30, 900) if follow else self.rng.uniform(0.1, 0.6)
            return out + self.api.call(
                t, who, "get", "pods", ns, pod, sub="log", query=query, latency=latency
            )
        if kind < 0.55:
            out += self.api.call(t, who, "get", "deployments", ns, app, group="apps")
            return out + self.api.call(
                t + 0.1, who, "list", "pods", ns, query=f"labelSelector=app%3D{app}&limit=500"
            )
        if kind < 0.6:
            return out + self.api.call(t, who, "list", "pods", ns, group="metrics.k8s.io", version="v1beta1")
        if kind < 0.65:
            return out + self.api.call(t, who, "list", "nodes", query="limit=500")
        if kind < 0.7:
            # `kubectl rollout restart`: the template's restartedAt annotation changes, the pods roll.
            stamp = timestamp(t)[:19] + "Z"
            patch = {
                "spec": {
                    "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}
                }
            }
            out += self.api.call(
                t,
                who,
                "patch",
                "deployments",
                ns,
                app,
                group="apps",
                query="fieldManager=kubectl-rollout",
                body=patch,
                response=patch,
            )
            _a, image, port = next(a for a in APPS[ns] if a[0] == app)
            return out + self._workloads().rollout(t + 0.5, ns, app, image, port)
        if kind < 0.75:
            scale = {"spec": {"replicas": self.rng.randrange(2, 8)}}
            return out + self.api.call(
                t, who, "patch", "deployments", ns, app, group="apps", sub="scale", body=scale, response=scale
            )
        if kind < 0.82:
            # `kubectl auth can-i` (with --list: the rules review).
            review = {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                      "spec": {"resourceAttributes": {"namespace": ns, "verb": "delete", "resource": "pods"}}}  # fmt: skip
            if self.rng.random() < 0.4:
                review = {
                    "kind": "SelfSubjectRulesReview",
                    "apiVersion": "authorization.k8s.io/v1",
                    "spec": {"namespace": ns},
                }
                return out + self.api.call(
                    t,
                    who,
                    "create",
                    "selfsubjectrulesreviews",
                    None,
                    group="authorization.k8s.io",
                    body=review,
                    response=review,
                )
            return out + self.api.call(
                t,
                who,
                "create",
                "selfsubjectaccessreviews",
                None,
                group="authorization.k8s.io",
                body=review,
                response=review,
            )
        if kind < 0.86:
            edit = config_map(ns, f"{app}-config", {"LOG_LEVEL": "debug", "DB_HOST": "postgres.data"})
            return out + self.api.call(
                t,
                who,
                "patch",
                "configmaps",
                ns,
                f"{app}-config",
                query="fieldManager=kubectl-edit",
                body=edit,
                response=edit,
            )
        if kind < 0.9:
            return out + self.api.call(t, who, "delete", "pods", ns, pod)
        if kind < 0.94 and self.platform == "gke":
            console = Identity(
                who.username, who.groups, who.uid, who.source_ip, "GoogleCloudConsole", who.reason
            )
            return self.api.call(t, console, "list", "deployments", ns, group="apps")
        res = self.rng.choice(("clusterrolebindings", "clusterroles", "namespaces", "ingresses"))
        group = {"namespaces": "", "ingresses": "networking.k8s.io"}.get(res, "rbac.authorization.k8s.io")
        return out + self.api.call(t, who, "list", res, group=group, query="limit=500")

    def _exec(
        self, t: float, who: Identity, ns: str, pod: str, container: str, command: tuple[str, ...]
    ) -> Episode:
        interactive = command in (("sh",), ("bash",))
        verb = "create" if who.user_agent == KUBECTL_OLD else "get"  # kubectl >= 1.30 execs over WebSocket
        duration = self.rng.uniform(60, 1800) if interactive else self.rng.uniform(0.5, 4)
        out = self.api.call(t, who, "get", "pods", ns, pod)
        return out + self.api.call(
            t + 0.1,
            who,
            verb,
            "pods",
            ns,
            pod,
            sub="exec",
            query=exec_query(command, container, interactive),
            latency=duration,
        )

    def admin_exec(self, t: float) -> Episode:
        who = self.c.person()
        ns, pod, app, _node = self.app_pod()
        if self.rng.random() < 0.03:
            # A heap dump copied out for analysis: `kubectl cp` runs tar in the container.
            return self._exec(t, who, ns, pod, app, ("tar", "cf", "-", "/tmp/heapdump.hprof"))
        return self._exec(t, who, ns, pod, app, self.rng.choice(DEBUG_COMMANDS))

    def admin_port_forward(self, t: float) -> Episode:
        who = self.c.person()
        ns, pod, port = self.rng.choice(DATABASES)
        out = self.api.call(t, who, "get", "pods", ns, pod)
        verb = "create" if self.rng.random() < 0.7 else "get"
        return out + self.api.call(
            t + 0.1,
            who,
            verb,
            "pods",
            ns,
            pod,
            sub="portforward",
            query=f"ports={port}",
            latency=self.rng.uniform(120, 3600),
        )

    def admin_secrets(self, t: float) -> Episode:
        """`kubectl get secrets -n <app>` and a look at one of them."""
        who = self.c.person()
        ns = self.rng.choice(tuple(APPS))
        app = self.rng.choice(APPS[ns])[0]
        out = self.api.call(t, who, "list", "secrets", ns, query="limit=500")
        if self.rng.random() < 0.5:
            out += self.api.call(
                t + self.rng.uniform(3, 20), who, "get", "secrets", ns, f"{app}-db-credentials"
            )
        return out

    def admin_debug(self, t: float) -> Episode:
        """`kubectl debug`: an ephemeral container in a pod, or (rarely) a debugging pod on a node."""
        who = self.c.person(3 if self.rng.random() < 0.6 else 0)  # SREs and platform admins
        ns, pod, app, node = self.app_pod()
        debugger = f"debugger-{self.c.suffix(5)}"
        if self.rng.random() < 0.75:
            body = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": pod, "namespace": ns},
                    "spec": {"ephemeralContainers": [{"name": debugger, "image": "busybox:1.36", "targetContainerName": app,
                                                      "stdin": True, "tty": True}]}}  # fmt: skip
            out = self.api.call(t, who, "get", "pods", ns, pod)
            out += self.api.call(
                t + 0.2, who, "patch", "pods", ns, pod, sub="ephemeralcontainers", body=body, response=body
            )
            return out + self.api.call(
                t + 3, who, "get", "pods", ns, pod, sub="attach", query=f"container={debugger}&stdin=true&stdout=true&tty=true",
                latency=self.rng.uniform(60, 900),
            )  # fmt: skip
        # `kubectl debug node/<node> -it --image=busybox`: host namespaces and the node's / at /host.
        name = f"node-debugger-{node.split('.')[0]}-{self.c.suffix(5)}"
        spec = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": node, "hostIPC": True, "hostNetwork": True, "hostPID": True, "restartPolicy": "Never",
                         "containers": [{"name": "debugger", "image": "busybox:1.36", "stdin": True, "tty": True,
                                         "volumeMounts": [{"name": "host-root", "mountPath": "/host"}]}],
                         "volumes": [{"name": "host-root", "hostPath": {"path": "/", "type": ""}}],
                         "tolerations": [{"operator": "Exists"}]}}  # fmt: skip
        out = self.api.call(t, who, "create", "pods", "default", name, body=spec, response=spec)
        out += self.api.call(
            t + 4, who, "get", "pods", "default", name, sub="attach", query="container=debugger&stdin=true&stdout=true&tty=true",
            latency=self.rng.uniform(60, 900),
        )  # fmt: skip
        return out + self.api.call(t + 900, who, "delete", "pods", "default", name)

    def admin_helm_kube_system(self, t: float) -> Episode:
        """A platform admin runs `helm upgrade --install` of a cluster add-on into kube-system (the workload
        exists on an upgrade, is created on a first install)."""
        who = self.c.person(0)
        who = Identity(who.username, who.groups, who.uid, who.source_ip, HELM, who.reason, extra=who.extra)
        release, image = self.rng.choice(
            (
                ("metrics-server", "registry.k8s.io/metrics-server/metrics-server:v0.7.2"),
                ("secrets-store-csi-driver", "registry.k8s.io/csi-secrets-store/driver:v1.4.5"),
                ("descheduler", "registry.k8s.io/descheduler/descheduler:v0.31.0"),
            )
        )
        out = GitOps(self.c, self.api).helm_release(t, who, "kube-system", release)
        t += self.rng.uniform(1, 4)
        obj = deployment(self.c, "kube-system", release, image, 10250, replicas=1)
        if self.rng.random() < 0.3:
            return out + self.api.call(
                t, who, "create", "deployments", "kube-system", release, group="apps", body=obj, response=obj
            )
        return out + self.api.call(
            t,
            who,
            "patch",
            "deployments",
            "kube-system",
            release,
            group="apps",
            query="fieldManager=helm",
            body=obj,
            response=obj,
        )
