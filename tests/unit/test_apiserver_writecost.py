"""The write path's shortcuts (issue 19) keep every check: JSON bodies skip the data walk only
when it cannot find anything, FieldsV1 comes out in the order the sorting pass gave, a write the
size check refuses changes nothing, and the store's namespace filter and shared framing give
each watch exactly its events."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from metallb_py.apiserver import fieldset, limits
from metallb_py.apiserver import store as store_mod
from metallb_py.apiserver.errors import ApiError
from metallb_py.apiserver.store import Event, Store
from metallb_py.apiserver.watch import direct_sink


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":"\\ud800"}',  # a lone surrogate, escaped
        b'{"a":{"b":"\\udfff"}}',
        b'{"a":"\xed\xa0\x80"}',  # a lone surrogate, as (invalid) UTF-8 bytes
        b"[" * (limits.MAX_DEPTH + 1) + b"]" * (limits.MAX_DEPTH + 1),
        b'{"a":' * (limits.MAX_DEPTH + 1) + b"1" + b"}" * (limits.MAX_DEPTH + 1),
    ],
)
def test_decode_json_still_refuses_what_the_walk_finds(body: bytes) -> None:
    with pytest.raises(ApiError) as exc:
        limits.decode_json(body)
    assert exc.value.code == 400


def test_decode_json_accepts_ordinary_and_escaped_bodies() -> None:
    assert limits.decode_json(b'{"a":"\\u00e9\\ud83d\\ude00"}') == {"a": "\u00e9\U0001f600"}
    assert limits.decode_json(b'{"a":[1,2.5,{"b":null}]}') == {"a": [1, 2.5, {"b": None}]}
    nested = b"[" * limits.MAX_DEPTH + b"]" * limits.MAX_DEPTH
    assert limits.decode_json(nested) is not None
    for bad in (b'{"a":NaN}', b'{"a":1e999}', b'{"a":99999999999999999999}'):
        with pytest.raises(ApiError):
            limits.decode_json(bad)


def _encode_by_sorting(paths: set[tuple[str, ...]]) -> Any:
    """The reference: build the tree, add "." to members with children, sort every level."""
    root: dict[str, Any] = {}
    members = []
    for p in paths:
        node = root
        for pe in p:
            node = node.setdefault(pe, {})
        members.append(node)
    for node in members:
        if node and "." not in node:
            node["."] = {}

    def ordered(node: dict[str, Any]) -> dict[str, Any]:
        return {k: ordered(node[k]) for k in sorted(node, key=lambda k: (k != ".", k))}

    return ordered(root)


def test_fieldsv1_encoding_matches_a_sorted_tree() -> None:
    rng = random.Random(19)
    keys = ["f:a", "f:spec", "f:Z", 'k:{"name":"x"}', 'k:{"port":80}', 'v:"y"', "i:0"]
    for _ in range(3000):
        paths = {
            tuple(rng.choice(keys) for _ in range(rng.randint(0, 4)))
            for _ in range(rng.randint(0, 12))
        }
        got = fieldset.encode(paths)
        assert json.dumps(got) == json.dumps(_encode_by_sorting(paths)), paths


def test_a_write_refused_by_its_size_changes_nothing() -> None:
    store = Store(start_rv=5)
    w = store.subscribe("configmaps")
    obj: dict[str, Any] = {"metadata": {"name": "a", "namespace": "d"}, "data": {"k": "v"}}

    def refuse(size: int) -> None:
        raise limits.too_large(f"{size} bytes")

    with pytest.raises(ApiError) as exc:
        store.put("configmaps", obj, refuse)
    assert exc.value.code == 413
    assert store.rv == 5 and "resourceVersion" not in obj["metadata"]
    assert store.table("configmaps").get("d", "a") is None and not w.pending
    seen: list[int] = []
    store.put("configmaps", obj, seen.append)
    assert seen and seen[0] == len(store.table("configmaps").get("d", "a").raw)  # type: ignore[union-attr]


class _Transport:
    def __init__(self) -> None:
        self.data: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        self.data.append(data)


async def test_namespace_watches_get_their_events_framed_once_for_all() -> None:
    store = Store()
    watches = {}
    for ns in ("", "a", "a", "b"):
        w = store.subscribe("configmaps")
        w.namespace = ns
        t = _Transport()
        w.set_sink(direct_sink(w, t))
        watches[w] = t
    for i, ns in enumerate(["a", "b", "a", "c"]):
        store.put("configmaps", {"metadata": {"name": f"o{i}", "namespace": ns}})
    await asyncio.sleep(store_mod.FLUSH_DELAY * 5)
    assert not store_mod.flush_cache  # emptied when the flush ends
    got: dict[str, list[list[tuple[str, str]]]] = {}
    for w, t in watches.items():
        lines = b"".join(t.data).split(b"\r\n")[1::2]  # one chunk each: size, data
        events = [json.loads(x) for x in b"".join(lines).splitlines()]
        got.setdefault(w.namespace, []).append(
            [(e["type"], e["object"]["metadata"]["name"]) for e in events]
        )
    assert got[""] == [[("ADDED", "o0"), ("ADDED", "o1"), ("ADDED", "o2"), ("ADDED", "o3")]]
    assert got["a"] == [[("ADDED", "o0"), ("ADDED", "o2")]] * 2
    assert got["b"] == [[("ADDED", "o1")]]
    a1, a2 = [t for w, t in watches.items() if w.namespace == "a"]
    assert a1.data[0] is a2.data[0]  # the same bytes object: framed once


def test_offer_still_schedules_its_own_flush() -> None:
    store = Store()
    w = store.subscribe("configmaps")
    w.offer(Event("ADDED", store.put("x", {"metadata": {"name": "n"}}), None, 2))
    assert len(w.pending) == 1 and w.pending.nbytes > 0


def _names(t: _Transport) -> list[str]:
    lines = b"".join(t.data).split(b"\r\n")[1::2]
    return [json.loads(x)["object"]["metadata"]["name"] for x in b"".join(lines).splitlines()]


def _direct(store: Store, ns: str = "") -> tuple[Any, _Transport]:
    w = store.subscribe("configmaps")
    w.namespace = ns
    t = _Transport()
    w.set_sink(direct_sink(w, t))
    return w, t


async def test_a_watch_that_joins_between_flushes_gets_every_event_once() -> None:
    store = Store()
    first, t1 = _direct(store)
    store.put("configmaps", {"metadata": {"name": "before", "namespace": "a"}})
    # Subscribes, then joins while the group still holds "before" and "between" for the first
    # watch: it was handed "between" on its own (queued, then drained by set_sink), so the
    # group's flush must skip what it held before the join.
    late = store.subscribe("configmaps")
    store.put("configmaps", {"metadata": {"name": "between", "namespace": "a"}})
    t2 = _Transport()
    late.set_sink(direct_sink(late, t2))
    assert late.group is first.group is not None
    store.put("configmaps", {"metadata": {"name": "after", "namespace": "a"}})
    await asyncio.sleep(store_mod.FLUSH_DELAY * 5)
    assert _names(t1) == ["before", "between", "after"]
    assert _names(t2) == ["between", "after"]
    store.put("configmaps", {"metadata": {"name": "next", "namespace": "a"}})
    await asyncio.sleep(store_mod.FLUSH_DELAY * 5)
    assert t1.data[-1] is t2.data[-1]  # back to one framed copy for both


async def test_a_group_that_falls_behind_closes_every_member_and_nothing_else() -> None:
    store = Store(watch_queue_limit=3)
    members = [_direct(store)[0] for _ in range(3)]
    other, _ = _direct(store, "b")
    for i in range(4):  # the fourth finds three queued: the whole group is closed
        store.put("configmaps", {"metadata": {"name": f"o{i}", "namespace": "a"}})
    assert all(w.closed and w.overflowed for w in members)
    assert not other.closed
    await asyncio.sleep(store_mod.FLUSH_DELAY * 5)


def test_watches_leave_their_group_and_the_count_follows() -> None:
    store = Store()
    a, _ = _direct(store)
    b, _ = _direct(store)
    n, _ = _direct(store, "n")
    filtered = store.subscribe("configmaps")
    filtered.accept = lambda ev: ev.type
    filtered.set_sink(direct_sink(filtered, _Transport()))
    t = store.table("configmaps")
    assert set(t.groups) == {"", "n"} and filtered.group is None  # a filter stays per watch
    assert store.watcher_count() == 4
    store.unsubscribe("configmaps", a)
    store.unsubscribe("configmaps", n)
    assert set(t.groups) == {""} and a.group is None and store.watcher_count() == 2
    store.unsubscribe("configmaps", b)
    store.unsubscribe("configmaps", filtered)
    assert not t.groups and store.watcher_count() == 0


def test_new_uids_are_random_version_4_uuids() -> None:
    import uuid

    from metallb_py.apiserver import objects

    uids = {objects.new_uid() for _ in range(2000)}
    assert len(uids) == 2000
    for u in list(uids)[:200]:
        parsed = uuid.UUID(u)
        assert str(parsed) == u and parsed.version == 4 and parsed.variant == uuid.RFC_4122


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-32"])
def test_decode_json_reads_what_json_loads_reads(encoding: str) -> None:
    text = '{"a":[1,2.5,"\u00e9"],"b":{"c":null}}'
    body = text.encode(encoding)
    assert limits.decode_json(body) == json.loads(body)


async def test_decode_json_in_threads_and_the_loop_at_once() -> None:
    bodies = [json.dumps({"n": i, "v": list(range(i % 50))}).encode() for i in range(400)]
    results = await asyncio.gather(
        *(asyncio.to_thread(limits.decode_json, b) for b in bodies),
        *(asyncio.to_thread(lambda: [limits.decode_json(b) for b in bodies]) for _ in range(2)),
    )
    assert results[:400] == [json.loads(b) for b in bodies]
    assert all(r == [json.loads(b) for b in bodies] for r in results[400:])


def test_stored_bytes_are_json_dumps_bytes_and_a_cycle_is_an_error_not_a_hang() -> None:
    from metallb_py.apiserver.store import dumps

    obj: dict[str, Any] = {"a": ["é", 1, 2.5, None, True, {"b": {}}], "c": "\u2028"}
    assert dumps(obj) == json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    obj["self"] = obj
    with pytest.raises(RecursionError):
        dumps(obj)
