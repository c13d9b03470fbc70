"""Structural OpenAPI v3 schemas: validation, pruning of unknown fields, and defaulting.

Used for custom resources (the CRD's openAPIV3Schema) and, with `validate=False`, for built-in
types, whose unknown fields are dropped and reported as the real server's strict decoding does.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from metallb_py.apiserver.errors import FieldError

Schema = dict[str, Any]

META_FIELDS = {
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
}


@dataclass
class Outcome:
    errors: list[FieldError] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # paths of unknown (pruned) fields


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _type_ok(v: Any, t: str) -> bool:
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, float) and v.is_integer()
        )
    return _type_name(v) == t


_FORMATS = {
    "ipv4": lambda s: isinstance(ipaddress.ip_address(s), ipaddress.IPv4Address),
    "ipv6": lambda s: isinstance(ipaddress.ip_address(s), ipaddress.IPv6Address),
    "cidr": lambda s: bool(ipaddress.ip_network(s, strict=False)),
    "date-time": lambda s: bool(datetime.fromisoformat(s.replace("Z", "+00:00"))),
    "uuid": lambda s: bool(re.fullmatch(r"[0-9a-fA-F-]{36}", s)),
    "hostname": lambda s: bool(re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", s)),
}


def _check_format(fmt: str, v: str) -> bool:
    check = _FORMATS.get(fmt)
    if check is None:
        return True
    try:
        return bool(check(v))
    except ValueError:
        return False


def _render(v: Any) -> str:
    import json

    return json.dumps(v) if isinstance(v, str) else str(v)


def prune(value: Any, schema: Schema, path: str, unknown: list[str], root: bool = False) -> Any:
    """Drop (and report) unknown fields only: the fast path for built-in types on every write."""
    if isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        if props is None:
            if isinstance(addl, dict) and ("properties" in addl or "items" in addl):
                return {k: prune(v, addl, f"{path}.{k}", unknown) for k, v in value.items()}
            return value
        result = {}
        for key, v in value.items():
            sub = props.get(key)
            if sub is None:
                if root and key in ("apiVersion", "kind"):
                    result[key] = v
                elif root and key == "metadata":
                    sink = Outcome()
                    result[key] = _walk_metadata(v, "metadata", sink, False)
                    unknown.extend(sink.unknown)
                elif addl is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                    result[key] = v
                else:
                    unknown.append(f"{path}.{key}" if path else key)
                continue
            if isinstance(v, (dict, list)) and (
                "properties" in sub or "items" in sub or "additionalProperties" in sub
            ):
                v = prune(v, sub, f"{path}.{key}" if path else key, unknown)
            result[key] = v
        return result
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict) and ("properties" in items or "items" in items):
            return [prune(v, items, f"{path}[{i}]", unknown) for i, v in enumerate(value)]
    return value


def walk(
    value: Any,
    schema: Schema,
    path: str,
    out: Outcome,
    *,
    validate: bool = True,
    root: bool = False,
) -> Any:
    """Validate `value` against `schema`, drop unknown fields, apply defaults; returns the
    (possibly new) value. `root` marks the object root, whose metadata is checked separately."""
    if not validate and (
        isinstance(value, (str, int, float, bool))
        or (schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema)
    ):
        return value  # nothing to prune or report below this point
    if value is None:
        if validate and not schema.get("nullable") and schema.get("type"):
            # null for a non-nullable field: the real server prunes it when it has a default.
            out.errors.append(
                FieldError(
                    path,
                    "Invalid value",
                    f'{path} in body must be of type {schema["type"]}: "null"',
                    None,
                )
            )
        return value
    stype = schema.get("type")
    int_or_string = schema.get("x-kubernetes-int-or-string")
    if validate and stype and not int_or_string and not _type_ok(value, stype):
        out.errors.append(
            FieldError(
                path,
                "Invalid value",
                f'{path} in body must be of type {stype}: "{_type_name(value)}"',
                _type_name(value),
            )
        )
        return value
    if int_or_string and validate and not isinstance(value, (int, str)):
        out.errors.append(
            FieldError(
                path,
                "Invalid value",
                f'{path} in body must be of type int-or-string: "{_type_name(value)}"',
                _type_name(value),
            )
        )
        return value
    if isinstance(value, dict):
        value = _walk_object(value, schema, path, out, validate, root)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            value = [
                walk(v, items, f"{path}[{i}]", out, validate=validate) for i, v in enumerate(value)
            ]
        if validate:
            _check_array(value, schema, path, out)
    elif validate:
        _check_scalar(value, schema, path, out)
    if validate:
        for sub in schema.get("allOf") or []:
            _value_only(value, sub, path, out)
        any_of = schema.get("anyOf")
        if any_of and not any(_passes(value, s, path) for s in any_of):
            out.errors.append(
                FieldError(
                    path,
                    "Invalid value",
                    "must validate at least one schema (anyOf)",
                    _type_name(value),
                )
            )
        one_of = schema.get("oneOf")
        if one_of and sum(1 for s in one_of if _passes(value, s, path)) != 1:
            out.errors.append(
                FieldError(
                    path,
                    "Invalid value",
                    "must validate one and only one schema (oneOf)",
                    _type_name(value),
                )
            )
        if "not" in schema and _passes(value, schema["not"], path):
            out.errors.append(
                FieldError(
                    path, "Invalid value", "must not validate the schema (not)", _type_name(value)
                )
            )
    return value


def _passes(value: Any, schema: Schema, path: str) -> bool:
    o = Outcome()
    _value_only(value, schema, path, o)
    return not o.errors


def _value_only(value: Any, schema: Schema, path: str, out: Outcome) -> None:
    """Value validations of anyOf/allOf branches: no pruning, no defaults, no unknown fields."""
    import copy

    probe = copy.deepcopy(value)
    tmp = Outcome()
    if isinstance(probe, dict):
        for k in schema.get("required") or []:
            if k not in probe:
                tmp.errors.append(FieldError(f"{path}.{k}" if path else k, "Required value"))
        props = schema.get("properties") or {}
        for k, v in probe.items():
            if k in props:
                _value_only(v, props[k], f"{path}.{k}", tmp)
    elif isinstance(probe, list):
        _check_array(probe, schema, path, tmp)
    else:
        if schema.get("type") and not _type_ok(probe, schema["type"]):
            tmp.errors.append(FieldError(path, "Invalid value", "wrong type", _type_name(probe)))
        else:
            _check_scalar(probe, schema, path, tmp)
    out.errors.extend(tmp.errors)


def _walk_object(
    value: dict[str, Any], schema: Schema, path: str, out: Outcome, validate: bool, root: bool
) -> dict[str, Any]:
    props: dict[str, Schema] = schema.get("properties") or {}
    addl = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
    embedded = schema.get("x-kubernetes-embedded-resource", False)
    result: dict[str, Any] = {}
    for key, v in value.items():
        sub = f"{path}.{key}" if path else key
        if (root or embedded) and key in ("apiVersion", "kind"):
            result[key] = v
            continue
        if (root or embedded) and key == "metadata":
            result[key] = _walk_metadata(v, sub, out, shallow=not root)
            continue
        if key in props:
            result[key] = walk(v, props[key], sub, out, validate=validate)
        elif isinstance(addl, dict):
            result[key] = walk(v, addl, sub, out, validate=validate)
        elif addl is True or preserve:
            result[key] = v
        else:
            out.unknown.append(sub)
    for key, sub_schema in _defaulted(schema, props):
        if key not in result:
            import copy

            d = copy.deepcopy(sub_schema["default"])
            result[key] = walk(
                d, sub_schema, f"{path}.{key}" if path else key, Outcome(), validate=False
            )
    if validate:
        for key in schema.get("required") or []:
            if key not in result:
                out.errors.append(FieldError(f"{path}.{key}" if path else key, "Required value"))
        n = len(result)
        if "maxProperties" in schema and n > schema["maxProperties"]:
            out.errors.append(
                FieldError(
                    path, "Too many", f"must have at most {schema['maxProperties']} items", n
                )
            )
        if "minProperties" in schema and n < schema["minProperties"]:
            out.errors.append(
                FieldError(
                    path,
                    "Invalid value",
                    f"{path} in body should have at least {schema['minProperties']} properties",
                    n,
                )
            )
    return result


_DEFAULTED: dict[int, tuple[Schema, list[tuple[str, Schema]]]] = {}


def _defaulted(schema: Schema, props: dict[str, Schema]) -> list[tuple[str, Schema]]:
    """The properties of `schema` that have a default (cached per schema object)."""
    hit = _DEFAULTED.get(id(schema))
    if hit is None or hit[0] is not schema:
        hit = (schema, [(k, v) for k, v in props.items() if "default" in v])
        _DEFAULTED[id(schema)] = hit
    return hit[1]


def _walk_metadata(meta: Any, path: str, out: Outcome, shallow: bool) -> Any:
    if not isinstance(meta, dict):
        return meta
    result = {}
    for k, v in meta.items():
        if k in META_FIELDS:
            result[k] = v
        elif not shallow:
            out.unknown.append(f"{path}.{k}")
        else:
            result[k] = v
    return result


def _check_array(value: list[Any], schema: Schema, path: str, out: Outcome) -> None:
    n = len(value)
    if "maxItems" in schema and n > schema["maxItems"]:
        out.errors.append(
            FieldError(path, "Too many", f"must have at most {schema['maxItems']} items", n)
        )
    if "minItems" in schema and n < schema["minItems"]:
        out.errors.append(
            FieldError(
                path,
                "Invalid value",
                f"{path} in body should have at least {schema['minItems']} items",
                n,
            )
        )
    list_type = schema.get("x-kubernetes-list-type")
    if schema.get("uniqueItems") or list_type == "set":
        seen: list[Any] = []
        for i, v in enumerate(value):
            if v in seen:
                out.errors.append(FieldError(f"{path}[{i}]", "Duplicate value", "", v))
            seen.append(v)
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen_keys: set[tuple[Any, ...]] = set()
        for i, v in enumerate(value):
            if not isinstance(v, dict):
                continue
            k = tuple(v.get(x) for x in keys)
            if k in seen_keys:
                out.errors.append(
                    FieldError(f"{path}[{i}]", "Duplicate value", "", {x: v.get(x) for x in keys})
                )
            seen_keys.add(k)


def _check_scalar(value: Any, schema: Schema, path: str, out: Outcome) -> None:
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        out.errors.append(
            FieldError(
                path,
                "Unsupported value",
                "supported values: " + ", ".join(_render(e) for e in enum),
                value,
            )
        )
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.errors.append(
                FieldError(
                    path, "Too long", f"may not be more than {schema['maxLength']} bytes", value
                )
            )
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.errors.append(
                FieldError(
                    path,
                    "Invalid value",
                    f"{path} in body should be at least {schema['minLength']} chars long",
                    value,
                )
            )
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.errors.append(
                FieldError(
                    path,
                    "Invalid value",
                    f"{path} in body should match '{schema['pattern']}'",
                    value,
                )
            )
        fmt = schema.get("format")
        if fmt and not _check_format(fmt, value):
            out.errors.append(
                FieldError(
                    path, "Invalid value", f'{path} in body must be of type {fmt}: "{value}"', value
                )
            )
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema:
            lo = schema["minimum"]
            if (value <= lo) if schema.get("exclusiveMinimum") else (value < lo):
                word = (
                    "greater than"
                    if schema.get("exclusiveMinimum")
                    else ("greater than or equal to")
                )
                out.errors.append(
                    FieldError(
                        path, "Invalid value", f"{path} in body should be {word} {lo}", value
                    )
                )
        if "maximum" in schema:
            hi = schema["maximum"]
            if (value >= hi) if schema.get("exclusiveMaximum") else (value > hi):
                word = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
                out.errors.append(
                    FieldError(
                        path, "Invalid value", f"{path} in body should be {word} {hi}", value
                    )
                )
        if "multipleOf" in schema and value % schema["multipleOf"]:
            out.errors.append(
                FieldError(
                    path,
                    "Invalid value",
                    f"{path} in body should be a multiple of {schema['multipleOf']}",
                    value,
                )
            )
