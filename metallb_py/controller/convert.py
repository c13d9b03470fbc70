"""The parsed Config -> the allocator's pool inputs."""

from __future__ import annotations

from metallb_py.allocator import PoolSpec
from metallb_py.config import Config, Pool


def pool_spec(pool: Pool) -> PoolSpec:
    alloc = pool.service_allocation
    return PoolSpec(
        name=pool.name,
        addresses=tuple(f"{r.first}-{r.last}" for r in pool.ranges),
        auto_assign=pool.auto_assign,
        avoid_buggy_ips=pool.avoid_buggy_ips,
        service_allocation=alloc is not None,
        priority=alloc.priority if alloc else 0,
        namespaces=frozenset(alloc.namespaces) if alloc else frozenset(),
        namespace_selectors=tuple(alloc.namespace_selectors) if alloc else (),
        service_selectors=tuple(alloc.service_selectors) if alloc else (),
    )


def pool_specs(config: Config | None) -> list[PoolSpec]:
    return [pool_spec(p) for p in (config.pools if config else ())]
