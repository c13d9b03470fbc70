"""Apply the desired layer-2 state to the `l2` announcer.

The announcer is started once the configuration has a layer-2 advertisement (`warm`), before this
node owns anything: its first start costs ~0.1-0.3 s (sockets, BPF filters, interface scan), which
would otherwise be added to this node's first takeover. A BGP-only node never opens raw sockets.
`Announcer.set_announcements` is idempotent and sends the takeover burst only for (interface,
address) pairs that were not announced before — becoming the announcer — never on a repeated
reconcile.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterable, Mapping

from l2.announcer import Announcer
from l2.responder import IPAddress
from metallb_py.log import get_logger

log = get_logger("speaker")
RETRY_SECONDS = 10.0  # a failed start (no CAP_NET_RAW) is retried this often, logged once


def local_interfaces() -> frozenset[str]:
    return frozenset(name for _, name in socket.if_nameindex())


class L2Shell:
    def __init__(self, retry: Callable[[], None] | None = None) -> None:
        self.retry = retry  # asks for another pass once a failed start may be retried
        self.announcer: Announcer | None = None
        self.applied: dict[str, frozenset[str] | None] = {}
        self.failed = ""
        self._retry_at = 0.0

    async def apply(self, wanted: Mapping[str, frozenset[str] | None], warm: bool = False) -> None:
        """Announce exactly `wanted`; `warm`: layer 2 is configured, have the announcer ready."""
        if dict(wanted) == self.applied and (self.announcer is not None or not warm):
            return
        if self.announcer is None:
            if not (wanted or warm) or time.monotonic() < self._retry_at:
                return
            announcer = Announcer()
            try:
                await announcer.start()
            except (OSError, RuntimeError) as exc:
                if str(exc) != self.failed:
                    log.error("layer2Unavailable", error=str(exc))
                self.failed = str(exc)
                self._retry_at = time.monotonic() + RETRY_SECONDS
                if self.retry is not None:
                    asyncio.get_running_loop().call_later(RETRY_SECONDS, self.retry)
                await announcer.close()
                return
            self.announcer = announcer
        request: dict[str | IPAddress, Iterable[str] | None] = dict(wanted.items())
        self.announcer.set_announcements(request)
        if self.announcer.fatal is not None:
            self.failed = str(self.announcer.fatal)
        self.applied = dict(wanted)

    def counters(self) -> dict[str, dict[str, int]]:
        if self.announcer is None:
            return {}
        c = self.announcer.counters
        return {
            "requests_received": dict(c.requests_received),
            "responses_sent": dict(c.responses_sent),
            "gratuitous_sent": dict(c.gratuitous_sent),
        }

    async def close(self) -> None:
        """Stop answering ARP/NDP at once."""
        if self.announcer is not None:
            await self.announcer.close()
            self.announcer = None
