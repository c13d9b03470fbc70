"""Structural schemas as the API server applies them: the shared walker of `metallb_py.schema`
(validation, pruning, defaulting), its violations worded as the real server words them.

Used for custom resources (the CRD's openAPIV3Schema) and, with `validate=False`, for built-in
types, whose unknown fields are dropped and reported as the real server's strict decoding does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from metallb_py import schema as structural
from metallb_py.apiserver.errors import FieldError
from metallb_py.objects import JSON
from metallb_py.schema import Rule, Schema, Violation, path_text, type_name


@dataclass
class Outcome:
    errors: list[FieldError] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # paths of unknown (pruned) fields


def walk(obj: JSON, schema: Schema, out: Outcome, *, validate: bool = True) -> JSON:
    """Validate an object against its schema, drop unknown fields, apply defaults; returns the
    new object and adds what is wrong to `out`."""
    found = structural.Outcome()
    result: JSON = structural.walk(obj, schema, (), found, validate=validate, root=True)
    out.errors.extend(field_error(v) for v in found.errors)
    out.unknown.extend(path_text(v.path) for v in found.unknown)
    return result


def prune(obj: JSON, schema: Schema, out: Outcome) -> JSON:
    """Drop (and report) unknown fields only: the fast path for built-in types on every write."""
    unknown: list[Violation] = []
    result: JSON = structural.prune(obj, schema, (), unknown, root=True)
    out.unknown.extend(path_text(v.path) for v in unknown)
    return result


def _render(v: Any) -> str:
    return json.dumps(v) if isinstance(v, str) else str(v)


_BOUNDS = {
    Rule.MINIMUM: "greater than or equal to",
    Rule.EXCLUSIVE_MINIMUM: "greater than",
    Rule.MAXIMUM: "less than or equal to",
    Rule.EXCLUSIVE_MAXIMUM: "less than",
}
_COMBINATORS = {
    Rule.ANY_OF: "must validate at least one schema (anyOf)",
    Rule.ONE_OF: "must validate one and only one schema (oneOf)",
    Rule.NOT: "must not validate the schema (not)",
    Rule.BRANCH_TYPE: "wrong type",
}


def field_error(v: Violation) -> FieldError:
    """One violation in the real server's words (`spec.x in body should be ...`)."""
    p, value, limit = path_text(v.path), v.value, v.limit
    r = v.rule
    if r is Rule.NULL:
        return FieldError(p, "Invalid value", f'{p} in body must be of type {limit}: "null"', None)
    if r in (Rule.TYPE, Rule.INT_OR_STRING):
        tn = type_name(value)
        return FieldError(p, "Invalid value", f'{p} in body must be of type {limit}: "{tn}"', tn)
    if r in _COMBINATORS:
        return FieldError(p, "Invalid value", _COMBINATORS[r], type_name(value))
    if r is Rule.REQUIRED:
        return FieldError(p, "Required value")
    if r in (Rule.MAX_ITEMS, Rule.MAX_PROPERTIES):
        return FieldError(p, "Too many", f"must have at most {limit} items", len(value))
    if r is Rule.MIN_ITEMS:
        msg = f"{p} in body should have at least {limit} items"
        return FieldError(p, "Invalid value", msg, len(value))
    if r is Rule.MIN_PROPERTIES:
        msg = f"{p} in body should have at least {limit} properties"
        return FieldError(p, "Invalid value", msg, len(value))
    if r is Rule.DUPLICATE:
        shown = {k: value.get(k) for k in limit} if limit is not None else value
        return FieldError(p, "Duplicate value", "", shown)
    if r is Rule.ENUM:
        msg = "supported values: " + ", ".join(_render(e) for e in limit)
        return FieldError(p, "Unsupported value", msg, value)
    if r is Rule.MAX_LENGTH:
        return FieldError(p, "Too long", f"may not be more than {limit} bytes", value)
    if r is Rule.MIN_LENGTH:
        msg = f"{p} in body should be at least {limit} chars long"
        return FieldError(p, "Invalid value", msg, value)
    if r is Rule.PATTERN:
        return FieldError(p, "Invalid value", f"{p} in body should match '{limit}'", value)
    if r is Rule.FORMAT:
        msg = f'{p} in body must be of type {limit}: "{value}"'
        return FieldError(p, "Invalid value", msg, value)
    if r in _BOUNDS:
        msg = f"{p} in body should be {_BOUNDS[r]} {limit}"
        return FieldError(p, "Invalid value", msg, value)
    if r is Rule.MULTIPLE_OF:
        msg = f"{p} in body should be a multiple of {limit}"
        return FieldError(p, "Invalid value", msg, value)
    return FieldError(p, "Invalid value", f"breaks {r.value}", value)
