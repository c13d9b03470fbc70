"""The managedFields write path's shortcuts (keys spelled once and without json.dumps, a create
encoded in one walk, entries of other managers looked up instead of decoded, the no-op check
without copies) record exactly what the plain set arithmetic records: the reference below is
that arithmetic, and randomized objects of built-in and custom kinds run through both."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterable
from typing import Any

import pytest

from metallb_py.apiserver import apply, fieldset, objects, patch
from metallb_py.apiserver.fieldset import ATOMIC, ITEM, ListType, Path, Types

# -- the reference: field sets as plain set arithmetic, every key through json.dumps ----------


def ref_item_key(item: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(item, dict):
        return None
    ident: dict[str, Any] = {}
    for k in sorted(keys):
        v = item.get(k)
        if v is None or isinstance(v, dict | list):
            return None
        ident[k] = v
    return "k:" + json.dumps(ident, separators=(",", ":"))


def ref_set_key(value: Any) -> str:
    return "v:" + json.dumps(value, separators=(",", ":"))


def ref_declared(types: Types, names: tuple[str, ...], node: Any) -> ListType:
    """Types.list_type without its cache (which serves built-in kinds only)."""
    if types.custom and names[:1] != ("metadata",):
        return types.list_type(names, node)
    key = patch.merge_key(names, types.kind)
    if key is None:
        return ATOMIC
    return ("set", ()) if key == "" else ("map", (key,))


def ref_list_type(types: Types, names: tuple[str, ...], node: Any, items: list[Any]) -> ListType:
    lt = ref_declared(types, names, node)
    if lt[0] == "map":
        seen = [ref_item_key(i, lt[1]) for i in items]
        if None in seen or len(set(seen)) != len(seen):
            return ATOMIC
    elif lt[0] == "set":
        if any(isinstance(v, dict | list) for v in items):
            return ATOMIC
        if len({ref_set_key(v) for v in items}) != len(items):
            return ATOMIC
    return lt


def ref_flatten(obj: Any, types: Types, tracked: Iterable[str] | None = None) -> dict[Path, Any]:
    out: dict[Path, Any] = {}
    keep = set(tracked) if tracked is not None else None
    root = types.root()
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (keep is not None and key not in keep):
            continue
        if key == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in fieldset.IGNORED_META}
            if not value:
                continue
        ref_walk(value, ("f:" + key,), (key,), Types.field(root, key), types, out)
    return out


def ref_walk(
    value: Any, path: Path, names: tuple[str, ...], node: Any, types: Types, out: dict[Path, Any]
) -> None:
    if isinstance(value, dict):
        if not value:
            out[path] = {}
            return
        for k, v in value.items():
            ref_walk(v, (*path, "f:" + k), (*names, k), Types.field(node, k), types, out)
        return
    if isinstance(value, list) and value:
        lt = ref_list_type(types, names, node, value)
        if lt[0] == "map":
            sub = Types.items(node)
            for item in value:
                ipath = (*path, str(ref_item_key(item, lt[1])))
                out[ipath] = ITEM
                for k, v in item.items():
                    ref_walk(v, (*ipath, "f:" + k), (*names, k), Types.field(sub, k), types, out)
            return
        if lt[0] == "set":
            for v in value:
                out[(*path, ref_set_key(v))] = v
            return
    out[path] = value


def ref_record_update(old: Any, new: Any, start: Any, writer: apply.Writer) -> Any:
    def without(obj: Any) -> Any:
        meta = obj.get("metadata") or {}
        return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}

    if old is not None and without(old) == without(new):
        return start if isinstance(start, list) else []
    entries = apply.read_entries({"managedFields": start})
    old_flat = ref_flatten(old, writer.types, writer.tracked(old)) if old is not None else {}
    new_flat = ref_flatten(new, writer.types, writer.tracked(new))
    changed = {
        p for p, v in new_flat.items() if p not in old_flat or not fieldset.same(old_flat[p], v)
    }
    removed = old_flat.keys() - new_flat.keys()
    if not changed and not removed:
        return apply.write_entries(entries)

    def stays(p: tuple[str, ...]) -> bool:
        """Outside what the endpoint can write: a status update leaves spec alone."""
        if not p:
            return False
        if writer.subresource == "status":
            return p[0] != "f:status"
        return writer.has_status and p[0] == "f:status"

    me = (writer.manager, "Update", writer.subresource)
    for e in entries:
        if e.ident != me:
            e.set_fields({p for p in e.fields - changed if p in new_flat or stays(p)})
    own = apply._find(entries, me, writer.api_version)
    own.set_fields(
        {p for p in own.fields | changed if p in new_flat or stays(p)}, writer.api_version
    )
    return apply.write_entries(entries)


# -- random objects -----------------------------------------------------------------------------

STRINGS = ["web", "a", "", 'q"uote', "back\\slash", "tab\t", "\x7f", "é", "日本", "😀", "x/y"]
SCALARS: list[Any] = [*STRINGS, 0, 1, 80, -3, 2**40, 1.5, 80.0, True, False, None]

PEER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "peers": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name", "proto"],
                    "items": {
                        "type": "object",
                        "properties": {
                            "opts": {"type": "array", "x-kubernetes-list-type": "set"},
                            "hops": {
                                "type": "array",
                                "x-kubernetes-list-type": "map",
                                "x-kubernetes-list-map-keys": ["ip"],
                            },
                        },
                    },
                },
                "tags": {"type": "array", "x-kubernetes-list-type": "set"},
                "plain": {"type": "array"},
                "byName": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["k\u00e9y", "k\u00e9y"],
                    },
                },
                "odd": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": [1],
                },
                "nokeys": {"type": "array", "x-kubernetes-list-type": "map"},
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "conditions": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["type"],
                }
            },
        },
    },
}

KINDS = [
    ("Service", Types("Service")),
    ("Deployment", Types("Deployment")),
    ("Peer", Types("Peer", PEER_SCHEMA, custom=True)),
    ("Peer", Types("Peer", {}, custom=True)),
]


def scalar(rng: random.Random) -> Any:
    return rng.choice(SCALARS)


def keyed(rng: random.Random, keys: list[str], extra: int = 2) -> list[Any]:
    """Items keyed by `keys`, now and then one without its key, a duplicate or a non-dict."""
    items: list[Any] = []
    for _ in range(rng.randint(1, 4)):
        item = {k: rng.choice([*SCALARS[:12], 80, 443, 53]) for k in keys if rng.random() < 0.95}
        for _ in range(rng.randint(0, extra)):
            item[rng.choice(["x", "proto", "targetPort", "name", "é"])] = value(rng, 1)
        items.append(item)
    r = rng.random()
    if r < 0.1:
        items.append(copy.deepcopy(items[0]))
    elif r < 0.15:
        items.append(rng.choice(["s", 3, [1]]))
    elif r < 0.2:
        items.append({keys[0]: {"nested": 1}})
    return items


def value(rng: random.Random, depth: int) -> Any:
    r = rng.random()
    if depth <= 0 or r < 0.45:
        return scalar(rng)
    if r < 0.6:
        return [scalar(rng) for _ in range(rng.randint(0, 3))]
    if r < 0.7:
        return [value(rng, depth - 1) for _ in range(rng.randint(0, 2))]
    if r < 0.75:
        return {}
    return {rng.choice([*STRINGS, "spec", "f"]): value(rng, depth - 1) for _ in range(3)}


def finalizers(rng: random.Random) -> list[Any]:
    out: list[Any] = [rng.choice(["a", "b/c", "é", 'q"']) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.15:
        out.append(rng.choice([1, {"a": 1}, ["x"], None, True]))
    return out


def metadata(rng: random.Random) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "x", "namespace": "default", "uid": "u", "generation": 1}
    if rng.random() < 0.8:
        meta["labels"] = {rng.choice(STRINGS): rng.choice(STRINGS) for _ in range(3)}
    if rng.random() < 0.5:
        meta["annotations"] = {rng.choice(STRINGS): value(rng, 1) for _ in range(2)}
    if rng.random() < 0.5:
        meta["finalizers"] = finalizers(rng)
    if rng.random() < 0.4:
        meta["ownerReferences"] = keyed(rng, ["uid"])
    if rng.random() < 0.1:
        meta["resourceVersion"] = "5"
    return meta


def make(rng: random.Random, kind: str) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": metadata(rng)}
    spec: dict[str, Any] = {}
    status: dict[str, Any] = {}
    if kind == "Service":
        spec["type"] = "LoadBalancer"
        spec["ports"] = keyed(rng, ["port"])
        spec["selector"] = {"app": rng.choice(STRINGS)}
        if rng.random() < 0.5:
            spec["clusterIPs"] = ["10.0.0.1", rng.choice(STRINGS)]
        ingress = [{"ip": f"198.51.100.{rng.randint(1, 9)}"} for _ in range(rng.randint(0, 2))]
        status["loadBalancer"] = {"ingress": ingress} if ingress else {}
        if rng.random() < 0.5:
            status["conditions"] = keyed(rng, ["type"])
    elif kind == "Deployment":
        containers = keyed(rng, ["name"])
        for c in containers:
            if isinstance(c, dict) and rng.random() < 0.7:
                c["ports"] = keyed(rng, ["containerPort"], 1)
                c["env"] = keyed(rng, ["name"], 1)
        spec["template"] = {"spec": {"containers": containers}}
        status["conditions"] = keyed(rng, ["type"])
    else:
        spec["peers"] = keyed(rng, ["name", "proto"])
        for p in spec["peers"]:
            if isinstance(p, dict) and rng.random() < 0.6:
                p["opts"] = finalizers(rng)
                p["hops"] = keyed(rng, ["ip"], 1)
        spec["tags"] = finalizers(rng)
        spec["plain"] = [value(rng, 1) for _ in range(rng.randint(0, 2))]
        spec["byName"] = {rng.choice(STRINGS): keyed(rng, ["k\u00e9y"], 1) for _ in range(2)}
        spec["odd"] = keyed(rng, ["x"], 0)  # a schema key that is no string: always atomic
        spec["nokeys"] = keyed(rng, ["a"], 0)
        status["conditions"] = keyed(rng, ["type"])
    for _ in range(rng.randint(0, 3)):
        spec[rng.choice(STRINGS)] = value(rng, 3)
    obj["spec"] = spec
    if rng.random() < 0.9:
        obj["status"] = status
    return obj


def mutate(rng: random.Random, obj: dict[str, Any]) -> dict[str, Any]:
    """A changed copy: a value replaced, added or removed somewhere, or only managedFields."""
    new = copy.deepcopy(obj)
    for _ in range(rng.randint(0, 3)):
        node: Any = new
        for _ in range(rng.randint(1, 5)):
            if isinstance(node, dict) and node:
                k = rng.choice(list(node))
                if k in ("apiVersion", "kind", "managedFields"):
                    break
                if node is new and k == "metadata":  # the server keeps metadata a map
                    node = node[k]
                    continue
                if rng.random() < 0.35 or not isinstance(node[k], dict | list) or not node[k]:
                    r = rng.random()
                    if r < 0.3:
                        del node[k]
                    elif r < 0.6:
                        node[k] = value(rng, 2)
                    else:
                        node[rng.choice(STRINGS)] = value(rng, 2)
                    break
                node = node[k]
            elif isinstance(node, list) and node:
                i = rng.randrange(len(node))
                if isinstance(node[i], dict | list) and node[i] and rng.random() < 0.6:
                    node = node[i]
                    continue
                if rng.random() < 0.5:
                    del node[i]
                else:
                    node[i] = value(rng, 1)
                break
            else:
                break
    return new


def writer(rng: random.Random, types: Types) -> apply.Writer:
    return apply.Writer(
        rng.choice(["ctl", "kubectl-edit", "other"]),
        rng.choice(["v1", "metallb.io/v1beta2"]),
        types,
        rng.choice(["", "", "status"]),
        rng.random() < 0.7,
    )


def odd_entries(rng: random.Random) -> list[Any]:
    """Entries a client may send: malformed, without fields, with odd FieldsV1 trees."""
    out: list[Any] = []
    for _ in range(rng.randint(0, 2)):
        tree: Any = rng.choice(
            [
                None,
                {},
                "x",
                {"f:spec": {"f:type": {}}},
                {"f:status": {".": {}, "f:loadBalancer": {"f:ingress": {}}}},
                {"f:metadata": {"f:labels": {"f:web": 5}}, ".": {}},
                {"f:spec": {"f:ports": {'k:{"port":80}': {".": {}, "f:port": {}}}}},
            ]
        )
        out.append(
            rng.choice(
                [
                    {
                        "manager": rng.choice(["ctl", "x"]),
                        "operation": "Update",
                        "fieldsV1": tree,
                    },
                    {"manager": "ctl", "operation": "Update", "subresource": "status"},
                    {"operation": "Update"},
                    "junk",
                ]
            )
        )
    return out


def stamp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(objects, "now", lambda: "2024-01-01T00:00:00Z")


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# -- tests -----------------------------------------------------------------------------------------


def test_keys_are_spelled_as_json_dumps_spells_them() -> None:
    for v in [*SCALARS, 2**70, -0.0, 1e300, float("inf"), "\u2028", "\ud800", "\x00\x1f"]:
        assert fieldset.set_key(v) == ref_set_key(v), v
        for keys in [("port",), ("name", "proto"), ("proto", "name"), ("a", "a"), ("é",)]:
            item = {k: v for k in keys}
            assert fieldset.item_key(item, keys) == ref_item_key(item, keys), (v, keys)
    for v in [[1], {"a": 1}, ["x", {"y": None}]]:
        assert fieldset.set_key(v) == ref_set_key(v)
    assert fieldset.item_key({1: "x"}, (1,)) == ref_item_key({1: "x"}, (1,))  # type: ignore[arg-type]
    assert fieldset.item_key({"port": 80}, ("port", "name")) is None
    assert fieldset.item_key(["port"], ("port",)) is None


@pytest.mark.parametrize("seed", range(4))
def test_flatten_and_create_encoding_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(400):
        kind, types = rng.choice(KINDS)
        obj = make(rng, kind)
        tracked = rng.choice([None, ["status"], [k for k in obj if k != "status"]])
        flat = fieldset.flatten(obj, types, tracked)
        ref = ref_flatten(obj, types, tracked)
        assert list(flat.items()) == list(ref.items())
        assert dump(fieldset.fields_v1(obj, types, tracked)) == dump(fieldset.encode(ref))
        encoded = fieldset.encode(ref)
        assert fieldset.size(encoded) == len(ref)
        for p in ref:
            assert fieldset.contains(encoded, p)
            assert not fieldset.contains(encoded, (*p, "f:nope"))
        for items in (obj["spec"].get("ports"), obj["metadata"].get("finalizers")):
            if items:
                for names in (("spec", "ports"), ("metadata", "finalizers")):
                    got = fieldset.effective_list_type(types, names, None, items)
                    assert got == ref_list_type(types, names, None, items)


def test_contains_and_size_follow_decode_on_odd_trees() -> None:
    trees: list[Any] = [
        None,
        "x",
        {},
        {".": {}},
        {".": 1, "f:a": {"f:b": 5, ".": {}}, "f:c": {}, "f:d": {"f:e": {"f:f": {}}}},
        {"f:a": {"f:b": {".": "x"}}, "k:1": None},
    ]
    probes = [(), ("f:a",), ("f:a", "f:b"), ("f:a", "."), ("f:d", "f:e"), ("f:d", "f:e", "f:f")]
    probes += [("k:1",), ("f:c",), ("f:c", "f:x"), ("f:a", "f:b", "f:c")]
    for tree in trees:
        decoded = fieldset.decode(tree)
        assert fieldset.size(tree) == len(decoded), tree
        for at_most in range(1, len(decoded) + 2):
            assert fieldset.size(tree, at_most) == min(len(decoded), at_most), (tree, at_most)
        for p in probes:
            assert fieldset.contains(tree, p) == (p in decoded), (tree, p)


@pytest.mark.parametrize("seed", range(6))
def test_record_update_matches_the_reference(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    stamp(monkeypatch)
    rng = random.Random(100 + seed)
    for _ in range(150):
        kind, types = rng.choice(KINDS)
        obj = make(rng, kind)
        start: Any = rng.choice([None, [], odd_entries(rng)])
        # A history of writes by several managers, each checked against the reference.
        for _ in range(rng.randint(1, 6)):
            w = writer(rng, types)
            old = obj if rng.random() < 0.85 else None
            new = mutate(rng, obj) if old is not None else make(rng, kind)
            if old is not None and rng.random() < 0.1:
                new = copy.deepcopy(old)
                new["metadata"]["managedFields"] = [{"manager": "z"}]
            if rng.random() < 0.1:
                start = odd_entries(rng) + (start if isinstance(start, list) else [])
            want = ref_record_update(
                copy.deepcopy(old), copy.deepcopy(new), copy.deepcopy(start), w
            )
            given = copy.deepcopy(start)
            got = apply.record_update(copy.deepcopy(old), copy.deepcopy(new), given, w)
            assert dump(got) == dump(want), (old, new, start, w)
            if got:  # stored with the object, as the server does
                new["metadata"]["managedFields"] = got
            else:
                new["metadata"].pop("managedFields", None)
            obj, start = new, got


def test_a_noop_write_returns_the_given_entries_themselves() -> None:
    obj = make(random.Random(1), "Service")
    start = [{"manager": "a", "operation": "Update", "fieldsV1": {"f:spec": {"f:type": {}}}}]
    obj["metadata"]["managedFields"] = [{"manager": "a", "operation": "Update"}]
    same = copy.deepcopy(obj)
    same["metadata"]["managedFields"] = start
    w = apply.Writer("b", "v1", Types("Service"), "", True)
    assert apply.record_update(obj, same, start, w) is start
    # metadata missing, empty or null compare as {} (the copies the check used to make did)
    bare = {"apiVersion": "v1", "spec": {}}
    metas: list[Any] = [{}, None, {"managedFields": []}]
    for meta in metas:
        assert apply.record_update(bare, {**bare, "metadata": meta}, start, w) is start
    assert apply.record_update(bare, {**bare, "metadata": {"a": 1}}, start, w) is not start
    assert apply.record_update(bare, {**bare, "other": 1}, start, w) is not start


def test_a_status_update_of_the_benchmarked_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """The write the CPU figures measure: a create, then the controller's status update."""
    stamp(monkeypatch)
    svc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": "default", "labels": {"app": "bench"}},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}]},
    }
    types = Types("Service")
    created = apply.record_update(None, svc, None, apply.Writer("bench", "v1", types, "", True))
    assert created == [
        {
            "manager": "bench",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2024-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:ports": {'k:{"port":80}': {".": {}, "f:name": {}, "f:port": {}}},
                    "f:type": {},
                },
            },
        }
    ]
    old = {**svc, "metadata": {**svc["metadata"], "managedFields": created}, "status": {}}
    new = {**old, "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}}
    w = apply.Writer("bench", "v1", types, "status", True)
    want = ref_record_update(old, new, copy.deepcopy(created), w)
    got = apply.record_update(old, new, copy.deepcopy(created), w)
    assert got == want
    # The create's entry keeps its spec and labels: a status update cannot touch them.
    assert got[0] == created[0]
    assert got[1]["subresource"] == "status"
    assert got[1]["fieldsV1"] == {"f:status": {"f:loadBalancer": {"f:ingress": {}}}}
    # And a later main-endpoint write leaves the status entry alone, as it cannot write status.
    later = {**new, "metadata": {**new["metadata"], "managedFields": got}}
    relabelled = {**later, "metadata": {**later["metadata"], "labels": {"app": "other"}}}
    main = apply.Writer("kubectl-edit", "v1", types, "", True)
    after = apply.record_update(later, relabelled, copy.deepcopy(got), main)
    assert after == ref_record_update(later, relabelled, copy.deepcopy(got), main)
    by = {(e["manager"], e.get("subresource", "")): e["fieldsV1"] for e in after}
    assert by[("bench", "status")] == got[1]["fieldsV1"]
    assert by[("bench", "")] == {"f:spec": created[0]["fieldsV1"]["f:spec"]}  # lost the label
    assert by[("kubectl-edit", "")] == {"f:metadata": {"f:labels": {"f:app": {}}}}
