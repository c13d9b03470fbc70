"""A de-duplicating work queue of object keys, as client-go's: a key queued many times is
processed once, never by two workers at once, and re-queued if it changed while being processed.
Workers read the latest object from the cache, which makes handling level-triggered."""

from __future__ import annotations

import asyncio
from collections import deque

from metallb_py.kube.backoff import Backoff


class WorkQueue:
    def __init__(self, retry_initial: float = 0.05, retry_max: float = 30.0) -> None:
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._waiters: asyncio.Event = asyncio.Event()
        self._retries: dict[str, Backoff] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self.closed = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self.closed or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._waiters.set()

    def add_after(self, key: str, delay: float) -> None:
        if self.closed:
            return
        if delay <= 0:
            self.add(key)
            return
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def retry(self, key: str) -> float:
        """Re-queue `key` after a per-key growing, jittered delay; returns the delay."""
        backoff = self._retries.setdefault(
            key, Backoff(initial=self._retry_initial, maximum=self._retry_max)
        )
        delay = backoff.next()
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """The key was handled successfully: reset its retry backoff."""
        self._retries.pop(key, None)

    async def get(self) -> str | None:
        """The next key to process (None once closed and drained)."""
        while not self._queue:
            if self.closed:
                return None
            self._waiters.clear()
            await self._waiters.wait()
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def get_nowait(self) -> str | None:
        if not self._queue:
            return None
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._waiters.set()

    def close(self) -> None:
        self.closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._waiters.set()
