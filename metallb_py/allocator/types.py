"""The allocator's own inputs and outputs.

They are deliberately small and independent of the configuration parser: the controller converts
the parsed Config and each Service into these, so the allocator stays a pure, fast function of
plain values.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from metallb_py.allocator.addresses import Block
from metallb_py.selectors import Selector

# What the package re-exports: `metallb_py.allocator` takes this list as is.
__all__ = [
    "PREFER_DUAL_STACK",
    "REQUIRE_DUAL_STACK",
    "SINGLE_STACK",
    "AssignResult",
    "ChangeKind",
    "ClearReason",
    "ConfigChange",
    "Outcome",
    "PoolSpec",
    "PoolStats",
    "ServiceRequest",
]

SINGLE_STACK = "SingleStack"
PREFER_DUAL_STACK = "PreferDualStack"
REQUIRE_DUAL_STACK = "RequireDualStack"


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """One address pool (IPAddressPool or legacy AddressPool).

    `service_allocation` False means the pool has no `spec.serviceAllocation` at all: it is then
    an automatic pool. With it, the pool is "pinned": tried before automatic pools, in priority
    order, and only for services its namespace/label rules admit. `addresses` are the parsed
    entries of `spec.addresses`, in their written order.
    """

    name: str
    addresses: tuple[Block, ...]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    service_allocation: bool = False
    priority: int = 0
    namespaces: frozenset[str] = frozenset()
    namespace_selectors: tuple[Selector, ...] = ()
    service_selectors: tuple[Selector, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceRequest:
    """What the allocator needs to know about one Service; equality means "nothing changed"."""

    key: str  # namespace/name
    namespace: str = "default"
    labels: tuple[tuple[str, str], ...] = ()
    namespace_labels: tuple[tuple[str, str], ...] = ()
    families: tuple[int, ...] = (4,)  # from clusterIPs, in order; () when it has none
    family_policy: str = SINGLE_STACK
    requested_ips: tuple[str, ...] = ()
    requested_pool: str | None = None
    sharing_key: str = ""
    backend_key: str = ""
    ports: frozenset[tuple[str, int]] = frozenset()
    request_error: str | None = None  # an unusable request (both IP fields set, bad IP, ...)
    reallocate: bool = False  # the administrator asks to drop an orphaned allocation

    def label_map(self) -> Mapping[str, str]:
        return dict(self.labels)

    def namespace_label_map(self) -> Mapping[str, str]:
        return dict(self.namespace_labels)


class Outcome(enum.Enum):
    ALLOCATED = "allocated"  # new IPs handed out
    KEPT = "kept"  # the service keeps what it had (possibly adopted from its status)
    ORPHANED = "orphaned"  # kept, but the configuration no longer allows it
    FAILED = "failed"  # no IP; see `error`
    INVALID_REQUEST = "invalidRequest"  # the request is malformed; existing IPs are kept


class ClearReason(enum.Enum):
    """Why a previous allocation was dropped (MetalLB's clearAssignment reasons, plus ours)."""

    DIFFERENT_IP_REQUESTED = "differentIPRequested"
    DIFFERENT_POOL_REQUESTED = "differentPoolRequested"
    FAMILY_CHANGED = "ipFamilyChanged"
    NOT_ALLOWED_BY_CONFIG = "notAllowedByConfig"
    SHARING_CONFLICT = "sharingConflict"
    IP_IN_USE = "ipInUse"  # another (older) service holds the IP
    REALLOCATE_REQUESTED = "reallocateRequested"


@dataclass(slots=True)
class AssignResult:
    outcome: Outcome
    ips: tuple[str, ...] = ()
    pool: str | None = None
    error: str = ""
    cleared_ips: tuple[str, ...] = ()  # what the service had before, when that was dropped
    clear_reason: ClearReason | None = None
    clear_detail: str = ""
    added_ips: tuple[str, ...] = ()  # PreferDualStack: a second family added to a kept IP


class ChangeKind(enum.Enum):
    REHOMED = "rehomed"  # still allowed, now counted under another pool name
    ORPHANED = "orphaned"  # no longer allowed: kept and flagged
    RELEASED = "released"  # no longer allowed: dropped (reallocate mode)
    RESTORED = "restored"  # was orphaned, allowed again


@dataclass(frozen=True, slots=True)
class ConfigChange:
    key: str
    kind: ChangeKind
    ips: tuple[str, ...]
    pool: str | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Counters behind metallb_allocator_* and IPAddressPool status."""

    addresses_v4: int
    addresses_v6: int
    in_use_v4: int
    in_use_v6: int
    services: int

    @property
    def addresses(self) -> int:
        return min(self.addresses_v4 + self.addresses_v6, 2**63 - 1)

    @property
    def in_use(self) -> int:
        return self.in_use_v4 + self.in_use_v6

    @property
    def available_v4(self) -> int:
        return max(self.addresses_v4 - self.in_use_v4, 0)

    @property
    def available_v6(self) -> int:
        return max(self.addresses_v6 - self.in_use_v6, 0)
