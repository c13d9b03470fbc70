"""Field sets: which fields of an object a field manager owns, for server-side apply and
`metadata.managedFields`.

A path is a tuple of path elements spelled as in the real server's FieldsV1 format, so a set of
paths encodes to `fieldsV1` directly: `f:spec` (a map field), `k:{"name":"web"}` (the item of a
keyed list), `v:"x"` (a member of a set-like list). A field set holds the leaves (scalars, atomic
lists, empty maps) and the keyed/set list items, never plain maps — so two managers can share a
map while owning different fields in it.

Which lists are keyed comes from the same place strategic merge gets it (`patch.merge_key`) for
built-in kinds and metadata, and from `x-kubernetes-list-type`/`x-kubernetes-list-map-keys` for
custom resources; every other list is atomic, i.e. a single leaf.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from metallb_py.apiserver import patch
from metallb_py.apiserver.objects import SYSTEM_META
from metallb_py.objects import JSON

Path = tuple[str, ...]
ListType = tuple[str, tuple[str, ...]]  # ("map", keys) | ("set", ()) | ("atomic", ())

ATOMIC: ListType = ("atomic", ())


class _Item:
    """The value flatten() records for a keyed list item: present, compared by its fields."""

    def __repr__(self) -> str:
        return "ITEM"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


ITEM: Any = _Item()
MISSING: Any = _Missing()

# Fields the server owns or that name the object: never part of anyone's field set.
IGNORED_META = frozenset({*SYSTEM_META, "name", "namespace", "resourceVersion", "managedFields"})


class Types:
    """List types of one kind: built-in merge keys, or a CRD version's structural schema."""

    def __init__(self, kind: str, schema: JSON | None = None, custom: bool = False) -> None:
        self.kind = kind
        self.schema = schema
        self.custom = custom

    def list_type(self, names: tuple[str, ...], node: Any) -> ListType:
        if self.custom and names[:1] != ("metadata",):
            if not isinstance(node, dict):
                return ATOMIC
            kind = node.get("x-kubernetes-list-type")
            if kind == "map":
                keys = node.get("x-kubernetes-list-map-keys") or []
                return ("map", tuple(keys)) if keys else ATOMIC
            return ("set", ()) if kind == "set" else ATOMIC
        key = patch.merge_key(names, self.kind)
        if key is None:
            return ATOMIC
        return ("set", ()) if key == "" else ("map", (key,))

    @staticmethod
    def field(node: Any, key: str) -> Any:
        """The schema of map field `key` (None when unknown or not a custom resource)."""
        if not isinstance(node, dict):
            return None
        props = node.get("properties")
        if isinstance(props, dict) and key in props:
            return props[key]
        extra = node.get("additionalProperties")
        return extra if isinstance(extra, dict) else None

    @staticmethod
    def items(node: Any) -> Any:
        return node.get("items") if isinstance(node, dict) else None

    def root(self) -> Any:
        return self.schema if self.custom else None


def item_key(item: Any, keys: tuple[str, ...]) -> str | None:
    """`k:{...}` for a keyed list item, or None if it lacks a key field (then the list is
    treated as atomic: its items cannot be told apart)."""
    if not isinstance(item, dict):
        return None
    ident: JSON = {}
    for k in sorted(keys):
        v = item.get(k)
        if v is None or isinstance(v, dict | list):
            return None
        ident[k] = v
    return "k:" + json.dumps(ident, separators=(",", ":"))


def set_key(value: Any) -> str:
    return "v:" + json.dumps(value, separators=(",", ":"))


def effective_list_type(
    types: Types, names: tuple[str, ...], node: Any, items: list[Any]
) -> ListType:
    """The declared list type, downgraded to atomic when the items do not fit it (an item
    without its key, duplicate keys, a set of non-scalars)."""
    lt = types.list_type(names, node)
    if lt[0] == "map":
        seen = [item_key(i, lt[1]) for i in items]
        if None in seen or len(set(seen)) != len(seen):
            return ATOMIC
    elif lt[0] == "set":
        if any(isinstance(v, dict | list) for v in items):
            return ATOMIC
        if len({set_key(v) for v in items}) != len(items):
            return ATOMIC
    return lt


def flatten(obj: JSON, types: Types, tracked: Iterable[str] | None = None) -> dict[Path, Any]:
    """Every owned-able path of `obj` with its value (ITEM for keyed items). `tracked` limits
    the top-level fields considered (the status subresource tracks only `status`)."""
    out: dict[Path, Any] = {}
    keep = set(tracked) if tracked is not None else None
    root = types.root()
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (keep is not None and key not in keep):
            continue
        if key == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in IGNORED_META}
            if not value:
                continue
        _flatten(value, ("f:" + key,), (key,), Types.field(root, key), types, out)
    return out


