"""Pure IP allocation: pools, sharing, address families. No I/O."""

from metallb_py.allocator import types
from metallb_py.allocator.allocator import AllocationView, Allocator, PoolVerdict
from metallb_py.allocator.service import request_from_service
from metallb_py.allocator.types import *  # noqa: F403 - every name in types.__all__
from metallb_py.selectors import LabelSelector

__all__ = [
    "AllocationView",
    "Allocator",
    "LabelSelector",
    "PoolVerdict",
    "request_from_service",
    *types.__all__,
]
