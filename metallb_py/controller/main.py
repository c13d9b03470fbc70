"""`metallb-py controller`: allocate IPs to Services of type LoadBalancer.

Every replica keeps its caches warm; the one holding the `metallb-controller` Lease allocates and
writes. Losing the Lease stops all writes at once (fencing) and drops the in-memory allocation
state; winning it again rebuilds that state from Service status before allocating anything.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from metallb_py.cli import RunContext, UsageError
from metallb_py.controller.memberlist_secret import ensure_memberlist_secret
from metallb_py.controller.metrics import AllocatorCollector
from metallb_py.controller.reconciler import ServiceController
from metallb_py.kube.client import ClientConfigError, connect
from metallb_py.kube.leader import (
    LeaderElector,
    connect_elector,
    drain,
    lead_while_elected,
    wait_or_stop,
)
from metallb_py.log import get_logger
from metallb_py.metrics import registry

log = get_logger("controller")
LEASE_NAME = "metallb-controller"


async def run(ctx: RunContext) -> int:
    args = ctx.args
    # Tens of thousands of long-lived cached objects make the default GC thresholds spend most
    # of their time rescanning them; collect the young generation less often.
    gc.set_threshold(50_000, 20, 50)
    if float(getattr(args, "lease_duration", 4.0)) < 1.0:
        raise UsageError("metallb-py controller: --lease-duration must be at least 1 second")
    if int(getattr(args, "workers", 16)) < 1:
        raise UsageError("metallb-py controller: --workers must be at least 1")
    try:
        rest = await connect(args.kubeconfig)
    except ClientConfigError as exc:
        raise UsageError(f"metallb-py controller: {exc}") from None

    lease_duration = float(getattr(args, "lease_duration", 4.0))
    elector: LeaderElector | None = None
    if getattr(args, "leader_election", True):
        elector = await connect_elector(
            args.kubeconfig, args.namespace, LEASE_NAME, lease_duration, renew_share=0.75
        )
    controller = ServiceController(
        rest,
        args.namespace,
        lb_class=args.lb_class or "",
        reallocate_on_config_change=args.on_config_change == "reallocate",
        may_write=elector.may_write if elector else (lambda: True),
        workers=int(getattr(args, "workers", 16)),
    )
    collector = AllocatorCollector(lambda: controller.allocator, controller.layer2_addresses)
    registry.register(collector)
    ctx.readiness.require("informers", "informers not synced")
    ctx.readiness.require("allocations", "existing allocations not loaded")
    log.info(
        "controllerStarting",
        namespace=args.namespace,
        lbClass=args.lb_class or "",
        onConfigChange=args.on_config_change,
        identity=elector.identity if elector else "",
    )

    informers = asyncio.create_task(controller.run_informers(ctx.stop))
    election = asyncio.create_task(elector.run(ctx.stop)) if elector else None
    try:
        await wait_or_stop(controller.wait_synced(), ctx.stop)
        if ctx.stop.is_set():
            return 0
        ctx.readiness.satisfy("informers")
        # A standby is ready too: it serves metrics and is warm for a takeover.
        ctx.readiness.satisfy("allocations")

        async def lead(lead_stop: asyncio.Event, fresh: bool) -> None:
            await _ensure_secret(rest, args)
            await controller.lead(lead_stop, fresh=fresh)

        await lead_while_elected(elector, ctx.stop, lead, log)
        return 0
    finally:
        await drain((informers, election))
        registry.unregister(collector)
        await rest.close()
        if elector is not None:
            await elector.rest.close()


async def _ensure_secret(rest: Any, args: Any) -> None:
    """The membership key Secret, when asked for; a failure is logged, never fatal: speakers
    then run unencrypted membership (or keep the key they have) and the next lead retries."""
    name = getattr(args, "ml_secret_name", "") or ""
    if not name:
        return
    try:
        await ensure_memberlist_secret(rest, args.namespace, name, getattr(args, "deployment", ""))
    except Exception as exc:
        log.error("memberlistSecretFailed", name=name, error=str(exc))
