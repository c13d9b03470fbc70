"""One structural validator, two entry points: the config parser's check and the API server's.

Every CRD in manifests/crds/ is walked with the same generated cases (the bare envelope, then a
value of the wrong type at every field) through `config.schema_check.check` (what the parser
calls) and `apiserver.schema.walk` (what a write to the server calls); both must name the same
fields. Then the cases on which the two former copies disagreed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_py.apiserver import schema as server_schema
from metallb_py.config.parser import parse
from metallb_py.config.schema_check import check as config_check
from metallb_py.schema import Schema

CRDS = Path(__file__).resolve().parents[2] / "manifests" / "crds"
WRONG = {"string": 7, "integer": "seven", "number": "seven", "boolean": "yes", "array": "x"}
WRONG |= {"object": "x"}
MAX_DEPTH = 6  # field levels generated below spec/status


def _versions() -> Iterator[tuple[str, str, str, Schema]]:
    for path in sorted(CRDS.glob("metallb.io_*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for v in crd["spec"]["versions"]:
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            yield f"{group}/{v['name']}", kind, v["name"], v["schema"]["openAPIV3Schema"]


VERSIONS = list(_versions())


def _fields(schema: Schema, path: tuple[Any, ...], depth: int) -> Iterator[tuple[Any, ...]]:
    """Every field path under `schema` (list items as index 0), to `MAX_DEPTH` levels."""
    if depth > MAX_DEPTH:
        return
    for key, sub in (schema.get("properties") or {}).items():
        yield (*path, key)
        yield from _fields(sub, (*path, key), depth + 1)
    if isinstance(schema.get("items"), dict):
        yield from _fields(schema["items"], (*path, 0), depth + 1)


def _at(schema: Schema, path: tuple[Any, ...]) -> Schema:
    for part in path:
        schema = schema["items"] if isinstance(part, int) else schema["properties"][part]
    return schema


def _envelope(api_version: str, kind: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "x", "namespace": "metallb-system"},
    }


def _with(obj: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """`obj` with `value` at `path`, creating the objects and one-item lists on the way."""
    node: Any = obj
    for part, nxt in zip(path, (*path[1:], None), strict=True):
        if nxt is None:
            node[part] = value
        elif isinstance(part, int):
            node = node[part]
        else:
            node = node.setdefault(part, [{}] if isinstance(nxt, int) else {})
    return obj


def _text(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _both(obj: dict[str, Any], schema: Schema) -> tuple[list[str], list[str]]:
    """(fields the config check names, fields the API server names), each sorted."""
    config = sorted(path for path, _ in config_check(obj, schema))
    out = server_schema.Outcome()
    server_schema.walk(obj, schema, out)
    return config, sorted([e.field for e in out.errors] + out.unknown)


@pytest.mark.parametrize(
    ("api_version", "kind", "version", "schema"),
    VERSIONS,
    ids=[f"{kind}-{version}" for _, kind, version, _ in VERSIONS],
)
def test_every_crd_gets_the_same_verdicts_from_both_entry_points(
    api_version: str, kind: str, version: str, schema: Schema
) -> None:
    config, server = _both(_envelope(api_version, kind), schema)
    assert config == server
    cases = 0
    for top in ("spec", "status"):
        if top not in (schema.get("properties") or {}):
            continue
        for path in _fields(schema["properties"][top], (top,), 0):
            sub = _at(schema, path)
            typ = "int-or-string" if sub.get("x-kubernetes-int-or-string") else sub.get("type")
            if typ not in WRONG and typ != "int-or-string":
                continue
            bad = True if typ == "int-or-string" else WRONG[typ]
            obj = _with(_envelope(api_version, kind), path, bad)
            config, server = _both(obj, schema)
            assert config == server, f"{kind} {version} {_text(path)}"
            assert _text(path) in config, f"{kind} {version} {_text(path)}: {bad!r} accepted"
            cases += 1
    assert cases or "spec" not in (schema.get("properties") or {})


# A schema with the keywords MetalLB's own CRDs do not use, on which the two copies disagreed.
EDGE: Schema = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "properties": {
                "port": {"x-kubernetes-int-or-string": True},
                "weight": {"type": "integer", "minimum": 0, "exclusiveMinimum": True},
                "address": {"type": "string", "format": "ipv4"},
            },
        },
    },
}


@pytest.mark.parametrize(
    ("spec", "config_message", "server_message"),
    [
        (
            {"port": True},
            "must be an integer or a string, not boolean",
            'spec.port in body must be of type int-or-string: "boolean"',
        ),
        ({"weight": 0}, "0 is not more than the exclusive minimum 0", "should be greater than 0"),
        (
            {"address": "2001:db8::1"},
            "'2001:db8::1' is not a valid ipv4",
            'spec.address in body must be of type ipv4: "2001:db8::1"',
        ),
    ],
)
def test_cases_the_two_copies_disagreed_on_are_refused_by_both(
    spec: dict[str, Any], config_message: str, server_message: str
) -> None:
    obj = {**_envelope("x.io/v1", "K"), "spec": spec}
    config = config_check(obj, EDGE)
    out = server_schema.Outcome()
    server_schema.walk(obj, EDGE, out)
    (field,) = spec
    assert config == [(f"spec.{field}", config_message)]
    assert [e.field for e in out.errors] == [f"spec.{field}"]
    assert server_message in str(out.errors[0])


@pytest.mark.parametrize("good", [{"port": 80}, {"port": "http"}, {"weight": 1}])
def test_and_what_is_valid_passes_both(good: dict[str, Any]) -> None:
    obj = {**_envelope("x.io/v1", "K"), "spec": {**good, "address": "192.0.2.1"}}
    assert _both(obj, EDGE) == ([], [])


def test_the_parser_turns_violations_into_schema_problems() -> None:
    pool = {
        **_envelope("metallb.io/v1beta1", "IPAddressPool"),
        "spec": {"addresses": "192.0.2.0/24", "autoAssign": "yes"},
    }
    _, problems = parse([pool])
    lines = sorted(p.line() for p in problems if p.is_error)
    assert lines == [
        "IPAddressPool/metallb-system/x: spec.addresses: must be an array, not string "
        "'192.0.2.0/24' (rule schema)",
        "IPAddressPool/metallb-system/x: spec.autoAssign: must be a boolean, not string 'yes' "
        "(rule schema)",
    ]
