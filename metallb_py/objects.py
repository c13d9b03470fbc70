"""The one name for decoded JSON objects: Kubernetes objects, manifests, rules and dashboards.

They stay plain dicts, exactly as the API server sends them, so every layer shares this alias
instead of each module declaring its own.
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]
