"""The parsed Config -> the allocator's pool inputs.

Pool entries reach the allocator as the integer blocks the configuration parser already computed,
as MetalLB's allocator takes its parsed pools: nothing is turned back into text and parsed again.
"""

from __future__ import annotations

from collections.abc import Iterable

from metallb_py.allocator import PoolSpec
from metallb_py.allocator.addresses import Block
from metallb_py.config import Config, Pool
from metallb_py.config.addresses import AddressRange


def blocks(ranges: Iterable[AddressRange]) -> tuple[Block, ...]:
    """Parsed pool entries -> the allocator's `(family, first, last)` blocks, order kept."""
    return tuple((r.family, int(r.first), int(r.last)) for r in ranges)


def pool_spec(pool: Pool) -> PoolSpec:
    alloc = pool.service_allocation
    return PoolSpec(
        name=pool.name,
        addresses=blocks(pool.ranges),
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
