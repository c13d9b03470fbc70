"""Structural OpenAPI v3 schemas, as Kubernetes applies them: validation, pruning and defaulting.

The one validator behind both the embedded API server (a custom resource's openAPIV3Schema, and
pruning for built-in kinds) and `metallb-py config validate` (the same CRD schemas, checked before
the semantic rules), so the two can never disagree about which shapes are valid. It reports
`Violation`s, not messages: each caller words them for its readers (the API server as the real one
does, the config parser as problems).
"""

from __future__ import annotations

import copy
import enum
import ipaddress
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

Schema = dict[str, Any]
T = TypeVar("T")
# A field's place in an object: keys and list indexes from the root; () is the root itself.
Path = tuple[Any, ...]

# metadata fields the API server keeps; others are unknown (pruned) at an object's root.
META_FIELDS = frozenset(
    {
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
)


class Rule(enum.Enum):
    """The schema keyword a value breaks; `Violation.limit` holds that keyword's value."""

    NULL = "nullable"  # limit: the declared type ("int-or-string" for such fields)
    TYPE = "type"  # limit: the declared type
    BRANCH_TYPE = "branchType"  # the type of an allOf/anyOf/oneOf/not branch; limit: its type
    INT_OR_STRING = "x-kubernetes-int-or-string"
    ENUM = "enum"  # limit: the allowed values
    MIN_LENGTH = "minLength"
    MAX_LENGTH = "maxLength"
    PATTERN = "pattern"
    FORMAT = "format"
    MINIMUM = "minimum"
    EXCLUSIVE_MINIMUM = "exclusiveMinimum"  # limit: the minimum the value must exceed
    MAXIMUM = "maximum"
    EXCLUSIVE_MAXIMUM = "exclusiveMaximum"  # limit: the maximum the value must stay below
    MULTIPLE_OF = "multipleOf"
    MIN_ITEMS = "minItems"
    MAX_ITEMS = "maxItems"
    DUPLICATE = "uniqueItems"  # value: the repeated item; limit: the list-map keys, if any
    MIN_PROPERTIES = "minProperties"
    MAX_PROPERTIES = "maxProperties"
    REQUIRED = "required"  # path: the missing field
    ANY_OF = "anyOf"
    ONE_OF = "oneOf"
    NOT = "not"
    UNKNOWN = "properties"  # value: the key; limit: the known field names (may be empty)


@dataclass(frozen=True, slots=True)
class Violation:
    rule: Rule
    path: Path
    value: Any = None  # the offending value (the object, list or scalar at `path`)
    limit: Any = None


@dataclass
class Outcome:
    errors: list[Violation] = field(default_factory=list)
    unknown: list[Violation] = field(default_factory=list)  # Rule.UNKNOWN: pruned fields


# Python type -> JSON type name, tried in order: bool before int, since a bool is also an int.
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (type(None), "null"),
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def type_name(v: Any) -> str:
    """The JSON type of a Python value, as OpenAPI names it."""
    for python_type, name in _JSON_TYPES:
        if isinstance(v, python_type):
            return name
    return type(v).__name__


def type_ok(v: Any, t: str) -> bool:
    if t == "number":
        return isinstance(v, int | float) and not isinstance(v, bool)
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, float) and v.is_integer()
        )
    return type_name(v) == t


def int_or_string_ok(v: Any) -> bool:
    """`true` is neither, although Python's bool is an int."""
    return isinstance(v, int | str) and not isinstance(v, bool)


_FORMATS: dict[str, Callable[[str], object]] = {
    "ipv4": lambda s: isinstance(ipaddress.ip_address(s), ipaddress.IPv4Address),
    "ipv6": lambda s: isinstance(ipaddress.ip_address(s), ipaddress.IPv6Address),
    "cidr": lambda s: ipaddress.ip_network(s, strict=False),
    "date-time": lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")),
    "uuid": lambda s: re.fullmatch(r"[0-9a-fA-F-]{36}", s),
    "hostname": lambda s: re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", s),
}


def format_ok(fmt: str, v: str) -> bool:
    """Formats not listed (int32, byte, ...) constrain nothing a string can break."""
    check = _FORMATS.get(fmt)
    if check is None:
        return True
    try:
        return bool(check(v))
    except ValueError:
        return False


