"""Issue 16, items 4, 5 and 8, without sockets: a write the database refuses leaves the store
untouched; the memory all slow watches hold is bounded, the slowest one closed first; repeating
errors are logged once per interval with a count. Over HTTP and against real processes:
tests/e2e/test_apiserver_write_atomic.py and tests/e2e/test_apiserver_limits.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from metallb_py.apiserver import store as store_mod
from metallb_py.apiserver.conns import RateLimitedLog
from metallb_py.apiserver.persist import SqlitePersistence
from metallb_py.apiserver.store import (
    BACKLOG_THRESHOLD,
    Entry,
    Event,
    StorageError,
    Store,
    WatchBudget,
    Watcher,
)


def _cm(name: str, blob: str = "") -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": "d"}, "data": {"b": blob}}


async def test_refused_put_and_remove_leave_store_and_watchers_untouched(tmp_path: Path) -> None:
    db = SqlitePersistence(str(tmp_path / "s.db"))
    store = Store(start_rv=10)
    store.persistence = db
    store.put("configmaps", _cm("a"))
    w = store.subscribe("configmaps")
    rv = store.rv
    db.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = db.db.execute("PRAGMA page_count").fetchone()[0]
    db.db.execute(f"PRAGMA max_page_count = {pages}")
    obj = _cm("b", "x" * 100_000)
    with pytest.raises(StorageError) as err:
        store.put("configmaps", obj)
    assert err.value.code == 507
    assert "resourceVersion" not in obj["metadata"]  # type: ignore[operator]
    assert store.table("configmaps").get("d", "b") is None
    assert store.rv == rv and not w.pending
    with pytest.MonkeyPatch.context() as mp:

        def refuse(*args: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        mp.setattr(db, "write", refuse)
        with pytest.raises(StorageError) as err:
            store.remove("configmaps", "d", "a")
    assert err.value.code == 500
    assert store.table("configmaps").get("d", "a") is not None
    assert store.rv == rv and not w.pending
    db.db.execute("PRAGMA max_page_count = 1073741823")
    store.put("configmaps", obj)
    assert store.rv == rv + 1 and [e.type for e in w.pending] == ["ADDED"]
    db.close()


def test_storage_error_codes() -> None:
    assert StorageError(sqlite3.OperationalError("database or disk is full")).code == 507
    assert StorageError(OSError(28, "No space left on device")).code == 507
    err = StorageError(sqlite3.OperationalError("disk I/O error"))
    assert (err.code, err.reason) == (500, "InternalError")


# -- the watch budget ------------------------------------------------------------------------------


class FakeTransport:
    """A connection whose client reads nothing: everything written stays buffered."""

    def __init__(self) -> None:
        self.buffered = 0
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.buffered += len(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True
        self.buffered = 0


def _sinked(store: Store, key: str) -> tuple[Watcher, FakeTransport]:
    w = store.subscribe(key)
    t = FakeTransport()
    w.transport = t

    def sink(events: list[Event]) -> None:
        t.write(b"".join(e.entry.raw for e in events))

    w.set_sink(sink)
    return w, t


async def test_budget_closes_the_slowest_watch_first() -> None:
    store = Store(start_rv=1, watch_memory_limit=3 * 1024 * 1024)
    before = store_mod.TERMINATED_WATCHERS.labels("configmaps")._value.get()
    watchers = [_sinked(store, "configmaps") for _ in range(4)]
    # The first watch already lags 512 KiB more than the others.
    watchers[0][1].buffered = 512 * 1024
    blob = "x" * (256 * 1024)
    for i in range(3):
        store.put(
            "configmaps", {"metadata": {"name": f"c{i}", "namespace": "d"}, "data": {"b": blob}}
        )
    await asyncio.sleep(0.05)
    # 4 x 768 KiB + 512 KiB > 3 MiB: the first one goes, the rest fit.
    assert watchers[0][1].aborted and watchers[0][0].closed and watchers[0][0].overflowed
    assert not any(t.aborted for _, t in watchers[1:])
    assert store.watch_budget.terminated == 1
    after = store_mod.TERMINATED_WATCHERS.labels("configmaps")._value.get()
    assert after == before + 1
    # Readers that keep up (nothing buffered) are never counted or closed.
    for _, t in watchers[1:]:
        t.buffered = 0
    for i in range(20):
        store.put(
            "configmaps", {"metadata": {"name": f"c{i}", "namespace": "d"}, "data": {"b": "y"}}
        )
        for _, t in watchers[1:]:
            t.buffered = 0
        await asyncio.sleep(0.005)
    assert store.watch_budget.terminated == 1
    assert store.watcher_count() == 3  # the closed one left at the next write


async def test_budget_counts_queued_events_of_handler_fed_watches() -> None:
    """Watches fed by their handler (tables, conversion) queue events; those count too."""
    budget = WatchBudget(limit=1024 * 1024)
    w = Watcher(1_000_000, budget, "configmaps")
    raw = b"z" * (200 * 1024)
    for i in range(6):
        w.offer(Event("ADDED", Entry({}, raw, i), None, i))
    assert w.pending.nbytes == 6 * len(raw)
    await asyncio.sleep(0.05)
    assert w.closed and w.overflowed and w.pending.nbytes == 0


async def test_budget_ignores_watches_under_the_threshold() -> None:
    budget = WatchBudget(limit=1)
    w = Watcher(1_000_000, budget, "configmaps")
    w.offer(Event("ADDED", Entry({}, b"a" * (BACKLOG_THRESHOLD - 1), 1), None, 1))
    await asyncio.sleep(0.02)
    assert not w.closed


async def test_rate_limited_log_counts_instead_of_repeating(
    capsys: pytest.CaptureFixture[str],
) -> None:
    limited = RateLimitedLog("acceptFailed", interval=0.2)
    for _ in range(10_000):
        limited.hit(error="[Errno 24] Too many open files")
    assert limited.lines == 1
    await asyncio.sleep(0.3)
    assert limited.lines == 2
    assert limited.suppressed == 0
