"""The Service reconciler: informers -> allocator -> Service status, events and logs.

Level-triggered: every change only queues a key; a worker reads the latest object from the cache
and converges it. Only the elected leader allocates. On taking the lead it re-lists Services (a
consistent read, after the previous leader's fencing deadline), loads every allocation recorded
in Service status — services holding IPs first, oldest first — and only then allocates anything
new, so a restart or failover never moves an IP.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable
from typing import Any

from metallb_py.allocator import (
    Allocator,
    ChangeKind,
    ClearReason,
    Outcome,
    PoolSpec,
    request_from_service,
)
from metallb_py.allocator.service import uses_legacy_annotations
from metallb_py.config import Config, ConfigHolder
from metallb_py.config.problems import Problem
from metallb_py.config.status import (
    CONTROLLER_CONDITION,
    configuration_state_status,
    same_configuration_state,
)
from metallb_py.controller import ingest
from metallb_py.controller.convert import pool_specs
from metallb_py.controller.metrics import layer2_expected
from metallb_py.controller.service_status import (
    current_ips,
    desired_service,
    orphan_condition,
)
from metallb_py.kube import metrics as kube_metrics
from metallb_py.kube.cache import by_namespace
from metallb_py.kube.events import EventRecorder
from metallb_py.kube.informer import Informer
from metallb_py.kube.rest import (
    ADDRESSPOOLS,
    COMMUNITIES,
    CONFIGURATIONSTATES,
    IPADDRESSPOOLS,
    L2ADVERTISEMENTS,
    NAMESPACES,
    SERVICES,
    ApiError,
    Rest,
)
from metallb_py.kube.status import StatusWriter, WriteOutcome, status_patch
from metallb_py.kube.workqueue import WorkQueue
from metallb_py.log import get_logger
from metallb_py.objects import JSON

log = get_logger("controller")

COMPONENT = "metallb-controller"


# An allocation failure is reported (Warning event, log line, status) only once it has lasted
# this long: the pool that serves a new service may arrive on its own watch a moment after the
# service, as when both are applied from one file.
FAILURE_GRACE_S = 1.0


class Next(enum.Enum):
    """What the work queue does with a Service's key after one reconcile."""

    DONE = "done"  # converged (or nothing to do): forget the key's back-off
    RETRY = "retry"  # failed or fenced: back off, then try again
    AGAIN = "again"  # state moved under us (write conflict): recompute at once from fresh state


def quote_ips(ips: Any) -> str:
    """Go's %q of a []string, as in MetalLB's event messages: ["1.2.3.4" "fc00::"]."""
    return "[" + " ".join(f'"{ip}"' for ip in ips) + "]"


def created(svc: JSON) -> str:
    return str((svc.get("metadata") or {}).get("creationTimestamp") or "")