def path_text(path: Path, key: Callable[[Any], str] = str) -> str:
    """`spec.addresses[0]`: the Kubernetes field-path notation; "" for the root. `key` spells
    a map key, for callers that quote or shorten keys a user wrote."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            text = key(part)
            out = f"{out}.{text}" if out else text
    return out


def prune(
    value: Any, schema: Schema, path: Path, unknown: list[Violation], root: bool = False
) -> Any:
    """Drop (and report) unknown fields only: the fast path for built-in types on every write.
    What holds no unknown field is returned as is, not copied."""
    return _pruner(schema).prune(value, path, unknown, root)


def _descends(schema: Any) -> bool:
    return isinstance(schema, dict) and (
        "properties" in schema or "items" in schema or "additionalProperties" in schema
    )


class _Pruner:
    """One schema node compiled for `prune`: which fields it knows, which of them hold fields of
    their own, and what happens to a field it does not know."""

    __slots__ = ("each_value", "inert", "items", "keep_unknown", "names", "props")

    def __init__(self, schema: Schema) -> None:
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        self.props: dict[str, _Pruner | None] | None = None  # None: a map, not an object
        self.names: tuple[str, ...] = tuple(props) if isinstance(props, dict) else ()
        self.keep_unknown = addl is True or bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        self.each_value: _Pruner | None = None  # a map whose values hold fields
        self.items: _Pruner | None = None
        # Prunes nothing whatever the value (set once compiled; False while a schema that
        # refers to itself is being compiled, which only costs a call).
        self.inert = False

    def prune(self, value: Any, path: Path, unknown: list[Violation], root: bool) -> Any:
        if isinstance(value, dict):
            props = self.props
            if props is None:
                each = self.each_value
                if each is None:
                    return value
                return {k: each.prune(v, (*path, k), unknown, False) for k, v in value.items()}
            result: dict[str, Any] | None = None  # made at the first change
            for n, (key, v) in enumerate(value.items()):
                if key in props:
                    sub = props[key]
                    new = v if sub is None else sub.prune(v, (*path, key), unknown, False)
                elif root and key in ("apiVersion", "kind"):
                    new = v
                elif root and key == "metadata":
                    new = _prune_metadata(v, unknown)
                elif self.keep_unknown:
                    new = v
                else:
                    unknown.append(Violation(Rule.UNKNOWN, (*path, key), key, self.names))
                    if result is None:
                        result = dict(itertools.islice(value.items(), n))
                    continue
                if result is not None:
                    result[key] = new
                elif new is not v:
                    result = dict(itertools.islice(value.items(), n))
                    result[key] = new
            return value if result is None else result
        if isinstance(value, list) and self.items is not None:
            items = self.items
            out = [items.prune(v, (*path, i), unknown, False) for i, v in enumerate(value)]
            return value if all(a is b for a, b in zip(out, value, strict=True)) else out
        return value


def _prune_metadata(meta: Any, unknown: list[Violation]) -> Any:
    if not isinstance(meta, dict) or META_FIELDS.issuperset(meta):
        return meta
    sink = Outcome()
    result = _walk_metadata(meta, ("metadata",), sink, False)
    unknown.extend(sink.unknown)
    return result


class SchemaCache(Generic[T]):
    """What was compiled from each schema node, by the node's identity (schemas are shared,
    never-modified dicts). Each entry keeps its schema alive, so an id is never reused; past
    `limit` entries (schemas built per call would otherwise pile up) it starts over. A compiler
    `put`s a node before compiling its children, so a schema may refer to itself."""

    def __init__(self, limit: int = 10_000) -> None:  # the built-in kinds have a few hundred
        self.limit = limit
        self._nodes: dict[int, tuple[Any, T]] = {}

    def get(self, schema: Any) -> T | None:
        hit = self._nodes.get(id(schema))
        return hit[1] if hit is not None and hit[0] is schema else None

    def put(self, schema: Any, node: T) -> None:
        if len(self._nodes) > self.limit:
            self._nodes.clear()
        self._nodes[id(schema)] = (schema, node)


_pruners: SchemaCache[_Pruner] = SchemaCache()


def _pruner(schema: Schema) -> _Pruner:
    node = _pruners.get(schema)
    if node is not None:
        return node
    node = _Pruner(schema)
    _pruners.put(schema, node)
    props = schema.get("properties")
    addl = schema.get("additionalProperties")
    if isinstance(props, dict):
        node.props = {k: _child(sub) for k, sub in props.items()}
    elif isinstance(addl, dict) and ("properties" in addl or "items" in addl):
        node.each_value = _pruner(addl)
    items = schema.get("items")
    if isinstance(items, dict) and ("properties" in items or "items" in items):
        node.items = _pruner(items)
    node.inert = node.props is None and node.each_value is None and node.items is None
    return node


def _child(schema: Any) -> _Pruner | None:
    """The pruner of a field's schema, or None when nothing below the field can be unknown (a
    scalar, a map of scalars, a list of them): the field is then kept without a call."""
    if not _descends(schema):
        return None
    node = _pruner(schema)
    return None if node.inert else node


def walk(
    value: Any,
    schema: Schema,
    path: Path,
    out: Outcome,
    *,
    validate: bool = True,
    root: bool = False,
) -> Any:
    """Validate `value` against `schema`, drop unknown fields, apply defaults; returns the
    (possibly new) value. `root` marks the object root, whose metadata is checked separately.
    Recursive: callers bound the nesting first (the API server's decoder, the config parser)."""
    if not validate and (
        isinstance(value, str | int | float | bool)
        or (schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema)
    ):
        return value  # nothing to prune or report below this point
    stype = schema.get("type")
    int_or_string = schema.get("x-kubernetes-int-or-string")
    if value is None:
        if validate and not schema.get("nullable") and (stype or int_or_string):
            # null for a non-nullable field: the real server prunes it when it has a default.
            declared = stype if stype and not int_or_string else "int-or-string"
            out.errors.append(Violation(Rule.NULL, path, None, declared))
        return value
    if validate and int_or_string:
        if not int_or_string_ok(value):
            out.errors.append(Violation(Rule.INT_OR_STRING, path, value, "int-or-string"))
            return value
    elif validate and stype and not type_ok(value, stype):
        out.errors.append(Violation(Rule.TYPE, path, value, stype))
        return value
    if isinstance(value, dict):
        value = _walk_object(value, schema, path, out, validate, root)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            value = [
                walk(v, items, (*path, i), out, validate=validate) for i, v in enumerate(value)
            ]
        if validate:
            _check_array(value, schema, path, out)
    elif validate:
        _check_scalar(value, schema, path, out)
    if validate:
        _check_combinators(value, schema, path, out)
    return value


def _check_combinators(value: Any, schema: Schema, path: Path, out: Outcome) -> None:
    for sub in schema.get("allOf") or []:
        _value_only(value, sub, path, out)
    any_of = schema.get("anyOf")
    if any_of and not any(_passes(value, s, path) for s in any_of):
        out.errors.append(Violation(Rule.ANY_OF, path, value, any_of))
    one_of = schema.get("oneOf")
    if one_of and sum(1 for s in one_of if _passes(value, s, path)) != 1:
        out.errors.append(Violation(Rule.ONE_OF, path, value, one_of))
    if "not" in schema and _passes(value, schema["not"], path):
        out.errors.append(Violation(Rule.NOT, path, value, schema["not"]))


def _passes(value: Any, schema: Schema, path: Path) -> bool:
    o = Outcome()
    _value_only(value, schema, path, o)
    return not o.errors


def _value_only(value: Any, schema: Schema, path: Path, out: Outcome) -> None:
    """Value validations of anyOf/allOf branches: no pruning, no defaults, no unknown fields."""
    probe = copy.deepcopy(value)
    tmp = Outcome()
    if isinstance(probe, dict):
        for k in schema.get("required") or []:
            if k not in probe:
                tmp.errors.append(Violation(Rule.REQUIRED, (*path, k)))
        props = schema.get("properties") or {}
        for k, v in probe.items():
            if k in props:
                _value_only(v, props[k], (*path, k), tmp)
    elif isinstance(probe, list):
        _check_array(probe, schema, path, tmp)
    elif schema.get("type") and not type_ok(probe, schema["type"]):
        tmp.errors.append(Violation(Rule.BRANCH_TYPE, path, probe, schema["type"]))
    else:
        _check_scalar(probe, schema, path, tmp)
    out.errors.extend(tmp.errors)


def _walk_object(
    value: dict[str, Any], schema: Schema, path: Path, out: Outcome, validate: bool, root: bool
) -> dict[str, Any]:
    props: dict[str, Schema] = schema.get("properties") or {}
    addl = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
    embedded = schema.get("x-kubernetes-embedded-resource", False)
    result: dict[str, Any] = {}
    for key, v in value.items():
        sub = (*path, key)
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
            out.unknown.append(Violation(Rule.UNKNOWN, sub, key, tuple(props)))
    for key, sub_schema in _defaulted(schema, props):
        if key not in result:
            d = copy.deepcopy(sub_schema["default"])
            result[key] = walk(d, sub_schema, (*path, key), Outcome(), validate=False)
    if validate:
        for key in schema.get("required") or []:
            if key not in result:
                out.errors.append(Violation(Rule.REQUIRED, (*path, key)))
        n = len(result)
        if "maxProperties" in schema and n > schema["maxProperties"]:
            out.errors.append(Violation(Rule.MAX_PROPERTIES, path, result, schema["maxProperties"]))
        if "minProperties" in schema and n < schema["minProperties"]:
            out.errors.append(Violation(Rule.MIN_PROPERTIES, path, result, schema["minProperties"]))
    return result


_DEFAULTED: dict[int, tuple[Schema, list[tuple[str, Schema]]]] = {}


def _defaulted(schema: Schema, props: dict[str, Schema]) -> list[tuple[str, Schema]]:
    """The properties of `schema` that have a default (cached per schema object)."""
    hit = _DEFAULTED.get(id(schema))
    if hit is None or hit[0] is not schema:
        hit = (schema, [(k, v) for k, v in props.items() if "default" in v])
        _DEFAULTED[id(schema)] = hit
    return hit[1]


def _walk_metadata(meta: Any, path: Path, out: Outcome, shallow: bool) -> Any:
    if not isinstance(meta, dict):
        return meta
    result = {}
    for k, v in meta.items():
        if k in META_FIELDS or shallow:
            result[k] = v
        else:
            out.unknown.append(Violation(Rule.UNKNOWN, (*path, k), k, tuple(sorted(META_FIELDS))))
    return result


def _check_array(value: list[Any], schema: Schema, path: Path, out: Outcome) -> None:
    n = len(value)
    if "maxItems" in schema and n > schema["maxItems"]:
        out.errors.append(Violation(Rule.MAX_ITEMS, path, value, schema["maxItems"]))
    if "minItems" in schema and n < schema["minItems"]:
        out.errors.append(Violation(Rule.MIN_ITEMS, path, value, schema["minItems"]))
    list_type = schema.get("x-kubernetes-list-type")
    if schema.get("uniqueItems") or list_type == "set":
        seen: list[Any] = []
        for i, v in enumerate(value):
            if v in seen:
                out.errors.append(Violation(Rule.DUPLICATE, (*path, i), v))
            seen.append(v)
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen_keys: set[tuple[Any, ...]] = set()
        for i, v in enumerate(value):
            if not isinstance(v, dict):
                continue
            k = tuple(v.get(x) for x in keys)
            if k in seen_keys:
                out.errors.append(Violation(Rule.DUPLICATE, (*path, i), v, tuple(keys)))
            seen_keys.add(k)


def _check_scalar(value: Any, schema: Schema, path: Path, out: Outcome) -> None:
    enum_values = schema.get("enum")
    if enum_values is not None and value not in enum_values:
        out.errors.append(Violation(Rule.ENUM, path, value, enum_values))
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.errors.append(Violation(Rule.MAX_LENGTH, path, value, schema["maxLength"]))
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.errors.append(Violation(Rule.MIN_LENGTH, path, value, schema["minLength"]))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.errors.append(Violation(Rule.PATTERN, path, value, schema["pattern"]))
        fmt = schema.get("format")
        if fmt and not format_ok(fmt, value):
            out.errors.append(Violation(Rule.FORMAT, path, value, fmt))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema:
            lo = schema["minimum"]
            if schema.get("exclusiveMinimum"):
                if value <= lo:
                    out.errors.append(Violation(Rule.EXCLUSIVE_MINIMUM, path, value, lo))
            elif value < lo:
                out.errors.append(Violation(Rule.MINIMUM, path, value, lo))
        if "maximum" in schema:
            hi = schema["maximum"]
            if schema.get("exclusiveMaximum"):
                if value >= hi:
                    out.errors.append(Violation(Rule.EXCLUSIVE_MAXIMUM, path, value, hi))
            elif value > hi:
                out.errors.append(Violation(Rule.MAXIMUM, path, value, hi))
        if "multipleOf" in schema and value % schema["multipleOf"]:
            out.errors.append(Violation(Rule.MULTIPLE_OF, path, value, schema["multipleOf"]))
