"""`metallb-py webhook`: validating admission webhooks and the BGPPeer conversion webhook."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from pathlib import Path
from typing import Any

from aiohttp import web

from metallb_py.cli import RunContext, UsageError
from metallb_py.config.durations import DurationError, parse_duration
from metallb_py.kube.client import ClientConfigError, connect
from metallb_py.log import get_logger
from webhooks import kubeio
from webhooks.certmanager import CertManager, service_names
from webhooks.paths import CONVERTED_CRDS
from webhooks.server import WebhookApp
from webhooks.tlsfiles import ServingTLS, watch_cert_files


def _lifetime(text: str) -> dt.timedelta:
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        raise UsageError(f"metallb-py webhook: --cert-lifetime: {exc}") from None
    if seconds < 2:
        raise UsageError("metallb-py webhook: --cert-lifetime must be at least 2s")
    return dt.timedelta(seconds=seconds)


async def run(ctx: RunContext) -> int:
    args = ctx.args
    log = get_logger("webhook")
    lifetime = _lifetime(args.cert_lifetime)
    namespace = args.namespace
    ctx.readiness.require("certificate", "no serving certificate yet")
    ctx.readiness.require("server", "not listening yet")
    try:
        rest = await connect(args.kubeconfig)
    except ClientConfigError as exc:
        raise UsageError(f"metallb-py webhook: {exc}") from None
    tls = ServingTLS()
    tasks: list[asyncio.Task[None]] = []
    runner: web.AppRunner | None = None
    try:
        if args.cert_dir:
            cert, key = Path(args.cert_dir) / "tls.crt", Path(args.cert_dir) / "tls.key"
            try:
                tls.load_files(cert, key)
            except (OSError, ValueError) as exc:
                raise UsageError(f"metallb-py webhook: cannot load {cert} / {key}: {exc}") from None
            tasks.append(asyncio.create_task(watch_cert_files(tls, cert, key, ctx.stop, log)))
        else:
            names = service_names(args.service_name, namespace, list(args.cert_host or []))
            manager = CertManager(
                rest,
                namespace,
                args.webhook_secret,
                names,
                lifetime,
                tls,
                args.webhook_configuration,
                CONVERTED_CRDS,
                log,
            )
            if not await manager.first_sync(ctx.stop):
                return 0
            tasks.append(asyncio.create_task(manager.run(ctx.stop)))
        ctx.readiness.satisfy("certificate")

        async def load_current(services: bool) -> list[dict[str, Any]]:
            return await kubeio.list_current(rest, namespace, services)

        app = WebhookApp(namespace, load_current, log).app()
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, args.bind_address or None, args.port, ssl_context=tls.context)
        try:
            await site.start()
        except OSError as exc:
            raise UsageError(
                f"metallb-py webhook: cannot listen on port {args.port}: {exc.strerror}"
            ) from None
        ctx.readiness.satisfy("server")
        log.info("webhookServing", port=args.port, namespace=namespace)
        await ctx.stop.wait()
        return 0
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if runner is not None:
            await runner.cleanup()
        await rest.close()
        tls.close()