def _flatten(
    value: Any, path: Path, names: tuple[str, ...], node: Any, types: Types, out: dict[Path, Any]
) -> None:
    if isinstance(value, dict):
        if not value:
            out[path] = {}
            return
        for k, v in value.items():
            _flatten(v, (*path, "f:" + k), (*names, k), Types.field(node, k), types, out)
        return
    if isinstance(value, list) and value:
        lt = effective_list_type(types, names, node, value)
        if lt[0] == "map":
            sub = Types.items(node)
            for item in value:
                ipath = (*path, str(item_key(item, lt[1])))
                out[ipath] = ITEM
                for k, v in item.items():
                    _flatten(v, (*ipath, "f:" + k), (*names, k), Types.field(sub, k), types, out)
            return
        if lt[0] == "set":
            for v in value:
                out[(*path, set_key(v))] = v
            return
    out[path] = value


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values (True is not 1); null and absent are the same."""
    if a is None or a is MISSING:
        return b is None or b is MISSING
    if type(a) is not type(b) and not (isinstance(a, int | float) and isinstance(b, int | float)):
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


# -- FieldsV1 ----------------------------------------------------------------------------------


def encode(paths: Iterable[Path]) -> JSON:
    """A set of paths as a FieldsV1 object: `{}` marks a leaf, `.` an item that has children."""
    # Built from the paths in order, so every node's keys are inserted sorted: "." sorts
    # before the prefixed keys (f:, k:, v:, i:), and a path is followed at once by the paths
    # under it, which is when its "." goes in, first. No second pass re-sorts the tree.
    root: JSON = {}
    ordered = sorted(paths)
    last = len(ordered) - 1
    for i, p in enumerate(ordered):
        node = root
        for pe in p:
            child = node.get(pe)
            if child is None:
                child = node[pe] = {}
            node = child
        if i < last and not node:
            nxt = ordered[i + 1]
            if len(nxt) > len(p) and nxt[: len(p)] == p:
                node["."] = {}
    return root


def decode(fields: Any) -> set[Path]:
    """The set of paths a FieldsV1 object lists."""
    out: set[Path] = set()

    def walk(node: JSON, path: Path) -> None:
        for k, v in node.items():
            if k == ".":
                out.add(path)
            elif isinstance(v, dict) and v:
                walk(v, (*path, k))
            else:
                out.add((*path, k))

    if isinstance(fields, dict):
        walk(fields, ())
    return out


# -- reading and removing a path in an object ----------------------------------------------------


def _step(container: Any, pe: str) -> tuple[Any, Any]:
    """(the child at `pe`, its index or key in `container`), or (MISSING, None)."""
    kind, text = pe[:2], pe[2:]
    if kind == "f:" and isinstance(container, dict):
        return (container[text], text) if text in container else (MISSING, None)
    if not isinstance(container, list):
        return MISSING, None
    try:
        want = json.loads(text) if kind in ("k:", "v:") else None
    except ValueError:
        return MISSING, None
    for i, item in enumerate(container):
        if kind == "k:" and isinstance(want, dict) and isinstance(item, dict):
            if all(same(item.get(k), v) for k, v in want.items()):
                return item, i
        elif kind == "v:" and same(item, want):
            return item, i
    if kind == "i:" and text.isdigit() and int(text) < len(container):
        return container[int(text)], int(text)
    return MISSING, None


def get(obj: Any, path: Path) -> Any:
    cur = obj
    for pe in path:
        cur, _ = _step(cur, pe)
        if cur is MISSING:
            return MISSING
    return cur


def remove(obj: Any, path: Path) -> bool:
    """Delete the field or list item at `path`; False if it is not there."""
    parent = get(obj, path[:-1])
    if parent is MISSING:
        return False
    _, where = _step(parent, path[-1])
    if where is None:
        return False
    del parent[where]
    return True


def describe(path: Path) -> str:
    """A path as the real server prints it in conflicts: `.spec.containers[name="c"].image`."""
    out = []
    for pe in path:
        kind, text = pe[:2], pe[2:]
        if kind == "f:":
            out.append("." + text)
        elif kind == "k:":
            try:
                ident = json.loads(text)
                out.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in ident.items()) + "]")
            except ValueError:
                out.append(f"[{text}]")
        else:
            out.append(f"[={text}]")
    return "".join(out)
