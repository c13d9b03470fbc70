"""Leader election on a coordination.k8s.io/v1 Lease, with fencing.

The algorithm is client-go's: the leader renews the Lease every `retry_period`; a candidate takes
it over only after seeing the same record unchanged for `lease_duration` (measured on its own
monotonic clock, so clock skew between hosts does not matter). Updates carry the Lease's
resourceVersion, so two candidates can never both win a round.

Fencing: the leader may write only while `may_write()` holds, i.e. until `renew_deadline`
(< lease_duration) after its last successful renewal. A deposed or partitioned leader therefore
stops writing before any standby can have acquired the Lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from metallb_py.kube.client import connect
from metallb_py.kube.rest import LEASES, ApiError, Rest
from metallb_py.log import get_logger

log = get_logger("kube")


def default_identity() -> str:
    pod = os.environ.get("METALLB_POD_NAME") or os.environ.get("POD_NAME")
    base = pod or socket.gethostname()
    return f"{base}_{uuid.uuid4().hex[:8]}"


def _micro_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        rest: Rest,
        namespace: str,
        name: str,
        identity: str | None = None,
        *,
        lease_duration: float = 4.0,
        renew_deadline: float = 3.0,
        retry_period: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.rest = rest
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock
        self.wall_clock = wall_clock
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()
        self._valid_until = 0.0
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self.transitions = 0
        # Whether the last successful round took the Lease from someone else (or from nobody)
        # rather than renewing our own record: state built while leading may be stale.
        self.took_over = True
        self.on_started: list[Callable[[], None]] = []
        self.on_stopped: list[Callable[[], None]] = []

    def may_write(self) -> bool:
        """True only while this replica holds a Lease it renewed recently enough."""
        return self.leading.is_set() and self.clock() < self._valid_until

    @property
    def holder(self) -> str:
        return self._observed[0] if self._observed else ""

    async def run(self, stop: asyncio.Event) -> None:
        """Campaign, lead, and on losing the Lease go back to campaigning, until `stop`.

        A late renewal only pauses writing (`may_write()` turns false at the renew deadline);
        leadership ends when another holder is seen. Re-acquiring a Lease that someone else
        (or nobody) held meanwhile is reported as a stop followed by a start, so state built
        while leading is rebuilt.
        """
        lapsed = False
        try:
            while not stop.is_set():
                acquired = await self._attempt()
                if acquired:
                    if self.leading.is_set() and self.took_over:
                        self._stop_leading("the lease changed hands meanwhile")
                    if not self.leading.is_set():
                        self._start_leading()
                    elif lapsed:
                        log.info("leaseRenewed", msg="writes resume", lease=self.name)
                    lapsed = False
                elif self.leading.is_set() and self.holder not in ("", self.identity):
                    self._stop_leading(f"lease held by {self.holder}")
                    lapsed = False
                if self.leading.is_set() and not self.may_write() and not lapsed:
                    lapsed = True
                    log.warning(
                        "leaseRenewalLate",
                        msg="writes paused",
                        lease=self.name,
                        identity=self.identity,
                    )
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.retry_period)
        finally:
            if self.leading.is_set():
                self._stop_leading("shutting down")
                await self._release()

    def _start_leading(self) -> None:
        self.lost.clear()
        self.leading.set()
        log.info("leadershipAcquired", lease=self.name, identity=self.identity)
        for cb in self.on_started:
            cb()

    def _stop_leading(self, why: str) -> None:
        self._valid_until = 0.0
        self.leading.clear()
        self.lost.set()
        log.warning("leadershipLost", lease=self.name, reason=why)
        for cb in self.on_stopped:
            cb()

    async def _attempt(self) -> bool:
        started = self.clock()
        try:
            return await asyncio.wait_for(self._try_acquire_or_renew(started), self.renew_deadline)
        except (TimeoutError, ApiError, aiohttp.ClientError, OSError, ValueError) as exc:
            log.debug("leaseAttemptFailed", lease=self.name, error=str(exc))
            return False

    async def _try_acquire_or_renew(self, started: float) -> bool:
        path = LEASES.path(self.namespace, self.name)
        now_wall = _micro_time(self.wall_clock())
        try:
            lease = await self.rest.get(path)
        except ApiError as exc:
            if not exc.not_found:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(now_wall, now_wall, 0),
            }
            await self.rest.create(LEASES.path(self.namespace), body)
            self._renewed(started, (self.identity, now_wall))
            self.took_over = True
            return True
        spec: dict[str, Any] = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed = record
            self._observed_at = self.clock()
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and self.clock() < self._observed_at + duration:
            return False  # someone else holds a live lease
        transitions = int(spec.get("leaseTransitions") or 0)
        acquire = spec.get("acquireTime") or now_wall
        if holder != self.identity:
            transitions += 1
            acquire = now_wall
        lease["spec"] = self._spec(acquire, now_wall, transitions)
        await self.rest.replace(path, lease)  # carries resourceVersion: a race loses with 409
        self.took_over = holder != self.identity
        self.transitions = transitions
        self._renewed(started, (self.identity, now_wall))
        return True

    def _spec(self, acquire: str, renew: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration)),
            "acquireTime": acquire,
            "renewTime": renew,
            "leaseTransitions": transitions,
        }

    def _renewed(self, started: float, record: tuple[str, str]) -> None:
        # Count from when the round started: the write may have landed at any point since.
        self._valid_until = started + self.renew_deadline
        self._observed = record
        self._observed_at = self.clock()

    async def _release(self) -> None:
        """Hand the Lease back on a clean shutdown so a standby need not wait it out."""
        path = LEASES.path(self.namespace, self.name)
        try:
            lease = await asyncio.wait_for(self.rest.get(path), 2.0)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            spec["holderIdentity"] = ""
            spec["leaseDurationSeconds"] = 1
            lease["spec"] = spec
            await asyncio.wait_for(self.rest.replace(path, lease), 2.0)
        except Exception as exc:
            log.debug("leaseReleaseFailed", lease=self.name, error=str(exc))


async def connect_elector(
    kubeconfig: str | None, namespace: str, name: str, lease_duration: float, renew_share: float
) -> LeaderElector:
    """An elector for a component's Lease, on connections of its own: renewals must never queue
    behind a burst of status writes. The caller closes `elector.rest` at the end."""
    rest = await connect(kubeconfig, pool_size=2)
    return LeaderElector(
        rest,
        namespace,
        name,
        lease_duration=lease_duration,
        renew_deadline=lease_duration * renew_share,
        retry_period=max(0.1, lease_duration / 8),
    )


async def drain(tasks: Iterable[asyncio.Task[Any] | None], grace: float = 5.0) -> None:
    """After stop: give each background task `grace` seconds to finish, then cancel it."""
    for task in tasks:
        if task is None:
            continue
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, grace)


async def wait_or_stop(awaitable: Awaitable[Any], stop: asyncio.Event) -> None:
    """Wait for `awaitable` or `stop`, whichever comes first."""
    task = asyncio.ensure_future(awaitable)
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    for t in (task, stopper):
        if t not in done:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t


async def _propagate(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


async def lead_while_elected(
    elector: LeaderElector | None,
    stop: asyncio.Event,
    lead: Callable[[asyncio.Event, bool], Awaitable[None]],
    log: Any,
) -> None:
    """Run `lead(lead_stop, took_over)` each time this replica holds the Lease (always, without
    an elector) until `stop`; `lead_stop` is set the moment the Lease is lost, so writes stop."""
    while not stop.is_set():
        if elector is not None:
            await wait_or_stop(elector.leading.wait(), stop)
            if stop.is_set():
                break
        lead_stop = asyncio.Event()
        watchers = [asyncio.create_task(_propagate(stop, lead_stop))]
        if elector is not None:
            watchers.append(asyncio.create_task(_propagate(elector.lost, lead_stop)))
        fresh = elector.took_over if elector else True
        log.info("leading", identity=elector.identity if elector else "", rebuild=fresh)
        try:
            await lead(lead_stop, fresh)
        finally:
            for w in watchers:
                w.cancel()
        if not stop.is_set():
            log.warning("stoppedLeading", msg="standing by; no writes until leading again")
