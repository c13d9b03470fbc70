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

from metallb_py.cli import RunContext, UsageError
from metallb_py.kube.client import ClientConfigError, connect
from metallb_py.metrics import registry
from metallb_py.speaker.desired import Options
from metallb_py.speaker.metrics import SpeakerCollector
from metallb_py.speaker.reconciler import SpeakerReconciler, log

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
    if args.ml_bind_addr and args.ml_labels:
        log.warning(
            "membershipUnavailable",
            msg="membership is not implemented yet; every existing Node is a layer-2 candidate",
        )
    options = Options(
        lb_class=args.lb_class or "",
        ignore_exclude_lb=bool(args.ignore_exclude_lb),
        l2_require_node_ready=bool(args.l2_require_node_ready),
    )
    speaker = SpeakerReconciler(
        rest, args.namespace, args.node_name, pod_name=args.pod_name, options=options
    )
    collector = SpeakerCollector(speaker.snapshot)
    registry.register(collector)
    ctx.readiness.require("informers", "informers not synced")
    ctx.readiness.require("config", "configuration not loaded")

    async def mark_ready() -> None:
        await asyncio.gather(*(i.synced.wait() for i in speaker.informers))
        ctx.readiness.satisfy("informers")
        await speaker.ready.wait()
        ctx.readiness.satisfy("config")
        # What start-up built (caches, config, sessions) lives long: keep it out of every later
        # full collection, so a collector pause does not delay BFD or BGP keepalive timers.
        gc.collect()
        gc.freeze()

    ready_task = asyncio.create_task(mark_ready())
    try:
        await speaker.run(ctx.stop)
        log.info("speakerStopping", signal=ctx.last_signal or "")
        await speaker.shutdown(SHUTDOWN_BUDGET)
        return 0
    finally:
        ready_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ready_task
        registry.unregister(collector)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(rest.close(), 0.2)
