"""The speaker's reconciling shell: informers -> desired state -> BGP, layer 2, status, logs.

Level-triggered and undebounced: any relevant change sets one flag; the loop recomputes the whole
desired state (`desired.desired_state`, pure) and applies the difference at once, so a Service that
gets an IP reaches the routers within milliseconds (MetalLB's FRR mode waits 3 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterable
from typing import Any

from metallb_py.config import Config, ConfigHolder, Problem
from metallb_py.config.status import SPEAKER_CONDITION, configuration_state_status
from metallb_py.kube import metrics as kube_metrics
from metallb_py.kube.events import EventRecorder
from metallb_py.kube.informer import Informer
from metallb_py.kube.leader import wait_or_stop
from metallb_py.kube.rest import (
    ADDRESSPOOLS,
    BFDPROFILES,
    BGPADVERTISEMENTS,
    BGPPEERS,
    COMMUNITIES,
    ENDPOINTSLICES,
    IPADDRESSPOOLS,
    L2ADVERTISEMENTS,
    NODES,
    SECRETS,
    SERVICES,
    Rest,
)
from metallb_py.log import get_logger
from metallb_py.membership.interface import Membership
from metallb_py.objects import JSON
from metallb_py.speaker import desired as dz
from metallb_py.speaker import ingest
from metallb_py.speaker.bgp_shell import BgpShell
from metallb_py.speaker.l2_shell import L2Shell, local_interfaces
from metallb_py.speaker.status import StatusObjects, resolve_owner
from metallb_py.speaker.transitions import Change, ChangeKind, transitions

log = get_logger("speaker")
COMPONENT = "metallb-speaker"
# Configuration kinds that only speakers read; the controller raises events for the others.
SPEAKER_ONLY_KINDS = frozenset({"L2Advertisement", "BGPAdvertisement", "BGPPeer", "BFDProfile"})
SESSION_REFRESH = 5.0  # seconds between BGPSessionState refreshes (prefix counts)


def _service_of_slice(obj: JSON) -> tuple[str, ...]:
    meta = obj.get("metadata") or {}
    name = (meta.get("labels") or {}).get(dz.SERVICE_NAME_LABEL)
    return (f"{meta.get('namespace')}/{name}",) if name else ()


def _node_signature(node: JSON | None) -> Any:
    if node is None:
        return None
    return (
        tuple(sorted(dz.labels(node).items())),
        dz.network_unavailable(node),
        dz.node_ready(node),
    )


MAX_SETTLE_S = 0.05  # the longest wait for related events before a pass
FULL_PASS_S = 30.0  # a pass that looks at every service, whatever the events said
# Collector settling: once the cached objects grew by GC_GROWTH (and at least GC_MIN_GROWTH)
# since the last time, and no pass ran for GC_IDLE_S, collect everything once and freeze what
# survives (gc.freeze), so later collections do not scan 10 000 services again.
GC_IDLE_S = 1.0
GC_GROWTH = 0.25
GC_MIN_GROWTH = 2_000
GC_CHECK_S = 0.5

_VOLATILE_METADATA = ("resourceVersion", "managedFields", "generation")


def _config_signature(obj: JSON | None) -> Any:
    """What the parser reads: everything but status and bookkeeping. The controller writes
    IPAddressPool status on every allocation; re-parsing then would throw away the per-service
    memo and recompute every service on each new one."""
    if obj is None:
        return None
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _VOLATILE_METADATA}
    return ({k: v for k, v in obj.items() if k not in ("status", "metadata")}, meta)


class SpeakerReconciler:
    def __init__(
        self,
        rest: Rest,
        namespace: str,
        node: str,
        *,
        pod_name: str | None = None,
        options: dz.Options = dz.Options(),
        membership: Membership | None = None,
    ) -> None:
        self.rest = rest
        self.namespace = namespace
        self.node = node
        self.pod_name = pod_name
        self.options = options
        self.membership = membership
        in_ns = f"metadata.namespace={namespace}"

        def cfg(resource: Any, **kw: Any) -> Informer:
            return Informer(
                rest, resource, namespace=namespace, field_selector=in_ns, optional=True, **kw
            )

        # Trimmed at ingest to the fields the speaker reads (ingest.py).
        self.services = Informer(rest, SERVICES, transform=ingest.service)
        self.slices = Informer(
            rest,
            ENDPOINTSLICES,
            indexers={"service": _service_of_slice},
            transform=ingest.endpoint_slice,
        )
        self.nodes = Informer(rest, NODES, transform=ingest.node)
        self.config_informers = [
            cfg(IPADDRESSPOOLS),
            cfg(ADDRESSPOOLS),
            cfg(L2ADVERTISEMENTS),
            cfg(BGPADVERTISEMENTS),
            cfg(BGPPEERS),
            cfg(BFDPROFILES),
            cfg(COMMUNITIES),
            Informer(
                rest,
                SECRETS,
                namespace=namespace,
                field_selector="type=kubernetes.io/basic-auth",
            ),
        ]
        self.services.add_handler(self._on_service)
        self.slices.add_handler(self._on_slice)
        self.nodes.add_handler(self._on_node)
        for inf in self.config_informers:
            inf.add_handler(self._on_config)
        if membership is not None:
            membership.subscribe(self.dirty_set)

        self.holder = ConfigHolder(namespace)
        self.config: Config | None = None
        self.problems_logged: tuple[str, ...] = ()
        self.dirty = asyncio.Event()
        self.config_dirty = True
        self.current: dz.Desired | None = None
        # Services touched by events since the last pass; None: look at all of them (at start,
        # after a failed pass, and every FULL_PASS_S as a safety net).
        self._changed: set[str] | None = None
        self._last_full_pass = 0.0
        self._l2_status: dict[str, tuple[str, ...]] = {}
        self._bgp_status: dict[str, tuple[str, ...]] = {}
        self.memo = dz.Memo()
        self.bgp = BgpShell(node, on_session_change=self._on_session_change)
        self.l2 = L2Shell(retry=self.dirty_set)
        self.status = StatusObjects(rest, namespace, node)
        self.events = EventRecorder(rest, COMPONENT)
        self.announced: dict[tuple[str, str], tuple[str, ...]] = {}
        self.orphans: set[str] = set()
        self.missing_ifaces: set[str] = set()
        self.reconciles = 0
        self.failures = 0
        self.last_reconcile_seconds = 0.0
        self.ready = asyncio.Event()
        self._sessions_dirty = asyncio.Event()
        self._last_pass_end = 0.0
        self.gc_settles = 0
        self.gc_settle_seconds = 0.0  # how long the last one blocked

    # ---- informer handlers --------------------------------------------------------------------

    def dirty_set(self) -> None:
        self.dirty.set()

    def _on_service(self, key: str, old: JSON | None, new: JSON | None) -> None:
        if old is not None and new is not None and old is new:
            return  # periodic resync: nothing changed
        if self._changed is not None:
            self._changed.add(key)
        self.dirty.set()

    def _on_slice(self, key: str, old: JSON | None, new: JSON | None) -> None:
        if old is not None and new is not None and old is new:
            return
        if self._changed is not None:
            for obj in (old, new):
                if obj is not None:
                    self._changed.update(_service_of_slice(obj))
        self.dirty.set()

    def _on_node(self, key: str, old: JSON | None, new: JSON | None) -> None:
        if old is None or new is None or _node_signature(old) != _node_signature(new):
            self.dirty.set()

    def _on_config(self, key: str, old: JSON | None, new: JSON | None) -> None:
        if (
            old is not None
            and new is not None
            and (old is new or _config_signature(old) == _config_signature(new))
        ):
            return
        self.config_dirty = True
        self.dirty.set()

    def _on_session_change(self) -> None:
        self._sessions_dirty.set()

    # ---- lifecycle --------------------------------------------------------------------------

    @property
    def informers(self) -> list[Informer]:
        return [self.services, self.slices, self.nodes, *self.config_informers]

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop`; the caller then calls `shutdown()`."""
        await self.bgp.start()
        self.events.start()
        tasks = [asyncio.create_task(inf.run(stop)) for inf in self.informers]
        tasks += [asyncio.create_task(inf.run(stop)) for inf in self.status.informers]
        tasks.append(asyncio.create_task(self.status.run(stop)))
        tasks.append(asyncio.create_task(self._session_loop(stop)))
        tasks.append(asyncio.create_task(self._gc_loop(stop)))
        try:
            await wait_or_stop(asyncio.gather(*(i.synced.wait() for i in self.informers)), stop)
            if stop.is_set():
                return
            self.status.owner = await resolve_owner(
                self.rest, self.namespace, self.pod_name, self.node
            )
            log.info(
                "speakerStarting",
                node=self.node,
                owner=f"{self.status.owner.kind}/{self.status.owner.name}"
                if self.status.owner
                else "",
            )
            self.dirty.set()
            while not stop.is_set():
                await wait_or_stop(self.dirty.wait(), stop)
                if stop.is_set():
                    break
                # A new Service brings its EndpointSlice, its creation and its status within a
                # few milliseconds: settle for half a pass so one pass sees them all, instead of
                # a pass per event each waiting for the one before. Small clusters (passes of a
                # millisecond or two) wait next to nothing; 10 000 services about 30 ms.
                await asyncio.sleep(min(MAX_SETTLE_S, self.last_reconcile_seconds / 2))
                self.dirty.clear()
                try:
                    await self.reconcile()
                except Exception:  # a bug must not stop announcing; try again shortly
                    log.exception("reconcileFailed")
                    self._changed = None
                    self.failures += 1
                    asyncio.get_running_loop().call_later(1.0, self.dirty.set)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    async def shutdown(self, budget: float = 1.6) -> None:
        """Stop answering ARP/NDP, withdraw (or keep routes under graceful restart), leave."""
        started = time.monotonic()
        await self.l2.close()
        graceful = any(
            p.enable_graceful_restart for p in (self.config.peers if self.config else ())
        )
        jobs: list[Any] = [self.bgp.shutdown(graceful=graceful)]
        if self.membership is not None:
            jobs.append(self.membership.leave())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), budget * 0.7)
        for (key, protocol), ips in sorted(self.announced.items()):
            log.info(
                "serviceWithdrawn",
                service=key,
                protocol=protocol,
                ip=list(ips),
                reason="speakerShutdown",
                gracefulRestart=graceful and protocol == dz.BGP,
            )
        self.announced.clear()
        left = max(0.05, budget - (time.monotonic() - started))
        self.status.set_services({}, {})
        self.status.set_sessions({})
        with contextlib.suppress(TimeoutError, Exception):
            await asyncio.wait_for(self.status.sync_once(), left * 0.7)
        with contextlib.suppress(Exception):
            await self.events.stop(drain_timeout=max(0.05, left * 0.2))

    # ---- one pass -----------------------------------------------------------------------------

    def _load_config(self) -> None:
        resources: list[JSON] = []
        for inf in self.config_informers:
            resources.extend(inf.cache.values())
        config, problems, stale = self.holder.update(resources)
        kube_metrics.config_stale.set(1 if stale else 0)
        if config is not None:
            kube_metrics.config_loaded.set(1)
        lines = tuple(p.line() for p in problems)
        if lines != self.problems_logged:
            for p in problems:
                log.warning("configProblem", problem=p.line(), severity=p.severity)
                if p.line() not in self.problems_logged:
                    self._problem_event(p)
            self.problems_logged = lines
        if stale:
            log.error(
                "configStale", msg="configuration could not be used; keeping the last good one"
            )
        if config is not None and config != self.config:
            log.info(
                "configLoaded",
                pools=[p.name for p in config.pools],
                peers=[p.name for p in config.peers],
            )
        if config is None or config != self.config:
            self.config = config  # an equal one keeps its identity, and with it the memo
        self.status.set_config_state(configuration_state_status(problems, SPEAKER_CONDITION, stale))

    def _problem_event(self, problem: Problem) -> None:
        """A Warning event on an ignored object that only speakers read (the controller reports
        pools and communities), so `kubectl describe` on it names the rule it broke."""
        if problem.ref.kind not in SPEAKER_ONLY_KINDS:
            return
        for inf in self.config_informers:
            if inf.resource.kind == problem.ref.kind:
                obj = inf.cache.get(f"{problem.ref.namespace}/{problem.ref.name}")
                if obj is not None:
                    reason = "ConfigurationProblem" if problem.is_error else "ConfigurationWarning"
                    where = problem.path or "-"
                    self.events.warning(
                        obj, reason, f"{where}: {problem.message} (rule {problem.rule})"
                    )
                return

    def _take_changed(self) -> frozenset[str] | None:
        now = time.monotonic()
        changed, self._changed = self._changed, set()
        if changed is None or now - self._last_full_pass > FULL_PASS_S:
            self._last_full_pass = now
            return None
        return frozenset(changed)

    def inputs(self) -> dz.Inputs:
        return dz.Inputs(
            config=self.config,
            services=self.services.cache.view(),  # desired_state runs before any new event
            endpoint_slices=self.slices.cache.index_view("service"),
            nodes={
                str((n.get("metadata") or {}).get("name")): n for n in self.nodes.cache.values()
            },
            node=self.node,
            members=self.membership.members() if self.membership is not None else None,
            options=self.options,
            previous=self.current,
            local_interfaces=local_interfaces(),
            memo=self.memo,
            changed=self._take_changed(),
        )

    async def reconcile(self) -> None:
        started = time.perf_counter()
        if self.config_dirty:
            self.config_dirty = False
            self._load_config()
        if self.config is None:
            return
        want = dz.desired_state(self.inputs())
        self.bgp.apply(self.config, want.peers, want.routes, want.route_changes, want.routes_base)
        await self.l2.apply(want.l2, warm=bool(self.config.l2_advertisements))
        changed = dz.changed_services(self.current, want)
        self._report(want, changed)
        self.current = want
        self._update_status_maps(want, changed)
        self.status.set_services(self._l2_status, self._bgp_status, changed)
        self._sessions_dirty.set()
        self.reconciles += 1
        self.last_reconcile_seconds = time.perf_counter() - started
        self._last_pass_end = time.monotonic()
        if not self.ready.is_set():
            self.ready.set()
            log.info("speakerReady", services=len(want.services), peers=sorted(want.peers))

    def _update_status_maps(self, want: dz.Desired, changed: list[str] | None) -> None:
        """Service -> interfaces (L2) and -> peers (BGP) for the status objects, patched for
        the changed services only (None: rebuilt from every service)."""
        keys: Iterable[str] = want.services if changed is None else changed
        # Patched in place: the status writer keeps its own copy, and takes `changed` too.
        l2: dict[str, tuple[str, ...]] = {} if changed is None else self._l2_status
        bgp: dict[str, tuple[str, ...]] = {} if changed is None else self._bgp_status
        for key in keys:
            sd = want.services.get(key)
            if sd is not None and sd.layer2.announce:
                l2[key] = sd.l2_interfaces
            else:
                l2.pop(key, None)
            if sd is not None and sd.bgp.announce:
                bgp[key] = sd.bgp_peers
            else:
                bgp.pop(key, None)
        self._l2_status, self._bgp_status = l2, bgp

    def _report(self, want: dz.Desired, changed: list[str] | None = None) -> None:
        """Logs, events and the announced set, on transitions only. `changed`: the services
        that may differ from the previous pass (None: all of them)."""
        self.announced, changes = transitions(self.announced, want, changed)
        for ch in changes:
            self._report_change(want, ch)
        self.orphans &= want.services.keys()
        self.missing_ifaces &= want.services.keys()
        for key in want.services if changed is None else changed:
            sd = want.services.get(key)
            if sd is not None:
                self._report_orphan(key, sd)
                self._report_missing_interfaces(key, sd)

    def _report_change(self, want: dz.Desired, ch: Change) -> None:
        """One service announced or withdrawn: a log line, and an event when announced."""
        about: dict[str, Any] = {"service": ch.service, "protocol": ch.protocol, "ip": list(ch.ips)}
        if ch.kind is ChangeKind.WITHDRAWN:
            log.info("serviceWithdrawn", **about, reason=ch.reason)
            return
        sd = want.services[ch.service]
        log.info(
            "serviceAnnounced",
            **about,
            node=self.node,
            pool=sd.pool,
            orphaned=sd.orphaned,
            msg="service has IP, announcing",
        )
        svc = self.services.cache.get(ch.service)
        if svc is not None:
            self.events.normal(
                svc,
                "nodeAssigned",
                f'announcing from node "{self.node}" with protocol "{ch.protocol}"',
            )

    def _report_orphan(self, key: str, sd: dz.ServiceDesired) -> None:
        """Warn once when a service's IP leaves every pool while we still announce it."""
        if sd.orphaned and key not in self.orphans and (sd.bgp.announce or sd.layer2.announce):
            self.orphans.add(key)
            log.warning(
                "serviceOrphaned",
                service=key,
                ip=list(sd.ips),
                msg="no pool allows this IP any more; announcing it as before until the "
                "controller releases it",
            )
        elif not sd.orphaned:
            self.orphans.discard(key)

    def _report_missing_interfaces(self, key: str, sd: dz.ServiceDesired) -> None:
        """Warn once (log and one event per IP) when layer 2 has none of the wanted interfaces."""
        if sd.interfaces_missing and key not in self.missing_ifaces:
            self.missing_ifaces.add(key)
            log.warning("announceFailed", service=key, ip=list(sd.ips), node=self.node)
            svc = self.services.cache.get(key)
            if svc is not None:
                for ip in sd.ips:
                    self.events.warning(
                        svc,
                        "announceFailed",
                        f'the interfaces specified by LB IP "{ip}" doesn\'t exist in '
                        f'assigned node "{self.node}" with protocol "layer2"',
                    )
        elif not sd.interfaces_missing:
            self.missing_ifaces.discard(key)

    # ---- the collector ------------------------------------------------------------------------

    def _cached_objects(self) -> int:
        return sum(len(i.cache) for i in (*self.informers, *self.status.informers))

    async def _gc_loop(self, stop: asyncio.Event) -> None:
        """Settle the collector while idle, after the caches grew.

        Python's full collection scans every tracked object: after 10 000 Services arrive, the
        next one blocks the loop for about 0.3 s whenever it happens to fall, in the middle of a
        pass or not. Here it runs once the speaker is idle (no pending or recent pass), and what
        survives is frozen, as start-up objects are: later collections leave it alone, so each
        settle scans only what arrived since the last one. Frozen objects are still freed when
        their last reference goes; only reference cycles among them are never collected (cached
        objects are plain JSON, without cycles)."""
        settled_at = self._cached_objects()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), GC_CHECK_S)
            if stop.is_set() or not self.ready.is_set():
                continue
            count = self._cached_objects()
            if count - settled_at < max(GC_MIN_GROWTH, settled_at * GC_GROWTH):
                settled_at = min(settled_at, count)  # shrinking: measure growth from here
                continue
            if self.dirty.is_set() or time.monotonic() - self._last_pass_end < GC_IDLE_S:
                continue
            started = time.perf_counter()
            gc.collect()
            gc.freeze()
            self.gc_settle_seconds = time.perf_counter() - started
            self.gc_settles += 1
            settled_at = count
            log.info("gcSettled", cachedObjects=count, seconds=round(self.gc_settle_seconds, 3))

    # ---- BGPSessionState ----------------------------------------------------------------------

    async def _session_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sessions_dirty.wait(), SESSION_REFRESH)
            self._sessions_dirty.clear()
            if stop.is_set() or not self.ready.is_set():
                continue
            sessions: dict[str, JSON] = {}
            for info in self.bgp.sessions():
                if not info.name:
                    continue
                status: JSON = {
                    "peerAddress": info.address,
                    "state": info.state,
                    "prefixesSent": info.prefixes_sent,
                    "prefixesReceived": info.prefixes_received,
                    "bfdState": info.bfd_state,
                }
                if info.vrf:
                    status["vrf"] = info.vrf
                if info.interface:  # unnumbered: peerAddress is the router's link-local address
                    status["interface"] = info.interface
                if info.established_since:
                    status["establishedSince"] = info.established_since
                if info.last_error:
                    status["lastError"] = info.last_error
                    status["lastErrorTime"] = info.last_error_time
                sessions[info.name] = status
            self.status.set_sessions(sessions)
            await asyncio.sleep(0.2)  # a burst of session events becomes one write

    # ---- metrics --------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        announced = [
            (key, protocol, self.node, ip)
            for (key, protocol), ips in sorted(self.announced.items())
            for ip in ips
        ]
        return {
            "announced": announced,
            "bgp": self.bgp.speaker.metrics(),
            "bfd": self.bgp.engine.metrics() if self.bgp._started else {},
            "layer2": self.l2.counters(),
        }
