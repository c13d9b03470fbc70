"""The one name for decoded JSON objects: Kubernetes objects, manifests, rules and dashboards.

They stay plain dicts, exactly as the API server sends them, so every layer shares this alias
instead of each module declaring its own.
"""

from __future__ import annotations

import time
from typing import Any

JSON = dict[str, Any]


def rfc3339(ts: float | None = None) -> str:
    """A timestamp as Kubernetes writes them (UTC, whole seconds); `ts` defaults to now."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if ts is None else ts))