class ServiceController:
    def __init__(
        self,
        rest: Rest,
        namespace: str,
        *,
        lb_class: str = "",
        reallocate_on_config_change: bool = False,
        may_write: Callable[[], bool] = lambda: True,
        workers: int = 16,
        resync_period: float = 300.0,
        pool_status_period: float = 1.0,
    ) -> None:
        self.rest = rest
        self.namespace = namespace
        self.lb_class = lb_class
        self.reallocate = reallocate_on_config_change
        self.may_write = may_write
        self.worker_count = workers
        self.pool_status_period = pool_status_period
        in_ns = f"metadata.namespace={namespace}"
        # Trimmed at ingest to the fields the controller reads (ingest.py).
        self.services = Informer(
            rest,
            SERVICES,
            indexers={"namespace": by_namespace},
            resync_period=resync_period,
            transform=ingest.service,
        )
        self.namespaces = Informer(rest, NAMESPACES, resync_period=0, transform=ingest.namespace)
        self.pools = Informer(
            rest, IPADDRESSPOOLS, namespace=namespace, field_selector=in_ns, optional=True
        )
        self.legacy_pools = Informer(
            rest, ADDRESSPOOLS, namespace=namespace, field_selector=in_ns, optional=True
        )
        self.communities = Informer(
            rest, COMMUNITIES, namespace=namespace, field_selector=in_ns, optional=True
        )
        # Only for metallb_allocator_layer2_address: which allocations layer 2 must answer for.
        self.l2ads = Informer(
            rest, L2ADVERTISEMENTS, namespace=namespace, field_selector=in_ns, optional=True
        )
        self.config_informers = (
            self.pools,
            self.legacy_pools,
            self.communities,
            self.l2ads,
            self.namespaces,
        )
        self.holder = ConfigHolder(namespace)
        self.config: Config | None = None
        self.pool_inputs: list[PoolSpec] | None = None
        self.allocator: Allocator | None = None
        self.queue: WorkQueue | None = None
        self.pending: set[str] = set()
        # When each service's allocation first failed (see FAILURE_GRACE_S).
        self.failing_since: dict[str, float] = {}
        self.writer = StatusWriter(rest, can_write=may_write)
        self.events = EventRecorder(rest, COMPONENT, can_write=may_write)
        self.config_dirty = asyncio.Event()
        self.config_state_written: JSON | None = None  # the last ConfigurationState status sent
        self.problems_reported: frozenset[str] = frozenset()
        self.startup_done = asyncio.Event()
        self.adopted = False
        self.reconciles = 0

        self.services.add_handler(self._on_service)
        self.namespaces.add_handler(self._on_namespace)
        for inf in (self.pools, self.legacy_pools, self.communities, self.l2ads):
            inf.add_handler(self._on_config)

    # ------------------------------------------------------------------ informer handlers

    def _on_service(self, key: str, old: JSON | None, new: JSON | None) -> None:
        if self.queue is not None:
            self.queue.add(key)

    def _on_config(self, key: str, old: JSON | None, new: JSON | None) -> None:
        self.config_dirty.set()

    def _on_namespace(self, key: str, old: JSON | None, new: JSON | None) -> None:
        old_labels = ((old or {}).get("metadata") or {}).get("labels")
        new_labels = ((new or {}).get("metadata") or {}).get("labels")
        if old is not None and old_labels == new_labels:
            return
        self.config_dirty.set()  # namespaceSelectors may now select it
        if self.queue is not None:
            for svc_key in self.services.cache.index_keys("namespace", key):
                self.queue.add(svc_key)

    # ------------------------------------------------------------------ lifecycle

    async def run_informers(self, stop: asyncio.Event) -> None:
        infs = (self.services, *self.config_informers)
        await asyncio.gather(*(inf.run(stop) for inf in infs))

    async def wait_synced(self) -> None:
        infs = (self.services, *self.config_informers)
        await asyncio.gather(*(inf.synced.wait() for inf in infs))

    async def lead(self, stop: asyncio.Event, fresh: bool = True) -> None:
        """Be the allocating replica until `stop` is set (shutdown or lost leadership).

        `fresh`: the Lease may have been held by someone else since we last led, so rebuild
        the allocation state from the API server. Otherwise (first start aside) we only lapsed
        and renewed our own Lease: nobody else wrote, and the state we kept is still right.
        """
        self.events.start()
        await self.wait_synced()
        if fresh or self.allocator is None:
            # A consistent read after winning the Lease: every write of the previous leader
            # (which stopped writing before we could win) is in it.
            await self.services.list()
            self.allocator = Allocator(reallocate_on_config_change=self.reallocate)
            self.pool_inputs = None
            self.pending = set()
            self.adopted = False
        self.queue = WorkQueue()
        self._load_config()  # adopts every recorded allocation once a configuration is usable
        if self.adopted:
            for key in self.services.cache.keys():  # noqa: SIM118 (a Cache, not a dict)
                self.queue.add(key)  # whatever changed while we did not lead
        tasks = [asyncio.create_task(self._worker()) for _ in range(self.worker_count)]
        tasks.append(asyncio.create_task(self._config_loop(stop)))
        tasks.append(asyncio.create_task(self._pool_status_loop(stop)))
        self.startup_done.set()
        try:
            await stop.wait()
        finally:
            self.queue.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self.queue = None
            self.startup_done.clear()
            await self.events.stop()

    # ------------------------------------------------------------------ configuration

    def _config_resources(self) -> list[JSON]:
        out: list[JSON] = []
        for inf in self.config_informers:
            out.extend(inf.cache.values())
        return out

    def _load_config(self) -> None:
        config, problems, stale = self.holder.update(self._config_resources())
        self._report_problems(problems)
        kube_metrics.config_stale.set(1 if stale else 0)
        if config is not None:
            kube_metrics.config_loaded.set(1)
        if stale:
            log.error(
                "configStale", msg="configuration could not be used; keeping the last good one"
            )
        self.config = config
        self._write_config_state(problems, stale)
        specs = pool_specs(config) if config is not None else None
        if specs is None or specs == self.pool_inputs or self.allocator is None:
            return
        try:
            changes = self.allocator.set_pools(specs)
        except ValueError as exc:
            log.error("configRejected", error=str(exc))
            kube_metrics.config_stale.set(1)
            return
        self.pool_inputs = specs
        log.info("configLoaded", pools=[s.name for s in specs])
        if not self.adopted and self.queue is not None:
            self._startup_adopt()  # the first usable configuration arrived after startup
        for change in changes:
            self._config_change(change.key, change.kind, change.ips, change.reason)
        if self.queue is not None:
            for key in self.services.cache.keys():  # noqa: SIM118 (a Cache, not a dict)
                self.queue.add(key)

    def _report_problems(self, problems: list[Problem]) -> None:
        """Each problem once (not on every reload): a log line, and a Warning event on the object
        it names, so `kubectl describe` on the ignored object says which rule it broke."""
        by_kind = {
            "IPAddressPool": self.pools,
            "AddressPool": self.legacy_pools,
            "Community": self.communities,
            "L2Advertisement": self.l2ads,
        }
        current = frozenset(p.line() for p in problems)
        for p in problems:
            if p.line() in self.problems_reported:
                continue
            log.warning("configProblem", problem=p.line(), severity=p.severity)
            informer = by_kind.get(p.ref.kind)
            obj = informer.cache.get(f"{p.ref.namespace}/{p.ref.name}") if informer else None
            if obj is not None:
                reason = "ConfigurationProblem" if p.is_error else "ConfigurationWarning"
                self.events.warning(obj, reason, f"{p.path or '-'}: {p.message} (rule {p.rule})")
        self.problems_reported = current

    def _config_change(self, key: str, kind: ChangeKind, ips: tuple[str, ...], reason: str) -> None:
        svc = self.services.cache.get(key)
        if kind is ChangeKind.ORPHANED:
            log.warning("ipOrphaned", service=key, ip=list(ips), reason=reason)
            if svc is not None:
                self.events.warning(
                    svc,
                    "AddressOrphaned",
                    f"IP {quote_ips(ips)} is no longer allowed by the configuration ({reason}); "
                    "it stays assigned until the service changes or asks for reallocation",
                )
        elif kind is ChangeKind.RELEASED:
            log.info("clearAssignment", service=key, ip=list(ips), reason="notAllowedByConfig")
            if svc is not None:
                self.events.normal(
                    svc,
                    "ClearAssignment",
                    f"current IP for {key!r} not allowed by config, will attempt for new IP "
                    f"assignment: {reason}",
                )
        elif kind is ChangeKind.RESTORED:
            log.info("ipRestored", service=key, ip=list(ips))

    async def _config_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.config_dirty.wait()
            await asyncio.sleep(0.05)  # coalesce a burst of edits into one parse
            self.config_dirty.clear()
            self._load_config()

    def _write_config_state(self, problems: list[Problem], stale: bool) -> None:
        status = configuration_state_status(problems, CONTROLLER_CONDITION, stale)
        last = self.config_state_written
        if last is not None and same_configuration_state(last, status):
            return
        self.config_state_written = status
        task = asyncio.get_running_loop().create_task(self._put_config_state(status))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _put_config_state(self, status: JSON) -> None:
        meta = {
            "name": "controller",
            "namespace": self.namespace,
            "labels": {"metallb.io/component-type": "controller"},
        }
        result = await self.writer.ensure_status(
            CONFIGURATIONSTATES, meta, status, same=same_configuration_state
        )
        if not result.ok and result.outcome is not WriteOutcome.FENCED:
            # best effort: the CRD may not be installed
            log.debug("configurationStateNotWritten", error=result.error)

    # ------------------------------------------------------------------ startup

    def _startup_adopt(self) -> None:
        """First pass: register allocations recorded in status, holders of IPs first and the
        oldest claim first, before anything new is handed out."""
        assert self.allocator is not None and self.queue is not None
        self.adopted = True
        services = self.services.cache.values()
        holders = [s for s in services if current_ips(s)]
        holders.sort(key=lambda s: (-len(current_ips(s)), created(s), _key(s)))
        adopted = 0
        for svc in holders:
            if not self._handles(svc) or (svc.get("spec") or {}).get("type") != "LoadBalancer":
                continue
            req = request_from_service(svc, self._namespace_labels(svc))
            if self.allocator.adopt(req, current_ips(svc)) is not None:
                adopted += 1
        log.info("allocationsLoaded", services=adopted, holders=len(holders))
        rest = [s for s in services if not current_ips(s)]
        rest.sort(key=lambda s: (created(s), _key(s)))
        for svc in holders + rest:
            self.queue.add(_key(svc))

    # ------------------------------------------------------------------ reconcile

    def layer2_addresses(self) -> list[tuple[str, str, str]]:
        """(service, ip, pool) of every allocated address an L2Advertisement covers, while
        leading (a standby's allocator may be stale): what the speakers must answer ARP/NDP for,
        so an alert can find the ones nobody announces."""
        if self.queue is None or self.allocator is None or self.config is None:
            return []
        return layer2_expected(self.allocator.allocations(), self.config, self.services.cache.get)

    def _handles(self, svc: JSON) -> bool:
        cls = (svc.get("spec") or {}).get("loadBalancerClass") or ""
        return cls == self.lb_class

    def _namespace_labels(self, svc: JSON) -> dict[str, str]:
        ns = (svc.get("metadata") or {}).get("namespace") or ""
        obj = self.namespaces.cache.get(ns)
        return dict(((obj or {}).get("metadata") or {}).get("labels") or {})

    async def _worker(self) -> None:
        assert self.queue is not None
        queue = self.queue
        while True:
            while not self.may_write() and not queue.closed:  # noqa: ASYNC110 (a clock)
                await asyncio.sleep(0.1)  # a late lease renewal: wait, keep the queue intact
            key = await queue.get()
            if key is None:
                return
            try:
                if not self.may_write():
                    # Fenced (renewal late, or leadership lost): decide nothing now, but never
                    # drop the key; if leadership is really lost the queue is closed anyway.
                    queue.add_after(key, 0.5)
                    continue
                outcome = await self.reconcile(key)
                kube_metrics.updates_total.inc()
                if outcome is Next.RETRY:
                    queue.retry(key)
                elif outcome is Next.AGAIN:
                    queue.add(key)
                else:
                    queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcileFailed", service=key)
                kube_metrics.update_errors_total.inc()
                queue.retry(key)
            finally:
                queue.done(key)

    def _wake_pending(self) -> None:
        if self.queue is None:
            return
        for key in sorted(self.pending):
            self.queue.add(key)

    def _not_failing(self, key: str) -> None:
        """The service no longer waits for an IP (it has one, needs none, or is gone)."""
        self.pending.discard(key)
        self.failing_since.pop(key, None)

    async def reconcile(self, key: str) -> Next:
        """Converge one Service and say what the queue does with its key next."""
        alloc = self.allocator
        if alloc is None or not alloc.configured or not self.adopted:
            return Next.DONE  # no configuration yet: touch nothing (loading one requeues every key)
        self.reconciles += 1
        svc = self.services.cache.get(key)
        if svc is None:
            self._not_failing(key)
            if alloc.release(key):
                log.info("serviceDeleted", service=key)
                self._wake_pending()
            return Next.DONE
        if not self._handles(svc):
            self._not_failing(key)
            if alloc.release(key):
                self._wake_pending()
            return Next.DONE
        spec = svc.get("spec") or {}
        if spec.get("type") != "LoadBalancer":
            self._not_failing(key)
            released = alloc.release(key)
            if released:
                log.info(
                    "clearAssignment", service=key, ip=list(released), reason="notLoadBalancer"
                )
                self._wake_pending()
            desired = desired_service(svc, [], None)
            return await self._write(key, svc, desired) if desired else Next.DONE

        req = request_from_service(svc, self._namespace_labels(svc))
        result = alloc.assign(req, current_ips(svc))
        if result.cleared_ips:
            self._report_clear(
                svc, key, result.cleared_ips, result.clear_reason, result.clear_detail
            )
            self._wake_pending()

        orphan_reason: str | None = None
        pool: Any = result.pool
        if result.outcome is Outcome.ALLOCATED:
            self._not_failing(key)
            log.info(
                "ipAllocated",
                ip=list(result.ips),
                msg="IP address assigned by controller",
                service=key,
                pool=result.pool,
            )
            self.events.normal(svc, "IPAllocated", f"Assigned IP {quote_ips(result.ips)}")
        elif result.outcome is Outcome.KEPT:
            self._not_failing(key)
            for ip in result.added_ips:
                log.info(
                    "ipAllocated",
                    ip=ip,
                    msg="Additional IP address assigned by controller",
                    service=key,
                )
                self.events.normal(svc, "IPAllocated", f"Assigned additional IP {ip!r}")
        elif result.outcome is Outcome.ORPHANED:
            self._not_failing(key)
            orphan_reason = result.error
            pool = _KEEP_POOL
            if orphan_condition(svc) is None:
                log.warning("ipOrphaned", service=key, ip=list(result.ips), reason=result.error)
                self.events.warning(
                    svc,
                    "AddressOrphaned",
                    f"IP {quote_ips(result.ips)} is no longer allowed by the configuration "
                    f"({result.error}); it stays assigned until the service changes or asks for "
                    "reallocation",
                )
        elif result.outcome is Outcome.INVALID_REQUEST:
            self.failing_since.pop(key, None)
            self.events.warning(
                svc, "LoadBalancerFailed", f"invalid requested loadbalancer IPs: {result.error}"
            )
            return Next.DONE
        else:  # FAILED
            self.pending.add(key)
            now = time.monotonic()
            waited = now - self.failing_since.setdefault(key, now)
            if waited < FAILURE_GRACE_S or self.config_dirty.is_set():
                # The pool that serves it may be a moment behind on its own watch, or in a
                # configuration still settling (a pool and a service applied from one file):
                # look again before reporting a failure that would fix itself.
                log.debug("allocationDeferred", service=key, error=result.error)
                if self.queue is not None:
                    self.queue.add_after(key, max(FAILURE_GRACE_S - waited, 0.05))
                return Next.DONE
            log.error("allocateIPs", service=key, error=result.error, msg="IP allocation failed")
            self.events.warning(
                svc, "AllocationFailed", f"Failed to allocate IP for {key!r}: {result.error}"
            )
            pool = None
        if uses_legacy_annotations(svc) and result.outcome is Outcome.ALLOCATED:
            self.events.warning(
                svc,
                "deprecatedAnnotation",
                "metallb.universe.tf/ annotations are deprecated, use metallb.io/",
            )
        if pool is _KEEP_POOL:
            desired = desired_service(svc, result.ips, orphan_reason=orphan_reason)
        else:
            desired = desired_service(svc, result.ips, pool, orphan_reason)
        if desired is None:
            return Next.DONE
        return await self._write(key, svc, desired)

    def _report_clear(
        self,
        svc: JSON,
        key: str,
        ips: tuple[str, ...],
        reason: ClearReason | None,
        detail: str,
    ) -> None:
        log.info(
            "clearAssignment", service=key, ip=list(ips), reason=reason.value if reason else ""
        )
        if reason is ClearReason.IP_IN_USE:
            self.events.warning(
                svc,
                "DuplicateAllocation",
                f"IP {quote_ips(ips)} is also claimed by an older service ({detail}); "
                "assigning a new IP",
            )
        elif reason in (
            ClearReason.NOT_ALLOWED_BY_CONFIG,
            ClearReason.SHARING_CONFLICT,
            ClearReason.REALLOCATE_REQUESTED,
        ):
            self.events.normal(
                svc,
                "ClearAssignment",
                f"current IP for {key!r} not allowed by config, will attempt for new IP "
                f"assignment: {detail}",
            )

    async def _write(self, key: str, svc: JSON, desired: JSON) -> Next:
        """Send what `desired` changes in the cached `svc`, as a merge patch (never the trimmed
        object itself), under svc's resourceVersion."""
        meta = svc.get("metadata") or {}
        ns, name = meta.get("namespace"), meta["name"]
        result = await self.writer.patch_status(SERVICES, ns, name, status_patch(svc, desired))
        if result.outcome is WriteOutcome.WRITTEN and result.obj is not None:
            result.obj.setdefault("kind", "Service")
            result.obj.setdefault("apiVersion", "v1")
            self.services.remember(result.obj)
            return Next.DONE
        if result.outcome is WriteOutcome.CONFLICT:
            # Recompute from fresh state, never resend the stale write.
            try:
                fresh = await self.rest.get(SERVICES.path(ns, name))
            except ApiError as exc:
                if exc.not_found:
                    self.services.cache.delete(key)
                    return Next.AGAIN
                return Next.RETRY
            fresh.setdefault("kind", "Service")
            fresh.setdefault("apiVersion", "v1")
            self.services.remember(fresh)
            return Next.AGAIN
        if result.outcome is WriteOutcome.NOT_FOUND:
            return Next.DONE
        if result.outcome is WriteOutcome.FENCED:
            return Next.RETRY  # the decision stands; it is written once we may write again
        log.warning("statusWriteFailed", service=key, error=result.error)
        return Next.RETRY

    # ------------------------------------------------------------------ pool status

    async def _pool_status_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.pool_status_period)
            if stop.is_set():
                return
            try:
                await self.write_pool_status()
            except Exception as exc:
                log.warning("poolStatusFailed", error=str(exc))

    async def write_pool_status(self) -> None:
        alloc = self.allocator
        if alloc is None or not self.may_write():
            return
        stats = alloc.stats()
        for obj in self.pools.cache.values():
            meta = obj.get("metadata") or {}
            s = stats.get(meta.get("name", ""))
            if s is None:
                continue
            want = {
                "assignedIPv4": s.in_use_v4,
                "assignedIPv6": s.in_use_v6,
                "availableIPv4": s.available_v4,
                "availableIPv6": s.available_v6,
            }
            have = obj.get("status") or {}
            if all(have.get(k) == v for k, v in want.items()):
                continue

            def compute(fresh: JSON, want: dict[str, int] = want) -> JSON | None:
                status = fresh.get("status") or {}
                if all(status.get(k) == v for k, v in want.items()):
                    return None
                return {**fresh, "status": {**status, **want}}

            result = await self.writer.update_status(
                IPADDRESSPOOLS, meta.get("namespace"), meta["name"], compute, current=obj
            )
            if result.ok and result.obj is not None:
                result.obj.setdefault("kind", IPADDRESSPOOLS.kind)
                result.obj.setdefault("apiVersion", IPADDRESSPOOLS.api_version)
                self.pools.remember(result.obj)


_KEEP_POOL = object()


def _key(svc: JSON) -> str:
    meta = svc.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"
