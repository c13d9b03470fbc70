"""Process-wide tuning, for the command lines that start a process (never for a library).

A library such as `bfd.engine` may share its process with other work (the speaker runs BGP, BFD,
layer 2 and informers in one event loop), so settings that affect the whole process — the garbage
collector, the scheduling class — belong to whoever starts that process.
"""

from __future__ import annotations

import gc
import os

BFD_GC_THRESHOLD = (5000, 50, 1000)  # young collections small and frequent, full ones rare


def freeze_startup_objects() -> None:
    """Collect once, then move everything allocated so far out of the collector's sight.

    What start-up builds (modules, caches, sessions) lives as long as the process; frozen, it is
    never scanned again, so later collections stay short and do not delay protocol timers.
    """
    gc.collect()
    gc.freeze()


def tune_gc(threshold: tuple[int, int, int] = BFD_GC_THRESHOLD) -> None:
    """Call once after start-up: freeze start-up objects, then collect at `threshold`."""
    freeze_startup_objects()
    gc.set_threshold(*threshold)


def set_realtime(priority: int) -> str | None:
    """Run this process under SCHED_FIFO at `priority` (1-99), as keepalived's bfd_rt_priority.

    On a CPU-starved node a normal process can wait hundreds of milliseconds for a core; a
    real-time one is scheduled first. Needs CAP_SYS_NICE. Returns an error text or None. The
    kernel's RT throttling (sched_rt_runtime_us) still leaves CPU time to everything else.
    """
    if not 1 <= priority <= 99:
        return "real-time priority must be in 1-99"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        return f"cannot set SCHED_FIFO {priority}: {exc}"
    return None
