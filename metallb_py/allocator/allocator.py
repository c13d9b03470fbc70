"""The IP allocator: which addresses each Service holds, and what a new one gets.

Pure and synchronous: the controller feeds it pools and services and applies its answers to the
cluster. Semantics follow MetalLB's controller (requested IPs, pool choice, IP sharing, config
changes) with three deliberate differences:

* automatic pools are tried in name order and pinned pools of equal priority too, so the same
  inputs always give the same answer (MetalLB iterates a Go map);
* a service with a sharing key goes onto an IP already used by compatible services with the same
  key before taking a fresh one, so sharing does not depend on scan luck;
* a configuration change never renumbers a service: an allocation the new pools no longer allow
  is kept and flagged as orphaned (its IP is never handed to anyone else) until the service
  changes, is deleted or asks for reallocation. `reallocate_on_config_change=True` restores
  MetalLB's behaviour.

Free addresses are interval sets, so a /8 or a /64 costs the same as a /28.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from metallb_py.allocator.addresses import (
    MAX_INT64,
    Address,
    IPv4,
    IPv6,
    count_buggy,
    format_ip,
    is_buggy,
    parse_ip,
)
from metallb_py.allocator.intervals import IntervalSet
from metallb_py.allocator.types import (
    PREFER_DUAL_STACK,
    REQUIRE_DUAL_STACK,
    AssignResult,
    ChangeKind,
    ClearReason,
    ConfigChange,
    Outcome,
    PoolSpec,
    PoolStats,
    ServiceRequest,
)

_FAMILIES = (IPv4, IPv6)


class _Pool:
    """One pool's address blocks and free sets. Blocks keep the order of `spec.addresses`:
    allocation takes the lowest free address of the first block that has one, as MetalLB tries
    CIDRs in the order they are written."""

    __slots__ = ("blocks", "free", "in_use", "name", "ranges", "services", "spec", "total")

    def __init__(self, spec: PoolSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.blocks: dict[int, list[tuple[int, int]]] = {IPv4: [], IPv6: []}
        for family, first, last in spec.addresses:
            if family not in _FAMILIES or not 0 <= first <= last:
                raise ValueError(f"pool {spec.name!r}: malformed block {(family, first, last)}")
            self.blocks[family].append((first, last))
        # Sorted (first, last, block index) per family, for "which block holds this address".
        self.ranges: dict[int, list[tuple[int, int, int]]] = {
            f: sorted((first, last, i) for i, (first, last) in enumerate(self.blocks[f]))
            for f in _FAMILIES
        }
        self.free: dict[int, list[IntervalSet]] = {
            f: [IntervalSet([b]) for b in self.blocks[f]] for f in _FAMILIES
        }
        self.in_use: dict[int, int] = {IPv4: 0, IPv6: 0}
        self.services = 0
        self.total: dict[int, int] = {IPv4: self._usable(IPv4), IPv6: self._usable(IPv6)}

    def _usable(self, family: int) -> int:
        """MetalLB's addresses_total: buggy .0/.255 excluded; huge IPv6 blocks read MaxInt64."""
        total = 0
        for first, last in self.blocks[family]:
            size = last - first + 1
            if family == IPv6 and size >= 2**62:
                return MAX_INT64
            if family == IPv4 and self.spec.avoid_buggy_ips:
                size -= count_buggy(first, last)
            total += size
        return min(total, MAX_INT64)

    def first_free(self, family: int) -> int | None:
        avoid = family == IPv4 and self.spec.avoid_buggy_ips
        for free in self.free[family]:
            while free:
                start, end = free.interval_at(0)
                if not avoid:
                    return start
                # Of three consecutive addresses at most two (x.255, y.0) are buggy.
                for candidate in range(start, min(start + 2, end) + 1):
                    if not is_buggy(IPv4, candidate):
                        return candidate
                free.drop_interval(0)  # only buggy addresses left in it: never usable
        return None

    def block_of(self, family: int, value: int) -> int | None:
        ranges = self.ranges[family]
        i = bisect_right(ranges, (value, 2**129, 0)) - 1
        if i >= 0 and ranges[i][1] >= value:
            return ranges[i][2]
        return None

    def contains(self, family: int, value: int) -> bool:
        return self.block_of(family, value) is not None

    def take(self, family: int, value: int) -> None:
        block = self.block_of(family, value)
        if block is not None:
            self.free[family][block].discard(value)

    def give_back(self, family: int, value: int) -> None:
        block = self.block_of(family, value)
        if block is not None:
            self.free[family][block].add(value)

    def rebuild_free(self, family: int, taken: list[int]) -> None:
        """Free sets = blocks minus `taken` (sorted)."""
        self.free[family] = [IntervalSet.from_ranges_minus([b], taken) for b in self.blocks[family]]

    def free_intervals(self, family: int) -> list[tuple[int, int]]:
        return sorted(iv for free in self.free[family] for iv in free.intervals())


