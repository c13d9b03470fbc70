"""The API server's limits as pure functions: strict JSON decoding, ObjectMeta types, JSON patch
bounds, stored-NaN repair, and the one label-selector parser's two forms agreeing."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from metallb_py import selectors
from metallb_py.apiserver import limits, patch
from metallb_py.apiserver.apply import load_yaml
from metallb_py.apiserver.errors import ApiError


@pytest.mark.parametrize(
    "body",
    [
        b'{"x": NaN}',
        b'{"x": -Infinity}',
        b'{"x": 1e999}',
        b'{"x": ' + b"9" * 5000 + b"}",
        b'{"x": 9223372036854775808}',
        b'{"x": "\\ud800"}',
        b"[" * 1000 + b"]" * 1000,
        b"[" * 101 + b"]" * 101,
    ],
)
def test_strict_json_refuses_with_400(body: bytes) -> None:
    with pytest.raises(ApiError) as err:
        limits.decode_json(body)
    assert err.value.code == 400


def test_strict_json_accepts_ordinary_documents() -> None:
    doc = {"a": [1, -2, 2.5, 9223372036854775807, "é", None, True], "b": {"c": []}}
    assert limits.decode_json(json.dumps(doc).encode()) == doc
    assert limits.decode_json(b"[" * 100 + b"]" * 100) is not None


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ({"name": 5}, "number into Go struct field ObjectMeta.metadata.name of type string"),
        ({"labels": ["a"]}, "array into Go struct field ObjectMeta.metadata.labels"),
        ({"labels": {"a": 1}}, "number into Go struct field ObjectMeta.metadata.labels"),
        ({"finalizers": {"a": 1}}, "object into Go struct field ObjectMeta.metadata.finalizers"),
        ({"ownerReferences": [1]}, "of type v1.OwnerReference"),
        ({"ownerReferences": [{"controller": "yes"}]}, "controller of type bool"),
        ({"generation": "1"}, "string into Go struct field ObjectMeta.metadata.generation"),
    ],
)
def test_meta_types(meta: dict[str, Any], words: str) -> None:
    with pytest.raises(ApiError) as err:
        limits.check_meta_types("ConfigMap", "v1", meta)
    assert err.value.code == 400 and words in err.value.message
    assert err.value.message.startswith(
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal'
    )


def test_sizes_and_query() -> None:
    obj = {"metadata": {"annotations": {"a": "x" * (256 * 1024)}}, "data": {"k": "v"}}
    assert [str(e) for e in limits.size_errors("configmaps", obj)] == [
        "metadata.annotations: Too long: must have at most 262144 bytes"
    ]
    assert limits.size_errors("configmaps", {"data": {"k": "x" * 1000}}) == []
    with pytest.raises(ApiError) as err:
        limits.check_stored_size(limits.MAX_OBJECT_BYTES + 1)
    assert err.value.code == 413
    for params in ({"limit": "abc"}, {"timeoutSeconds": "1.5"}):
        with pytest.raises(ApiError) as err:
            limits.check_query(params, "list")
        assert err.value.code == 400
    with pytest.raises(ApiError) as err:
        limits.check_query({"dryRun": "maybe"}, "create")
    assert err.value.code == 422
    limits.check_query({"limit": "500", "dryRun": "All"}, "create")


def test_json_patch_copy_bomb_stops_at_the_copy_budget() -> None:
    doc = {"data": {"a": "x" * 1000}}
    ops = [{"op": "copy", "from": "/data", "path": f"/data/k{i}"} for i in range(30)]
    start = time.monotonic()
    with pytest.raises(ApiError) as err:
        patch.json_patch(doc, ops)
    assert err.value.code == 422 and "accumulated size increase of copy" in err.value.message
    assert time.monotonic() - start < 1
    small = [{"op": "copy", "from": "/data", "path": f"/data/k{i}"} for i in range(3)]
    assert len(json.dumps(patch.json_patch(doc, small))) > 8000


@pytest.mark.parametrize(
    ("ops", "code"),
    [
        ([{"op": "test", "path": "/a", "value": 1}] * 10_001, 413),
        ([{"op": "add", "path": "/a"}], 400),
        ([{"op": "move", "path": "/a"}], 400),
        ([{"op": "replace", "path": 5, "value": 1}], 400),
        ([{"op": "frobnicate", "path": "/a"}], 400),
        ([1], 400),
        ({"op": "add"}, 400),
        ([{"op": "move", "from": "/a", "path": "/a/b"}], 422),
    ],
)
def test_json_patch_ops_are_checked_before_any_applies(ops: Any, code: int) -> None:
    with pytest.raises(ApiError) as err:
        patch.json_patch({"a": {"x": 1}}, ops)
    assert err.value.code == code


def test_yaml_string_alias_bomb_is_bounded_in_bytes() -> None:
    lines = [f's0: &s0 "{"x" * 100_000}"']
    lines += [f"s{i}: &s{i} [" + ",".join([f"*s{i - 1}"] * 10) + "]" for i in range(1, 6)]
    with pytest.raises(ApiError) as err:
        load_yaml("\n".join(lines).encode())
    # Refused by whichever bound trips first (the loader's expanded-text cap or the byte cap);
    # either way a 400 naming the expansion, never the 100 GB object.
    assert err.value.code == 400 and "expand" in err.value.message
    for doc in (b"a: .nan", b"a: 99999999999999999999", b"2001-01-01: x"):
        with pytest.raises(ApiError):
            load_yaml(doc)


def test_stored_nan_is_repaired() -> None:
    raw = b'{"metadata":{"name":"x"},"a":NaN,"b":[Infinity,-Infinity],"c":"NaN"}'
    fixed = json.loads(limits.repair_stored(raw))
    assert fixed == {"metadata": {"name": "x"}, "a": None, "b": [None, None], "c": "NaN"}
    ok = b'{"c":"NaN"}'
    assert limits.repair_stored(ok) is ok


@pytest.mark.parametrize(
    ("text", "structured"),
    [
        ("app=web", {"matchLabels": {"app": "web"}}),
        (
            "app in (web,api)",
            {"matchExpressions": [{"key": "app", "operator": "In", "values": ["api", "web"]}]},
        ),
        (
            "app notin (web)",
            {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]},
        ),
        ("!app", {"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}),
        (
            "example.com/app,t=1",
            {
                "matchLabels": {"t": "1"},
                "matchExpressions": [{"key": "example.com/app", "operator": "Exists"}],
            },
        ),
    ],
)
def test_string_and_structured_forms_give_the_same_selector(
    text: str, structured: dict[str, Any]
) -> None:
    assert selectors.parse_string(text) == selectors.LabelSelector.from_dict(structured)


def test_string_form_extras_and_errors() -> None:
    n = selectors.parse_string("n>3,m<0")
    assert n.matches({"n": "4", "m": "-1"}) and not n.matches({"n": "3", "m": "-1"})
    assert not n.matches({"n": "x", "m": "-1"})
    assert selectors.parse_string("a!=b").matches({})
    for bad in (
        "=",
        "(",
        "a in ()",
        "a gt x",
        "a lt 1.5",
        "a>1.5",
        "a,",
        "a=b=c",
        "A/b",
        "a" * 254 + "/b",
        "a=" + "v" * 64,
    ):
        with pytest.raises(selectors.SelectorError):
            selectors.parse_string(bad)
    with pytest.raises(selectors.SelectorError):
        selectors.LabelSelector.from_dict({"matchExpressions": [{"key": "a", "operator": "In"}]})
