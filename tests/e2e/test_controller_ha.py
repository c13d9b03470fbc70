"""Crashes and failover: kill -9 the controller while Services are being created, restart it,
and no IP moves or duplicates; two replicas with Lease leader election, the standby takes over
within a few seconds, moves no IP, and a paused (deposed) leader writes nothing when it wakes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

from metallb_py.kube.rest import SERVICES, Rest
from tests.lab.apiserver import ApiServer, apiserver_fixture
from tests.lab.controller_lab import (
    Controller,
    client,
    create_pool,
    create_service,
    events_for,
    install_crds,
    service_ips,
    start_controller,
    wait_for,
)

apiserver = apiserver_fixture()


class IPWatch:
    """Polls every Service's IPs and remembers the first IP each one showed: a moved IP or an
    IP on two services is caught whenever it happens, not only at the end."""

    def __init__(self, rest: Rest) -> None:
        self.rest = rest
        self.first: dict[str, list[str]] = {}
        self.moved: list[str] = []
        self.duplicates: list[str] = []

    async def sample(self) -> dict[str, list[str]]:
        got = await service_ips(self.rest)
        owners: dict[str, str] = {}
        for name, ips in got.items():
            for ip in ips:
                if ip in owners:
                    self.duplicates.append(f"{ip}: {owners[ip]} and {name}")
                owners[ip] = name
            if not ips:
                continue
            seen = self.first.setdefault(name, ips)
            if seen != ips:
                self.moved.append(f"{name}: {seen} -> {ips}")
        return got

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample()
            await asyncio.sleep(0.2)


async def all_assigned(watch: IPWatch, names: list[str]) -> bool:
    got = await watch.sample()
    return all(got.get(n) for n in names)


def leading(ctl: Controller) -> bool:
    return bool(ctl.events("leading"))


def status_writes(ctl: Controller) -> float:
    m = re.search(r"^metallb_k8s_client_status_writes_total (\S+)$", ctl.metrics(), re.M)
    return float(m.group(1)) if m else 0.0


async def test_kill9_during_creation_moves_nothing(apiserver: ApiServer, tmp_path: Path) -> None:
    names = [f"svc{i:03d}" for i in range(120)]
    async with client(apiserver) as rest:
        await install_crds(rest)
        await create_pool(rest, "pool", ["192.0.2.0/24"])
        ctl = start_controller(apiserver, tmp_path, "--lease-duration", "2")
        watch = IPWatch(rest)
        stop = asyncio.Event()
        poller = asyncio.create_task(watch.run(stop))
        try:
            for i, name in enumerate(names):
                await create_service(rest, name, port=1000 + i)
                if i == 60:
                    # Crash while allocations are being written.
                    await wait_for(
                        lambda: _some_assigned(watch), 30, "some allocations before the crash"
                    )
                    ctl.kill()
                    ctl = start_controller(apiserver, tmp_path, "--lease-duration", "2")
            await wait_for(lambda: all_assigned(watch, names), 90, "every service to get an IP")
        finally:
            stop.set()
            await poller
            ctl.stop()
        await watch.sample()
        assert watch.moved == []
        assert watch.duplicates == []
        assert len({ip for ips in watch.first.values() for ip in ips}) == len(names)


async def _some_assigned(watch: IPWatch) -> bool:
    return sum(1 for ips in (await watch.sample()).values() if ips) >= 10


async def test_leader_failover_moves_no_ip_and_fences_the_old_leader(
    apiserver: ApiServer, tmp_path: Path
) -> None:
    lease = 2.0
    async with client(apiserver) as rest:
        await install_crds(rest)
        await create_pool(rest, "pool", ["198.51.100.0/26"])
        a = start_controller(apiserver, tmp_path, "--lease-duration", str(lease), name="a")
        b: Controller | None = None
        watch = IPWatch(rest)
        try:
            await wait_for(lambda: _true(leading(a)), 30, "replica a to lead")
            b = start_controller(apiserver, tmp_path, "--lease-duration", str(lease), name="b")
            first = [f"first{i}" for i in range(20)]
            for i, name in enumerate(first):
                await create_service(rest, name, port=2000 + i)
            await wait_for(lambda: all_assigned(watch, first), 60, "first services' IPs")
            assert not leading(b)

            # Let a settle (its pool status write too), then count what it has written.
            writes_at_pause = await wait_for(lambda: _settled(a), 30, "a to be idle")
            assert writes_at_pause >= len(first)  # it did write while it led
            # Pause the leader (a partition, a long GC pause): the standby takes over.
            os.killpg(a.popen.pid, signal.SIGSTOP)
            paused_at = time.monotonic()
            try:
                second = [f"second{i}" for i in range(10)]
                for i, name in enumerate(second):
                    await create_service(rest, name, port=3000 + i)
                await wait_for(lambda: all_assigned(watch, second), 60, "standby allocations")
                takeover = time.monotonic() - paused_at
            finally:
                os.killpg(a.popen.pid, signal.SIGCONT)
            assert leading(b)
            # "Within a few seconds": a lease of 2 s; generous bound for a loaded machine.
            assert takeover < 10 * lease, takeover

            # The old leader wakes with stale state; fencing must keep it from writing.
            await wait_for(lambda: _true(bool(a.events("leadershipLost"))), 20, "a to step down")
            third = [f"third{i}" for i in range(5)]
            for i, name in enumerate(third):
                await create_service(rest, name, port=4000 + i)
            await wait_for(lambda: all_assigned(watch, third), 60, "allocations after wake")
            # Fencing: from the pause on, the deposed leader wrote nothing at all.
            assert status_writes(a) == writes_at_pause

            # Kill the new leader outright: a takes over again, still moving nothing.
            b.kill()
            fourth = [f"fourth{i}" for i in range(5)]
            for i, name in enumerate(fourth):
                await create_service(rest, name, port=5000 + i)
            await wait_for(lambda: all_assigned(watch, fourth), 60, "allocations after kill -9")
        finally:
            a.stop()
            if b is not None:
                b.stop()
        await watch.sample()
        assert watch.moved == []
        assert watch.duplicates == []


async def _settled(ctl: Controller) -> float:
    """The controller's write count once it stays the same for 1.5 s (0.0 means not yet)."""
    before = status_writes(ctl)
    await asyncio.sleep(1.5)
    after = status_writes(ctl)
    return after if after == before and after > 0 else 0.0


