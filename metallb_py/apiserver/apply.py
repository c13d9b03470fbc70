"""Server-side apply and `metadata.managedFields` bookkeeping.

An apply merges the applied configuration into the live object, removes what this manager
applied last time and no longer sends (unless another manager owns it too), and refuses to change
a value another manager owns unless forced. Every other write records an `Update` entry for its
manager and takes the fields it changed away from the others — which is what later lets an
applier notice (a conflict) that someone else changed its field.

Entries whose set did not change are kept byte-for-byte (time included), so an unchanged
re-apply or a no-op update leaves the object equal to the stored one and nothing is written.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from metallb_py import yamlsafe
from metallb_py.apiserver import fieldset, limits, objects
from metallb_py.apiserver.errors import ApiError, bad_request
from metallb_py.apiserver.fieldset import ITEM, MISSING, Path, Types
from metallb_py.objects import JSON

# Limits for YAML request bodies (see metallb_py.yamlsafe): small documents can alias
# themselves into billions of nodes.
MAX_YAML_BYTES = yamlsafe.MAX_BYTES
MAX_YAML_NODES = yamlsafe.MAX_NODES
# ...and into gigabytes by aliasing one long string: the expanded document is bounded in bytes
# too (bytes of JSON, roughly), by the request body limit.
MAX_YAML_EXPANDED_BYTES = limits.MAX_REQUEST_BYTES


# -- YAML bodies ---------------------------------------------------------------------------------


def load_yaml(body: bytes) -> Any:
    """Parse a YAML (or JSON) request body with the shared bounded loader and return plain JSON
    data (no shared sub-objects, timestamps as strings) the write path may mutate."""
    if len(body) > MAX_YAML_BYTES:
        raise limits.body_too_large()
    try:
        doc = yamlsafe.load(body)
    except yamlsafe.YAMLLimitError as exc:
        raise bad_request(f"error decoding YAML: {exc.problem}") from None
    _check_expanded_bytes(doc)
    try:
        plain = json.loads(json.dumps(doc, default=str))
    except (TypeError, ValueError) as exc:  # a date or a list as a mapping key, ...
        raise bad_request(f"error decoding YAML: {exc}") from None
    limits.check_data(plain)  # NaN, .inf, integers beyond int64, lone surrogates
    return plain


def _check_expanded_bytes(doc: Any) -> None:
    """The node bound lets one long string be aliased a million times; bound the characters the
    document holds once every alias is expanded, before anything copies it."""
    sizes: dict[int, int] = {}

    def size(v: Any) -> int:
        if isinstance(v, str):
            return len(v) + 2
        if not isinstance(v, dict | list):
            return 8
        key = id(v)
        if key not in sizes:
            items = [x for kv in v.items() for x in kv] if isinstance(v, dict) else v
            total = 2
            for c in items:
                total += size(c) + 1
                if total > MAX_YAML_EXPANDED_BYTES:
                    raise bad_request(
                        "error decoding YAML: document contains excessive aliasing (more than "
                        f"{MAX_YAML_EXPANDED_BYTES} bytes once expanded)"
                    )
            sizes[key] = total
        return sizes[key]

    size(doc)


# -- managedFields entries -----------------------------------------------------------------------


@dataclass(slots=True)
class Entry:
    """One managedFields entry; `raw` is kept as stored until the set changes."""

    manager: str
    operation: str
    subresource: str
    raw: JSON
    _fields: set[Path] | None = None
    changed: bool = False

    @property
    def ident(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    @property
    def fields(self) -> set[Path]:
        if self._fields is None:
            self._fields = fieldset.decode(self.raw.get("fieldsV1"))
        return self._fields

    def set_fields(self, paths: set[Path], api_version: str | None = None) -> None:
        if paths == self.fields and (
            api_version is None or api_version == self.raw.get("apiVersion")
        ):
            return
        self._fields = paths
        self.changed = True
        if api_version is not None:
            self.raw["apiVersion"] = api_version

    def keep_only(self, allowed: set[Path], covers: Callable[[str], bool]) -> None:
        """Keep the paths a write left alone: those in `allowed`, and those under top-level
        fields the write's endpoint does not cover (`covers("f:spec")` is False for a status
        update). An entry not decoded yet is looked up path by path instead (another manager's
        entry, on most writes: decoding it costs more)."""
        if self._fields is not None:
            self.set_fields({p for p in self._fields if p in allowed or not _covered(p, covers)})
            return
        fields = self.raw.get("fieldsV1")
        if not isinstance(fields, dict):
            self.set_fields({p for p in self.fields if p in allowed})
            return
        inside = {k: v for k, v in fields.items() if k == "." or covers(k)}
        kept = {p for p in allowed if fieldset.contains(inside, p)}
        if fieldset.size(inside, len(kept) + 1) != len(kept):  # a subset, equal if as large
            outside = {k: v for k, v in fields.items() if k != "." and not covers(k)}
            self._fields = kept | fieldset.decode(outside)
            self.changed = True


def _covered(path: Path, covers: Callable[[str], bool]) -> bool:
    return not path or covers(path[0])


def read_entries(meta: JSON) -> list[Entry]:
    """The managedFields of an object; malformed entries are dropped."""
    out = []
    for raw in meta.get("managedFields") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("manager"), str):
            continue
        out.append(
            Entry(
                raw["manager"],
                str(raw.get("operation", "")),
                str(raw.get("subresource", "")),
                raw,
            )
        )
    return out


def write_entries(entries: list[Entry]) -> list[JSON]:
    out = []
    for e in entries:
        if e.changed:
            if not e.fields:
                continue
            raw: JSON = {
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.raw.get("apiVersion", ""),
                "time": objects.now(),
                "fieldsType": "FieldsV1",
                "fieldsV1": fieldset.encode(e.fields),
            }
            if e.subresource:
                raw["subresource"] = e.subresource
            out.append(raw)
        else:
            out.append(e.raw)
    return out


def _find(entries: list[Entry], ident: tuple[str, str, str], api_version: str) -> Entry:
    for e in entries:
        if e.ident == ident:
            return e
    e = Entry(*ident, raw={"apiVersion": api_version}, _fields=set(), changed=True)
    entries.append(e)
    return e


def given_or_live(live_meta: JSON, sent_meta: JSON) -> Any:
    """The managedFields a write starts from: the live ones, unless the client sent different
    ones (used as sent) or `[{}]` (clears them), as the real server allows."""
    sent = sent_meta.get("managedFields")
    if sent == [{}]:
        return []
    if (
        isinstance(sent, list)
        and sent
        and sent != live_meta.get("managedFields")
        and all(isinstance(e, dict) and isinstance(e.get("manager"), str) for e in sent)
    ):
        return sent
    return live_meta.get("managedFields")


def default_manager(user_agent: str) -> str:
    """The manager of a write that names none: the user agent's program name, like the real
    server (`kubectl-edit/v1.31.0 (linux/amd64) ...` -> `kubectl-edit`)."""
    return user_agent.split("/", 1)[0][:128] or "unknown"


# -- tracked top-level fields --------------------------------------------------------------------


def tracked(obj: JSON, subresource: str, has_status: bool) -> list[str]:
    """The top-level fields a write on this endpoint may own: `/status` owns status only; the
    main endpoint owns everything but a status that lives in its own subresource."""
    if subresource == "status":
        return ["status"]
    return [k for k in obj if not (has_status and k == "status")]


# -- Update ---------------------------------------------------------------------------------------


class Writer(NamedTuple):
    """Who writes, and through what: the field manager, the apiVersion its managedFields entry
    records, the kind's list types, and the subresource written (with `has_status`, whether
    the kind splits status off into one). A NamedTuple: one is built per write, and it is the
    cheapest immutable record to build."""

    manager: str
    api_version: str
    types: Types
    subresource: str = ""
    has_status: bool = False

    def tracked(self, obj: JSON) -> list[str]:
        return tracked(obj, self.subresource, self.has_status)

    def covers(self, top: str) -> bool:
        """Whether a write through this endpoint can change the top-level field `top`
        ("f:spec"): a status update covers status only, the main endpoint all but a status
        that has its own subresource. Fields outside stay with their managers."""
        if self.subresource == "status":
            return top == "f:status"
        return not (self.has_status and top == "f:status")


def record_update(old: JSON | None, new: JSON, start: Any, writer: Writer) -> list[JSON]:
    """The managedFields after a non-apply write of `new` over `old` by `writer`: it owns what
    it changed, nobody keeps what it changed or removed, and what its endpoint cannot change
    (spec, for a status update) stays with whoever owned it."""
    if old is None:
        if not start:  # a create with no managedFields given: the writer owns every field
            return _created(new, writer)
    elif _equal_without_fields(old, new):
        return start if isinstance(start, list) else []  # a no-op write: the cheap common case
    entries = read_entries({"managedFields": start})
    old_flat = fieldset.flatten(old, writer.types, writer.tracked(old)) if old is not None else {}
    new_flat = fieldset.flatten(new, writer.types, writer.tracked(new))
    changed = set()
    for p, v in new_flat.items():
        was = old_flat.get(p, MISSING)
        if was is MISSING or not ((type(was) is type(v) and was == v) or fieldset.same(was, v)):
            changed.add(p)
    if not changed and old_flat.keys() <= new_flat.keys():
        return write_entries(entries)
    kept = new_flat.keys() - changed
    me = (writer.manager, "Update", writer.subresource)
    covers = writer.covers
    for e in entries:
        if e.ident != me:
            e.keep_only(kept, covers)
    own = _find(entries, me, writer.api_version)
    own.set_fields(
        {p for p in own.fields if p in kept or not _covered(p, covers)} | changed,
        writer.api_version,
    )
    return write_entries(entries)


def _created(new: JSON, writer: Writer) -> list[JSON]:
    """record_update of a create that starts from no entries, without the set arithmetic:
    the one entry is the writer's, holding every field of `new`."""
    fields = fieldset.fields_v1(new, writer.types, writer.tracked(new))
    if not fields:
        return []
    raw: JSON = {
        "manager": writer.manager,
        "operation": "Update",
        "apiVersion": writer.api_version,
        "time": objects.now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if writer.subresource:
        raw["subresource"] = writer.subresource
    return [raw]


def _equal_without_fields(a: JSON, b: JSON) -> bool:
    """Whether the objects are equal as JSON but for metadata.managedFields (a missing or empty
    metadata counting as `{}`), compared field by field instead of on copies: first with `==`,
    which is quick to say no (most writes change something), then for the types `==`
    overlooks (1, 1.0 and True)."""
    if len(a) - ("metadata" in a) != len(b) - ("metadata" in b):
        return False
    ma, mb = a.get("metadata") or {}, b.get("metadata") or {}
    if not isinstance(ma, dict) or not isinstance(mb, dict):
        return objects.same_json(_without_fields(a), _without_fields(b))
    if len(ma) - ("managedFields" in ma) != len(mb) - ("managedFields" in mb):
        return False
    pairs = [(v, b.get(k, _ABSENT)) for k, v in a.items() if k != "metadata"]
    pairs += [(v, mb.get(k, _ABSENT)) for k, v in ma.items() if k != "managedFields"]
    if not all(x is y or x == y for x, y in pairs):
        return False
    return all(objects.same_json(x, y) for x, y in pairs)


_ABSENT = object()


def _without_fields(obj: JSON) -> JSON:
    meta = obj.get("metadata") or {}
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


# -- Apply ----------------------------------------------------------------------------------------


@dataclass
class Conflict:
    manager: str
    api_version: str
    path: Path


def apply(live: JSON, applied: JSON, writer: Writer, *, force: bool) -> JSON:
    """Merge `applied` into `live` (which is not modified) as `writer`'s apply, and return
    the new object with its managedFields. Raises a 409 on conflicts unless `force`."""
    types, api_version = writer.types, writer.api_version
    entries = read_entries(live.get("metadata") or {})
    keys = writer.tracked(applied)
    applied_flat = fieldset.flatten(applied, types, keys)
    live_flat = fieldset.flatten(live, types, writer.tracked(live))
    me = (writer.manager, "Apply", writer.subresource)
    conflicts: list[Conflict] = []
    for e in entries:
        if e.ident == me:
            continue
        lost = set()
        for p in e.fields & applied_flat.keys():
            value = applied_flat[p]
            if value is ITEM or fieldset.same(value, live_flat.get(p, MISSING)):
                continue
            conflicts.append(Conflict(e.manager, str(e.raw.get("apiVersion", "")), p))
            lost.add(p)
        if lost and force:
            e.set_fields(e.fields - lost)
    if conflicts and not force:
        raise conflict_error(conflicts)
    own = _find(entries, me, api_version)
    previous = own.fields
    merged = _merge(copy.deepcopy(live), {k: applied[k] for k in keys if k in applied}, types)
    merged["metadata"] = merged.get("metadata") or {}
    _prune(merged, previous - applied_flat.keys(), applied_flat, entries, me)
    merged_flat = fieldset.flatten(merged, types)
    for e in entries:
        if e.ident != me:
            e.set_fields({p for p in e.fields if p in merged_flat})
    own.set_fields(set(applied_flat), api_version)
    merged["metadata"]["managedFields"] = write_entries(entries)
    return merged


def _merge(live: JSON, applied: JSON, types: Types) -> JSON:
    root = types.root()
    out = dict(live)
    for k, v in applied.items():
        if k in ("apiVersion", "kind"):
            continue
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge_value(out.get(k, MISSING), v, (k,), Types.field(root, k), types)
    return out


def _merge_value(old: Any, new: Any, names: tuple[str, ...], node: Any, types: Types) -> Any:
    if isinstance(new, dict):
        out = dict(old) if isinstance(old, dict) else {}
        for k, v in new.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = _merge_value(
                    out.get(k, MISSING), v, (*names, k), Types.field(node, k), types
                )
        return out
    if isinstance(new, list) and isinstance(old, list):
        lt = fieldset.effective_list_type(types, names, node, new)
        if lt == fieldset.effective_list_type(types, names, node, old) and lt[0] == "map":
            result = list(old)
            where = {fieldset.item_key(item, lt[1]): i for i, item in enumerate(result)}
            sub = Types.items(node)
            for item in new:
                k = fieldset.item_key(item, lt[1])
                if k in where:
                    result[where[k]] = _merge_value(result[where[k]], item, names, sub, types)
                else:
                    result.append(_merge_value(MISSING, item, names, sub, types))
            return result
        if lt == fieldset.effective_list_type(types, names, node, old) and lt[0] == "set":
            have = {fieldset.set_key(v) for v in old}
            return list(old) + [v for v in new if fieldset.set_key(v) not in have]
    if isinstance(new, list):
        return [
            _merge_value(MISSING, v, names, Types.items(node), types) if isinstance(v, dict) else v
            for v in new
        ]
    return new


def _prune(
    obj: JSON,
    stale: set[Path],
    applied_flat: dict[Path, Any],
    entries: list[Entry],
    me: tuple[str, str, str],
) -> None:
    """Remove the fields this manager applied before and omits now, unless someone else owns
    them (or something inside them); maps left empty by a removal go too."""
    held: set[Path] = set()
    for e in entries:
        if e.ident != me:
            for p in e.fields:
                held.update(p[:i] for i in range(1, len(p) + 1))
    removed: list[Path] = []
    for p in sorted(stale, key=len):
        if p in held or any(p[: len(r)] == r for r in removed) or _names_its_item(p):
            continue
        if not fieldset.remove(obj, p):
            continue
        removed.append(p)
        parent = p[:-1]
        while (
            len(parent) >= 2
            and parent[-1].startswith("f:")
            and parent not in held
            and parent not in applied_flat
            and fieldset.get(obj, parent) == {}
        ):
            fieldset.remove(obj, parent)
            parent = parent[:-1]


def _names_its_item(path: Path) -> bool:
    """Whether `path` is a key field of the list item it is in (kept while the item is)."""
    if len(path) < 2 or not path[-2].startswith("k:") or not path[-1].startswith("f:"):
        return False
    try:
        return path[-1][2:] in json.loads(path[-2][2:])
    except ValueError:
        return False


def conflict_error(conflicts: list[Conflict]) -> ApiError:
    """409 with one FieldManagerConflict cause per field, worded like the real server."""
    by_manager: dict[tuple[str, str], list[str]] = {}
    for c in conflicts:
        by_manager.setdefault((c.manager, c.api_version), []).append(fieldset.describe(c.path))
    n = len(conflicts)
    parts = []
    for (mgr, version), paths in by_manager.items():
        paths.sort()
        if len(paths) == 1:
            parts.append(f'conflict with "{mgr}" using {version}: {paths[0]}')
        else:
            parts.append(
                f'conflicts with "{mgr}" using {version}:\n' + "\n".join(f"- {p}" for p in paths)
            )
    message = f"Apply failed with {n} conflict{'s' if n != 1 else ''}: " + "\n".join(parts)
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f'conflict with "{c.manager}" using {c.api_version}',
            "field": fieldset.describe(c.path),
        }
        for c in conflicts
    ]
    return ApiError(409, "Conflict", message, details={"causes": causes})


