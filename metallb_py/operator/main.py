"""`metallb-py operator`: deploy MetalLB (controller, speakers, webhook, RBAC) from the
`MetalLB` resource of its namespace, as MetalLB's operator does.

Every replica serves the admission webhook and keeps its informers warm; the holder of the
`metallb.io.metallboperator` Lease reconciles. Losing the Lease stops reconciling at once.
"""

from __future__ import annotations

import asyncio
import os

from metallb_py.cli import RunContext, UsageError
from metallb_py.kube.client import ClientConfigError, connect
from metallb_py.kube.events import EventRecorder
from metallb_py.kube.leader import (
    LeaderElector,
    connect_elector,
    drain,
    lead_while_elected,
    wait_or_stop,
)
from metallb_py.log import get_logger
from metallb_py.operator.env import OperatorEnv
from metallb_py.operator.reconciler import OperatorReconciler
from metallb_py.operator.webhook import DEFAULT_CERT_DIR, AdmissionServer

LEASE_NAME = "metallb.io.metallboperator"
COMPONENT = "metallb-operator"

log = get_logger("operator")


def operator_env(namespace: str) -> OperatorEnv:
    """MetalLB's operator variables, with the namespace the flags settled on."""
    try:
        return OperatorEnv.from_environ({**os.environ, "OPERATOR_NAMESPACE": namespace})
    except ValueError as exc:
        raise UsageError(f"metallb-py operator: {exc}") from None


async def run(ctx: RunContext) -> int:
    args = ctx.args
    namespace = args.namespace
    env = operator_env(namespace)
    lease_duration = float(args.lease_duration)
    if lease_duration < 1.0:
        raise UsageError("metallb-py operator: --lease-duration must be at least 1 second")
    try:
        rest = await connect(args.kubeconfig)
    except ClientConfigError as exc:
        raise UsageError(f"metallb-py operator: {exc}") from None
    elector: LeaderElector | None = None
    if args.enable_leader_election:
        # controller-runtime's proportions: renew deadline 2/3 of the lease duration
        elector = await connect_elector(
            args.kubeconfig, namespace, LEASE_NAME, lease_duration, renew_share=2 / 3
        )
    recorder = EventRecorder(
        rest, COMPONENT, can_write=elector.may_write if elector else (lambda: True)
    )
    reconciler = OperatorReconciler(
        rest,
        namespace,
        env,
        recorder,
        may_write=elector.may_write if elector else (lambda: True),
        resync_period=float(args.resync_period),
    )
    hook = AdmissionServer(log)
    ctx.readiness.require("informers", "informers not synced")
    if args.webhook:
        ctx.readiness.require("webhook", "webhook not serving yet")
    log.info(
        "operatorStarting",
        namespace=namespace,
        identity=elector.identity if elector else "",
        webhook=bool(args.webhook),
    )
    recorder.start()
    informers = asyncio.create_task(reconciler.run_informers(ctx.stop))
    election = asyncio.create_task(elector.run(ctx.stop)) if elector else None
    try:
        if args.webhook:
            cert_dir = args.cert_dir or (DEFAULT_CERT_DIR if args.disable_cert_rotation else None)
            try:
                if not await hook.load_certificates(
                    rest, namespace, cert_dir, ctx.stop, list(args.cert_host or [])
                ):
                    return 0
            except (OSError, ValueError) as exc:
                raise UsageError(
                    f"metallb-py operator: cannot load certificates from {cert_dir}: {exc}"
                ) from None
            try:
                await hook.serve(args.bind_address, args.port)
            except OSError as exc:
                raise UsageError(
                    f"metallb-py operator: cannot listen on port {args.port}: {exc.strerror}"
                ) from None
            ctx.readiness.satisfy("webhook")
            log.info("webhookServing", port=args.port)
        await wait_or_stop(reconciler.wait_synced(), ctx.stop)
        if ctx.stop.is_set():
            return 0
        ctx.readiness.satisfy("informers")

        async def lead(lead_stop: asyncio.Event, _fresh: bool) -> None:
            await reconciler.lead(lead_stop)

        await lead_while_elected(elector, ctx.stop, lead, log)
        return 0
    finally:
        await drain((informers, election))
        await recorder.stop()
        await hook.close()
        await rest.close()
        if elector is not None:
            await elector.rest.close()
