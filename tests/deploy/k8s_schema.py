"""Validating manifests as the Kubernetes API server does, with a real JSON-schema validator (jsonschema)
over a CRD's openAPIV3Schema. The API server prunes or (with kubectl's default strict field validation)
refuses fields a structural schema does not declare; JSON Schema allows them unless told otherwise, so the
schema is translated: objects with properties become closed unless marked x-kubernetes-preserve-unknown-
fields, `nullable` admits null, x-kubernetes-int-or-string admits both."""

from __future__ import annotations

from typing import Any

import jsonschema
import yaml

COMBINATORS = ("anyOf", "allOf", "oneOf")


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in out:
        out["properties"] = {name: strict(sub) for name, sub in out["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in out:
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = strict(out["additionalProperties"])
    if isinstance(out.get("items"), dict):
        out["items"] = strict(out["items"])
    for key in COMBINATORS:
        if key in out:
            out[key] = [strict(sub) for sub in out[key]]
    return out


def crd_validator(crd_path: str, version: str) -> jsonschema.Draft7Validator:
    with open(crd_path, encoding="utf-8") as handle:
        crd = yaml.safe_load(handle)
    served = {v["name"]: v for v in crd["spec"]["versions"]}
    schema = strict(served[version]["schema"]["openAPIV3Schema"])
    # Every custom resource has these at its root; CRDs leave them to the API server (ObjectMeta).
    schema["properties"] = {
        "apiVersion": {"const": f"{crd['spec']['group']}/{version}"},
        "kind": {"const": crd["spec"]["names"]["kind"]},
        "metadata": {"type": "object", "required": ["name"]},
        **schema["properties"],
    }
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors(validator: jsonschema.Draft7Validator, document: dict[str, Any]) -> list[str]:
    return sorted(
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in validator.iter_errors(document)
    )
