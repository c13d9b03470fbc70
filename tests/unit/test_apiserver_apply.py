"""Server-side apply in the embedded API server: field sets, merge/prune/conflict rules and the
managedFields bookkeeping of other writes. The HTTP endpoint is in
tests/e2e/test_apiserver_apply_http.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from metallb_py.apiserver import apply, fieldset
from metallb_py.apiserver.errors import ApiError
from metallb_py.apiserver.fieldset import Types

DEPLOY = Types("Deployment")


def deployment(image: str = "nginx:1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
            **spec,
        },
    }


def do_apply(live: dict[str, Any], doc: dict[str, Any], manager: str, force: bool = False) -> Any:
    writer = apply.Writer(manager, "apps/v1", DEPLOY, has_status=True)
    return apply.apply(live, doc, writer, force=force)


def owners(obj: dict[str, Any]) -> dict[str, set[str]]:
    return {
        f"{e['manager']}/{e['operation']}": {
            fieldset.describe(p) for p in fieldset.decode(e["fieldsV1"])
        }
        for e in obj["metadata"].get("managedFields", [])
    }


# -- field sets ----------------------------------------------------------------------------------


def test_fieldsv1_has_the_real_servers_spelling() -> None:
    flat = fieldset.flatten(deployment(), DEPLOY)
    encoded = fieldset.encode(flat)
    assert encoded == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:selector": {"f:matchLabels": {"f:app": {}}},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}},
                    }
                },
            },
        },
    }
    assert fieldset.decode(encoded) == set(flat)


def test_set_lists_and_crd_list_maps() -> None:
    obj = {"metadata": {"finalizers": ["a", "b"]}, "spec": {"peers": [{"ip": "1.1.1.1", "x": 1}]}}
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "peers": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["ip"],
                        "items": {"type": "object"},
                    }
                },
            }
        },
    }
    flat = fieldset.flatten(obj, Types("Peer", schema, custom=True))
    assert set(fieldset.encode(flat)["f:metadata"]["f:finalizers"]) == {'v:"a"', 'v:"b"'}
    assert fieldset.encode(flat)["f:spec"] == {
        "f:peers": {'k:{"ip":"1.1.1.1"}': {".": {}, "f:ip": {}, "f:x": {}}}
    }
    # Without the schema's list type the list is atomic: one leaf.
    assert fieldset.encode(fieldset.flatten(obj, Types("Peer", {}, custom=True)))["f:spec"] == {
        "f:peers": {}
    }


def test_items_without_their_key_make_the_list_atomic() -> None:
    obj = {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}
    flat = fieldset.flatten(obj, DEPLOY)
    assert list(flat) == [("f:spec", "f:template", "f:spec", "f:containers")]


# -- apply ---------------------------------------------------------------------------------------


def test_apply_creates_and_reapply_changes_nothing() -> None:
    first = do_apply({"metadata": {}}, deployment(), "op")
    assert first["spec"] == deployment()["spec"]
    [entry] = first["metadata"]["managedFields"]
    assert entry["manager"] == "op" and entry["operation"] == "Apply"
    assert entry["fieldsType"] == "FieldsV1" and entry["apiVersion"] == "apps/v1"
    again = do_apply(copy.deepcopy(first), deployment(), "op")
    assert again == first  # including the entry's time: nothing to write


def test_omitted_fields_are_removed_unless_someone_else_owns_them() -> None:
    live = do_apply({"metadata": {}}, deployment(replicas=3, minReadySeconds=5), "op")
    # Another writer (kubectl edit) sets a field of its own and shares one of ours.
    edited = copy.deepcopy(live)
    edited["spec"]["paused"] = True
    editor = apply.Writer("kubectl-edit", "apps/v1", DEPLOY, has_status=True)
    edited["metadata"]["managedFields"] = apply.record_update(
        live, edited, live["metadata"]["managedFields"], editor
    )
    assert owners(edited)["kubectl-edit/Update"] == {".spec.paused"}
    after = do_apply(edited, deployment(), "op")
    assert "replicas" not in after["spec"] and "minReadySeconds" not in after["spec"]
    assert after["spec"]["paused"] is True  # not ours: kept
    assert ".spec.replicas" not in owners(after)["op/Apply"]


def test_conflict_and_force() -> None:
    live = do_apply({"metadata": {}}, deployment(replicas=3), "op")
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    scaled["metadata"]["managedFields"] = apply.record_update(
        live, scaled, live["metadata"]["managedFields"], apply.Writer("hpa", "apps/v1", DEPLOY)
    )
    assert ".spec.replicas" not in owners(scaled)["op/Apply"]
    # The scaler owns replicas now: a second applier with another value conflicts ...
    with pytest.raises(ApiError) as exc:
        do_apply(scaled, deployment(replicas=3), "other")
    err = exc.value
    assert err.code == 409 and err.reason == "Conflict"
    assert (
        err.message
        == 'Apply failed with 1 conflict: conflict with "hpa" using apps/v1: .spec.replicas'
    )
    assert err.details == {
        "causes": [
            {
                "reason": "FieldManagerConflict",
                "message": 'conflict with "hpa" using apps/v1',
                "field": ".spec.replicas",
            }
        ]
    }
    # ... the same value is shared ownership, no conflict ...
    shared = do_apply(scaled, deployment(replicas=5), "other")
    assert ".spec.replicas" in owners(shared)["hpa/Update"]
    assert ".spec.replicas" in owners(shared)["other/Apply"]
    # ... and force takes the field.
    forced = do_apply(scaled, deployment(replicas=3), "other", force=True)
    assert forced["spec"]["replicas"] == 3
    assert "hpa/Update" not in owners(forced)  # its only field was taken


def test_keyed_list_items_are_owned_per_item() -> None:
    live = do_apply({"metadata": {}}, deployment(), "op")
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "template": {"spec": {"containers": [{"name": "proxy", "image": "envoy"}]}},
        },
    }
    both = do_apply(live, sidecar, "injector")
    names = [c["name"] for c in both["spec"]["template"]["spec"]["containers"]]
    assert names == ["web", "proxy"]
    # The operator re-applies with a new image: its item changes, the injector's stays.
    updated = do_apply(both, deployment(image="nginx:2"), "op")
    containers = updated["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": "web", "image": "nginx:2"}, {"name": "proxy", "image": "envoy"}]
    # The injector stops sending its container: it goes.
    gone = do_apply(updated, {**sidecar, "spec": {}}, "injector")
    assert [c["name"] for c in gone["spec"]["template"]["spec"]["containers"]] == ["web"]


def test_set_items_merge_and_prune() -> None:
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    a = do_apply(
        {"metadata": {"finalizers": ["x"]}},
        {**doc, "metadata": {"name": "web", "finalizers": ["a"]}},
        "op",
    )
    assert a["metadata"]["finalizers"] == ["x", "a"]
    b = do_apply(a, doc, "op")
    assert b["metadata"]["finalizers"] == ["x"]


def test_update_entries_follow_changes() -> None:
    new = deployment()
    fields = apply.record_update(None, new, None, apply.Writer("kubectl-create", "apps/v1", DEPLOY))
    [entry] = fields
    assert entry["operation"] == "Update" and entry["manager"] == "kubectl-create"
    live = {**new, "metadata": {**new["metadata"], "managedFields": fields}}
    # A no-op update keeps the entries exactly.
    same = apply.record_update(
        live, copy.deepcopy(live), fields, apply.Writer("x", "apps/v1", DEPLOY)
    )
    assert same == fields
    # An explicit [{}] clears them.
    assert apply.given_or_live({"managedFields": fields}, {"managedFields": [{}]}) == []
    assert (
        apply.default_manager("kubectl-edit/v1.31.0 (linux/amd64) kubernetes/abc") == "kubectl-edit"
    )


# -- YAML bodies ----------------------------------------------------------------------------------

BOMB = b"""
a: &a ["x","x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_yaml_limits() -> None:
    with pytest.raises(ApiError, match="excessive aliasing"):
        apply.load_yaml(BOMB)
    with pytest.raises(ApiError, match="recursive alias"):
        apply.load_yaml(b"a: &a [*a]")
    assert apply.load_yaml(b"a: &x {b: 1}\nc: *x\nd: 2020-01-01") == {
        "a": {"b": 1},
        "c": {"b": 1},
        "d": "2020-01-01",
    }
