"""The object store: tables of immutable JSON objects, one resourceVersion counter, bounded
per-table event histories, and watchers fed synchronously on every write.

Objects are plain dicts that are never mutated once stored; each carries its serialized form, made
once per write, which GET, LIST, watch events and persistence all reuse. Every write happens in one
synchronous step (no await), so the resourceVersion check, the store update and the fan-out to
watchers are atomic with respect to other requests.
"""

from __future__ import annotations

import asyncio
import bisect
import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

Obj = dict[str, Any]

DEFAULT_HISTORY = 20_000


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(slots=True)
class Entry:
    obj: Obj
    raw: bytes
    rv: int


@dataclass(slots=True)
class Event:
    type: str  # ADDED | MODIFIED | DELETED
    entry: Entry
    old: Entry | None
    rv: int


class Persistence(Protocol):
    def write(self, table: str, ns: str, name: str, rv: int, raw: bytes | None) -> None: ...

    def set_meta(self, key: str, value: str) -> None: ...


Sink = Callable[[list[Event]], None]
# Watch events are written at most this long after their commit, so that one socket write per
# watch carries every change of that interval: with many watches, the syscalls dominate.
FLUSH_DELAY = 0.002
_dirty: set[Watcher] = set()
_flush_scheduled = False


def _flush() -> None:
    """Hand each watcher with a sink everything queued since the last flush, in one go: one
    socket write per watcher per loop iteration, whatever the number of writes."""
    global _flush_scheduled
    _flush_scheduled = False
    dirty = list(_dirty)
    _dirty.clear()
    for w in dirty:
        if w.closed or w.sink is None or not w.pending:
            continue
        batch = list(w.pending)
        w.pending.clear()
        w.sink(batch)


class Watcher:
    """One watch stream's queue. The store appends; either the HTTP handler drains it (woken
    per event), or, once it sets a synchronous `sink`, a per-iteration flush feeds the sink."""

    def __init__(self, limit: int) -> None:
        self.pending: deque[Event] = deque()
        self.wakeup = asyncio.Event()
        self.limit = limit
        self.closed = False
        self.overflowed = False
        self.accept: Callable[[Event], str | None] = lambda ev: ev.type
        self.sink: Sink | None = None

    def offer(self, ev: Event) -> None:
        global _flush_scheduled
        if self.closed:
            return
        kind = self.accept(ev)
        if kind is None:
            return
        if kind != ev.type:
            ev = Event(kind, ev.entry, ev.old, ev.rv)
        if len(self.pending) >= self.limit:
            # Too far behind: stop feeding it; the client relists, so memory stays bounded.
            self.overflowed = True
            self.closed = True
            self.pending.clear()
            self.wakeup.set()
            return
        self.pending.append(ev)
        if self.sink is None:
            self.wakeup.set()
            return
        _dirty.add(self)
        if not _flush_scheduled:
            _flush_scheduled = True
            asyncio.get_running_loop().call_later(FLUSH_DELAY, _flush)

    def set_sink(self, sink: Sink) -> None:
        """Switch to synchronous delivery; what is already queued goes out first."""
        self.sink = sink
        if self.pending and not self.closed:
            batch = list(self.pending)
            self.pending.clear()
            sink(batch)

    def close(self) -> None:
        self.closed = True
        self.wakeup.set()


@dataclass
class Table:
    key: str
    history_limit: int
    objects: dict[str, dict[str, Entry]] = field(default_factory=dict)
    count: int = 0
    history: deque[Event] = field(default_factory=deque)
    floor: int = 0  # every event with rv > floor is still in `history`
    watchers: set[Watcher] = field(default_factory=set)
    _sorted: list[tuple[str, str]] | None = None

    def get(self, ns: str, name: str) -> Entry | None:
        bucket = self.objects.get(ns)
        return bucket.get(name) if bucket else None

    def entries(self, ns: str | None = None) -> Iterator[Entry]:
        if ns is not None:
            yield from (self.objects.get(ns) or {}).values()
            return
        for bucket in self.objects.values():
            yield from bucket.values()

    def sorted_keys(self) -> list[tuple[str, str]]:
        if self._sorted is None:
            self._sorted = sorted((ns, n) for ns, b in self.objects.items() for n in b)
        return self._sorted

    def keys_after(self, start: tuple[str, str] | None) -> list[tuple[str, str]]:
        keys = self.sorted_keys()
        if start is None:
            return keys
        return keys[bisect.bisect_right(keys, start) :]


