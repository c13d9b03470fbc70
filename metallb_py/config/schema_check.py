"""Check an object against an OpenAPI v3 schema the way the API server's structural validation
does (types, required, enums, ranges, patterns) and, like `kubectl --validate=strict`, name the
unknown fields instead of silently pruning them."""

from __future__ import annotations

import re
from typing import Any

from metallb_py.config.problems import is_secret_path, quote
from metallb_py.config.schemas import Schema

# Levels of nesting checked; deeper values (only a hostile object has them) are one problem.
MAX_DEPTH = 64

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def check(value: Any, schema: Schema, path: str = "") -> list[tuple[str, str]]:
    """Every structural violation as (field path, message)."""
    errors: list[tuple[str, str]] = []
    _check(value, schema, path, errors)
    return errors


def _shown(value: Any, path: str) -> str:
    """The value for a message: bounded, and never the value of a secret field."""
    return "(value hidden)" if is_secret_path(path) else quote(value)


def _key(key: Any) -> str:
    text = str(key) if isinstance(key, str) else quote(key)
    return text if len(text) <= 63 else text[:60] + "..."


def _check(
    value: Any, schema: Schema, path: str, errors: list[tuple[str, str]], depth: int = 0
) -> None:
    where = path or "<root>"
    if depth > MAX_DEPTH:
        errors.append((where, f"nested deeper than {MAX_DEPTH} levels"))
        return
    if value is None:
        if not schema.get("nullable"):
            errors.append((where, "must not be null"))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, int | str) or isinstance(value, bool):
            errors.append((where, f"must be an integer or a string, not {_type_name(value)}"))
        return
    typ = schema.get("type")
    if typ:
        ok = isinstance(value, _TYPES[typ])
        if typ in ("integer", "number") and isinstance(value, bool):
            ok = False
        if typ == "integer" and isinstance(value, float) and value.is_integer():
            ok = True
        if not ok:
            errors.append(
                (
                    where,
                    f"must be {'an' if typ[0] in 'aeiou' else 'a'} {typ}, not "
                    f"{_type_name(value)} {_shown(value, where)}",
                )
            )
            return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(str(v) for v in schema["enum"])
        errors.append(
            (where, f"unsupported value {_shown(value, where)}: must be one of {allowed}")
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(
                (where, f"{_shown(value, where)} is less than the minimum {schema['minimum']}")
            )
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(
                (where, f"{_shown(value, where)} is more than the maximum {schema['maximum']}")
            )
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append((where, f"must be at least {schema['minLength']} characters"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append((where, f"must be at most {schema['maxLength']} characters"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append((where, f"{_shown(value, where)} does not match {schema['pattern']}"))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append((where, f"must have at least {schema['minItems']} item(s)"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append((where, f"must have at most {schema['maxItems']} items"))
        items = schema.get("items")
        if items:
            for i, item in enumerate(value):
                _check(item, items, f"{path}[{i}]", errors, depth + 1)
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties", {})
        for req in schema.get("required", []):
            if req not in value:
                errors.append((f"{path}.{req}" if path else req, "required field is missing"))
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = f"{path}.{_key(key)}" if path else _key(key)
            if key in props:
                _check(item, props[key], sub, errors, depth + 1)
            elif isinstance(extra, dict):
                _check(item, extra, sub, errors, depth + 1)
            elif props and not schema.get("x-kubernetes-preserve-unknown-fields"):
                known = ", ".join(sorted(props))
                errors.append((sub, f"unknown field {quote(key, 66)} (known fields: {known})"))
