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
import sys
from collections.abc import Iterable
from functools import lru_cache
from json.encoder import encode_basestring_ascii
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
        return _builtin_list_type(self.kind, names)

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


@lru_cache(maxsize=1024)
def _builtin_list_type(kind: str, names: tuple[str, ...]) -> ListType:
    """The merge-key list type, cached: every write of a kind asks the same few paths."""
    key = patch.merge_key(names, kind)
    if key is None:
        return ATOMIC
    return ("set", ()) if key == "" else ("map", (key,))


_SEP = (",", ":")
# A prebuilt tuple: `isinstance(v, dict | list)` builds the union on every call.
_CONTAINERS = (dict, list)


def _scalar(value: Any) -> str:
    """`json.dumps(value, separators=(",", ":"))`, without building an encoder for the common
    scalars: each keyed item and set member is spelled this way on every write."""
    t = type(value)
    if t is str:
        return encode_basestring_ascii(value)  # what json.dumps uses for a str (ensure_ascii)
    if t is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return json.dumps(value, separators=_SEP)


@lru_cache(maxsize=256)
def _key_heads(keys: tuple[str, ...]) -> tuple[tuple[str, str], ...] | None:
    """(field, the JSON text before its value) per key field in sorted order — `k:{"port":`,
    then `,"name":` — or None when a field name is not a string (json.dumps decides then)."""
    if not all(type(k) is str for k in keys):
        return None
    ordered = sorted(set(keys))
    return tuple(
        (k, ("k:{" if i == 0 else ",") + encode_basestring_ascii(k) + ":")
        for i, k in enumerate(ordered)
    )


def item_key(item: Any, keys: tuple[str, ...]) -> str | None:
    """`k:{...}` for a keyed list item, or None if it lacks a key field (then the list is
    treated as atomic: its items cannot be told apart)."""
    if not isinstance(item, dict):
        return None
    heads = _key_heads(keys)
    if heads is None:
        return _item_key_dumps(item, keys)
    out = ""
    for k, head in heads:
        v = item.get(k)
        if v is None or isinstance(v, _CONTAINERS):
            return None
        t = type(v)
        if t is str:
            out += head + encode_basestring_ascii(v)
        elif t is int:
            out += head + int.__repr__(v)
        else:
            out += head + _scalar(v)
    return out + "}"


def _item_key_dumps(item: JSON, keys: tuple[str, ...]) -> str | None:
    ident: JSON = {}
    for k in sorted(keys):
        v = item.get(k)
        if v is None or isinstance(v, _CONTAINERS):
            return None
        ident[k] = v
    return "k:" + json.dumps(ident, separators=_SEP)


def set_key(value: Any) -> str:
    return "v:" + _scalar(value)


def effective_list_type(
    types: Types, names: tuple[str, ...], node: Any, items: list[Any]
) -> ListType:
    """The declared list type, downgraded to atomic when the items do not fit it (an item
    without its key, duplicate keys, a set of non-scalars)."""
    return _list_keys(types, names, node, items)[0]


def _list_keys(
    types: Types, names: tuple[str, ...], node: Any, items: list[Any]
) -> tuple[ListType, list[str]]:
    """effective_list_type, with the path element of every item (`k:` or `v:`) in list order
    for a map or set, so they are spelled once per write."""
    lt = types.list_type(names, node)
    if lt[0] == "map":
        keys = lt[1]
        seen = []
        for i in items:
            k = item_key(i, keys)
            if k is None:
                return ATOMIC, []
            seen.append(k)
        if len(set(seen)) != len(seen):
            return ATOMIC, []
        return lt, seen
    if lt[0] == "set":
        if any(isinstance(v, _CONTAINERS) for v in items):
            return ATOMIC, []
        seen = [set_key(v) for v in items]
        if len(set(seen)) != len(seen):
            return ATOMIC, []
        return lt, seen
    return lt, []


def _top_level(obj: JSON, tracked: Iterable[str] | None) -> list[tuple[str, Any]]:
    """The top-level fields a field set covers, metadata without the server's own fields."""
    keep = set(tracked) if tracked is not None else None
    out = []
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (keep is not None and key not in keep):
            continue
        if key == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in IGNORED_META}
            if not value:
                continue
        out.append((key, value))
    return out


