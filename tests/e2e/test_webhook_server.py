"""The admission server over real HTTPS (aiohttp client, fresh TLS handshakes): AdmissionReview
and ConversionReview round trips, bad bodies, and certificate rotation while requests flow."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from metallb_py.log import get_logger
from tests.lab.config_objects import peer, pool
from tests.lab.webhook_reviews import admission_review, conversion_review
from webhooks import certs
from webhooks.server import WebhookApp
from webhooks.tlsfiles import ServingTLS

NAMES = ["metallb-webhook-service.metallb-system.svc", "127.0.0.1"]
POOL_PATH = "/validate-metallb-io-v1beta1-ipaddresspool"


class Harness:
    def __init__(self) -> None:
        self.tls = ServingTLS()
        self.bundle, _ = certs.ensure(None, NAMES, dt.timedelta(hours=1))
        self.tls.load_pem(self.bundle.cert, self.bundle.key)
        self.current: list[dict[str, Any]] = [
            pool("prod", "192.0.2.0/24", creationTimestamp="2024-01-01T00:00:00Z")
        ]
        self.port = 0
        self.fail_listing = False

    async def load(self, services: bool) -> list[dict[str, Any]]:
        if self.fail_listing:
            raise RuntimeError("API server unreachable")
        return list(self.current)

    def client_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.bundle.ca_bundle.decode())

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    app = WebhookApp("metallb-system", h.load, get_logger("webhook-test")).app()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=h.tls.context)
    await site.start()
    server = site._server
    assert server is not None
    h.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    yield h
    await runner.cleanup()
    h.tls.close()


async def post(session: aiohttp.ClientSession, h: Harness, path: str, body: Any) -> dict[str, Any]:
    async with session.post(h.url(path), json=body, ssl=h.client_ssl()) as resp:
        assert resp.status == 200
        data: dict[str, Any] = await resp.json()
        return data


async def test_admission_over_https(harness: Harness) -> None:
    async with aiohttp.ClientSession() as s:
        good = await post(
            s, harness, POOL_PATH, admission_review("CREATE", pool("new", "198.51.100.0/24"))
        )
        assert good["response"]["allowed"] is True
        bad = await post(
            s, harness, POOL_PATH, admission_review("CREATE", pool("new", "192.0.2.0/25"))
        )
        assert (
            bad["response"]["allowed"] is False
            and "rule pool-overlap" in bad["response"]["status"]["message"]
        )
        conv = await post(
            s,
            harness,
            "/convert",
            conversion_review("metallb.io/v1beta2", peer("p", version="v1beta1")),
        )
        assert conv["response"]["convertedObjects"][0]["spec"]["holdTime"] == "1m30s"
        async with s.post(
            harness.url(POOL_PATH), data=b"{not json", ssl=harness.client_ssl()
        ) as resp:
            body = await resp.json()
            assert (
                body["response"]["allowed"] is False and body["response"]["status"]["code"] == 400
            )
        ok = REGISTRY.get_sample_value(
            "metallb_webhook_requests_total", {"path": POOL_PATH, "outcome": "denied"}
        )
        assert ok is not None and ok >= 1
        harness.fail_listing = True
        err = await post(
            s, harness, POOL_PATH, admission_review("CREATE", pool("x", "203.0.113.0/24"))
        )
        assert (
            err["response"]["allowed"] is False
            and "API server unreachable" in err["response"]["status"]["message"]
        )


async def test_untrusted_clients_are_refused(harness: Harness) -> None:
    other, _ = certs.ensure(None, NAMES, dt.timedelta(hours=1))
    ctx = ssl.create_default_context(cadata=other.ca_bundle.decode())
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await s.post(harness.url(POOL_PATH), json={}, ssl=ctx)


async def test_rotation_while_requests_flow_fails_none(harness: Harness) -> None:
    """Serving certificates are replaced every few milliseconds while 40 clients hammer the
    server, each request on a new TLS connection; every request must succeed."""
    served: set[bytes] = set()
    stop = asyncio.Event()

    async def rotate() -> None:
        b = harness.bundle
        while not stop.is_set():
            cert, key = certs.issue(b.ca_cert, b.ca_key, NAMES, dt.timedelta(hours=1))
            harness.tls.load_pem(cert, key)
            served.add(cert)
            await asyncio.sleep(0.005)

    results: list[bool] = []

    async def client() -> None:
        conn = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=conn) as s:
            for i in range(10):
                body = await post(
                    s,
                    harness,
                    POOL_PATH,
                    admission_review("CREATE", pool(f"p{i}", "203.0.113.0/24")),
                )
                results.append(body["response"]["allowed"])

    rotator = asyncio.create_task(rotate())
    await asyncio.gather(*(client() for _ in range(10)))
    stop.set()
    await rotator
    assert len(results) == 100 and all(results)
    assert len(served) > 5
