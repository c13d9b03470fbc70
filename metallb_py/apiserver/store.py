"""The object store: tables of immutable JSON objects, one resourceVersion counter, bounded
per-table event histories, and watchers fed synchronously on every write.

Objects are plain dicts that are never mutated once stored; each carries its serialized form, made
once per write, which GET, LIST, watch events and persistence all reuse. Every write happens in one
synchronous step (no await), so the resourceVersion check, the store update and the fan-out to
watchers are atomic with respect to other requests.

A write reaches memory and watchers only after persistence committed it: when the database
refuses (a full disk, an I/O error), the write raises `StorageError` and nothing changed, so what
a client was told always matches what a restart loads.

Slow watches are bounded twice: per watch (events queued, bytes unsent) and all together
(`WatchBudget`): when the bytes every watch holds unsent exceed the budget, the watch holding the
most is closed and its connection aborted, freeing its buffers; its client resumes or relists.
"""

from __future__ import annotations

import asyncio
import bisect
import errno
import json
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from prometheus_client import Counter

from metallb_py.apiserver.errors import ApiError
from metallb_py.log import get_logger
from metallb_py.objects import JSON

log = get_logger("apiserver")

DEFAULT_HISTORY = 20_000
# Bytes all watches together may hold unsent (their queues plus their sockets' buffers).
DEFAULT_WATCH_MEMORY = 256 * 1024 * 1024
# A watch holding less than this unsent is not checked against the budget: a reader that keeps
# up stays under its socket's high-water mark (64 KiB), so only laggards cost a check.
BACKLOG_THRESHOLD = 64 * 1024

TERMINATED_WATCHERS = Counter(
    "apiserver_terminated_watchers",
    "Watches closed because all watches together held more unsent data than the budget "
    "(--watch-memory-limit); the slowest one is closed first.",
    ["resource"],
)
STORAGE_FAILURES = Counter(
    "apiserver_storage_write_failures",
    "Writes refused because the database could not commit them; nothing changed.",
    ["reason"],
)


class StorageError(ApiError):
    """The database refused a write, which therefore changed nothing: 507 when the disk is
    full (the client may retry once space is freed), 500 for any other failure."""

    def __init__(self, exc: BaseException) -> None:
        full = _disk_full(exc)
        super().__init__(
            507 if full else 500,
            "InsufficientStorage" if full else "InternalError",
            ("storage full: " if full else "storage error: ")
            + f"the write was not made ({type(exc).__name__}: {exc})",
            details={"retryAfterSeconds": 1} if full else None,
        )
        self.full = full


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


# Stored objects are trees (decoded JSON and what the server adds), never cyclic: the encoder
# skips the cycle bookkeeping, a fifth of its time on every write. A cycle, were one ever built,
# would end in RecursionError (a 500), not a hang.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)


