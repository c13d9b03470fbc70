"""In-process allocator throughput: allocations/s and releases/s on a /16 IPv4 and a /64 IPv6
pool, plus a sharing-heavy run.

Smoke size by default (runs in `make test`); 50 000 services with METALLB_BENCH=full. Results are
printed as `BENCH ...` lines (see -s); the figures belong in docs/bench-controller.md. Only
correctness and a very generous floor (a broken data structure, e.g. a pool scan per allocation,
falls far below it) are asserted.
"""

from __future__ import annotations

import os
import time

import pytest

from metallb_py.allocator import Allocator, Outcome, PoolSpec, ServiceRequest
from metallb_py.config.addresses import parse_entry
from metallb_py.controller.convert import blocks

FULL = os.environ.get("METALLB_BENCH") == "full"
N = 50_000 if FULL else 5_000


def _run(pool: str, family: int, sharing: bool = False) -> tuple[float, float, float]:
    alloc = Allocator([PoolSpec("bench", blocks([parse_entry(pool)]))])
    reqs = [
        ServiceRequest(
            key=f"bench/s{i}",
            families=(family,),
            sharing_key=f"k{i // 4}" if sharing else "",
            ports=frozenset({("TCP", 1000 + i % 4)}),
        )
        for i in range(N)
    ]
    start = time.perf_counter()
    cpu = time.process_time()
    for req in reqs:
        result = alloc.assign(req)
        assert result.outcome is Outcome.ALLOCATED
    allocated = time.perf_counter() - start
    cpu = time.process_time() - cpu
    stats = alloc.stats()["bench"]
    assert stats.services == N
    assert stats.in_use == (N // 4 if sharing else N)
    start = time.perf_counter()
    for req in reqs:
        alloc.release(req.key)
    released = time.perf_counter() - start
    assert alloc.stats()["bench"].in_use == 0
    return allocated, released, cpu


@pytest.mark.parametrize(
    ("label", "pool", "family", "sharing"),
    [
        ("ipv4 /16", "198.18.0.0/16", 4, False),
        ("ipv6 /64", "2001:db8::/64", 6, False),
        ("ipv4 /16 shared x4", "198.18.0.0/16", 4, True),
        ("ipv4 /8", "10.0.0.0/8", 4, False),
    ],
)
def test_allocator_throughput(label: str, pool: str, family: int, sharing: bool) -> None:
    allocated, released, cpu = _run(pool, family, sharing)
    print(
        f"BENCH allocator {label}: {N} services allocated in {allocated:.3f} s wall, "
        f"{cpu:.3f} s CPU ({N / allocated:,.0f}/s wall, {N / max(cpu, 1e-9):,.0f}/s CPU), "
        f"released in {released:.3f} s ({N / released:,.0f}/s); load {os.getloadavg()[0]:.1f}"
    )
    # CPU time, not wall time: the machine is shared, and a pool scan would show in either.
    assert N / max(cpu, 1e-9) > 5_000
