"""Property: under random interleavings of writes and watches (opened from "now", from the
beginning, or from any earlier resourceVersion), every watcher sees every change after its start
exactly once and in resourceVersion order — or 410 Gone when its start is older than the bounded
history. Runs the real HTTP server in-process."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metallb_py.apiserver.server import ApiServer
from metallb_py.apiserver.store import Store
from tests.lab.apiserver import in_process_apiserver

START_RV = 1000
BASE = "/api/v1/namespaces/default/configmaps"


def make_server(history: int) -> ApiServer:
    server: ApiServer = in_process_apiserver(START_RV, history)
    return server


@dataclass
class Watcher:
    start: str
    events: list[tuple[str, str, int]] = field(default_factory=list)
    error: int | None = None
    task: asyncio.Task[None] | None = None


async def read(session: aiohttp.ClientSession, url: str, w: Watcher, ready: asyncio.Event) -> None:
    params = {"watch": "1", "timeoutSeconds": "60"}
    if w.start:
        params["resourceVersion"] = w.start
    async with session.get(url + BASE, params=params) as resp:
        ready.set()
        async for line in resp.content:
            ev = json.loads(line)
            if ev["type"] == "ERROR":
                w.error = ev["object"]["code"]
                return
            meta = ev["object"]["metadata"]
            w.events.append((ev["type"], meta["name"], int(meta["resourceVersion"])))


Action = tuple[str, int]
actions = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["put", "put", "delete"]), st.integers(0, 4)),
        st.tuples(st.just("watch"), st.integers(0, 1000)),
    ),
    min_size=1,
    max_size=40,
)


async def scenario(steps: list[Action], history: int) -> None:
    server = make_server(history)
    test_server = TestServer(server.app())
    await test_server.start_server()
    url = str(test_server.make_url("")).rstrip("/")
    log: list[tuple[str, str, int]] = []  # every change, as the model sees it
    existing: dict[str, int] = {}
    # (watcher, initial events it must get first, index into `log` its live part starts at);
    # an initial of None means it must get 410 Gone.
    watchers: list[tuple[Watcher, list[tuple[str, str, int]] | None, int]] = []
    seen_rvs: list[int] = [START_RV]
    counter = 0
    try:
        async with aiohttp.ClientSession() as session:
            for op, arg in steps:
                name = f"cm{arg}"
                if op == "put":
                    counter += 1
                    data = {"n": str(counter)}
                    if name in existing:
                        async with session.patch(
                            f"{url}{BASE}/{name}",
                            data=json.dumps({"data": data}),
                            headers={"Content-Type": "application/merge-patch+json"},
                        ) as r:
                            got = await r.json()
                        kind = "MODIFIED"
                    else:
                        body = {
                            "apiVersion": "v1",
                            "kind": "ConfigMap",
                            "metadata": {"name": name},
                            "data": data,
                        }
                        async with session.post(url + BASE, json=body) as r:
                            got = await r.json()
                        kind = "ADDED"
                    rv = int(got["metadata"]["resourceVersion"])
                    existing[name] = rv
                    log.append((kind, name, rv))
                    seen_rvs.append(rv)
                elif op == "delete":
                    if name not in existing:
                        continue
                    async with session.delete(f"{url}{BASE}/{name}") as r:
                        got = await r.json()
                    rv = int(got["metadata"]["resourceVersion"])
                    del existing[name]
                    log.append(("DELETED", name, rv))
                    seen_rvs.append(rv)
                else:
                    choice = arg % (len(seen_rvs) + 1)
                    initial: list[tuple[str, str, int]] | None
                    if choice == len(seen_rvs):
                        w = Watcher("")  # from now: a synthetic ADDED for what exists
                        initial = [
                            ("ADDED", n, rv)
                            for n, rv in sorted(existing.items(), key=lambda kv: kv[1])
                        ]
                    else:
                        start = seen_rvs[choice]
                        w = Watcher(str(start))
                        floor = log[-history - 1][2] if len(log) > history else START_RV
                        initial = None if start < floor else [e for e in log if e[2] > start]
                    ready = asyncio.Event()
                    w.task = asyncio.create_task(read(session, url, w, ready))
                    await ready.wait()
                    watchers.append((w, initial, len(log)))

            def want(initial: list[tuple[str, str, int]], live_from: int) -> list[Any]:
                return initial + log[live_from:]

            for _ in range(300):
                if all(
                    w.error is not None
                    or (init is not None and len(w.events) >= len(want(init, at)))
                    for w, init, at in watchers
                ):
                    break
                await asyncio.sleep(0.01)
            for w, init, at in watchers:
                if init is None:
                    assert w.error == 410, (w.start, w.events)
                    continue
                assert w.error is None, (w.start, w.error)
                assert w.events == want(init, at), (w.start, w.events, want(init, at))
                rvs = [rv for *_, rv in w.events]
                assert rvs == sorted(rvs) and len(rvs) == len(set(rvs))
            for w, _, _ in watchers:
                assert w.task is not None
                w.task.cancel()
    finally:
        await test_server.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=actions, history=st.integers(2, 30))
def test_every_watcher_sees_every_change_once_in_order(steps: list[Action], history: int) -> None:
    asyncio.run(scenario(steps, history))


def test_slow_watcher_is_closed_not_buffered_forever() -> None:
    store = Store(start_rv=1, history_limit=100, watch_queue_limit=5)
    w = store.subscribe("configmaps")
    for i in range(10):
        store.put(
            "configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"c{i}", "namespace": "default"},
            },
        )
    assert w.closed and w.overflowed and not w.pending
    assert w not in store.table("configmaps").watchers
