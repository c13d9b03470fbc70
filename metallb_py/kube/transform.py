"""Building blocks for informer transforms (trim at ingest, as client-go's `SetTransform`).

Shared by the speaker's and the controller's transforms: the envelope every cached object keeps
(kind, apiVersion, the metadata the cache and events need) and string interning, so a namespace,
label key or protocol repeated across 50 000 cached objects is stored once.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from metallb_py.objects import JSON

# What the cache (key, newer-than) and events (involvedObject) need of every object.
META_KEYS = ("name", "namespace", "uid", "resourceVersion")


def intern(value: Any) -> Any:
    """The one shared copy of a string; anything else as is."""
    return sys.intern(value) if type(value) is str else value


def metadata(obj: JSON, labels: bool, keys: Iterable[str] = META_KEYS) -> JSON:
    """`keys` of the object's metadata, and its labels when asked (interned)."""
    meta = obj.get("metadata") or {}
    out: JSON = {k: intern(meta[k]) for k in keys if k in meta}
    raw = meta.get("labels")
    if labels and isinstance(raw, dict) and raw:
        out["labels"] = {intern(k): intern(v) for k, v in raw.items()}
    return out


def head(obj: JSON) -> JSON:
    """kind and apiVersion (events and the config parser read them)."""
    return {"kind": intern(obj.get("kind")), "apiVersion": intern(obj.get("apiVersion"))}
