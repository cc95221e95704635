"""People and CI at work: a CI runner's service account applying Deployments, engineers running kubectl."""

from __future__ import annotations

from kubesigma.connectors.simulated_cluster.audit import api_path, object_ref
from kubesigma.connectors.simulated_cluster.cluster import APPS
from kubesigma.connectors.simulated_cluster.manifests import created, pod_spec
from kubesigma.connectors.simulated_cluster.traffic import Episode, Traffic


class UserTraffic(Traffic):
    """CI deploys and kubectl."""

    SCENES = ("ci_deploy", "kubectl")

    def ci_deploy(self, t: float) -> Episode:
        """CI applies a Deployment (server-side apply): a read, then a patch with the full object."""
        ns = self.rng.choice(("shop", "payments"))
        app, image, port = self.rng.choice(APPS[ns])
        tag = f"{self.rng.randrange(1, 4)}.{self.rng.randrange(20)}.{self.rng.randrange(10)}"
        new_image = image.rsplit(":", 1)[0] + ":" + tag
        ref = object_ref("deployments", ns, app, apiGroup="apps")
        uri = api_path("deployments", ns, app, "apps/v1")
        out = self.audit.request(t, self.cluster.ci_deployer, "get", uri, ref)
        template = pod_spec(self.cluster, ns, None, app, new_image, port, None)
        template.pop("kind"), template.pop("apiVersion"), template.pop("status")
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": app,
                "namespace": ns,
                "labels": {"app": app},
                "annotations": {"ci.example.com/commit": self.cluster.suffix(12)},
            },
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": app}}, "template": template},
        }
        resp = created(self.cluster, deployment, t, app)
        out += self.audit.request(
            t + self.rng.uniform(0.05, 0.3),
            self.cluster.ci_deployer,
            "patch",
            uri + "?fieldManager=kubectl&fieldValidation=Strict&force=false",
            ref,
            level="RequestResponse",
            request_object=deployment,
            response_object=resp,
        )
        return out

    def kubectl(self, t: float) -> Episode:
        who = self.cluster.person()
        ns, pod, app, _node = self.rng.choice(self.cluster.pods)
        kind = self.rng.random()
        if kind < 0.4:
            return self.audit.request(
                t, who, "list", api_path("pods", ns) + "?limit=500", object_ref("pods", ns)
            )
        if kind < 0.6:
            uri = api_path("pods", ns, pod) + f"/log?container={app}&tailLines=200"
            return self.audit.request(
                t, who, "get", uri, object_ref("pods", ns, pod, subresource="log"), latency=0.2
            )
        if kind < 0.75:
            return self.audit.request(t, who, "get", api_path("pods", ns, pod), object_ref("pods", ns, pod))
        if kind < 0.9:
            ref = object_ref("deployments", ns, app, apiGroup="apps")
            return self.audit.request(t, who, "get", api_path("deployments", ns, app, "apps/v1"), ref)
        uri = api_path("events", ns) + f"?fieldSelector=involvedObject.name%3D{pod}"
        return self.audit.request(t, who, "list", uri, object_ref("events", ns))
