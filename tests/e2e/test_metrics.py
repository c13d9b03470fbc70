"""Every long-running component serves /metrics (with process metrics), /healthz and /readyz,
and stops serving when the component returns."""

from __future__ import annotations

import argparse
import asyncio
import socket

import aiohttp

from metallb_py.cli import RunContext, run_component


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_component_serves_metrics_health_and_readiness() -> None:
    port = free_port()
    seen: dict[str, object] = {}
    ready_now = asyncio.Event()
    done = asyncio.Event()

    async def component(ctx: RunContext) -> int:
        ctx.readiness.require("informers", "informers not synced")
        ready_now.set()
        await done.wait()
        return 0

    args = argparse.Namespace(metrics_port=port, metrics_host="127.0.0.1")
    task = asyncio.create_task(run_component(component, args, "test"))
    await ready_now.wait()
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(50):
            try:
                async with http.get(base + "/healthz") as r:
                    seen["healthz"] = r.status
                break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        async with http.get(base + "/metrics") as r:
            body = await r.text()
            assert r.status == 200
            assert "process_resident_memory_bytes" in body
        async with http.get(base + "/readyz") as r:
            assert r.status == 503
            assert "informers not synced" in await r.text()
    assert seen["healthz"] == 200
    done.set()
    assert await task == 0
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(base + "/healthz"):
                raise AssertionError("metrics server still serving after the component returned")
        except aiohttp.ClientConnectionError:
            pass


async def test_readiness_flips_when_satisfied() -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from metallb_py.metrics import Readiness, make_app

    readiness = Readiness()
    readiness.require("config", "configuration not loaded")
    async with TestClient(TestServer(make_app(readiness))) as client:
        assert (await client.get("/readyz")).status == 503
        readiness.satisfy("config")
        assert (await client.get("/readyz")).status == 200