Listener = Callable[[str, str, Entry | None, Entry | None], None]


class Store:
    """All tables; `rv` is the cluster-wide resourceVersion of the last write."""

    def __init__(
        self,
        start_rv: int = 1,
        history_limit: int = DEFAULT_HISTORY,
        watch_queue_limit: int = 200_000,
    ) -> None:
        self.rv = start_rv
        self.history_limit = history_limit
        self.watch_queue_limit = watch_queue_limit
        self.tables: dict[str, Table] = {}
        self.persistence: Persistence | None = None
        self.listeners: list[Listener] = []
        self.started_rv = start_rv

    def table(self, key: str) -> Table:
        t = self.tables.get(key)
        if t is None:
            t = self.tables[key] = Table(key, self.history_limit, floor=self.started_rv)
        return t

    # -- loading (startup) ---------------------------------------------------------------------
    def load(self, key: str, raw: bytes, rv: int) -> None:
        obj = json.loads(raw)
        meta = obj.get("metadata", {})
        t = self.table(key)
        t.objects.setdefault(meta.get("namespace", ""), {})[meta["name"]] = Entry(obj, raw, rv)
        t.count += 1
        t._sorted = None

    # -- writes ----------------------------------------------------------------------------------
    def put(self, key: str, obj: Obj) -> Entry:
        """Create or replace an object; stamps the next resourceVersion into it."""
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        t = self.table(key)
        old = t.get(ns, name)
        self.rv += 1
        rv = self.rv
        meta["resourceVersion"] = str(rv)
        raw = dumps(obj)
        entry = Entry(obj, raw, rv)
        bucket = t.objects.setdefault(ns, {})
        bucket[name] = entry
        if old is None:
            t.count += 1
            t._sorted = None
        if self.persistence is not None:
            self.persistence.write(key, ns, name, rv, raw)
        self._emit(t, Event("MODIFIED" if old else "ADDED", entry, old, rv))
        for listener in self.listeners:
            listener(key, "MODIFIED" if old else "ADDED", old, entry)
        return entry

    def remove(self, key: str, ns: str, name: str) -> Entry | None:
        """Delete an object; the DELETED event carries its last state at a new resourceVersion."""
        t = self.table(key)
        old = t.get(ns, name)
        if old is None:
            return None
        del t.objects[ns][name]
        if not t.objects[ns]:
            del t.objects[ns]
        t.count -= 1
        t._sorted = None
        self.rv += 1
        rv = self.rv
        obj = dict(old.obj)
        obj["metadata"] = {**old.obj["metadata"], "resourceVersion": str(rv)}
        entry = Entry(obj, dumps(obj), rv)
        if self.persistence is not None:
            self.persistence.write(key, ns, name, rv, None)
        self._emit(t, Event("DELETED", entry, old, rv))
        for listener in self.listeners:
            listener(key, "DELETED", old, entry)
        return entry

    def _emit(self, t: Table, ev: Event) -> None:
        if len(t.history) >= t.history_limit:
            t.floor = t.history.popleft().rv
        t.history.append(ev)
        for w in list(t.watchers):
            w.offer(ev)
            if w.closed:
                t.watchers.discard(w)

    # -- watches ---------------------------------------------------------------------------------
    def history_since(self, key: str, rv: int) -> list[Event] | None:
        """Events after `rv`, or None when the history no longer reaches back that far."""
        t = self.table(key)
        if rv < t.floor:
            return None
        if not t.history or t.history[-1].rv <= rv:
            return []
        # History is in rv order: binary search the first event after rv.
        lo, hi = 0, len(t.history)
        while lo < hi:
            mid = (lo + hi) // 2
            if t.history[mid].rv <= rv:
                lo = mid + 1
            else:
                hi = mid
        return [t.history[i] for i in range(lo, len(t.history))]

    def subscribe(self, key: str) -> Watcher:
        w = Watcher(self.watch_queue_limit)
        self.table(key).watchers.add(w)
        return w

    def unsubscribe(self, key: str, w: Watcher) -> None:
        w.close()
        self.table(key).watchers.discard(w)

    def watcher_count(self) -> int:
        return sum(len(t.watchers) for t in self.tables.values())
