"""Benchmark driver for the speaker, run inside the router namespace (next to BIRD).

    python -m tests.lab.speaker_bench latency --kubeconfig K --count N --first 203.0.113.10 --out F
    python -m tests.lab.speaker_bench bulk --kubeconfig K --count N --first 198.18.0.1 --out F

`latency`: for each of N services in turn, create its EndpointSlice, then the Service asking for a
known IP, and time until the route for that IP appears in the router's kernel table (BIRD exports
what it learns at once; a netlink subscription timestamps the route). Also timed: from the moment
the Service's status carries the IP (seen on a watch) to the route — the speaker's share.
`bulk`: create N services (and slices) as fast as the API server takes them.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
import threading
import time
from typing import Any

from pyroute2 import IPRoute

from metallb_py.kube.client import connect
from metallb_py.kube.rest import ENDPOINTSLICES, SERVICES, ApiError, Rest
from tests.lab.speaker_lab import service


class RouteWatch:
    """Timestamps (monotonic) of the first RTM_NEWROUTE per destination."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.bound = threading.Event()
        # pyroute2 runs its own event loop: keep it off the asyncio thread.
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.bound.wait(10):
            raise RuntimeError("netlink subscription failed")

    def _run(self) -> None:
        ipr = IPRoute()
        ipr.bind()
        self.bound.set()
        while True:
            try:
                msgs = ipr.get()
            except Exception:
                return
            now = time.monotonic()
            for m in msgs:
                if m.get("event") != "RTM_NEWROUTE":
                    continue
                dst = m.get_attr("RTA_DST")
                if dst is not None:
                    self.seen.setdefault(f"{dst}/{m['dst_len']}", now)


def service_body(name: str, ip: str) -> dict[str, Any]:
    body = service(name, annotations={"metallb.io/loadBalancerIPs": ip})
    body["spec"]["allocateLoadBalancerNodePorts"] = False  # 10 000 services: more than the range
    return body


def slice_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-eps",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.10"], "nodeName": "node1"}],
    }


async def _create(rest: Rest, name: str, ip: str) -> None:
    for path, body in (
        (ENDPOINTSLICES.path("default"), slice_body(name)),
        (SERVICES.path("default"), service_body(name, ip)),
    ):
        for attempt in range(5):
            try:
                await rest.create(path, body)
                break
            except ApiError as exc:
                if exc.conflict:
                    break
                if attempt == 4:
                    raise
                await asyncio.sleep(0.2)


async def latency(rest: Rest, count: int, first: str, prefix: str) -> dict[str, Any]:
    routes = RouteWatch()
    status_seen: dict[str, float] = {}

    async def watch_status() -> None:
        listed = await rest.get(SERVICES.path("default"))
        rv = listed["metadata"]["resourceVersion"]
        async for ev in rest.watch(SERVICES.path("default"), {"resourceVersion": rv}, 600):
            obj = ev.get("object") or {}
            ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            for e in ingress:
                if e.get("ip"):
                    status_seen.setdefault(e["ip"], time.monotonic())

    watcher = asyncio.create_task(watch_status())
    await asyncio.sleep(0.3)
    base = ipaddress.ip_address(first)
    create_to_route: list[float] = []
    status_to_route: list[float] = []
    create_to_status: list[float] = []
    created: dict[str, float] = {}
    missed = 0
    late: list[dict[str, Any]] = []  # the samples that missed, with where the time went
    for i in range(count):
        ip = str(base + i)
        name = f"{prefix}-{i}"
        key = f"{ip}/32"
        t0 = created[ip] = time.monotonic()
        await _create(rest, name, ip)
        deadline = t0 + 15
        while key not in routes.seen and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        if key not in routes.seen:
            missed += 1
            late.append({"ip": ip, "status_after_s": _since(status_seen.get(ip), t0)})
            continue
        create_to_route.append(routes.seen[key] - t0)
        await asyncio.sleep(0.05)
    await asyncio.sleep(1)  # let the watch catch up before pairing status and route times
    watcher.cancel()
    for ip, t0 in created.items():
        if ip in status_seen:
            create_to_status.append(status_seen[ip] - t0)
            if f"{ip}/32" in routes.seen:
                status_to_route.append(routes.seen[f"{ip}/32"] - status_seen[ip])
    for sample in late:
        sample["route_after_s"] = _since(
            routes.seen.get(f"{sample['ip']}/32"), created[sample["ip"]]
        )
    return {
        "create_to_route": create_to_route,
        "status_to_route": status_to_route,
        "create_to_status": create_to_status,
        "missed": missed,
        "late": late,
    }


def _since(t: float | None, t0: float) -> float | None:
    return None if t is None else round(t - t0, 3)


async def bulk(rest: Rest, count: int, first: str, prefix: str) -> dict[str, Any]:
    base = ipaddress.ip_address(first)
    sem = asyncio.Semaphore(16)
    started = time.monotonic()

    async def one(i: int) -> None:
        async with sem:
            await _create(rest, f"{prefix}-{i}", str(base + i))

    await asyncio.gather(*(one(i) for i in range(count)))
    return {"created": count, "seconds": time.monotonic() - started}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("latency", "bulk"))
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--first", required=True)
    p.add_argument("--prefix", default="bench")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    result = asyncio.run(_run(args))
    with open(args.out, "w") as f:
        json.dump(result, f)
    return 0


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    rest = await connect(args.kubeconfig, pool_size=32)
    try:
        fn = latency if args.mode == "latency" else bulk
        return await fn(rest, args.count, args.first, args.prefix)
    finally:
        await rest.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