async def _true(value: bool) -> bool:
    return value


async def test_startup_resolves_duplicate_claims_and_keeps_orphans(
    apiserver: ApiServer, tmp_path: Path
) -> None:
    async with client(apiserver) as rest:
        await install_crds(rest)
        await create_pool(rest, "pool", ["192.0.2.0/29"])
        # Status written while no controller runs (a previous controller's race, or a restore
        # from backup): two services claim one IP, a third holds an IP outside every pool.
        for name in ("older", "newer", "outside"):
            await create_service(rest, name)
            await asyncio.sleep(1.1)  # creationTimestamp has one-second resolution
        claims = {"older": "192.0.2.5", "newer": "192.0.2.5", "outside": "203.0.113.7"}
        for name, ip in claims.items():
            svc = await rest.get(SERVICES.path("default", name))
            svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip}]}}
            await rest.replace(SERVICES.path("default", name, "status"), svc)

        ctl = start_controller(apiserver, tmp_path, "--lease-duration", "2")
        try:
            watch = IPWatch(rest)

            async def resolved() -> bool:
                got = await watch.sample()
                return bool(got.get("newer")) and got["newer"] != ["192.0.2.5"]

            await wait_for(resolved, 30, "the younger claim to be moved")
            got = await service_ips(rest)
            assert got["older"] == ["192.0.2.5"]
            assert got["outside"] == ["203.0.113.7"]  # orphaned, not renumbered
            assert got["newer"] == ["192.0.2.0"]

            async def warned() -> bool:
                events = await events_for(rest, "newer")
                return any(
                    e["reason"] == "DuplicateAllocation" and e["type"] == "Warning" for e in events
                )

            await wait_for(warned, 15, "a DuplicateAllocation warning")
        finally:
            ctl.stop()
