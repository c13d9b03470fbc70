"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic-merge patch.

Strategic merge knows the list merge keys of the built-in fields our resources use (containers and
env by name, Service ports by port, conditions by type, ...), the `$patch`, `$retainKeys`,
`$setElementOrder/` and `$deleteFromPrimitiveList/` directives kubectl sends, and treats every other
list as atomic, as the real server does for fields without a patch strategy.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from metallb_py.apiserver import limits
from metallb_py.apiserver.errors import ApiError, bad_request

# -- merge patch ----------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- JSON patch -----------------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str]) -> tuple[Any, str]:
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, dict):
            if p not in cur:
                raise ApiError(422, "Invalid", f"jsonpatch: missing key {p!r}")
            cur = cur[p]
        elif isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError):
                raise ApiError(422, "Invalid", f"jsonpatch: bad index {p!r}") from None
        else:
            raise ApiError(422, "Invalid", f"jsonpatch: cannot descend into {p!r}")
    return cur, parts[-1]


def _get(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return doc
    parent, last = _resolve(doc, parts)
    try:
        if isinstance(parent, dict):
            return parent[last]
        if isinstance(parent, list):
            return parent[int(last)]
    except (KeyError, ValueError, IndexError):
        pass
    raise ApiError(422, "Invalid", f"jsonpatch: path /{'/'.join(parts)} does not exist")


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent, last = _resolve(doc, parts)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                idx = int(last)
            except ValueError:
                raise ApiError(422, "Invalid", f"jsonpatch: bad index {last!r}") from None
            if not 0 <= idx <= len(parent):
                raise ApiError(422, "Invalid", f"jsonpatch: index {idx} out of range")
            parent.insert(idx, value)
    else:
        raise ApiError(422, "Invalid", "jsonpatch: add to a scalar")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent, last = _resolve(doc, parts)
    try:
        if isinstance(parent, dict):
            del parent[last]
            return doc
        if isinstance(parent, list):
            del parent[int(last)]
            return doc
    except (KeyError, ValueError, IndexError):
        pass
    raise ApiError(422, "Invalid", f"jsonpatch: path /{'/'.join(parts)} does not exist")


_NEEDS = {
    "add": ("value",),
    "replace": ("value",),
    "test": ("value",),
    "remove": (),
    "move": ("from",),
    "copy": ("from",),
}


def _check_ops(ops: Any) -> list[dict[str, Any]]:
    """Every operation well-formed before any is applied, and no more of them than the limit."""
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    if len(ops) > limits.MAX_JSON_PATCH_OPS:
        raise limits.too_large(
            f"The allowed maximum operations in a JSON patch is {limits.MAX_JSON_PATCH_OPS}, "
            f"got {len(ops)}"
        )
    for i, op in enumerate(ops):
        if not isinstance(op, dict):
            raise bad_request(f"invalid JSON patch operation {i}: must be an object")
        kind = op.get("op")
        if kind not in _NEEDS:
            raise bad_request(f"invalid JSON patch operation {i}: unknown op {kind!r}")
        for field in ("path", *_NEEDS[kind]):
            if field not in op:
                raise bad_request(f'invalid JSON patch operation {i} ({kind}): missing "{field}"')
        for field in ("path", "from"):
            if field in op and field in ("path", *_NEEDS[kind]) and not isinstance(op[field], str):
                raise bad_request(
                    f"invalid JSON patch operation {i} ({kind}): {field} must be a string "
                    "(a JSON pointer)"
                )
    return ops


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902 with the real server's bounds: at most MAX_JSON_PATCH_OPS operations, and `copy`
    may add at most MAX_PATCH_COPY_BYTES in total (22 doubling copies would otherwise build
    gigabytes from a 2 KB request)."""
    ops = _check_ops(ops)
    doc = copy.deepcopy(target)
    copied = 0
    for op in ops:
        kind, path = op["op"], _pointer(op["path"])
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            doc = (
                _add(_remove(doc, path), path, copy.deepcopy(op["value"]))
                if path
                else copy.deepcopy(op["value"])
            )
        elif kind == "move":
            src = _pointer(op["from"])
            if path[: len(src)] == src and len(path) > len(src):
                raise ApiError(422, "Invalid", "jsonpatch: a value cannot be moved into itself")
            value = _get(doc, src)
            doc = _add(_remove(doc, src), path, value)
        elif kind == "copy":
            value = _get(doc, _pointer(op["from"]))
            copied += _size(value, limits.MAX_PATCH_COPY_BYTES - copied)
            if copied > limits.MAX_PATCH_COPY_BYTES:
                raise ApiError(
                    422,
                    "Invalid",
                    "Unable to copy, the accumulated size increase of copy is more than the "
                    f"limit {limits.MAX_PATCH_COPY_BYTES}",
                )
            doc = _add(doc, path, copy.deepcopy(value))
        elif _get(doc, path) != op["value"]:
            raise ApiError(422, "Invalid", f"jsonpatch: test operation failed at {op['path']}")
    return doc


def _size(value: Any, budget: int) -> int:
    """Approximate JSON size of `value`, stopping once past `budget` (returns budget + 1)."""
    total = 0
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            total += 2 + len(v)
            for k, x in v.items():
                total += len(k) + 3
                stack.append(x)
        elif isinstance(v, list):
            total += 2 + len(v)
            stack.extend(v)
        elif isinstance(v, str):
            total += len(v) + 2
        else:
            total += len(json.dumps(v))
        if total > budget:
            return budget + 1
    return total


# -- strategic merge patch ------------------------------------------------------------------------

# Field name -> merge key, for the lists the built-in types merge (patchStrategy: merge).
# "" marks a merged list of primitives (a set, e.g. finalizers).
_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "finalizers": "",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "addresses": "type",
    "taints": "key",
    "subsets": "",
    "resourceClaims": "name",
    "webhooks": "name",
}


def merge_key(path: tuple[str, ...], kind: str) -> str | None:
    """The merge key for the list at `path` in an object of `kind`, or None if atomic."""
    name = path[-1]
    if name == "ports":
        if kind == "Service" and path == ("spec", "ports"):
            return "port"
        if "containers" in path or "initContainers" in path or "ephemeralContainers" in path:
            return "containerPort"
        return None
    if name == "addresses":
        return "type" if kind == "Node" else None
    if name == "conditions":
        return "type"
    if name == "finalizers":
        return "" if path == ("metadata", "finalizers") else None
    if name == "subsets":
        return None
    return _MERGE_KEYS.get(name)


def strategic_merge(target: Any, patch: Any, kind: str, path: tuple[str, ...] = ()) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        sub = (*path, key)
        if isinstance(value, list):
            mk = merge_key(sub, kind)
            if mk is None:
                result[key] = copy.deepcopy(value)
            else:
                result[key] = _merge_list(result.get(key), value, mk, kind, sub)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value, kind, sub)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _apply_order(result[field], order, merge_key((*path, field), kind))
    if isinstance(retain, list):
        keep = set(retain)
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _merge_list(current: Any, patch: list[Any], key: str, kind: str, path: tuple[str, ...]) -> Any:
    cur = list(current) if isinstance(current, list) else []
    if key == "":
        # A set of primitives: union, keeping order; `$patch: replace` is not used for these.
        out = list(cur)
        for v in patch:
            if v not in out:
                out.append(v)
        return out
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [copy.deepcopy(v) for v in patch if not (isinstance(v, dict) and "$patch" in v)]
    index = {item.get(key): i for i, item in enumerate(cur) if isinstance(item, dict)}
    for item in patch:
        if not isinstance(item, dict):
            cur.append(copy.deepcopy(item))
            continue
        k = item.get(key)
        if item.get("$patch") == "delete":
            if k in index:
                cur[index[k]] = None
            continue
        if k in index and cur[index[k]] is not None:
            cur[index[k]] = strategic_merge(cur[index[k]], item, kind, path)
        else:
            index[k] = len(cur)
            cur.append(strategic_merge({}, item, kind, path))
    return [v for v in cur if v is not None]


def _apply_order(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """Reorder a merged list as `$setElementOrder` asks; items it does not name go last."""

    def ident(v: Any) -> str:
        if key and isinstance(v, dict):
            return json.dumps(v.get(key))
        return json.dumps(v)

    where = {ident(o): i for i, o in enumerate(order)}
    return sorted(items, key=lambda v: where.get(ident(v), len(where)))
