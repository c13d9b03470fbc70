"""Apply the desired layer-2 state to the `l2` announcer.

The announcer is started on first use, so a BGP-only node never opens raw sockets.
`Announcer.set_announcements` is idempotent and sends the takeover burst only for (interface,
address) pairs that were not announced before — becoming the announcer — never on a repeated
reconcile.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Mapping

from l2.announcer import Announcer
from l2.responder import IPAddress

log = logging.getLogger("metallb_py.speaker.l2")


def local_interfaces() -> frozenset[str]:
    return frozenset(name for _, name in socket.if_nameindex())


class L2Shell:
    def __init__(self) -> None:
        self.announcer: Announcer | None = None
        self.applied: dict[str, frozenset[str] | None] = {}
        self.failed = ""

    async def apply(self, wanted: Mapping[str, frozenset[str] | None]) -> None:
        if dict(wanted) == self.applied:
            return
        if self.announcer is None:
            if not wanted:
                return
            announcer = Announcer()
            try:
                await announcer.start()
            except (OSError, RuntimeError) as exc:
                self.failed = str(exc)
                log.error("layer2Unavailable", extra={"error": self.failed})
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
