"""Issue 16, item 8, over HTTP against the in-process server: a write the database refuses
changes nothing (not memory, not watchers, not allocations) and answers 507.

The database is made to refuse deterministically with SQLite's `max_page_count` (a database
that may not grow is a full disk to SQLite: SQLITE_FULL); the real full disk is in
tests/e2e/test_apiserver_limits.py.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from metallb_py.apiserver.auth import Authenticator
from metallb_py.apiserver.persist import SqlitePersistence
from metallb_py.apiserver.server import ApiServer, ServerConfig
from metallb_py.apiserver.store import Store

CM = "/api/v1/namespaces/default/configmaps"


def _server(db: SqlitePersistence) -> ApiServer:
    rv = int(db.get_meta("rv") or 1000)
    store = Store(start_rv=rv)
    for key, raw, row_rv in db.rows():
        store.load(key, raw, row_rv)
    store.persistence = db
    server = ApiServer(
        ServerConfig(anonymous=True, bookmark_interval=3600),
        store,
        Authenticator(store, b"k" * 32, {}),
    )
    server.bootstrap()
    return server


def _freeze(db: SqlitePersistence, spare_pages: int = 2) -> None:
    """From now on the database may grow by `spare_pages` pages only: a full disk."""
    db.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = db.db.execute("PRAGMA page_count").fetchone()[0]
    db.db.execute(f"PRAGMA max_page_count = {pages + spare_pages}")


def _thaw(db: SqlitePersistence) -> None:
    db.db.execute("PRAGMA max_page_count = 1073741823")


def _refuse(exc: Exception) -> Callable[..., None]:
    def write(*args: Any) -> None:
        raise exc

    return write


def _cm(name: str, size: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": {"blob": "x" * size}}


class Harness:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = SqlitePersistence(str(path))
        self.server = _server(self.db)
        self.http: TestServer | None = None
        self.session: aiohttp.ClientSession | None = None
        self.events: list[tuple[str, str]] = []
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.http = TestServer(self.server.app())
        await self.http.start_server()
        self.session = aiohttp.ClientSession()
        ready = asyncio.Event()
        self._watch = asyncio.create_task(self._read_watch(ready))
        await asyncio.wait_for(ready.wait(), 5)

    async def _read_watch(self, ready: asyncio.Event) -> None:
        assert self.session is not None
        rv = self.server.store.rv
        async with self.session.get(
            self.url(CM), params={"watch": "1", "resourceVersion": str(rv)}
        ) as resp:
            ready.set()
            async for line in resp.content:
                ev = json.loads(line)
                self.events.append((ev["type"], ev["object"]["metadata"]["name"]))

    def url(self, path: str) -> str:
        assert self.http is not None
        return str(self.http.make_url(path))

    async def req(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        assert self.session is not None
        async with self.session.request(method, self.url(path), json=body, **kw) as resp:
            return resp.status, await resp.json()

    async def settle(self) -> None:
        await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
        if self.http is not None:
            await self.http.close()
        self.db.close()


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path / "state.db")
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


def _stored(path: Path) -> dict[str, bytes]:
    """What a restart would load: configmap name -> serialized object."""
    db = SqlitePersistence(str(path))
    try:
        return {
            json.loads(raw)["metadata"]["name"]: raw
            for key, raw, _ in db.rows()
            if key == "configmaps"
        }
    finally:
        db.close()


async def test_failed_create_changes_nothing_and_a_retry_works(h: Harness) -> None:
    rv_before = h.server.store.rv
    _freeze(h.db)
    code, body = await h.req("POST", CM, _cm("big", 200_000))
    assert code == 507, body
    assert body["reason"] == "InsufficientStorage"
    assert "not made" in body["message"]
    assert h.server.store.rv == rv_before
    code, _ = await h.req("GET", f"{CM}/big")
    assert code == 404
    await h.settle()
    assert h.events == []
    _thaw(h.db)
    code, body = await h.req("POST", CM, _cm("big", 200_000))
    assert code == 201, body
    await h.settle()
    assert h.events == [("ADDED", "big")]
    stored = _stored(h.path)
    assert (
        json.loads(stored["big"])["metadata"]["resourceVersion"]
        == (body["metadata"]["resourceVersion"])
    )


async def test_failed_update_and_delete_change_nothing(h: Harness) -> None:
    code, created = await h.req("POST", CM, _cm("keep", 10))
    assert code == 201
    await h.settle()
    h.events.clear()
    _freeze(h.db, spare_pages=0)
    patch = {"data": {"blob": "y" * 200_000}}
    code, body = await h.req(
        "PATCH",
        f"{CM}/keep",
        patch,
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert code == 507, body
    code, got = await h.req("GET", f"{CM}/keep")
    assert code == 200 and got == created
    # A delete needs room in the write-ahead log too; when the database refuses it, the object
    # stays, everywhere.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(h.db, "write", _refuse(sqlite3.OperationalError("database or disk is full")))
        code, body = await h.req("DELETE", f"{CM}/keep")
    assert code == 507, body
    code, got = await h.req("GET", f"{CM}/keep")
    assert code == 200 and got == created
    await h.settle()
    assert h.events == []
    assert json.loads(_stored(h.path)["keep"]) == created
    _thaw(h.db)
    code, _ = await h.req("DELETE", f"{CM}/keep")
    assert code == 200
    await h.settle()
    assert h.events == [("DELETED", "keep")]
    assert "keep" not in _stored(h.path)


async def test_restart_state_equals_what_clients_were_told(h: Harness, tmp_path: Path) -> None:
    told: dict[str, int] = {}
    for i in range(12):
        if i % 3 == 2:
            _freeze(h.db)
        code, body = await h.req("POST", CM, _cm(f"o{i}", 50_000 if i % 3 == 2 else 10))
        _thaw(h.db)
        if code == 201:
            told[f"o{i}"] = int(body["metadata"]["resourceVersion"])
        else:
            assert code == 507
    assert len(told) == 8
    live = {e.obj["metadata"]["name"]: e.raw for e in h.server.store.table("configmaps").entries()}
    assert _stored(h.path) == live
    assert {n: json.loads(r)["metadata"]["resourceVersion"] for n, r in live.items()} == {
        n: str(rv) for n, rv in told.items()
    }
    db2 = SqlitePersistence(str(h.path))
    try:
        again = _server(db2)
        assert again.store.rv == h.server.store.rv
    finally:
        db2.close()


async def test_failed_service_create_releases_its_cluster_ip(h: Harness) -> None:
    svc = {
        "metadata": {"name": "web"},
        "spec": {"clusterIP": "10.96.0.77", "ports": [{"port": 80}]},
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(h.db, "write", _refuse(OSError(28, "No space left on device")))
        code, body = await h.req("POST", "/api/v1/namespaces/default/services", svc)
    assert code == 507, body
    code, body = await h.req("POST", "/api/v1/namespaces/default/services", svc)
    assert code == 201, body
    assert body["spec"]["clusterIP"] == "10.96.0.77"
