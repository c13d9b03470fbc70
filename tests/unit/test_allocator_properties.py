"""Properties of the allocator under random pools, services, releases and config changes:

* no IP is ever held by two services that cannot share it;
* every IP held (and not flagged orphaned) lies in an allowed pool for its service;
* the same inputs give the same allocations;
* releasing everything restores every pool's free count.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metallb_py.allocator import Allocator, PoolSpec, ServiceRequest
from metallb_py.allocator.addresses import is_buggy, parse_ip
from metallb_py.config.addresses import parse_entry
from metallb_py.controller.convert import blocks

BLOCKS = [
    "192.0.2.0/29",
    "192.0.2.254-192.0.3.1",
    "198.51.100.0/31",
    "2001:db8::/126",
    "2001:db8:1::/127",
]
NAMES = [f"s{i}" for i in range(8)]
REQUESTABLE = ["192.0.2.1", "192.0.2.255", "198.51.100.1", "2001:db8::2", "203.0.113.9"]


@st.composite
def pool_sets(draw: Any) -> list[PoolSpec]:
    chosen = draw(st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=4, unique=True))
    pools: list[PoolSpec] = []
    for i, block in enumerate(chosen):
        pinned = draw(st.booleans())
        pools.append(
            PoolSpec(
                name=draw(st.sampled_from(["p0", "p1", "p2", "p3"])) + f"-{i}",
                addresses=blocks([parse_entry(block)]),
                auto_assign=draw(st.booleans()) or not pinned,
                avoid_buggy_ips=draw(st.booleans()),
                service_allocation=pinned,
                priority=draw(st.integers(0, 2)) if pinned else 0,
                namespaces=frozenset(draw(st.sets(st.sampled_from(["a", "b"]))))
                if pinned
                else frozenset(),
            )
        )
    return pools


@st.composite
def services(draw: Any) -> ServiceRequest:
    name = draw(st.sampled_from(NAMES))
    ns = draw(st.sampled_from(["a", "b"]))
    fams = draw(
        st.sampled_from(
            [
                ((4,), "SingleStack"),
                ((6,), "SingleStack"),
                ((4, 6), "PreferDualStack"),
                ((6, 4), "RequireDualStack"),
            ]
        )
    )
    requested: tuple[str, ...] = ()
    if draw(st.integers(0, 5)) == 0:
        requested = (draw(st.sampled_from(REQUESTABLE)),)
    return ServiceRequest(
        key=f"{ns}/{name}",
        namespace=ns,
        families=fams[0],
        family_policy=fams[1],
        requested_ips=requested,
        requested_pool=draw(st.sampled_from([None, None, None, "p0-0", "p1-1"])),
        sharing_key=draw(st.sampled_from(["", "k1", "k1", "k2"])),
        backend_key=draw(st.sampled_from(["", "", "app=x"])),
        ports=frozenset(
            draw(st.sets(st.sampled_from([("TCP", 80), ("UDP", 53), ("TCP", 53)]), min_size=1))
        ),
    )


ops = st.lists(
    st.one_of(
        st.tuples(st.just("assign"), services()),
        st.tuples(st.just("release"), st.sampled_from(NAMES), st.sampled_from(["a", "b"])),
        st.tuples(st.just("config"), pool_sets()),
    ),
    max_size=40,
)


def run(pools: list[PoolSpec], steps: list, reallocate: bool) -> tuple[Allocator, dict]:
    alloc = Allocator(pools, reallocate_on_config_change=reallocate)
    latest: dict[str, ServiceRequest] = {}
    current = {p.name: p for p in pools}
    for step in steps:
        if step[0] == "assign":
            svc = step[1]
            alloc.assign(svc)
            latest[svc.key] = svc
        elif step[0] == "release":
            alloc.release(f"{step[2]}/{step[1]}")
        else:
            alloc.set_pools(step[1])
            current = {p.name: p for p in step[1]}
        check_invariants(alloc, latest, current)
    return alloc, latest


def can_share(a: ServiceRequest, b: ServiceRequest) -> bool:
    return (
        bool(a.sharing_key)
        and a.sharing_key == b.sharing_key
        and a.backend_key == b.backend_key
        and not (a.ports & b.ports)
    )


def in_pool(ip: str, pool: PoolSpec) -> bool:
    addr = ipaddress.ip_address(ip)
    for family, first, last in pool.addresses:
        if family == addr.version and first <= int(addr) <= last:
            return not (pool.avoid_buggy_ips and is_buggy(*parse_ip(ip)))
    return False


def check_invariants(
    alloc: Allocator, latest: dict[str, ServiceRequest], pools: dict[str, PoolSpec]
) -> None:
    by_ip: dict[str, list[str]] = {}
    for view in alloc.allocations():
        for ip in view.ips:
            by_ip.setdefault(ip, []).append(view.key)
        if view.orphaned:
            continue
        pool = pools[view.pool or ""]
        svc = latest[view.key]
        assert all(in_pool(ip, pool) for ip in view.ips), (view, pool)
        if pool.service_allocation and pool.namespaces:
            assert svc.namespace in pool.namespaces
        if svc.requested_ips:
            assert set(view.ips) == set(svc.requested_ips)
        if svc.requested_pool:
            assert view.pool == svc.requested_pool
    for ip, keys in by_ip.items():
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                assert can_share(latest[a], latest[b]), (ip, latest[a], latest[b])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools=pool_sets(), steps=ops, reallocate=st.booleans())
def test_invariants_hold_and_allocation_is_deterministic(
    pools: list[PoolSpec], steps: list, reallocate: bool
) -> None:
    first, latest = run(pools, steps, reallocate)
    second, _ = run(pools, steps, reallocate)
    assert list(first.allocations()) == list(second.allocations())

    # Releasing everything restores every pool's counters and free space.
    fresh = Allocator(list(second._pools[n].spec for n in second.pool_names))
    for key in list(latest):
        first.release(key)
    assert first.orphaned_addresses == 0
    for name, stats in first.stats().items():
        assert (stats.in_use_v4, stats.in_use_v6, stats.services) == (0, 0, 0)
        for fam in (4, 6):
            got = first._pools[name].free_intervals(fam)
            want = fresh._pools[name].free_intervals(fam)
            avoid = first._pools[name].spec.avoid_buggy_ips
            # Pruned never-usable (.0/.255) addresses aside, the free sets are identical.
            every = {x for s, e in want for x in range(s, e + 1)}
            usable = {x for x in every if not (avoid and is_buggy(fam, x))}
            have = {x for s, e in got for x in range(s, e + 1)}
            assert usable <= have <= every
