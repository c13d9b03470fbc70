"""`metallb-py speaker --node-name NODE`: announce service IPs from this node (BGP, ARP/NDP).

Ready (`/readyz`) once the informers are synced and the configuration has been loaded and applied
once. On SIGTERM: stop answering ARP/NDP, withdraw routes (or, where graceful restart was
negotiated, close sessions so the routers keep the routes for the restart time), and exit within
2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

from metallb_py.cli import RunContext, UsageError
from metallb_py.kube.client import ClientConfigError, connect
from metallb_py.membership.metrics import MembershipCollector
from metallb_py.membership.service import MembershipService
from metallb_py.membership.setup import MembershipSetupError, wait_for_keyring
from metallb_py.membership.setup import build as build_membership
from metallb_py.metrics import registry
from metallb_py.speaker.desired import Options
from metallb_py.speaker.metrics import SpeakerCollector
from metallb_py.speaker.reconciler import SpeakerReconciler, log
from netkit.process import freeze_startup_objects

POOL_SIZE = 48  # HTTP connections to the API server
SHUTDOWN_BUDGET = 1.6  # seconds; the process must be gone within 2 s of SIGTERM


async def run(ctx: RunContext) -> int:
    args = ctx.args
    gc.set_threshold(50_000, 20, 50)  # many long-lived cached objects: scan them less often
    try:
        # 14 informers hold a watch connection each; status writes and events need their own,
        # or a re-watch waits behind thousands of queued status writes.
        rest = await connect(args.kubeconfig, pool_size=POOL_SIZE)
    except ClientConfigError as exc:
        raise UsageError(f"metallb-py speaker: {exc}") from None
    membership: MembershipService | None = None
    if args.ml_bind_addr:
        try:
            membership = build_membership(args, rest)
        except MembershipSetupError as exc:
            with contextlib.suppress(Exception):
                await rest.close()
            raise UsageError(f"metallb-py speaker: {exc}") from None
    else:
        log.info(
            "membershipDisabled",
            msg="no --ml-bind-addr: every existing Node is a layer-2 candidate",
        )
    options = Options(
        lb_class=args.lb_class or "",
        ignore_exclude_lb=bool(args.ignore_exclude_lb),
        l2_require_node_ready=bool(args.l2_require_node_ready),
    )
    speaker = SpeakerReconciler(
        rest,
        args.namespace,
        args.node_name,
        pod_name=args.pod_name,
        options=options,
        membership=membership,
    )
    collector = SpeakerCollector(speaker.snapshot)
    registry.register(collector)
    ml_collector = MembershipCollector(membership.snapshot) if membership else None
    if ml_collector is not None:
        registry.register(ml_collector)
    ctx.readiness.require("informers", "informers not synced")
    ctx.readiness.require("config", "configuration not loaded")

    async def mark_ready() -> None:
        await asyncio.gather(*(i.synced.wait() for i in speaker.informers))
        ctx.readiness.satisfy("informers")
        await speaker.ready.wait()
        ctx.readiness.satisfy("config")
        # What start-up built (caches, config, sessions) lives long: keep it out of every later
        # full collection, so a collector pause does not delay BFD or BGP keepalive timers.
        freeze_startup_objects()

    ready_task = asyncio.create_task(mark_ready())
    ml_task: asyncio.Task[None] | None = None
    if membership is not None:
        ml_task = asyncio.create_task(_run_membership(membership, args, ctx.stop))
    try:
        await speaker.run(ctx.stop)
        log.info("speakerStopping", signal=ctx.last_signal or "")
        await speaker.shutdown(SHUTDOWN_BUDGET)
        return 0
    finally:
        for task in (ready_task, ml_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if membership is not None:
            await membership.close()
        registry.unregister(collector)
        if ml_collector is not None:
            registry.unregister(ml_collector)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(rest.close(), 0.2)


async def _run_membership(membership: MembershipService, args: Any, stop: asyncio.Event) -> None:
    """Start membership once its key is there; a failure leaves the speaker running without it
    (every Node a layer-2 candidate, as before membership), loudly."""
    try:
        if args.ml_secret_key_path:
            membership.keyring = await wait_for_keyring(args.ml_secret_key_path)
        await membership.start()
        await membership.run(stop)
    except OSError as exc:
        log.error(
            "membershipFailed",
            addr=f"{args.ml_bind_addr}:{args.ml_bind_port}",
            error=exc.strerror or str(exc),
            msg="every Node is a layer-2 candidate until the speaker restarts",
        )
