"""The speaker settles the collector (collect once, freeze the survivors) only when idle and
only after its caches grew by GC_GROWTH (at least GC_MIN_GROWTH objects)."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from metallb_py.speaker import reconciler as rc


def _fill(speaker: rc.SpeakerReconciler, start: int, count: int) -> None:
    for i in range(start, start + count):
        speaker.services.cache.upsert(
            {"metadata": {"name": f"s{i}", "namespace": "default", "resourceVersion": "1"}}
        )


def test_collector_settles_when_idle_after_growth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rc, "GC_CHECK_S", 0.01)
    monkeypatch.setattr(rc, "GC_IDLE_S", 0.05)

    async def main() -> None:
        speaker = rc.SpeakerReconciler(None, "metallb-system", "node1")  # type: ignore[arg-type]
        speaker.ready.set()
        stop = asyncio.Event()
        task = asyncio.create_task(speaker._gc_loop(stop))
        try:
            await asyncio.sleep(0.05)
            _fill(speaker, 0, rc.GC_MIN_GROWTH - 1)  # not enough growth
            await asyncio.sleep(0.1)
            assert speaker.gc_settles == 0
            _fill(speaker, rc.GC_MIN_GROWTH, 10)
            speaker.dirty.set()  # a pass pending: not idle
            await asyncio.sleep(0.1)
            assert speaker.gc_settles == 0
            speaker.dirty.clear()
            speaker._last_pass_end = time.monotonic()  # a pass just ran: not idle yet
            await asyncio.sleep(0.02)
            assert speaker.gc_settles == 0
            await asyncio.sleep(0.15)
            assert speaker.gc_settles == 1
            assert gc.get_freeze_count() > 0
            # Growth is measured from the settled size: 25 % more is needed for the next one.
            _fill(speaker, 5000, rc.GC_MIN_GROWTH - 100)
            await asyncio.sleep(0.15)
            assert speaker.gc_settles == 1
        finally:
            stop.set()
            await task
            gc.unfreeze()

    asyncio.run(main())
