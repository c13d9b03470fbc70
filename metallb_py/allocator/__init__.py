"""Pure IP allocation: pools, sharing, address families. No I/O."""

from metallb_py.allocator.allocator import AllocationView, Allocator, PoolVerdict
from metallb_py.allocator.service import request_from_service
from metallb_py.allocator.types import (
    PREFER_DUAL_STACK,
    REQUIRE_DUAL_STACK,
    SINGLE_STACK,
    AssignResult,
    ChangeKind,
    ClearReason,
    ConfigChange,
    Outcome,
    PoolSpec,
    PoolStats,
    ServiceRequest,
)
from metallb_py.selectors import LabelSelector

__all__ = [
    "PREFER_DUAL_STACK",
    "REQUIRE_DUAL_STACK",
    "SINGLE_STACK",
    "AllocationView",
    "Allocator",
    "AssignResult",
    "ChangeKind",
    "ClearReason",
    "ConfigChange",
    "LabelSelector",
    "Outcome",
    "PoolSpec",
    "PoolStats",
    "PoolVerdict",
    "ServiceRequest",
    "request_from_service",
]