def check_applied(
    doc: Any, *, kind: str, api_version: str, name: str, namespace: str, namespaced: bool
) -> JSON:
    """The checks the real server makes on an apply body before merging it."""
    if not isinstance(doc, dict):
        what = "list" if isinstance(doc, list) else type(doc).__name__
        raise bad_request(
            f"error decoding YAML: the apply configuration must be an object, not a {what}"
        )
    text = json.dumps(doc)[:200]
    if not doc.get("kind"):
        raise bad_request(f"Object 'Kind' is missing in '{text}'")
    if not doc.get("apiVersion"):
        raise bad_request(f"Object 'apiVersion' is missing in '{text}'")
    if doc["apiVersion"] != api_version:
        raise bad_request(
            "incorrect version specified in apply patch. Specified patch version: "
            f"{doc['apiVersion']}, expected: {api_version}"
        )
    if doc["kind"] != kind:
        raise bad_request(
            f"the kind in the data ({doc['kind']}) does not match the expected kind ({kind})"
        )
    meta = doc.get("metadata")
    if meta is None:
        meta = doc["metadata"] = {}
    if not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    if meta.get("name") != name:
        raise bad_request(
            f"the name of the object ({meta.get('name') or ''}) does not match the name on the "
            f"URL ({name})"
        )
    if namespaced and meta.get("namespace") not in (None, "", namespace):
        raise bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    if "managedFields" in meta:
        raise bad_request("metadata.managedFields must be nil")
    return doc