def flatten(obj: JSON, types: Types, tracked: Iterable[str] | None = None) -> dict[Path, Any]:
    """Every owned-able path of `obj` with its value (ITEM for keyed items). `tracked` limits
    the top-level fields considered (the status subresource tracks only `status`)."""
    out: dict[Path, Any] = {}
    root = types.root()
    for key, value in _top_level(obj, tracked):
        path = ("f:" + key,)
        if isinstance(value, dict):
            if value:
                _flatten_map(value, path, (key,), Types.field(root, key), types, out)
            else:
                out[path] = {}
        elif isinstance(value, list) and value:
            _flatten_list(value, path, (key,), Types.field(root, key), types, out)
        else:
            out[path] = value
    return out


# The walks below build a field name's tuple of names and look up its schema only when they
# descend into it (a map or a list): leaves, most of an object, need neither.


def _flatten_map(
    value: JSON, path: Path, names: tuple[str, ...], node: Any, types: Types, out: dict[Path, Any]
) -> None:
    for k, v in value.items():
        p = (*path, "f:" + k)
        if isinstance(v, dict):
            if v:
                sub = Types.field(node, k) if node is not None else None
                _flatten_map(v, p, (*names, k), sub, types, out)
            else:
                out[p] = {}
        elif isinstance(v, list) and v:
            sub = Types.field(node, k) if node is not None else None
            _flatten_list(v, p, (*names, k), sub, types, out)
        else:
            out[p] = v


def _flatten_list(
    value: list[Any],
    path: Path,
    names: tuple[str, ...],
    node: Any,
    types: Types,
    out: dict[Path, Any],
) -> None:
    lt, keys = _list_keys(types, names, node, value)
    if lt[0] == "map":
        sub = Types.items(node)
        for item, key in zip(value, keys, strict=True):
            ipath = (*path, key)
            out[ipath] = ITEM
            _flatten_map(item, ipath, names, sub, types, out)
    elif lt[0] == "set":
        for v, key in zip(value, keys, strict=True):
            out[(*path, key)] = v
    else:
        out[path] = value


def fields_v1(obj: JSON, types: Types, tracked: Iterable[str] | None = None) -> JSON:
    """`encode(flatten(obj, types, tracked))` in one walk: what a create records, built
    without the paths (every level's keys sorted as encode's sorted paths give them)."""
    root = types.root()
    out: JSON = {}
    for key, value in sorted(_top_level(obj, tracked), key=_first):
        out["f:" + key] = _tree(value, (key,), Types.field(root, key), types)
    return out


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


def _tree(value: Any, names: tuple[str, ...], node: Any, types: Types) -> JSON:
    if isinstance(value, dict):
        return _tree_map(value, names, node, types, {}) if value else {}
    if isinstance(value, list) and value:
        return _tree_list(value, names, node, types)
    return {}


def _tree_list(value: list[Any], names: tuple[str, ...], node: Any, types: Types) -> JSON:
    lt, keys = _list_keys(types, names, node, value)
    if lt[0] == "map":
        sub = Types.items(node)
        order = sorted(range(len(keys)), key=keys.__getitem__)
        return {keys[i]: _tree_map(value[i], names, sub, types, {".": {}}) for i in order}
    if lt[0] == "set":
        return {key: {} for key in sorted(keys)}
    return {}


def _tree_map(value: JSON, names: tuple[str, ...], node: Any, types: Types, out: JSON) -> JSON:
    for k in sorted(value):
        v = value[k]
        if not v or not isinstance(v, _CONTAINERS):
            out["f:" + k] = {}
            continue
        sub = Types.field(node, k) if node is not None else None
        if isinstance(v, dict):
            out["f:" + k] = _tree_map(v, (*names, k), sub, types, {})
        else:
            out["f:" + k] = _tree_list(v, (*names, k), sub, types)
    return out


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


def contains(fields: Any, path: Path) -> bool:
    """Whether `decode(fields)` holds `path`, looked up without decoding the whole set."""
    if not isinstance(fields, dict) or "." in path:
        return False
    if not path:
        return "." in fields
    node: Any = fields
    for pe in path[:-1]:
        node = node.get(pe)
        if not isinstance(node, dict) or not node:
            return False
    last = path[-1]
    if last not in node:
        return False
    child = node[last]
    return "." in child if isinstance(child, dict) and child else True


def size(fields: Any, at_most: int = sys.maxsize) -> int:
    """`min(len(decode(fields)), at_most)` for `at_most` >= 1, counted without building the
    paths and stopping there (enough to tell whether a subset of the paths is all of them)."""
    if not isinstance(fields, dict):
        return 0
    n = 0
    for k, v in fields.items():
        if k != "." and isinstance(v, dict) and v:
            n += size(v, at_most - n)
        else:
            n += 1
        if n >= at_most:
            break
    return n


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
