"""Watch streams, one job per piece: which store events a watch sees (`event_type`), how an event
and a bookmark are encoded (`Encoder`), how bytes are framed for the socket (`chunk`), and the
loop that feeds a client until its timeout (`pump`).

Events of a watch that needs neither conversion nor a Table go from the store's flush straight
to the socket (`direct_sink`), already framed as chunks of the response's chunked encoding, so a
change reaches thousands of watchers without waking their tasks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from metallb_py.apiserver import table
from metallb_py.apiserver.resources import Resource
from metallb_py.apiserver.store import Entry, Event, Sink, Watcher, dumps, flush_cache
from metallb_py.objects import JSON

# A client whose connection holds this much unsent data does not keep up: its watch is ended.
WATCH_BUFFER_LIMIT = 64 * 1024 * 1024
# Events encoded per write when the handler drains the queue itself.
BATCH = 512

Match = Callable[[JSON], bool]
Convert = Callable[[Resource, list[JSON]], Awaitable[list[JSON]]]


def event_type(match: Match, ev: Event) -> str | None:
    """What a store event is to a filtered watch: an update that moves an object into the
    selection is ADDED to it, one that moves it out is DELETED; None if it never saw it."""
    now_match = match(ev.entry.obj)
    if ev.type in ("ADDED", "DELETED"):
        return ev.type if now_match else None
    was = ev.old is not None and match(ev.old.obj)
    if now_match and was:
        return "MODIFIED"
    if now_match:
        return "ADDED"
    return "DELETED" if was else None


def raw_event(kind: str, raw: bytes) -> bytes:
    """One watch event line around an object already serialized in its served form."""
    return b'{"type":"' + kind.encode() + b'","object":' + raw + b"}\n"


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of HTTP/1.1 chunked transfer coding (hex length, CRLF, data, CRLF)."""
    return b"%x\r\n" % len(data) + data + b"\r\n"


def bookmark(res: Resource, rv: int, initial_end: bool = False) -> bytes:
    """A BOOKMARK event at `rv`; `initial_end` marks the end of sendInitialEvents."""
    meta: JSON = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    obj = {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta}
    return dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


@dataclass
class Encoder:
    """Encodes one watch's events: stored bytes as they are, converted objects, or Table rows
    (the column definitions in the first row only, as the real server sends them)."""

    res: Resource
    convert: Convert | None  # None: the stored form is the served form
    columns: list[table.Column] | None  # not None: the client asked for a Table
    include: str = "Metadata"  # includeObject of Table rows
    first: bool = True

    async def encode(self, kind: str, entry: Entry) -> bytes:
        if self.columns is not None:
            obj = await self._served(entry)
            meta = {"resourceVersion": str(entry.rv)}
            tbl = table.table([obj], self.columns, self.include, meta)
            if not self.first:
                tbl["columnDefinitions"] = []
            self.first = False
            return dumps({"type": kind, "object": tbl}) + b"\n"
        if self.convert is None:
            return raw_event(kind, entry.raw)
        return dumps({"type": kind, "object": await self._served(entry)}) + b"\n"

    async def _served(self, entry: Entry) -> JSON:
        return entry.obj if self.convert is None else (await self.convert(self.res, [entry.obj]))[0]


def frame(events: list[Event]) -> bytes:
    """Store events as one chunk of watch lines, in their stored (served) form."""
    return chunk(b"".join([raw_event(ev.type, ev.entry.raw) for ev in events]))


class DirectSink:
    """Writes the store's events for `w` straight to the connection, ending the watch when the
    client is gone or has fallen `WATCH_BUFFER_LIMIT` bytes behind. The store frames a batch
    once for every watch that sees the same events: through its group (`send`) for a watch of a
    whole namespace, through `flush_cache` for filtered watches handed the same events."""

    __slots__ = ("transport", "w")

    def __init__(self, w: Watcher, transport: Any) -> None:
        self.w = w
        self.transport = transport

    frame = staticmethod(frame)

    def __call__(self, events: list[Event]) -> None:
        key = tuple(map(id, events))
        hit = flush_cache.get(key)
        if hit is None:
            data = frame(events)
            flush_cache[key] = (events, data)
        else:
            data = hit[1]
        self.send(data)

    def send(self, data: bytes) -> None:
        transport = self.transport
        if transport.is_closing():
            self.w.close()
            return
        if transport.get_write_buffer_size() > WATCH_BUFFER_LIMIT:
            self.w.overflowed = True  # the client does not keep up: end its watch
            self.w.close()
            return
        transport.write(data)


def direct_sink(w: Watcher, transport: Any) -> Sink:
    """The sink for a watch that needs neither conversion nor a Table."""
    return DirectSink(w, transport)


async def pump(
    resp: web.StreamResponse,
    w: Watcher,
    encoder: Encoder,
    *,
    until: float,
    bookmark_every: float | None,
    current_rv: Callable[[], int],
) -> None:
    """Send what `w` queues until the watch closes or the monotonic clock reaches `until` (the
    watch's timeoutSeconds); with `bookmark_every`, a bookmark at the current resourceVersion
    after that long without an event."""
    tables = encoder.columns is not None
    last_sent = time.monotonic()
    while not w.closed:
        remaining = until - time.monotonic()
        if remaining <= 0:
            break
        wait = min(remaining, bookmark_every) if bookmark_every is not None else remaining
        w.wakeup.clear()
        if not w.pending:
            try:
                await asyncio.wait_for(w.wakeup.wait(), wait)
            except TimeoutError:
                if bookmark_every is not None and not w.pending and not tables:
                    await resp.write(bookmark(encoder.res, current_rv()))
                    last_sent = time.monotonic()
                continue
        if w.overflowed:
            break
        batch: list[bytes] = []
        while w.pending and len(batch) < BATCH:
            ev = w.pending.popleft()
            batch.append(await encoder.encode(ev.type, ev.entry))
        if batch:
            await resp.write(b"".join(batch))
            last_sent = time.monotonic()
        if (
            bookmark_every is not None
            and not w.pending
            and time.monotonic() - last_sent > bookmark_every
        ):
            await resp.write(bookmark(encoder.res, current_rv()))
            last_sent = time.monotonic()
