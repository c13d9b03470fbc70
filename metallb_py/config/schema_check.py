"""The CRD schemas' structural check (`metallb_py.schema`, the API server's own validator), its
violations worded as the parser's problems. Unlike the server, which prunes them, unknown fields
are named, as `kubectl --validate=strict` names them."""

from __future__ import annotations

from typing import Any

from metallb_py import schema as structural
from metallb_py.config.objects import too_deep
from metallb_py.config.problems import is_secret_path, quote
from metallb_py.schema import Path, Rule, Schema, Violation, type_name

# Levels of nesting checked; deeper values (only a hostile object has them) are one problem.
MAX_DEPTH = 64


def check(value: Any, schema: Schema) -> list[tuple[str, str]]:
    """Every structural violation as (field path, message)."""
    deep = too_deep(value, MAX_DEPTH)
    if deep is not None:
        return [(deep or "<root>", f"nested deeper than {MAX_DEPTH} levels")]
    out = structural.Outcome()
    structural.walk(value, schema, (), out)
    found = [(_where(v.path), _message(v)) for v in out.errors]
    # An object schema without properties (metadata's) leaves its fields to other checks.
    found += [(_where(v.path), _unknown(v)) for v in out.unknown if v.limit]
    return found


def _where(path: Path) -> str:
    """`spec.addresses[0]`, with long or non-string keys shortened; `<root>` for the object."""
    return structural.path_text(path, _key) or "<root>"


def _key(part: Any) -> str:
    text = part if isinstance(part, str) else quote(part)
    return text if len(text) <= 63 else text[:60] + "..."


def _shown(value: Any, where: str) -> str:
    """The value for a message: bounded, and never the value of a secret field."""
    return "(value hidden)" if is_secret_path(where) else quote(value)


def _unknown(v: Violation) -> str:
    return f"unknown field {quote(v.value, 66)} (known fields: {', '.join(sorted(v.limit))})"


def _message(v: Violation) -> str:
    where, value, limit = _where(v.path), v.value, v.limit
    shown = _shown(value, where)
    match v.rule:
        case Rule.NULL:
            return "must not be null"
        case Rule.INT_OR_STRING:
            return f"must be an integer or a string, not {type_name(value)}"
        case Rule.TYPE | Rule.BRANCH_TYPE:
            article = "an" if limit[0] in "aeiou" else "a"
            return f"must be {article} {limit}, not {type_name(value)} {shown}"
        case Rule.ENUM:
            allowed = ", ".join(str(e) for e in limit)
            return f"unsupported value {shown}: must be one of {allowed}"
        case Rule.MINIMUM:
            return f"{shown} is less than the minimum {limit}"
        case Rule.EXCLUSIVE_MINIMUM:
            return f"{shown} is not more than the exclusive minimum {limit}"
        case Rule.MAXIMUM:
            return f"{shown} is more than the maximum {limit}"
        case Rule.EXCLUSIVE_MAXIMUM:
            return f"{shown} is not less than the exclusive maximum {limit}"
        case Rule.MULTIPLE_OF:
            return f"{shown} is not a multiple of {limit}"
        case Rule.MIN_LENGTH:
            return f"must be at least {limit} characters"
        case Rule.MAX_LENGTH:
            return f"must be at most {limit} characters"
        case Rule.PATTERN:
            return f"{shown} does not match {limit}"
        case Rule.FORMAT:
            return f"{shown} is not a valid {limit}"
        case Rule.MIN_ITEMS:
            return f"must have at least {limit} item(s)"
        case Rule.MAX_ITEMS:
            return f"must have at most {limit} items"
        case Rule.DUPLICATE:
            return f"duplicate item {shown}"
        case Rule.MIN_PROPERTIES:
            return f"must have at least {limit} field(s)"
        case Rule.MAX_PROPERTIES:
            return f"must have at most {limit} fields"
        case Rule.REQUIRED:
            return "required field is missing"
        case Rule.ANY_OF | Rule.ONE_OF | Rule.NOT:
            return f"does not satisfy the schema's {v.rule.value}"
        case Rule.UNKNOWN:
            return _unknown(v)
