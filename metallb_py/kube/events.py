"""Kubernetes Events, recorded the way client-go does it.

* Repeats of the same event (same object, type, reason and message) within the aggregation
  window update one Event's `count` and `lastTimestamp` instead of creating new objects.
* More than `similar_limit` events with the same object/type/reason but different messages in
  the window are folded into one "(combined from similar events): ..." Event.
* A token bucket per (source, object) — burst 25, one token per 5 minutes — drops event spam.

`EventCorrelator` decides (pure, clock passed in); `EventRecorder` sends in the background so a
slow API server never blocks reconciling, and drops (and counts) events beyond a bounded backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from metallb_py.kube.rest import EVENTS, ApiError, Rest
from metallb_py.log import get_logger
from metallb_py.objects import JSON, rfc3339

log = get_logger("kube")

NORMAL = "Normal"
WARNING = "Warning"


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class _Seen:
    name: str
    count: int
    first: float
    last: float


@dataclass(frozen=True)
class EventAction:
    """`create` a new Event, `patch` an existing one (name, count), or `drop` it."""

    kind: str
    event: JSON
    name: str = ""
    count: int = 1


@dataclass
class EventCorrelator:
    component: str
    window: float = 600.0
    similar_limit: int = 10
    burst: int = 25
    refill_per_second: float = 1 / 300
    max_tracked: int = 4096
    _buckets: dict[tuple[str, ...], _Bucket] = field(default_factory=dict)
    _seen: dict[tuple[str, ...], _Seen] = field(default_factory=dict)
    _similar: dict[tuple[str, ...], list[float]] = field(default_factory=dict)
    dropped: int = 0

    def correlate(
        self, obj: JSON, event_type: str, reason: str, message: str, now: float
    ) -> EventAction:
        meta = obj.get("metadata") or {}
        involved = {
            "apiVersion": obj.get("apiVersion", "v1"),
            "kind": obj.get("kind", ""),
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace", ""),
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        object_id = (involved["kind"], involved["namespace"], involved["name"], involved["uid"])
        if not self._take_token(object_id, now):
            self.dropped += 1
            return EventAction("drop", {})

        similar_key = (*object_id, event_type, reason)
        stamps = [t for t in self._similar.get(similar_key, []) if now - t < self.window]
        stamps.append(now)
        self._similar[similar_key] = stamps
        if len(stamps) > self.similar_limit:
            message = f"(combined from similar events): {message}"
            exact_key = (*similar_key, "(combined)")
        else:
            exact_key = (*similar_key, message)

        seen = self._seen.get(exact_key)
        if seen is not None and now - seen.last < self.window:
            seen.count += 1
            seen.last = now
            body = {"count": seen.count, "lastTimestamp": rfc3339(now), "message": message}
            return EventAction("patch", body, name=seen.name, count=seen.count)

        name = f"{involved['name']}.{int(now * 1e9):x}"
        self._seen[exact_key] = _Seen(name, 1, now, now)
        self._trim(now)
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": involved["namespace"] or "default"},
            "involvedObject": involved,
            "type": event_type,
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": rfc3339(now),
            "lastTimestamp": rfc3339(now),
            "source": {"component": self.component},
            "reportingComponent": self.component,
        }
        return EventAction("create", event, name=name)

    def forget(self, name: str) -> None:
        """The Event object is gone (expired): the next repeat creates a new one."""
        for key, seen in list(self._seen.items()):
            if seen.name == name:
                del self._seen[key]

    def _take_token(self, object_id: tuple[str, ...], now: float) -> bool:
        bucket = self._buckets.get(object_id)
        if bucket is None:
            bucket = self._buckets[object_id] = _Bucket(float(self.burst), now)
        bucket.tokens = min(
            float(self.burst), bucket.tokens + (now - bucket.stamp) * self.refill_per_second
        )
        bucket.stamp = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _trim(self, now: float) -> None:
        if len(self._seen) <= self.max_tracked:
            return
        for key, seen in list(self._seen.items()):
            if now - seen.last >= self.window:
                del self._seen[key]
        for skey, stamps in list(self._similar.items()):
            if not stamps or now - stamps[-1] >= self.window:
                del self._similar[skey]
        if len(self._buckets) > self.max_tracked:
            self._buckets.clear()


class EventRecorder:
    def __init__(
        self,
        rest: Rest,
        component: str,
        *,
        backlog: int = 2000,
        can_write: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rest = rest
        self.correlator = EventCorrelator(component)
        self.can_write = can_write
        self.clock = clock
        self._queue: asyncio.Queue[tuple[JSON, str, str, str]] = asyncio.Queue(backlog)
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0
        self.overflowed = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self, drain_timeout: float = 2.0) -> None:
        if self._task is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain_timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def normal(self, obj: JSON, reason: str, message: str) -> None:
        self.record(obj, NORMAL, reason, message)

    def warning(self, obj: JSON, reason: str, message: str) -> None:
        self.record(obj, WARNING, reason, message)

    def record(self, obj: JSON, event_type: str, reason: str, message: str) -> None:
        try:
            self._queue.put_nowait((obj, event_type, reason, message))
        except asyncio.QueueFull:
            self.overflowed += 1

    async def flush(self) -> None:
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            obj, event_type, reason, message = await self._queue.get()
            try:
                if self.can_write():
                    await self._send(obj, event_type, reason, message)
            except Exception as exc:  # events are best effort; never take the caller down
                self.failed += 1
                log.debug("eventNotRecorded", reason=reason, error=str(exc))
            finally:
                self._queue.task_done()

    async def _send(self, obj: JSON, event_type: str, reason: str, message: str) -> None:
        action = self.correlator.correlate(obj, event_type, reason, message, self.clock())
        if action.kind == "drop":
            return
        namespace = (obj.get("metadata") or {}).get("namespace") or "default"
        if action.kind == "patch":
            try:
                await self.rest.patch(EVENTS.path(namespace, action.name), action.event)
                self.sent += 1
                return
            except ApiError as exc:
                if not exc.not_found:
                    raise
                self.correlator.forget(action.name)
                action = self.correlator.correlate(obj, event_type, reason, message, self.clock())
                if action.kind != "create":
                    return
        await self.rest.create(EVENTS.path(namespace), action.event)
        self.sent += 1
