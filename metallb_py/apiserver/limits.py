"""What one request may cost the server: body and object sizes, decoding rules, patch work, and
the types of the metadata every object carries.

The real kube-apiserver refuses these with 400/413/422 before they reach storage; without them a
2 KB JSON patch or a 700-byte YAML document can hold the event loop for seconds and store
gigabytes, and a value JSON cannot represent (NaN) breaks every later list of its kind.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Mapping
from typing import Any

from metallb_py.apiserver.errors import ApiError, FieldError, bad_request, invalid
from metallb_py.schema import SchemaCache

# kube-apiserver's --max-request-body-bytes default (MaxRequestBodyBytes).
MAX_REQUEST_BYTES = 3 * 1024 * 1024
# etcd's default --max-request-bytes: the largest object the store accepts.
MAX_OBJECT_BYTES = 3 * 512 * 1024
# ConfigMap and Secret payloads (data + binaryData, or data + stringData), as validation caps them.
MAX_DATA_BYTES = 1024 * 1024
# Total size of metadata.annotations (keys + values).
MAX_ANNOTATIONS_BYTES = 256 * 1024
# JSON patch: operations per request, and bytes `copy` may add in total (JSONPatchMaxCopyBytes).
MAX_JSON_PATCH_OPS = 10_000
MAX_PATCH_COPY_BYTES = MAX_REQUEST_BYTES
# Nesting of a request body (arrays and objects); deeper documents are refused before any
# recursive code sees them.
MAX_DEPTH = 100
# Bodies larger than this are decoded in a worker thread, so the event loop keeps serving.
THREAD_DECODE_BYTES = 64 * 1024

_INT64 = (-(2**63), 2**63 - 1)
_SURROGATE = re.compile("[\ud800-\udfff]")


def too_large(message: str) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: {message}")


def body_too_large() -> ApiError:
    return too_large(f"limit is {MAX_REQUEST_BYTES}")


# -- decoding -------------------------------------------------------------------------------------


def _parse_constant(name: str) -> Any:
    raise bad_request(
        f"couldn't get version/kind; json parse error: invalid character '{name[0]}' looking "
        "for beginning of value"
    )


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or not _INT64[0] <= int(text) <= _INT64[1]:
        shown = text if len(text) <= 40 else f"{text[:20]}...({len(text)} digits)"
        raise bad_request(f"json: cannot unmarshal number {shown} into Go value of type int64")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"
        raise bad_request(f"json: cannot unmarshal number {shown} into Go value of type float64")
    return value


# One decoder per thread (large bodies are decoded in a worker thread); building one per call
# cost half the decoding of a typical body.
_decoders = threading.local()


def decode_json(body: bytes) -> Any:
    """JSON as the real decoder accepts it: finite numbers, integers within int64, well-formed
    Unicode, at most MAX_DEPTH levels; anything else is a 400."""
    try:
        decoder = getattr(_decoders, "decoder", None)
        if decoder is None:
            decoder = _decoders.decoder = json.JSONDecoder(
                parse_constant=_parse_constant, parse_int=_parse_int, parse_float=_parse_float
            )
        # What json.loads does with bytes (it would also build a new decoder on every call).
        doc = decoder.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except RecursionError:
        raise too_deep() from None
    if _needs_walk(body):
        check_data(doc)
    return doc


def _needs_walk(body: bytes) -> bool:
    """Whether decoded JSON can still break a rule `check_data` enforces. The decoder's hooks
    already refuse non-finite numbers and integers beyond int64, and JSON keys are strings; a
    lone surrogate needs a `\\u` escape or surrogate bytes (0xED), and nesting MAX_DEPTH deep
    needs that many brackets. Most bodies have neither, and skip the walk."""
    return b"\\u" in body or b"\xed" in body or body.count(b"{") + body.count(b"[") >= MAX_DEPTH


def too_deep() -> ApiError:
    return bad_request(f"json: exceeded max depth: documents may nest at most {MAX_DEPTH} levels")


def check_data(doc: Any) -> None:
    """Refuse what JSON cannot carry or the server cannot hold, in data from any decoder (YAML
    gives floats `.nan`, dates and 5 000-digit integers as readily as JSON gives deep arrays)."""
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth >= MAX_DEPTH:
                raise too_deep()
            for k, v in value.items():
                if not isinstance(k, str):
                    raise bad_request(f"invalid object key {k!r}: keys must be strings")
                if _SURROGATE.search(k):
                    raise _bad_unicode()
                stack.append((v, depth + 1))
        elif isinstance(value, list):
            if depth >= MAX_DEPTH:
                raise too_deep()
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, str):
            if _SURROGATE.search(value):
                raise _bad_unicode()
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not _INT64[0] <= value <= _INT64[1]:
                raise bad_request("json: cannot unmarshal number into Go value of type int64")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise bad_request(
                    f"json: unsupported value: {value}: numbers must be finite (no NaN, no "
                    "Infinity)"
                )
        else:
            raise bad_request(f"unsupported value of type {type(value).__name__}")


def _bad_unicode() -> ApiError:
    return bad_request("invalid Unicode in request body: lone surrogate (\\ud800-\\udfff)")


# -- metadata and body types ----------------------------------------------------------------------

# ObjectMeta's fields and their JSON types, as the typed decoder insists on them.
_META_TYPES: dict[str, str] = {
    "name": "string",
    "generateName": "string",
    "namespace": "string",
    "selfLink": "string",
    "uid": "string",
    "resourceVersion": "string",
    "creationTimestamp": "string",
    "deletionTimestamp": "string",
    "generation": "int64",
    "deletionGracePeriodSeconds": "int64",
    "labels": "map[string]string",
    "annotations": "map[string]string",
    "finalizers": "[]string",
    "ownerReferences": "[]v1.OwnerReference",
    "managedFields": "[]v1.ManagedFieldsEntry",
}
_OWNER_REF_TYPES = {
    "apiVersion": "string",
    "kind": "string",
    "name": "string",
    "uid": "string",
    "controller": "bool",
    "blockOwnerDeletion": "bool",
}


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _fits(v: Any, go: str) -> bool:
    if v is None:
        return True
    if go == "string":
        return isinstance(v, str)
    if go == "bool":
        return isinstance(v, bool)
    if go == "int64":
        return isinstance(v, int) and not isinstance(v, bool)
    if go.startswith("map["):
        return isinstance(v, dict)
    if go.startswith("[]"):
        return isinstance(v, list)
    return isinstance(v, dict)


def _unmarshal(kind: str, version: str, value: Any, field: str, go: str) -> ApiError:
    return bad_request(
        f'{kind} in version "{version}" cannot be handled as a {kind}: json: cannot unmarshal '
        f"{_json_type(value)} into Go struct field {field} of type {go}"
    )


def check_meta_types(kind: str, version: str, meta: Any) -> None:
    """ObjectMeta as the typed decoder reads it: a 400 naming the first field of the wrong JSON
    type (a name that is a number, labels as a list, finalizers as an object...)."""
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise _unmarshal(kind, version, meta, ".metadata", "v1.ObjectMeta")
    # In the declared order (the first wrong field is the one named), over the fields present.
    for key, go in _META_TYPES.items():
        value = meta.get(key)
        if value is None:
            continue
        field = f"ObjectMeta.metadata.{key}"
        if not _fits(value, go):
            raise _unmarshal(kind, version, value, field, go)
        if go == "map[string]string":
            for v in value.values():
                if v is not None and not isinstance(v, str):
                    raise _unmarshal(kind, version, v, field, "string")
        elif go == "[]string":
            for v in value:
                if not isinstance(v, str):
                    raise _unmarshal(kind, version, v, field, "string")
        elif go.startswith("[]v1."):
            for item in value:
                if not isinstance(item, dict):
                    raise _unmarshal(kind, version, item, field, go[2:])
                if key == "ownerReferences":
                    for k, t in _OWNER_REF_TYPES.items():
                        if not _fits(item.get(k), t):
                            raise _unmarshal(
                                kind, version, item[k], f"OwnerReference.{field}.{k}", t
                            )


def check_types(kind: str, version: str, obj: Any, schema: Mapping[str, Any] | None) -> None:
    """The typed decoder's view of a built-in object: each field the schema types must have
    that JSON type (`spec.ports: "80"` is a 400, as it is for the real server)."""
    if not isinstance(obj, dict):
        return
    check_meta_types(kind, version, obj.get("metadata"))
    if schema is None:
        return
    try:
        _typed(schema).check(obj)
    except _Mismatch as m:
        path = "".join(f".{k}" for k in reversed(m.keys)) or "."
        raise _unmarshal(kind, version, m.value, path, _go_name(m.schema)) from None


def _go_name(schema: Mapping[str, Any]) -> str:
    t = schema.get("type")
    if t == "array":
        return "[]" + _go_name(schema.get("items") or {})
    if t == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "map[string]" + _go_name(schema["additionalProperties"])
    return {"string": "string", "integer": "int32", "boolean": "bool", "number": "float64"}.get(
        str(t), "struct"
    )


class _Mismatch(Exception):
    """A value of the wrong JSON type; the keys above it are added as it unwinds, so a request
    that passes pays for no path."""

    def __init__(self, value: Any, schema: Mapping[str, Any]) -> None:
        self.value = value
        self.schema = schema
        self.keys: list[str] = []


# The JSON types each schema type admits (bool, an int subclass, is checked apart).
_SCHEMA_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "object": (dict,),
    "array": (list,),
    "integer": (int,),
    "boolean": (bool,),
    "number": (int, float),
}


class _Typed:
    """One schema node, compiled once for the typed-decoder check that every write of a
    built-in kind runs: the admitted types, and the children to descend into."""

    __slots__ = ("any", "extra", "items", "leaf", "nobool", "props", "schema", "types")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        t = schema.get("type")
        self.any = bool(schema.get("x-kubernetes-int-or-string"))
        self.types: tuple[type, ...] | None = _SCHEMA_TYPES.get(t) if isinstance(t, str) else None
        self.nobool = t in ("integer", "number")
        self.props: dict[str, _Typed] | None = None
        self.extra: _Typed | None = None
        self.items: _Typed | None = None
        self.leaf = True  # no children to descend into (set when compiled)

    def check(self, value: Any) -> None:
        if value is None or self.any:
            return
        types = self.types
        if types is not None and (
            not isinstance(value, types) or (self.nobool and type(value) is bool)
        ):
            raise _Mismatch(value, self.schema)
        if isinstance(value, dict):
            props, extra = self.props, self.extra
            if props is None and extra is None:
                return
            for k, v in value.items():
                sub = props.get(k) if props is not None and k in props else extra
                if sub is None or k == "metadata" or v is None or sub.any:
                    continue
                if sub.leaf:  # a scalar field, checked here: most fields are
                    t = sub.types
                    if t is not None and (not isinstance(v, t) or (sub.nobool and type(v) is bool)):
                        m = _Mismatch(v, sub.schema)
                        m.keys.append(k)
                        raise m
                    continue
                try:
                    sub.check(v)
                except _Mismatch as m:
                    m.keys.append(k)
                    raise
        elif isinstance(value, list) and self.items is not None:
            check = self.items.check
            for v in value:
                check(v)


_compiled: SchemaCache[_Typed] = SchemaCache()


def _typed(schema: Mapping[str, Any]) -> _Typed:
    node = _compiled.get(schema)
    if node is not None:
        return node
    node = _Typed(schema)
    _compiled.put(schema, node)
    props = schema.get("properties")
    if isinstance(props, Mapping):
        node.props = {k: _typed(v) for k, v in props.items() if isinstance(v, Mapping)}
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        node.extra = _typed(extra)
    items = schema.get("items")
    if isinstance(items, dict):
        node.items = _typed(items)
    node.leaf = not node.props and node.extra is None and node.items is None
    return node


# -- sizes ----------------------------------------------------------------------------------------


def check_stored_size(raw_size: int) -> None:
    """The store's per-object limit (etcd's request limit)."""
    if raw_size > MAX_OBJECT_BYTES:
        raise ApiError(
            413,
            "RequestEntityTooLarge",
            f"etcdserver: request is too large: the object is {raw_size} bytes, the limit is "
            f"{MAX_OBJECT_BYTES}",
        )


def size_errors(plural: str, obj: Mapping[str, Any]) -> list[FieldError]:
    """Validation limits on sizes: annotations in total, and ConfigMap/Secret payloads."""
    errs: list[FieldError] = []
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if isinstance(annotations, dict):
        total = sum(
            len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items() if v
        )
        if total > MAX_ANNOTATIONS_BYTES:
            errs.append(
                FieldError(
                    "metadata.annotations",
                    "Too long",
                    f"must have at most {MAX_ANNOTATIONS_BYTES} bytes",
                )
            )
    if plural in ("configmaps", "secrets"):
        total = 0
        for field in ("data", "binaryData", "stringData"):
            section = obj.get(field)
            if isinstance(section, dict):
                total += sum(len(str(k)) + len(str(v)) for k, v in section.items())
        if total > MAX_DATA_BYTES:
            errs.append(FieldError("[]", "Too long", f"must have at most {MAX_DATA_BYTES} bytes"))
    return errs


def check_sizes(kind: str, group: str, plural: str, name: str, obj: Mapping[str, Any]) -> None:
    """422 for the validation size limits (see `size_errors`)."""
    errs = size_errors(plural, obj)
    if errs:
        raise invalid(kind, group, name, errs)


# -- query parameters -----------------------------------------------------------------------------


def check_query(params: Mapping[str, str], verb: str) -> None:
    """Options the real server parses as integers or enums: a malformed one is a 400/422, never
    a silently different request."""
    for key in ("limit", "timeoutSeconds", "gracePeriodSeconds"):
        text = params.get(key)
        if text is None or text == "":
            continue
        if not re.fullmatch(r"-?[0-9]{1,18}", text):
            raise bad_request(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    getall = getattr(params, "getall", None)
    dry_runs = getall("dryRun", []) if getall else [params.get("dryRun")]
    for value in dry_runs:
        if value is None or value == "All":
            continue
        options = {
            "create": "CreateOptions",
            "update": "UpdateOptions",
            "patch": "PatchOptions",
            "delete": "DeleteOptions",
            "deletecollection": "DeleteOptions",
        }.get(verb, "CreateOptions")
        raise invalid(
            options,
            "meta.k8s.io",
            "",
            [FieldError("dryRun", "Unsupported value", 'supported values: "All"', value or "")],
        )


# -- stored data ----------------------------------------------------------------------------------


def repair_stored(raw: bytes) -> bytes:
    """An object stored before non-finite numbers were refused: NaN and Infinity become null, so
    one such object cannot make every list of its kind unreadable (they are not JSON)."""
    if b"NaN" not in raw and b"Infinity" not in raw:
        return raw
    found: list[str] = []

    def constant(name: str) -> None:
        found.append(name)

    obj = json.loads(raw, parse_constant=constant)
    if not found:
        return raw
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
