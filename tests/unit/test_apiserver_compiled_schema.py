"""The typed-decoder check (`limits.check_types`) and pruning (`schema.prune`) are compiled per
schema for speed; they must refuse, drop and report exactly what a plain walk of the schema does,
with the same messages in the same order. The plain walks are kept here as the references, and
random objects, right and wrong, known fields and unknown ones, go through both."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest

from metallb_py import schema as structural
from metallb_py.apiserver import builtin_schemas, limits
from metallb_py.apiserver.errors import ApiError
from metallb_py.config import crds


def _reference(kind: str, version: str, value: Any, schema: Mapping[str, Any], path: str) -> None:
    if value is None or schema.get("x-kubernetes-int-or-string"):
        return
    t = schema.get("type")
    ok = {
        "string": lambda: isinstance(value, str),
        "object": lambda: isinstance(value, dict),
        "array": lambda: isinstance(value, list),
        "integer": lambda: isinstance(value, int) and not isinstance(value, bool),
        "boolean": lambda: isinstance(value, bool),
        "number": lambda: isinstance(value, int | float) and not isinstance(value, bool),
    }.get(str(t), lambda: True)()
    if not ok:
        raise limits._unmarshal(kind, version, value, path or ".", limits._go_name(schema))
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            sub = props.get(k) if k in props else (extra if isinstance(extra, dict) else None)
            if sub is not None and k != "metadata":
                _reference(kind, version, v, sub, f"{path}.{k}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for v in value:
            _reference(kind, version, v, schema["items"], path)


_WRONG: list[Any] = ["x", 1, 2.5, True, None, [], {}, ["y"], {"a": 1}]


def _value(schema: Mapping[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """A value for `schema`: usually of its type, sometimes of any other (and sometimes null)."""
    if rng.random() < 0.04 or depth > 6:
        return rng.choice(_WRONG)
    t = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        return rng.choice([80, "http"])
    if t == "string":
        return rng.choice(["a", "TCP", ""])
    if t == "integer":
        return rng.choice([0, 80, 65535])
    if t == "number":
        return rng.choice([0, 1.5])
    if t == "boolean":
        return rng.choice([True, False])
    if t == "array":
        items = schema.get("items") or {}
        return [_value(items, rng, depth + 1) for _ in range(rng.randint(0, 3))]
    out: dict[str, Any] = {}
    props = schema.get("properties") or {}
    for k, sub in props.items():
        if rng.random() < 0.6:
            out[k] = _value(sub, rng, depth + 1)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for i in range(rng.randint(0, 2)):
            out[f"k{i}"] = _value(extra, rng, depth + 1)
    if rng.random() < 0.2:
        out["unknownField"] = rng.choice(_WRONG)
    return out


def _outcome(fn: Any, *args: Any) -> str | None:
    try:
        fn(*args)
    except ApiError as exc:
        return f"{exc.code} {exc.message}"
    return None


@pytest.mark.parametrize(
    ("kind", "group"),
    [("Service", ""), ("Pod", ""), ("ConfigMap", ""), ("Event", ""), ("Event", "events.k8s.io")],
)
def test_the_compiled_check_refuses_what_the_plain_walk_refuses(kind: str, group: str) -> None:
    schema = builtin_schemas.top_level(kind, group)
    rng = random.Random(f"{kind}/{group}")
    refused = 0
    for _ in range(3000):
        obj = _value(schema, rng)
        if not isinstance(obj, dict):
            continue
        obj.pop("metadata", None)  # ObjectMeta has its own check, the same for both
        want = _outcome(_reference, kind, "v1", obj, schema, "")
        got = _outcome(limits.check_types, kind, "v1", obj, schema)
        assert got == want, obj
        refused += want is not None
    assert refused > 100  # the generator does produce wrong types


def test_a_deep_wrong_field_is_named_by_its_whole_path() -> None:
    schema = builtin_schemas.top_level("Service", "")
    obj = {"spec": {"ports": [{"port": 80}, {"port": "80"}]}}
    with pytest.raises(ApiError) as exc:
        limits.check_types("Service", "v1", obj, schema)
    assert exc.value.code == 400
    assert "cannot unmarshal string into Go struct field .spec.ports.port of type int32" in (
        exc.value.message
    )


def test_a_schema_is_compiled_once() -> None:
    schema = builtin_schemas.top_level("Service", "")
    assert builtin_schemas.top_level("Service", "") is schema
    assert limits._typed(schema) is limits._typed(schema)


def _reference_prune(
    value: Any, schema: Mapping[str, Any], path: tuple[Any, ...], unknown: list[Any], root: bool
) -> Any:
    """Pruning as a plain walk that copies every object it passes."""
    if isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        if props is None:
            if isinstance(addl, dict) and ("properties" in addl or "items" in addl):
                return {
                    k: _reference_prune(v, addl, (*path, k), unknown, False)
                    for k, v in value.items()
                }
            return value
        result = {}
        for key, v in value.items():
            sub = props.get(key)
            if sub is None:
                if root and key in ("apiVersion", "kind"):
                    result[key] = v
                elif root and key == "metadata":
                    if isinstance(v, dict):
                        kept = {}
                        for mk, mv in v.items():
                            if mk in structural.META_FIELDS:
                                kept[mk] = mv
                            else:
                                unknown.append(("metadata", mk))
                        v = kept
                    result[key] = v
                elif addl is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                    result[key] = v
                else:
                    unknown.append((*path, key))
                continue
            if isinstance(v, dict | list) and (
                "properties" in sub or "items" in sub or "additionalProperties" in sub
            ):
                v = _reference_prune(v, sub, (*path, key), unknown, False)
            result[key] = v
        return result
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict) and ("properties" in items or "items" in items):
            return [
                _reference_prune(v, items, (*path, i), unknown, False) for i, v in enumerate(value)
            ]
    return value


def _schemas() -> list[tuple[str, Mapping[str, Any]]]:
    out: list[tuple[str, Mapping[str, Any]]] = [
        (f"{k}/{g}", builtin_schemas.top_level(k, g))
        for k, g in [("Service", ""), ("Pod", ""), ("Namespace", ""), ("Event", "")]
    ]
    for crd in crds.render_all().values():
        for v in crd["spec"]["versions"]:
            out.append((f"{crd['metadata']['name']}/{v['name']}", v["schema"]["openAPIV3Schema"]))
    return out


@pytest.mark.parametrize(
    ("name", "schema"), _schemas(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_compiled_pruning_drops_and_reports_what_the_plain_walk_does(
    name: str, schema: Mapping[str, Any]
) -> None:
    rng = random.Random(name)
    dropped = 0
    for _ in range(1500):
        obj = _value(schema, rng)
        if not isinstance(obj, dict):
            continue
        if rng.random() < 0.5:
            obj["metadata"] = {"name": "x", "labels": {"a": "b"}}
            if rng.random() < 0.3:
                obj["metadata"]["bogus"] = 1
        want_unknown: list[Any] = []
        want = _reference_prune(obj, schema, (), want_unknown, True)
        got_unknown: list[structural.Violation] = []
        got = structural.prune(obj, schema, (), got_unknown, root=True)  # type: ignore[arg-type]
        assert got == want
        assert [v.path for v in got_unknown] == want_unknown
        dropped += bool(want_unknown)
        if not want_unknown:
            assert got is obj  # nothing to drop: no copy
    assert dropped > 50
