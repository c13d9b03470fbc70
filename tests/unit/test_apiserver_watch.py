"""The pure pieces of a watch stream: event selection, framing, bookmarks and encoding."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from metallb_py.apiserver import watch
from metallb_py.apiserver.resources import Resource
from metallb_py.apiserver.store import Entry, Event, dumps
from metallb_py.objects import JSON

POOLS = Resource("metallb.io", "v1beta1", "ipaddresspools", "IPAddressPool", True)


def entry(labels: dict[str, str], rv: int) -> Entry:
    obj: JSON = {"metadata": {"name": "p", "labels": labels, "resourceVersion": str(rv)}}
    return Entry(obj, dumps(obj), rv)


def blue(o: JSON) -> bool:
    return bool(o["metadata"]["labels"].get("color") == "blue")


@pytest.mark.parametrize(
    ("kind", "old", "new", "seen"),
    [
        ("ADDED", None, {"color": "blue"}, "ADDED"),
        ("ADDED", None, {"color": "red"}, None),
        ("DELETED", None, {"color": "blue"}, "DELETED"),
        ("MODIFIED", {"color": "blue"}, {"color": "blue"}, "MODIFIED"),
        ("MODIFIED", {"color": "red"}, {"color": "blue"}, "ADDED"),  # moved into the selection
        ("MODIFIED", {"color": "blue"}, {"color": "red"}, "DELETED"),  # moved out of it
        ("MODIFIED", {"color": "red"}, {"color": "red"}, None),
    ],
)
def test_a_filtered_watch_sees_moves_across_its_selector_as_added_and_deleted(
    kind: str, old: dict[str, str] | None, new: dict[str, str], seen: str | None
) -> None:
    ev = Event(kind, entry(new, 2), entry(old, 1) if old is not None else None, 2)
    assert watch.event_type(blue, ev) == seen


def test_chunk_frames_data_as_http_chunked_coding() -> None:
    assert watch.chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"


def test_bookmark_carries_the_version_and_marks_the_end_of_initial_events() -> None:
    plain = json.loads(watch.bookmark(POOLS, 7))
    assert plain == {
        "type": "BOOKMARK",
        "object": {
            "kind": "IPAddressPool",
            "apiVersion": "metallb.io/v1beta1",
            "metadata": {"resourceVersion": "7"},
        },
    }
    end = json.loads(watch.bookmark(POOLS, 7, initial_end=True))
    assert end["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_encoder_sends_stored_bytes_or_converted_objects() -> None:
    e = entry({"color": "blue"}, 3)
    stored = watch.Encoder(POOLS, None, None)
    line = asyncio.run(stored.encode("ADDED", e))
    assert line == watch.raw_event("ADDED", e.raw) and json.loads(line)["object"] == e.obj

    async def convert(res: Resource, objs: list[JSON]) -> list[JSON]:
        return [{**o, "apiVersion": f"{res.group}/{res.version}"} for o in objs]

    converted = watch.Encoder(POOLS, convert, None)
    obj: Any = json.loads(asyncio.run(converted.encode("MODIFIED", e)))
    assert obj["type"] == "MODIFIED" and obj["object"]["apiVersion"] == "metallb.io/v1beta1"


def test_table_rows_define_their_columns_once() -> None:
    cols = [("Name", "string", "name", 0, lambda o: o["metadata"]["name"])]
    enc = watch.Encoder(POOLS, None, cols)
    first, second = (
        json.loads(asyncio.run(enc.encode("ADDED", entry({}, rv))))["object"] for rv in (1, 2)
    )
    assert first["columnDefinitions"] and second["columnDefinitions"] == []
    assert second["rows"][0]["cells"] == ["p"]
