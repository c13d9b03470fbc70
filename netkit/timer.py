"""The one event-loop timer a protocol shell keeps at its core's `get_timer()` deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class CoreTimer:
    """Follows a sans-I/O core's next deadline; re-armed only when the deadline changes.

    Shells call `arm(core.get_timer())` after every call into the core; the callback runs at the
    deadline (the loop's clock) and normally calls `core.handle_timer(now)` and pumps the outputs.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None

    @property
    def deadline(self) -> float | None:
        return None if self._handle is None else self._handle.when()

    def arm(self, deadline: float | None) -> None:
        if self._handle is not None:
            if deadline is not None and self._handle.when() == deadline:
                return
            self._handle.cancel()
            self._handle = None
        if deadline is not None:
            self._handle = self._loop.call_at(deadline, self._fire)

    def cancel(self) -> None:
        self.arm(None)

    def _fire(self) -> None:
        self._handle = None
        self._callback()
