"""apiextensions.k8s.io/v1 CRD checks the API server makes: the structural-schema rules, defaults
that validate, compilable CEL rules, one storage version, well-formed printer columns."""

from __future__ import annotations

from typing import Any

import celpy

from metallb_py.config.schema_check import check

COLUMN_TYPES = {"integer", "number", "string", "boolean", "date"}
FORBIDDEN = {"$ref", "definitions", "dependencies", "patternProperties", "id", "$schema"}


def _celenv() -> celpy.Environment:
    return celpy.Environment()


def structural_errors(
    schema: dict[str, Any], path: str = "openAPIV3Schema", root: bool = True
) -> list[str]:
    errs: list[str] = []
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    int_or_string = schema.get("x-kubernetes-int-or-string")
    if not schema.get("type") and not int_or_string and not preserve:
        errs.append(f"{path}: type is required in a structural schema")
    for key in FORBIDDEN & set(schema):
        errs.append(f"{path}: {key} is not allowed")
    if schema.get("uniqueItems") is True:
        errs.append(f"{path}: uniqueItems cannot be true")
    if schema.get("additionalProperties") is False:
        errs.append(f"{path}: additionalProperties cannot be false")
    if "properties" in schema and "additionalProperties" in schema:
        errs.append(f"{path}: properties and additionalProperties are mutually exclusive")
    if schema.get("type") == "array" and "items" not in schema:
        errs.append(f"{path}: an array needs items")
    if "default" in schema:
        for p, m in check(schema["default"], {k: v for k, v in schema.items() if k != "default"}):
            errs.append(f"{path}: default is invalid: {p}: {m}")
    for rule in schema.get("x-kubernetes-validations", []):
        if not rule.get("rule"):
            errs.append(f"{path}: x-kubernetes-validations entry without a rule")
            continue
        try:
            _celenv().compile(rule["rule"])
        except Exception as exc:  # celpy raises several types
            errs.append(f"{path}: CEL rule does not compile: {rule['rule']}: {exc}")
    if root:
        meta = schema.get("properties", {}).get("metadata")
        if meta is not None and set(meta) - {"type"}:
            errs.append(f"{path}.properties.metadata: only type is allowed at the root metadata")
    for name, sub in (schema.get("properties") or {}).items():
        errs.extend(structural_errors(sub, f"{path}.properties.{name}", False))
    if isinstance(schema.get("items"), dict):
        errs.extend(structural_errors(schema["items"], f"{path}.items", False))
    if isinstance(schema.get("additionalProperties"), dict):
        errs.extend(
            structural_errors(schema["additionalProperties"], f"{path}.additionalProperties", False)
        )
    return errs


def crd_errors(crd: dict[str, Any]) -> list[str]:
    errs: list[str] = []
    if (
        crd.get("apiVersion") != "apiextensions.k8s.io/v1"
        or crd.get("kind") != "CustomResourceDefinition"
    ):
        return ["not an apiextensions.k8s.io/v1 CustomResourceDefinition"]
    spec = crd["spec"]
    names = spec["names"]
    if crd["metadata"]["name"] != f"{names['plural']}.{spec['group']}":
        errs.append("metadata.name must be <plural>.<group>")
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errs.append("scope must be Namespaced or Cluster")
    for key in ("kind", "plural", "singular", "listKind"):
        if not names.get(key):
            errs.append(f"names.{key} is required")
    versions = spec.get("versions") or []
    if sum(1 for v in versions if v.get("storage")) != 1:
        errs.append("exactly one version must be the storage version")
    for v in versions:
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        if not schema:
            errs.append(f"version {v.get('name')}: openAPIV3Schema is required")
            continue
        errs.extend(f"version {v['name']}: {e}" for e in structural_errors(schema))
        for col in v.get("additionalPrinterColumns", []):
            if col.get("type") not in COLUMN_TYPES or not str(col.get("jsonPath", "")).startswith(
                "."
            ):
                errs.append(f"version {v['name']}: bad printer column {col}")
    conv = spec.get("conversion")
    if conv and conv.get("strategy") == "Webhook":
        hook = conv.get("webhook") or {}
        if "v1" not in hook.get("conversionReviewVersions", []) or not hook.get("clientConfig"):
            errs.append(
                "a Webhook conversion needs conversionReviewVersions [v1] and a clientConfig"
            )
    return errs


def cel_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Evaluate the non-transition CEL rules of `schema` on `value` (as the API server would)."""
    errs: list[str] = []
    if value is None:
        return errs
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:
            continue
        env = _celenv()
        prog = env.program(env.compile(rule["rule"]))
        if not bool(prog.evaluate({"self": celpy.json_to_cel(value)})):
            errs.append(f"{path or '<root>'}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                errs.extend(cel_errors(value[key], sub, f"{path}.{key}" if path else key))
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errs.extend(cel_errors(item, schema["items"], f"{path}[{i}]"))
    return errs
