"""Render the pods the Flink Kubernetes Operator makes of each FlinkDeployment, for checkov (which has no
schema for the CRD, so it would check nothing of what runs). Writes OUT/<name>-jobmanager.yaml and
OUT/<name>-taskmanager.yaml, plus the manifests' plain Kubernetes objects (the NetworkPolicy selects the
pods by the labels Flink's native mode gives them).

    python .ci/deploy/flink_pods.py terraform/flink/manifests OUT
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml


def merge(base: Any, over: Any) -> Any:
    """The operator's merge of a role's podTemplate over the shared one: maps by key, lists of named
    items (containers, volumes) by name, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {
            **base,
            **{key: merge(base[key], value) if key in base else value for key, value in over.items()},
        }
    if (
        isinstance(base, list)
        and isinstance(over, list)
        and all(isinstance(i, dict) and "name" in i for i in base + over)
    ):
        named = {item["name"]: item for item in base}
        for item in over:
            named[item["name"]] = merge(named[item["name"]], item) if item["name"] in named else item
        return list(named.values())
    return over


def pods(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec, name = deployment["spec"], deployment["metadata"]["name"]
    out = []
    for role in ("jobManager", "taskManager"):
        template = merge(spec.get("podTemplate", {}), spec[role].get("podTemplate", {}))
        pod_spec = dict(template.get("spec", {}))
        pod_spec["serviceAccountName"] = spec["serviceAccount"]
        resource = spec[role]["resource"]
        # Flink sets requests and limits to the role's resource.
        amounts = {"cpu": str(resource["cpu"]), "memory": resource["memory"]}
        containers = pod_spec.get("containers") or [{"name": "flink-main-container"}]
        pod_spec["containers"] = [
            {
                **c,
                "image": spec["image"],
                "imagePullPolicy": spec.get("imagePullPolicy", "IfNotPresent"),
                "resources": {"requests": amounts, "limits": amounts},
            }
            if c["name"] == "flink-main-container"
            else c
            for c in containers
        ]
        metadata = template.get("metadata", {})
        labels = {
            **metadata.get("labels", {}),
            "app": name,
            "type": "flink-native-kubernetes",
            "component": role.lower(),
        }
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    **metadata,
                    "name": f"{name}-{role.lower()}",
                    "namespace": deployment["metadata"]["namespace"],
                    "labels": labels,
                },
                "spec": pod_spec,
            }
        )
    return out


def main(manifests: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    rendered = 0
    for path in sorted(manifests.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not doc or doc.get("kind") == "Kustomization":
                continue
            if doc.get("kind") == "FlinkDeployment":
                for pod in pods(doc):
                    (out / f"{pod['metadata']['name']}.yaml").write_text(
                        yaml.safe_dump(pod), encoding="utf-8"
                    )
                    rendered += 1
            else:
                name = f"{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
                (out / name).write_text(yaml.safe_dump(doc), encoding="utf-8")
    if not rendered:
        print(f"flink pods: no FlinkDeployment under {manifests}", file=sys.stderr)
        return 1
    print(f"flink pods: {rendered} pods rendered from {manifests} into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
