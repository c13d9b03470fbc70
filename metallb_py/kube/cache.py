"""A local object cache with secondary indexes, fed by an informer.

Keys are `namespace/name` (or `name` for cluster-scoped objects), as in client-go. Objects are
the raw JSON dicts from the API server; treat them as read-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from metallb_py.objects import JSON

IndexFunc = Callable[[JSON], Iterable[str]]


def object_key(obj: JSON) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


def resource_version(obj: JSON | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


def newer(a: str, b: str) -> bool:
    """Is resourceVersion `a` newer than `b`? RVs are opaque, but every server we meet uses
    increasing integers; when either is not one, assume `a` is newer (the API's own rule)."""
    if a.isdigit() and b.isdigit():
        return int(a) > int(b)
    return True


def by_namespace(obj: JSON) -> Iterable[str]:
    ns = (obj.get("metadata") or {}).get("namespace")
    return (ns,) if ns else ()


class Cache:
    def __init__(self, indexers: dict[str, IndexFunc] | None = None) -> None:
        self._items: dict[str, JSON] = {}
        self._indexers: dict[str, IndexFunc] = dict(indexers or {})
        self._indexes: dict[str, dict[str, set[str]]] = {n: {} for n in self._indexers}
        self._values: dict[str, dict[str, tuple[str, ...]]] = {n: {} for n in self._indexers}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: str) -> JSON | None:
        return self._items.get(key)

    def keys(self) -> list[str]:
        return list(self._items)

    def items(self) -> Iterator[tuple[str, JSON]]:
        return iter(list(self._items.items()))

    def values(self) -> list[JSON]:
        return list(self._items.values())

    def view(self) -> Mapping[str, JSON]:
        """Every object by key, live and read-only, without copying (valid until the event
        loop runs again: pure code called synchronously can take it where it takes a dict)."""
        return MappingProxyType(self._items)

    def by_index(self, index: str, value: str) -> list[JSON]:
        keys = self._indexes[index].get(value, ())
        if len(keys) == 1:  # the usual case (one EndpointSlice per Service): no sort
            for key in keys:
                return [self._items[key]]
        return [self._items[k] for k in sorted(keys)]

    def index_keys(self, index: str, value: str) -> list[str]:
        return sorted(self._indexes[index].get(value, ()))

    def index_view(self, index: str) -> IndexView:
        """`index` as a live read-only Mapping: value -> the objects indexed under it."""
        return IndexView(self, index)

    def upsert(self, obj: JSON) -> tuple[str, JSON | None]:
        key = object_key(obj)
        old = self._items.get(key)
        self._items[key] = obj
        for name in self._indexers:
            self._unindex(name, key)
            self._index(name, key, obj)
        return key, old

    def delete(self, key: str) -> JSON | None:
        old = self._items.pop(key, None)
        if old is not None:
            for name in self._indexers:
                self._unindex(name, key)
        return old

    def replace(
        self, objs: Iterable[JSON], list_version: str = ""
    ) -> tuple[list[tuple[str, JSON | None, JSON]], list[tuple[str, JSON]]]:
        """Swap in a full list taken at `list_version`. Returns (changed: key, old, new) and
        (deleted: key, old). Cached objects newer than the list (a watch already delivered
        them) are kept, so a relist never moves the cache backwards."""
        fresh = {object_key(o): o for o in objs}
        deleted: list[tuple[str, JSON]] = []
        for key in list(self._items):
            if key in fresh:
                continue
            cached_rv = resource_version(self._items[key])
            if list_version and cached_rv.isdigit() and newer(cached_rv, list_version):
                continue
            old = self.delete(key)
            if old is not None:
                deleted.append((key, old))
        changed: list[tuple[str, JSON | None, JSON]] = []
        for key, obj in fresh.items():
            old = self._items.get(key)
            if old is not None:
                old_rv, new_rv = resource_version(old), resource_version(obj)
                if old_rv == new_rv or (old_rv.isdigit() and not newer(new_rv, old_rv)):
                    continue
            self.upsert(obj)
            changed.append((key, old, obj))
        return changed, deleted

    def upsert_if_newer(self, obj: JSON) -> tuple[str, JSON | None, bool]:
        """Store `obj` unless the cache already holds a newer version of it."""
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None:
            old_rv, new_rv = resource_version(old), resource_version(obj)
            if old_rv == new_rv or (old_rv.isdigit() and not newer(new_rv, old_rv)):
                return key, old, False
        self.upsert(obj)
        return key, old, True

    def _index(self, name: str, key: str, obj: JSON) -> None:
        values = tuple(self._indexers[name](obj))
        self._values[name][key] = values
        for value in values:
            self._indexes[name].setdefault(value, set()).add(key)

    def _unindex(self, name: str, key: str) -> None:
        for value in self._values[name].pop(key, ()):
            members = self._indexes[name].get(value)
            if members is not None:
                members.discard(key)
                if not members:
                    del self._indexes[name][value]


class IndexView(Mapping[str, list[JSON]]):
    """One index of a Cache as a Mapping, so pure code can take it where it takes a dict.

    Only values with at least one object are present; it follows the cache as it changes.
    """

    __slots__ = ("_cache", "_index")

    def __init__(self, cache: Cache, index: str) -> None:
        self._cache = cache
        self._index = index

    def __getitem__(self, value: str) -> list[JSON]:
        objs = self._cache.by_index(self._index, value)
        if not objs:
            raise KeyError(value)
        return objs

    def get(self, value: str, default: Any = None) -> Any:
        """Without raising for absent values: the speaker asks once per Service per pass."""
        return self._cache.by_index(self._index, value) or default

    def __contains__(self, value: object) -> bool:
        return value in self._cache._indexes[self._index]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._cache._indexes[self._index]))

    def __len__(self) -> int:
        return len(self._cache._indexes[self._index])
