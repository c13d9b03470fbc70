"""End-to-end controller throughput against the embedded API server: N Services of type
LoadBalancer created (32 requests in flight) while `metallb-py controller` runs; the clock stops
when a watch has seen every one of them with an IP in its status.

Smoke size by default (runs in `make test`); 50 000 services with METALLB_BENCH=full (target:
<= 90 s, i.e. 2x Cilium's 278 services/s). The API server's own create rate, measured in the same
run, is the floor any controller on it can reach. Printed as `BENCH ...` lines (see -s); the
figures belong in docs/bench-controller.md. Only correctness is asserted: every service gets a
distinct IP from the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import time
from pathlib import Path

import pytest

from metallb_py.kube.informer import Informer
from metallb_py.kube.rest import SERVICES, Rest
from metallb_py.objects import JSON
from tests.lab.apiserver import ApiServer, apiserver_fixture
from tests.lab.controller_lab import (
    Controller,
    client,
    create_pool,
    ingress_ips,
    install_crds,
    service_body,
    start_controller,
    wait_for,
)

FULL = os.environ.get("METALLB_BENCH") == "full"
N = int(os.environ.get("METALLB_BENCH_N") or (50_000 if FULL else 300))
NAMESPACE = "bench"
# RFC 2544 benchmarking space: no traffic is ever sent to these addresses.
POOL = "198.18.0.0/15"

apiserver = apiserver_fixture()


@pytest.mark.timeout(3600)
async def test_controller_end_to_end(apiserver: ApiServer, tmp_path: Path) -> None:
    async with client(apiserver) as rest:
        await install_crds(rest)
        await rest.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        )
        await create_pool(rest, "bench", [POOL])
        ctl = start_controller(apiserver, tmp_path, "--lease-duration", "4", "--workers", "32")
        try:
            await wait_for(lambda: _leading(ctl), 60, "the controller to lead")
            rss_before = _rss_mb(ctl.popen.pid)
            created, total, assigned = await _measure(rest, ctl)
            rss_after = _rss_mb(ctl.popen.pid)
        finally:
            ctl.stop()
        print(
            f"BENCH controller e2e: {N} services created in {created:.1f} s "
            f"({N / created:,.0f}/s, the API server's create rate), all with status after "
            f"{total:.1f} s ({N / total:,.0f} services/s end to end; Cilium anchor 278/s); "
            f"load {os.getloadavg()[0]:.1f}"
        )
        print(
            f"BENCH controller RSS: {rss_before:.0f} MB before, {rss_after:.0f} MB with {N} "
            f"services ({(rss_after - rss_before) / N * 1000:.1f} MB per 1 000 services)"
        )
        ips = [ip for v in assigned.values() for ip in v]
        assert len(ips) == N == len(set(ips))
        net = ipaddress.ip_network(POOL)
        assert all(ipaddress.ip_address(ip) in net for ip in ips)


async def _measure(rest: Rest, ctl: Controller) -> tuple[float, float, dict[str, list[str]]]:
    await wait_for(lambda: _leading(ctl), 60, "the controller to lead")
    assigned: dict[str, list[str]] = {}
    done = asyncio.Event()

    def seen(key: str, old: JSON | None, new: JSON | None) -> None:
        if new is not None and key.startswith(f"{NAMESPACE}/"):
            ips = ingress_ips(new)
            if ips:
                assigned[key] = ips
                if len(assigned) >= N:
                    done.set()

    watcher = Informer(rest, SERVICES, namespace=NAMESPACE, resync_period=0)
    watcher.add_handler(seen)
    stop = asyncio.Event()
    watch_task = asyncio.create_task(watcher.run(stop))
    sem = asyncio.Semaphore(32)

    async def create(i: int) -> None:
        async with sem:
            body = service_body(
                f"s{i:05d}", NAMESPACE, port=80, allocateLoadBalancerNodePorts=False
            )
            await rest.create(SERVICES.path(NAMESPACE), body)

    try:
        await watcher.synced.wait()
        start = time.perf_counter()
        await asyncio.gather(*(create(i) for i in range(N)))
        created = time.perf_counter() - start
        await asyncio.wait_for(done.wait(), max(120.0, N / 20))
        total = time.perf_counter() - start
    finally:
        stop.set()
        watch_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch_task
    return created, total, assigned


def _rss_mb(pid: int) -> float:
    """Resident set of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _leading(ctl: Controller) -> bool:
    return bool(ctl.events("leading"))