@dataclass(slots=True)
class _IPUse:
    pool: str | None
    sharing_key: str
    backend_key: str
    holders: dict[str, frozenset[tuple[str, int]]] = field(default_factory=dict)


@dataclass(slots=True)
class _Allocation:
    key: str
    addrs: tuple[Address, ...]
    pool: str | None
    request: ServiceRequest
    orphaned: bool = False
    orphan_reason: str = ""


@dataclass(frozen=True, slots=True)
class AllocationView:
    """A read-only view of one service's allocation."""

    key: str
    ips: tuple[str, ...]
    pool: str | None
    orphaned: bool
    orphan_reason: str


@dataclass(frozen=True, slots=True)
class PoolVerdict:
    """One pool as allocation sees it for one service: `reason` says why it cannot give the
    service an address now ("" when it can)."""

    pool: str
    reason: str

    @property
    def usable(self) -> bool:
        return not self.reason


@dataclass(frozen=True, slots=True)
class _Problem:
    reason: ClearReason
    detail: str


class Allocator:
    def __init__(
        self, pools: Iterable[PoolSpec] | None = None, *, reallocate_on_config_change: bool = False
    ) -> None:
        self.reallocate_on_config_change = reallocate_on_config_change
        self.configured = False
        self._pools: dict[str, _Pool] = {}
        self._index: dict[int, tuple[list[int], list[int], list[_Pool]]] = {}
        self._pinned: list[_Pool] = []
        self._automatic: list[_Pool] = []
        self._users: dict[Address, _IPUse] = {}
        self._allocs: dict[str, _Allocation] = {}
        self._shared: dict[tuple[str, int, str], set[int]] = {}
        self._orphans: set[str] = set()
        if pools is not None:
            self.set_pools(pools)

    # ----------------------------------------------------------------- queries

    def allocation(self, key: str) -> AllocationView | None:
        alloc = self._allocs.get(key)
        if alloc is None:
            return None
        return AllocationView(
            key,
            tuple(format_ip(a) for a in alloc.addrs),
            alloc.pool,
            alloc.orphaned,
            alloc.orphan_reason,
        )

    def allocations(self) -> Iterator[AllocationView]:
        for key in list(self._allocs):
            view = self.allocation(key)
            if view is not None:
                yield view

    def holders(self, ip: str) -> tuple[str, ...]:
        use = self._users.get(parse_ip(ip))
        return tuple(sorted(use.holders)) if use else ()

    @property
    def pool_names(self) -> tuple[str, ...]:
        return tuple(self._pools)

    def stats(self) -> dict[str, PoolStats]:
        return {
            name: PoolStats(
                p.total[IPv4], p.total[IPv6], p.in_use[IPv4], p.in_use[IPv6], p.services
            )
            for name, p in self._pools.items()
        }

    @property
    def orphaned_addresses(self) -> int:
        return sum(len(self._allocs[k].addrs) for k in self._orphans)

    # ----------------------------------------------------------------- configuration

    def set_pools(self, specs: Iterable[PoolSpec]) -> list[ConfigChange]:
        """Replace the pools; re-home, orphan or (reallocate mode) release existing allocations.

        Raises ValueError for malformed or overlapping pools, leaving the old pools in place.
        """
        pools = {s.name: _Pool(s) for s in sorted(specs, key=lambda s: s.name)}
        index = self._build_index(pools.values())
        self._pools = pools
        self._index = index
        self._pinned = sorted(
            (p for p in pools.values() if p.spec.service_allocation),
            key=lambda p: (p.spec.priority <= 0, p.spec.priority, p.name),
        )
        self._automatic = [
            p for p in pools.values() if p.spec.auto_assign and not p.spec.service_allocation
        ]
        self.configured = True

        used: dict[tuple[str, int], list[int]] = {}
        self._shared = {}
        for addr, use in self._users.items():
            pool = self._containing(addr)
            use.pool = pool.name if pool else None
            if pool is not None:
                used.setdefault((pool.name, addr[0]), []).append(addr[1])
                if use.sharing_key:
                    self._shared.setdefault((pool.name, addr[0], use.sharing_key), set()).add(
                        addr[1]
                    )
        for pool in pools.values():
            for family in _FAMILIES:
                taken = sorted(used.get((pool.name, family), ()))
                pool.rebuild_free(family, taken)
                pool.in_use[family] = len(taken)

        changes: list[ConfigChange] = []
        for key in sorted(self._allocs):
            alloc = self._allocs[key]
            result = self._validate(alloc.request, alloc.addrs)
            ips = tuple(format_ip(a) for a in alloc.addrs)
            if isinstance(result, str):
                if alloc.orphaned:
                    changes.append(ConfigChange(key, ChangeKind.RESTORED, ips, result))
                    self._orphans.discard(key)
                elif alloc.pool != result:
                    changes.append(ConfigChange(key, ChangeKind.REHOMED, ips, result))
                alloc.orphaned = False
                alloc.orphan_reason = ""
                alloc.pool = result
                pools[result].services += 1
                continue
            if self.reallocate_on_config_change:
                alloc.orphaned = True  # not counted in any pool: release must not decrement
                self.release(key)
                changes.append(ConfigChange(key, ChangeKind.RELEASED, ips, None, result.detail))
                continue
            if not alloc.orphaned:
                changes.append(ConfigChange(key, ChangeKind.ORPHANED, ips, None, result.detail))
            self._orphan(alloc, result.detail)
        return changes

    @staticmethod
    def _build_index(
        pools: Iterable[_Pool],
    ) -> dict[int, tuple[list[int], list[int], list[_Pool]]]:
        index: dict[int, tuple[list[int], list[int], list[_Pool]]] = {}
        for family in _FAMILIES:
            rows = sorted((s, e, p.name, p) for p in pools for s, e in p.blocks[family])
            starts: list[int] = []
            ends: list[int] = []
            owners: list[_Pool] = []
            for start, end, name, pool in rows:
                if ends and start <= ends[-1]:
                    other = owners[-1].name
                    first = format_ip((family, start))
                    raise ValueError(f"pools {other!r} and {name!r} overlap at {first}")
                starts.append(start)
                ends.append(end)
                owners.append(pool)
            index[family] = (starts, ends, owners)
        return index

    def _containing(self, addr: Address) -> _Pool | None:
        entry = self._index.get(addr[0])
        if entry is None:
            return None
        starts, ends, owners = entry
        i = bisect_right(starts, addr[1]) - 1
        if i >= 0 and ends[i] >= addr[1]:
            return owners[i]
        return None

    # ----------------------------------------------------------------- assignment

    def assign(self, svc: ServiceRequest, current: Sequence[str] = ()) -> AssignResult:
        """Converge one service: keep what it legitimately holds, else give it addresses.

        `current` is what the service's status says it has; it is adopted when the allocator
        has no record of the service (startup, or after losing state).
        """
        alloc = self._allocs.get(svc.key)
        if alloc is not None:
            return self._reassign(svc, alloc)
        if current:
            return self._adopt(svc, current)
        return self._allocate(svc)

    def adopt(self, svc: ServiceRequest, current: Sequence[str]) -> AssignResult | None:
        """Startup, first pass: register what the status says if it may stay (or stays as an
        orphan); never hand out anything new. None means "decide in the second pass"."""
        if svc.key in self._allocs or not current or svc.request_error:
            return None
        try:
            addrs = tuple(sorted(parse_ip(ip) for ip in current))
        except ValueError:
            return None
        result = self._validate(svc, addrs)
        ips = tuple(format_ip(a) for a in addrs)
        if isinstance(result, str):
            self._register(svc, addrs, result)
            return AssignResult(Outcome.KEPT, ips, result)
        if (
            result.reason == ClearReason.NOT_ALLOWED_BY_CONFIG
            and not self.reallocate_on_config_change
            and not svc.reallocate
            and self.configured
            and all(self._sharing_problem(a, svc) is None for a in addrs)
        ):
            alloc = self._register(svc, addrs, None)
            self._orphan(alloc, result.detail)
            return AssignResult(Outcome.ORPHANED, ips, None, result.detail)
        return None

    def release(self, key: str) -> tuple[str, ...]:
        """Forget a service's allocation; its addresses go back to their pool's free set."""
        alloc = self._allocs.pop(key, None)
        if alloc is None:
            return ()
        for addr in alloc.addrs:
            self._drop(addr, key)
        if not alloc.orphaned and alloc.pool in self._pools:
            self._pools[alloc.pool].services -= 1
        self._orphans.discard(key)
        return tuple(format_ip(a) for a in alloc.addrs)

    def _reassign(self, svc: ServiceRequest, alloc: _Allocation) -> AssignResult:
        ips = tuple(format_ip(a) for a in alloc.addrs)
        if svc.request_error:
            return AssignResult(Outcome.INVALID_REQUEST, ips, alloc.pool, svc.request_error)
        if alloc.orphaned and alloc.request == svc:
            return AssignResult(Outcome.ORPHANED, ips, None, alloc.orphan_reason)
        result = self._validate(svc, alloc.addrs)
        if isinstance(result, str):
            if alloc.orphaned:
                alloc.orphaned = False
                alloc.orphan_reason = ""
                self._orphans.discard(alloc.key)
                self._pools[result].services += 1
            elif alloc.pool != result:
                if alloc.pool in self._pools:
                    self._pools[alloc.pool].services -= 1
                self._pools[result].services += 1
            alloc.pool = result
            self._refresh(alloc, svc)
            added = self._add_preferred_family(alloc, svc)
            ips = tuple(format_ip(a) for a in alloc.addrs)
            return AssignResult(Outcome.KEPT, ips, result, added_ips=added)
        reason = result.reason
        if alloc.orphaned and svc.reallocate:
            reason = ClearReason.REALLOCATE_REQUESTED
        self.release(svc.key)
        fresh = self._allocate(svc)
        return replace(fresh, cleared_ips=ips, clear_reason=reason, clear_detail=result.detail)

    def _adopt(self, svc: ServiceRequest, current: Sequence[str]) -> AssignResult:
        try:
            addrs = tuple(sorted(parse_ip(ip) for ip in current))
        except ValueError as exc:
            fresh = self._allocate(svc)
            return replace(
                fresh,
                cleared_ips=tuple(current),
                clear_reason=ClearReason.DIFFERENT_IP_REQUESTED,
                clear_detail=str(exc),
            )
        check = svc if not svc.request_error else replace(svc, requested_ips=())
        result = self._validate(check, addrs)
        ips = tuple(format_ip(a) for a in addrs)
        if isinstance(result, str):
            alloc = self._register(check, addrs, result)
            if svc.request_error:
                return AssignResult(Outcome.INVALID_REQUEST, ips, result, svc.request_error)
            added = self._add_preferred_family(alloc, svc)
            ips = tuple(format_ip(a) for a in alloc.addrs)
            return AssignResult(Outcome.KEPT, ips, result, added_ips=added)
        keep_orphan = (
            result.reason == ClearReason.NOT_ALLOWED_BY_CONFIG
            and not self.reallocate_on_config_change
            and not svc.reallocate
            and self.configured
            and all(self._sharing_problem(a, svc) is None for a in addrs)
        )
        if keep_orphan:
            alloc = self._register(svc, addrs, None)
            self._orphan(alloc, result.detail)
            return AssignResult(Outcome.ORPHANED, ips, None, result.detail)
        fresh = self._allocate(svc)
        return replace(
            fresh, cleared_ips=ips, clear_reason=result.reason, clear_detail=result.detail
        )

    def _allocate(self, svc: ServiceRequest) -> AssignResult:
        failed = Outcome.FAILED
        if svc.request_error:
            return AssignResult(failed, error=svc.request_error)
        if not svc.families:
            return AssignResult(failed, error="service has no clusterIPs")
        if svc.family_policy == REQUIRE_DUAL_STACK and len(svc.families) < 2:
            return AssignResult(failed, error="not enough clusterips for RequireDualStack")
        if not self.configured:
            return AssignResult(failed, error="configuration is missing")
        if svc.requested_ips:
            return self._allocate_requested(svc)
        if svc.requested_pool is not None:
            pool = self._pools.get(svc.requested_pool)
            if pool is None:
                return AssignResult(failed, error=f"unknown pool {svc.requested_pool!r}")
            if not self._compatible(pool, svc):
                return AssignResult(
                    failed, error=f"pool {pool.name} not compatible for ip assignment"
                )
            found = self._best([pool], svc)
            if found is None:
                return AssignResult(failed, error=f"no available IPs in pool {pool.name!r}")
        else:
            found = None
            if self._pinned:
                pinned = [
                    p for p in self._pinned if p.spec.auto_assign and self._compatible(p, svc)
                ]
                found = self._best(pinned, svc)
            if found is None:
                found = self._best(self._automatic, svc)
            if found is None:
                return AssignResult(failed, error="no available IPs")
        pool, addrs = found
        self._register(svc, addrs, pool.name)
        return AssignResult(Outcome.ALLOCATED, tuple(format_ip(a) for a in addrs), pool.name)

    def _allocate_requested(self, svc: ServiceRequest) -> AssignResult:
        failed = Outcome.FAILED
        addrs = tuple(sorted(parse_ip(ip) for ip in svc.requested_ips))
        if len(addrs) > 2:
            return AssignResult(failed, error="more than two addresses requested")
        if len(addrs) == 2 and addrs[0][0] == addrs[1][0]:
            return AssignResult(failed, error=f"{svc.requested_ips} have the same family")
        if not self._families_ok(svc, [a[0] for a in addrs]):
            return AssignResult(
                failed,
                error=f"requested IPs {list(svc.requested_ips)} do not match the ipFamily of the "
                "service",
            )
        result = self._validate(svc, addrs)
        if not isinstance(result, str):
            detail = result.detail
            if result.reason == ClearReason.DIFFERENT_POOL_REQUESTED:
                detail = f"requested IPs are not compatible with requested address pool: {detail}"
            return AssignResult(failed, error=detail)
        self._register(svc, addrs, result)
        return AssignResult(Outcome.ALLOCATED, tuple(format_ip(a) for a in addrs), result)

    def pool_verdicts(self, svc: ServiceRequest) -> list[PoolVerdict]:
        """Every pool in the order allocation tries it, with why each cannot serve `svc` now.

        Built from the same rules as `_allocate` (requested IPs, requested pool, pinned pools
        by priority, then automatic pools), so an explanation never disagrees with the
        controller. Empty when the request itself is unusable (see `assign`'s error).
        """
        if svc.request_error or not svc.families or not self.configured:
            return []
        if svc.requested_ips:
            addrs = tuple(sorted(parse_ip(ip) for ip in svc.requested_ips))
            out: list[PoolVerdict] = []
            for pool in self._pools.values():
                if not any(pool.contains(*a) for a in addrs):
                    wanted = ", ".join(svc.requested_ips)
                    out.append(PoolVerdict(pool.name, f"does not contain the requested {wanted}"))
                    continue
                result = self._validate(svc, addrs)
                out.append(PoolVerdict(pool.name, "" if isinstance(result, str) else result.detail))
            return out
        if svc.requested_pool is not None:
            asked = f"the service asks for pool {svc.requested_pool} (metallb.io/address-pool)"
            out = []
            for pool in self._pools.values():
                if pool.name != svc.requested_pool:
                    out.append(PoolVerdict(pool.name, asked))
                    continue
                reason = self._refusal(pool, svc) or self._family_refusal(pool, svc)
                out.append(PoolVerdict(pool.name, reason))
            return out
        tried = [*self._pinned, *self._automatic]
        out = []
        for pool in tried:
            reason = ""
            if not pool.spec.auto_assign:
                reason = "autoAssign is false: used only when a service asks for it"
            reason = reason or self._refusal(pool, svc) or self._family_refusal(pool, svc)
            out.append(PoolVerdict(pool.name, reason))
        for pool in self._pools.values():
            if pool not in tried:
                reason = "autoAssign is false: used only when a service asks for it"
                out.append(PoolVerdict(pool.name, reason))
        return out

    def _family_refusal(self, pool: _Pool, svc: ServiceRequest) -> str:
        """Why `_best` finds no address of the service's families in `pool` ("" if it does)."""
        families = svc.families
        dual = len(families) == 2 and svc.family_policy in (PREFER_DUAL_STACK, REQUIRE_DUAL_STACK)
        missing: list[str] = []
        for family in families if dual else families[:1]:
            if not pool.blocks[family]:
                missing.append(f"no IPv{family} addresses")
            elif self._pick(pool, family, svc) is None:
                used, total = pool.in_use[family], pool.total[family]
                missing.append(f"no free IPv{family} address ({used} of {total} in use)")
        if not dual or svc.family_policy == REQUIRE_DUAL_STACK:
            return "; ".join(missing)
        return "; ".join(missing) if len(missing) == 2 else ""

    def _best(
        self, pools: Sequence[_Pool], svc: ServiceRequest
    ) -> tuple[_Pool, tuple[Address, ...]] | None:
        families = svc.families
        dual = len(families) == 2 and svc.family_policy in (PREFER_DUAL_STACK, REQUIRE_DUAL_STACK)
        if not dual:
            for pool in pools:
                addr = self._pick(pool, families[0], svc)
                if addr is not None:
                    return pool, (addr,)
            return None
        primary: tuple[_Pool, tuple[Address, ...]] | None = None
        secondary: tuple[_Pool, tuple[Address, ...]] | None = None
        for pool in pools:
            first = self._pick(pool, families[0], svc)
            second = self._pick(pool, families[1], svc)
            if first is not None and second is not None:
                return pool, tuple(sorted((first, second)))
            if first is not None and primary is None:
                primary = (pool, (first,))
            if second is not None and secondary is None:
                secondary = (pool, (second,))
        if svc.family_policy == PREFER_DUAL_STACK:
            return primary or secondary
        return None

    def _pick(self, pool: _Pool, family: int, svc: ServiceRequest) -> Address | None:
        if not pool.blocks[family]:
            return None
        if svc.sharing_key:
            candidates = self._shared.get((pool.name, family, svc.sharing_key))
            if candidates:
                for candidate in sorted(candidates):
                    if self._sharing_problem((family, candidate), svc) is None:
                        return family, candidate
        value = pool.first_free(family)
        return None if value is None else (family, value)

    def _add_preferred_family(self, alloc: _Allocation, svc: ServiceRequest) -> tuple[str, ...]:
        """PreferDualStack with two clusterIPs holding one IP: add the other family if the same
        pool has one (MetalLB does this on every reconcile)."""
        if (
            alloc.orphaned
            or svc.family_policy != PREFER_DUAL_STACK
            or len(svc.families) != 2
            or len(alloc.addrs) != 1
            or svc.requested_ips
            or alloc.pool not in self._pools
        ):
            return ()
        pool = self._pools[alloc.pool]
        missing = IPv6 if alloc.addrs[0][0] == IPv4 else IPv4
        addr = self._pick(pool, missing, svc)
        if addr is None:
            return ()
        self._take(addr, svc)
        alloc.addrs = tuple(sorted((*alloc.addrs, addr)))
        return (format_ip(addr),)

    # ----------------------------------------------------------------- rules

    def _families_ok(self, svc: ServiceRequest, families: Sequence[int]) -> bool:
        if not svc.families or not families:
            return False
        if len(svc.families) == 1 or svc.family_policy not in (
            PREFER_DUAL_STACK,
            REQUIRE_DUAL_STACK,
        ):
            return tuple(families) == svc.families[:1]
        if svc.family_policy == REQUIRE_DUAL_STACK:
            return sorted(families) == sorted(svc.families)
        return set(families) <= set(svc.families)

    def _compatible(self, pool: _Pool, svc: ServiceRequest) -> bool:
        return not self._refusal(pool, svc)

    def _refusal(self, pool: _Pool, svc: ServiceRequest) -> str:
        """Why the pool's serviceAllocation does not admit `svc` ("" when it does)."""
        spec = pool.spec
        if not spec.service_allocation:
            return ""
        if spec.namespaces or spec.namespace_selectors:
            in_list = svc.namespace in spec.namespaces
            ns_labels = svc.namespace_label_map()
            if not in_list and not any(s.matches(ns_labels) for s in spec.namespace_selectors):
                return (
                    f"namespace {svc.namespace} is not admitted by serviceAllocation "
                    "(namespaces, namespaceSelectors)"
                )
        labels = svc.label_map()
        if spec.service_selectors and not any(s.matches(labels) for s in spec.service_selectors):
            return "the service's labels match no serviceAllocation.serviceSelectors"
        return ""

    def _validate(self, svc: ServiceRequest, addrs: Sequence[Address]) -> str | _Problem:
        """The pool `addrs` may stay in for `svc`, or why not."""
        shown = [format_ip(a) for a in addrs]
        families = [a[0] for a in addrs]
        if len(addrs) > 2 or len(set(families)) != len(families):
            return _Problem(ClearReason.FAMILY_CHANGED, f"{shown} is not a valid address set")
        if not self._families_ok(svc, families):
            return _Problem(
                ClearReason.FAMILY_CHANGED, f"{shown} does not match the service's IP families"
            )
        if svc.requested_ips:
            try:
                wanted = {parse_ip(ip) for ip in svc.requested_ips}
            except ValueError as exc:
                return _Problem(ClearReason.DIFFERENT_IP_REQUESTED, str(exc))
            if wanted != set(addrs):
                return _Problem(
                    ClearReason.DIFFERENT_IP_REQUESTED,
                    f"requested {list(svc.requested_ips)}, holds {shown}",
                )
        pools = {self._containing(a) for a in addrs}
        pool = pools.pop() if len(pools) == 1 else None
        if pool is None:
            return _Problem(ClearReason.NOT_ALLOWED_BY_CONFIG, f"{shown} is not allowed in config")
        if pool.spec.avoid_buggy_ips and any(is_buggy(*a) for a in addrs):
            return _Problem(
                ClearReason.NOT_ALLOWED_BY_CONFIG,
                f"{shown} is not allowed in config (pool {pool.name} avoids .0 and .255)",
            )
        if svc.requested_pool is not None and svc.requested_pool != pool.name:
            return _Problem(
                ClearReason.DIFFERENT_POOL_REQUESTED,
                f"{shown} belongs to pool {pool.name}, service asks for {svc.requested_pool}",
            )
        if not self._compatible(pool, svc):
            return _Problem(
                ClearReason.NOT_ALLOWED_BY_CONFIG,
                f"pool {pool.name} not compatible for ip assignment",
            )
        for addr in addrs:
            problem = self._sharing_problem(addr, svc)
            if problem is not None:
                return problem
        return pool.name

    def _sharing_problem(self, addr: Address, svc: ServiceRequest) -> _Problem | None:
        use = self._users.get(addr)
        if use is None:
            return None
        others = [k for k in use.holders if k != svc.key]
        if not others:
            return None
        ip = format_ip(addr)
        if not use.sharing_key or not svc.sharing_key:
            return _Problem(
                ClearReason.IP_IN_USE, f"address {ip} is already in use by {sorted(others)[0]}"
            )
        if use.sharing_key != svc.sharing_key:
            return _Problem(
                ClearReason.SHARING_CONFLICT,
                f"can't change sharing key for {svc.key}, address also in use by "
                f"{sorted(others)[0]}",
            )
        if use.backend_key != svc.backend_key:
            return _Problem(
                ClearReason.SHARING_CONFLICT,
                f"{ip} is used by {sorted(others)[0]} with different backends "
                "(externalTrafficPolicy Local needs identical selectors)",
            )
        for other in sorted(others):
            clash = use.holders[other] & svc.ports
            if clash:
                proto, port = sorted(clash)[0]
                return _Problem(
                    ClearReason.SHARING_CONFLICT,
                    f"port {proto}/{port} is already in use on {ip} by {other}",
                )
        return None

    # ----------------------------------------------------------------- bookkeeping

    def _register(
        self, svc: ServiceRequest, addrs: tuple[Address, ...], pool: str | None
    ) -> _Allocation:
        for addr in addrs:
            self._take(addr, svc)
        alloc = _Allocation(svc.key, addrs, pool, svc)
        self._allocs[svc.key] = alloc
        if pool is not None:
            self._pools[pool].services += 1
        return alloc

    def _orphan(self, alloc: _Allocation, reason: str) -> None:
        alloc.orphaned = True
        alloc.orphan_reason = reason
        alloc.pool = None
        self._orphans.add(alloc.key)

    def _take(self, addr: Address, svc: ServiceRequest) -> None:
        use = self._users.get(addr)
        if use is None:
            pool = self._containing(addr)
            use = _IPUse(pool.name if pool else None, svc.sharing_key, svc.backend_key)
            self._users[addr] = use
            if pool is not None:
                pool.take(addr[0], addr[1])
                pool.in_use[addr[0]] += 1
            self._index_shared(addr, use, add=True)
        elif set(use.holders) <= {svc.key} and (
            use.sharing_key != svc.sharing_key or use.backend_key != svc.backend_key
        ):
            self._index_shared(addr, use, add=False)
            use.sharing_key = svc.sharing_key
            use.backend_key = svc.backend_key
            self._index_shared(addr, use, add=True)
        use.holders[svc.key] = svc.ports

    def _drop(self, addr: Address, key: str) -> None:
        use = self._users.get(addr)
        if use is None:
            return
        use.holders.pop(key, None)
        if use.holders:
            return
        del self._users[addr]
        self._index_shared(addr, use, add=False)
        pool = self._pools.get(use.pool) if use.pool else None
        if pool is not None and pool.contains(*addr):
            pool.give_back(addr[0], addr[1])
            pool.in_use[addr[0]] -= 1

    def _index_shared(self, addr: Address, use: _IPUse, *, add: bool) -> None:
        if not use.sharing_key or use.pool is None:
            return
        slot = (use.pool, addr[0], use.sharing_key)
        if add:
            self._shared.setdefault(slot, set()).add(addr[1])
            return
        members = self._shared.get(slot)
        if members is not None:
            members.discard(addr[1])
            if not members:
                del self._shared[slot]

    def _refresh(self, alloc: _Allocation, svc: ServiceRequest) -> None:
        for addr in alloc.addrs:
            self._take(addr, svc)
        alloc.request = svc
