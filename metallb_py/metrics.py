"""Prometheus registry and the HTTP endpoint every component serves.

`/metrics` is MetalLB-compatible (same names and labels), `/healthz` says the event loop answers,
`/readyz` says the component has done what it needs before it is useful (informers synced,
configuration loaded) — the component flips it, not this module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric

# The default registry already carries process_* and python_* collectors, which is what an
# operator expects to see on any component.
registry: CollectorRegistry = REGISTRY


class SnapshotCollector:
    """A collector that reads one snapshot of a component's state per scrape.

    The component hands over a function returning a plain dict (taken under no lock, in the event
    loop's thread); `families` turns it into metric families. `describe` is empty so registering
    the collector never calls the snapshot before the component runs.
    """

    def __init__(self, source: Callable[[], dict[str, Any]]) -> None:
        self.source = source

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        return self.families(self.source())

    def families(self, snap: dict[str, Any]) -> Iterator[Metric]:
        raise NotImplementedError


@dataclass
class Readiness:
    """Named conditions that must all hold for `/readyz` to answer 200."""

    _pending: dict[str, str] = field(default_factory=dict)
    _started: float = field(default_factory=time.monotonic)

    def require(self, name: str, why: str = "") -> None:
        self._pending[name] = why or name

    def satisfy(self, name: str) -> None:
        self._pending.pop(name, None)

    @property
    def ready(self) -> bool:
        return not self._pending

    def reasons(self) -> list[str]:
        return sorted(self._pending.values())


def make_app(readiness: Readiness, reg: CollectorRegistry | None = None) -> web.Application:
    reg = reg if reg is not None else registry

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(reg)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if readiness.ready:
            return web.Response(text="ok\n")
        return web.Response(status=503, text="not ready: " + "; ".join(readiness.reasons()) + "\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class MetricsServer:
    """The aiohttp runner for a component's metrics port; port 0 disables it, as in MetalLB."""

    def __init__(self, host: str, port: int, readiness: Readiness) -> None:
        self.host = host
        self.port = port
        self.readiness = readiness
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        if self.port == 0:
            return
        self._runner = web.AppRunner(make_app(self.readiness), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host or None, self.port, reuse_address=True)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.shield(self.stop())