def dumps(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode()


@dataclass(slots=True)
class Entry:
    obj: JSON
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


class _Queue(deque["Event"]):
    """A watch's pending events and the bytes they would take on the wire."""

    nbytes = 0

    def append(self, ev: Event) -> None:
        super().append(ev)
        self.nbytes += len(ev.entry.raw)

    def popleft(self) -> Event:
        ev = super().popleft()
        self.nbytes -= len(ev.entry.raw)
        return ev

    def clear(self) -> None:
        super().clear()
        self.nbytes = 0


_deque_append = deque.append


class WatchBudget:
    """The memory all watches of one store may hold unsent. Checked after every flush and
    queueing, over the watches already behind (`BACKLOG_THRESHOLD`) only: the check costs
    nothing while every client reads."""

    def __init__(self, limit: int = DEFAULT_WATCH_MEMORY) -> None:
        self.limit = limit
        self.backlogged: set[Watcher] = set()
        self.terminated = 0

    def note(self, w: Watcher) -> None:
        if w.unsent() >= BACKLOG_THRESHOLD:
            self.backlogged.add(w)
            _budgets.add(self)
            _schedule()

    def held(self) -> int:
        return sum(w.unsent() for w in self.backlogged)

    def check(self) -> None:
        sizes: dict[Watcher, int] = {}
        for w in list(self.backlogged):
            n = 0 if w.closed else w.unsent()
            if n < BACKLOG_THRESHOLD:
                self.backlogged.discard(w)
            else:
                sizes[w] = n
        total = sum(sizes.values())
        while total > self.limit and sizes:
            w = max(sizes, key=sizes.__getitem__)
            held = sizes.pop(w)
            self.backlogged.discard(w)
            w.terminate()
            self.terminated += 1
            TERMINATED_WATCHERS.labels(w.resource).inc()
            log.warning(
                "watchTerminated",
                resource=w.resource,
                unsentBytes=held,
                allWatchesBytes=total,
                limitBytes=self.limit,
                reason="the watches together hold more unsent data than --watch-memory-limit; "
                "the slowest is closed, its client resumes or relists",
            )
            total -= held


Sink = Callable[[list[Event]], None]


@runtime_checkable
class SharedSink(Protocol):
    """A sink whose framing does not depend on its watch, so watches that see the same events
    can share one framed copy: `frame` once for all, then `send` to each."""

    def __call__(self, events: list[Event]) -> None: ...

    def frame(self, events: list[Event]) -> bytes: ...

    def send(self, data: bytes) -> None: ...


# Watch events are written at most this long after their commit, so that one socket write per
# watch carries every change of that interval: with many watches, the syscalls dominate.
FLUSH_DELAY = 0.002
_dirty: set[Watcher] = set()
_dirty_groups: set[Broadcast] = set()
_budgets: set[WatchBudget] = set()
# Work the sinks of one flush share (most watches get the very same batch, framed once): keyed
# by the ids of the events, each value holds those events so the ids stay theirs; emptied when
# the flush ends.
flush_cache: dict[tuple[int, ...], tuple[list[Event], bytes]] = {}
# The loop a flush is scheduled in; a flag alone would stay set forever if that loop closed
# before the flush ran (one loop per test), starving every later loop's watchers.
_flush_scheduled: asyncio.AbstractEventLoop | None = None


def _schedule() -> None:
    global _flush_scheduled
    loop = asyncio.get_running_loop()
    if _flush_scheduled is not loop:
        _flush_scheduled = loop
        loop.call_later(FLUSH_DELAY, _flush)


def _flush() -> None:
    """Hand each watcher with a sink everything queued since the last flush, in one go: one
    socket write per watcher per loop iteration, whatever the number of writes. Then hold the
    watches that fell behind to their budget."""
    global _flush_scheduled
    _flush_scheduled = None
    groups = list(_dirty_groups)
    _dirty_groups.clear()
    for g in groups:
        g.flush()
    dirty = list(_dirty)
    _dirty.clear()
    for w in dirty:
        if w.closed or w.sink is None or not w.pending:
            continue
        batch = list(w.pending)
        w.pending.clear()
        w.sink(batch)
        if w.budget is not None:
            w.budget.note(w)
    flush_cache.clear()
    budgets = list(_budgets)
    _budgets.clear()
    for b in budgets:
        b.check()


def _same_type(ev: Event) -> str:
    """The default filter: a watch that sees every event as it is."""
    return ev.type


class Broadcast:
    """The watches of one table that take every event of a namespace (or of all) straight to
    their sockets: the store queues each event once for the group instead of once per watch,
    and the flush frames the batch once and sends it to every member. With a hundred watches
    the per-watch queueing was the largest part of a write's cost.

    A watch that joins between two flushes has already been handed, on its own, the events the
    group holds for the others; `late` remembers where it starts so it gets nothing twice."""

    __slots__ = ("frame", "late", "limit", "members", "namespace", "pending")

    def __init__(self, namespace: str, limit: int, frame: Callable[[list[Event]], bytes]) -> None:
        self.namespace = namespace
        self.limit = limit
        self.members: dict[Watcher, Callable[[bytes], None]] = {}  # each with its sink's `send`
        self.late: dict[Watcher, int] = {}
        self.pending: list[Event] = []
        self.frame = frame

    def join(self, w: Watcher, sink: SharedSink) -> None:
        self.members[w] = sink.send
        if self.pending:
            self.late[w] = len(self.pending)

    def leave(self, w: Watcher) -> None:
        self.members.pop(w, None)
        self.late.pop(w, None)

    def queue(self, ev: Event) -> bool:
        """Queue `ev` for every member; False when the group has fallen `limit` events behind
        and every member was closed instead (their clients relist, as with a single watch)."""
        pending = self.pending
        if len(pending) >= self.limit:
            for w in self.members:
                w.overflowed = True
                w.close()
            pending.clear()
            self.late.clear()
            return False
        pending.append(ev)
        _dirty_groups.add(self)
        return True

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        late, self.late = self.late, {}
        if not batch:
            return
        data: bytes | None = None
        for w, send in list(self.members.items()):
            if w.closed:
                continue
            start = late.get(w, 0) if late else 0
            if start:
                if start < len(batch):
                    send(self.frame(batch[start:]))
            else:
                if data is None:
                    data = self.frame(batch)
                send(data)
            if w.budget is not None:
                w.budget.note(w)


class Watcher:
    """One watch stream's queue. The store appends; either the HTTP handler drains it (woken
    per event), or, once it sets a synchronous `sink`, a per-iteration flush feeds the sink."""

    def __init__(
        self,
        limit: int,
        budget: WatchBudget | None = None,
        resource: str = "",
        table: Table | None = None,
    ) -> None:
        self.pending: _Queue = _Queue()
        self.wakeup = asyncio.Event()
        self.limit = limit
        self.closed = False
        self.overflowed = False
        self.accept: Callable[[Event], str | None] = _same_type
        # With the default `accept`: only objects of this namespace ("" for all), a filter
        # cheap enough to run for every watch on every write.
        self.namespace = ""
        self.sink: Sink | None = None
        self.budget = budget
        self.resource = resource
        # The connection the watch streams on (set by the HTTP handler): its unsent bytes count
        # against the budget, and closing a slow watch aborts it to free them.
        self.transport: Any = None
        # The table it watches, and the group it receives events through once it has a shared
        # sink and no filter of its own (then the table's per-watch loop skips it).
        self.table = table
        self.group: Broadcast | None = None

    def unsent(self) -> int:
        """Bytes queued here or waiting in the connection's write buffer."""
        n = self.pending.nbytes
        t = self.transport
        if t is not None and not t.is_closing():
            n += t.get_write_buffer_size()
        return n

    def terminate(self) -> None:
        """Close the watch and drop the connection with everything still buffered for it (a
        graceful end would wait for a client that does not read)."""
        self.overflowed = True
        self.closed = True
        self.pending.clear()
        self.wakeup.set()
        if self.transport is not None:
            self.transport.abort()

    def offer(self, ev: Event) -> None:
        if self.enqueue(ev):
            _schedule()

    def enqueue(self, ev: Event, ns: str | None = None) -> bool:
        """Queue `ev` if this watch sees it; True when a flush must follow (the store schedules
        one per write, not one per watch). `ns`: the object's namespace, if the caller has it."""
        if self.closed:
            return False
        accept = self.accept
        if accept is _same_type:
            if self.namespace:
                if ns is None:
                    ns = ev.entry.obj["metadata"].get("namespace", "")
                if ns != self.namespace:
                    return False
        else:
            kind = accept(ev)
            if kind is None:
                return False
            if kind != ev.type:
                ev = Event(kind, ev.entry, ev.old, ev.rv)
        pending = self.pending
        if len(pending) >= self.limit:
            # Too far behind: stop feeding it; the client relists, so memory stays bounded.
            self.overflowed = True
            self.closed = True
            pending.clear()
            self.wakeup.set()
            return False
        _deque_append(pending, ev)  # `_Queue.append` inline: this runs per watch per write
        pending.nbytes += len(ev.entry.raw)
        flush = False
        if self.budget is not None and pending.nbytes >= BACKLOG_THRESHOLD:
            self.budget.backlogged.add(self)
            _budgets.add(self.budget)
            flush = True
        if self.sink is None:
            self.wakeup.set()
            return flush
        _dirty.add(self)
        return True

    def set_sink(self, sink: Sink) -> None:
        """Switch to synchronous delivery; what is already queued goes out first. A watch of a
        whole namespace (or of everything) with a shared sink then joins its table's group."""
        self.sink = sink
        if self.pending and not self.closed:
            batch = list(self.pending)
            self.pending.clear()
            sink(batch)
            flush_cache.clear()
            if self.budget is not None:
                self.budget.note(self)
        if (
            self.table is not None
            and not self.closed
            and self.accept is _same_type
            and isinstance(sink, SharedSink)
        ):
            self.table.join(self, sink)

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
    # Watches that get every event of a namespace ("" for all) through one queue each.
    groups: dict[str, Broadcast] = field(default_factory=dict)
    _sorted: list[tuple[str, str]] | None = None

    def join(self, w: Watcher, sink: SharedSink) -> None:
        """Move `w` from the per-watch loop into the group of its namespace."""
        g = self.groups.get(w.namespace)
        if g is None:
            g = self.groups[w.namespace] = Broadcast(w.namespace, w.limit, sink.frame)
        self.watchers.discard(w)
        g.join(w, sink)
        w.group = g

    def leave(self, w: Watcher) -> None:
        self.watchers.discard(w)
        g = w.group
        if g is not None:
            g.leave(w)
            w.group = None
            if not g.members and self.groups.get(g.namespace) is g:
                del self.groups[g.namespace]

    def watcher_count(self) -> int:
        return len(self.watchers) + sum(len(g.members) for g in self.groups.values())

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
        watch_memory_limit: int = DEFAULT_WATCH_MEMORY,
    ) -> None:
        self.rv = start_rv
        self.watch_budget = WatchBudget(watch_memory_limit)
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
    def put(self, key: str, obj: JSON, check_size: Callable[[int], None] | None = None) -> Entry:
        """Create or replace an object; stamps the next resourceVersion into it. `check_size`
        sees the serialized size first and may refuse the write by raising (nothing changes)."""
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        t = self.table(key)
        old = t.get(ns, name)
        rv = self.rv + 1
        had_rv = "resourceVersion" in meta
        given_rv = meta.get("resourceVersion")
        meta["resourceVersion"] = str(rv)
        raw = dumps(obj)
        try:
            if check_size is not None:
                check_size(len(raw))
            self._persist(key, ns, name, rv, raw)
        except ApiError:
            if had_rv:
                meta["resourceVersion"] = given_rv
            else:
                del meta["resourceVersion"]
            raise
        self.rv = rv
        entry = Entry(obj, raw, rv)
        bucket = t.objects.setdefault(ns, {})
        bucket[name] = entry
        if old is None:
            t.count += 1
            t._sorted = None
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
        rv = self.rv + 1
        self._persist(key, ns, name, rv, None)
        self.rv = rv
        del t.objects[ns][name]
        if not t.objects[ns]:
            del t.objects[ns]
        t.count -= 1
        t._sorted = None
        obj = dict(old.obj)
        obj["metadata"] = {**old.obj["metadata"], "resourceVersion": str(rv)}
        entry = Entry(obj, dumps(obj), rv)
        self._emit(t, Event("DELETED", entry, old, rv))
        for listener in self.listeners:
            listener(key, "DELETED", old, entry)
        return entry

    def _persist(self, key: str, ns: str, name: str, rv: int, raw: bytes | None) -> None:
        """Commit one write to the database, before memory sees it; StorageError if refused."""
        if self.persistence is None:
            return
        try:
            self.persistence.write(key, ns, name, rv, raw)
        except (sqlite3.Error, OSError) as exc:
            err = StorageError(exc)
            STORAGE_FAILURES.labels("full" if err.full else "error").inc()
            log.error(
                "storageWriteFailed",
                resource=key,
                namespace=ns,
                name=name,
                delete=raw is None,
                full=err.full,
                error=f"{type(exc).__name__}: {exc}",
            )
            raise err from exc

    def _emit(self, t: Table, ev: Event) -> None:
        if len(t.history) >= t.history_limit:
            t.floor = t.history.popleft().rv
        t.history.append(ev)
        flush = False
        closed = None
        ns = ev.entry.obj["metadata"].get("namespace", "")
        groups = t.groups
        if groups:
            g = groups.get("")
            if g is not None and g.queue(ev):
                flush = True
            g = groups.get(ns) if ns else None
            if g is not None and g.queue(ev):
                flush = True
        for w in t.watchers:
            if w.enqueue(ev, ns):
                flush = True
            if w.closed:
                closed = [w] if closed is None else [*closed, w]
        if closed:
            t.watchers.difference_update(closed)
        if flush:
            _schedule()

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
        t = self.table(key)
        w = Watcher(self.watch_queue_limit, self.watch_budget, key, t)
        t.watchers.add(w)
        return w

    def unsubscribe(self, key: str, w: Watcher) -> None:
        w.close()
        self.table(key).leave(w)
        self.watch_budget.backlogged.discard(w)

    def watcher_count(self) -> int:
        return sum(t.watcher_count() for t in self.tables.values())
