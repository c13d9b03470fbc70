"""The HTTPS endpoints: one admission path per resource, /convert, and /healthz."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from webhooks import admission, metrics
from webhooks.conversion import convert_review
from webhooks.paths import BY_PATH, CONVERT_PATH, Hook

Loader = Callable[[bool], Awaitable[list[dict[str, Any]]]]


class WebhookApp:
    def __init__(self, namespace: str, load_current: Loader, log: Any) -> None:
        self.namespace = namespace
        self.load_current = load_current
        self.log = log
        self.counts: dict[tuple[str, str], int] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        for path in BY_PATH:
            app.router.add_post(path, self._admission)
        app.router.add_post(CONVERT_PATH, self._convert)
        app.router.add_get("/healthz", self._healthz)
        return app

    def _count(self, path: str, outcome: str) -> None:
        key = (path, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1
        metrics.requests_total.labels(path=path, outcome=outcome).inc()

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _admission(self, request: web.Request) -> web.Response:
        hook: Hook = BY_PATH[request.path]
        try:
            body = json.loads(await request.read())
        except (ValueError, RecursionError) as exc:
            self._count(request.path, "error")
            why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
            return web.json_response(
                admission.bad_request(None, f"request body is not JSON: {why}")
            )
        req = body.get("request") if isinstance(body, dict) else None
        operation = req.get("operation") if isinstance(req, dict) else None
        want_services = operation == "DELETE" and hook.kind in admission.POOL_KINDS
        try:
            current = await self.load_current(want_services)
        except Exception as exc:
            self._count(request.path, "error")
            self.log.error("webhookListFailed", path=request.path, error=str(exc))
            uid = str(req.get("uid") or "") if isinstance(req, dict) else ""
            return web.json_response(
                admission.response(
                    uid, False, f"cannot read the current configuration: {exc}", code=500
                )
            )
        result = await asyncio.to_thread(admission.review, hook, body, current, self.namespace)
        resp = result["response"]
        outcome = "allowed" if resp["allowed"] else "denied"
        self._count(request.path, outcome)
        self.log.info(
            "admissionReviewed",
            kind=hook.kind,
            operation=operation,
            name=(req or {}).get("name") if isinstance(req, dict) else None,
            allowed=resp["allowed"],
            message=(resp.get("status") or {}).get("message"),
            warnings=resp.get("warnings"),
        )
        return web.json_response(result)

    async def _convert(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (ValueError, RecursionError):
            return web.json_response(convert_review(None))
        result = convert_review(body)
        self._count(CONVERT_PATH, result["response"]["result"]["status"])
        return web.json_response(result)
