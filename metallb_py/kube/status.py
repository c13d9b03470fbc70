"""Status writes through the `/status` subresource, fenced and conflict-aware.

Every write carries the resourceVersion it was computed from, so the API server refuses it (409)
if the object changed meanwhile. `put_status` (a PUT of the whole object) and `patch_status` (a
JSON merge patch, for callers whose copy is trimmed and must not be sent back whole) make one
attempt and report the outcome, for callers that recompute from their own fresh state (the
Service reconciler requeues the key). `update_status` re-reads and recomputes on conflict, for
simple writers (IPAddressPool counters, ConfigurationState).
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from metallb_py.kube import metrics
from metallb_py.kube.rest import ApiError, Resource, Rest
from metallb_py.objects import JSON


class WriteOutcome(enum.Enum):
    WRITTEN = "written"
    CONFLICT = "conflict"
    NOT_FOUND = "notFound"
    FENCED = "fenced"  # this replica may not write (not the leader any more)
    FAILED = "failed"


@dataclass(frozen=True)
class WriteResult:
    outcome: WriteOutcome
    obj: JSON | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is WriteOutcome.WRITTEN


class StatusWriter:
    def __init__(self, rest: Rest, can_write: Callable[[], bool] = lambda: True) -> None:
        self.rest = rest
        self.can_write = can_write
        self.conflicts = 0

    async def put_status(self, resource: Resource, obj: JSON) -> WriteResult:
        meta = obj.get("metadata") or {}
        if not meta.get("resourceVersion"):
            raise ValueError("a status write must carry the resourceVersion it was computed from")
        if not self.can_write():
            return WriteResult(WriteOutcome.FENCED)
        path = resource.path(meta.get("namespace"), meta["name"], "status")
        return await self._send(self.rest.replace(path, obj))

    async def patch_status(
        self, resource: Resource, namespace: str | None, name: str, patch: JSON
    ) -> WriteResult:
        """A merge patch of `/status`; `patch` must carry `metadata.resourceVersion`, which the
        server checks like a PUT's (409 when the object changed since)."""
        if not (patch.get("metadata") or {}).get("resourceVersion"):
            raise ValueError("a status patch must carry the resourceVersion it was computed from")
        if not self.can_write():
            return WriteResult(WriteOutcome.FENCED)
        return await self._send(self.rest.patch(resource.path(namespace, name, "status"), patch))

    async def ensure_status(
        self,
        resource: Resource,
        metadata: JSON,
        status: JSON,
        same: Callable[[JSON, JSON], bool] = operator.eq,
    ) -> WriteResult:
        """Write the status of a status-only object (ConfigurationState), creating it bare
        (`metadata` only) when it does not exist yet. No write when `same(stored, status)`, so
        an unchanged state keeps its timestamps."""
        namespace, name = metadata.get("namespace"), metadata["name"]
        if not self.can_write():
            return WriteResult(WriteOutcome.FENCED)
        try:
            obj = await self.rest.get(resource.path(namespace, name))
        except ApiError as exc:
            if not exc.not_found:
                return WriteResult(WriteOutcome.FAILED, error=str(exc))
            bare = {"apiVersion": resource.api_version, "kind": resource.kind, "metadata": metadata}
            try:
                obj = await self.rest.create(resource.path(namespace), bare)
            except ApiError as create_exc:
                return WriteResult(WriteOutcome.FAILED, error=str(create_exc))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return WriteResult(WriteOutcome.FAILED, error=str(exc) or type(exc).__name__)

        def compute(fresh: JSON) -> JSON | None:
            if same(fresh.get("status") or {}, status):
                return None
            return {**fresh, "status": status}

        return await self.update_status(resource, namespace, name, compute, current=obj)

    async def _send(self, request: Awaitable[JSON]) -> WriteResult:
        try:
            written = await request
        except ApiError as exc:
            if exc.conflict:
                self.conflicts += 1
                return WriteResult(WriteOutcome.CONFLICT, error=str(exc))
            metrics.update_errors_total.inc()
            if exc.not_found:
                return WriteResult(WriteOutcome.NOT_FOUND, error=str(exc))
            return WriteResult(WriteOutcome.FAILED, error=str(exc))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            metrics.update_errors_total.inc()
            return WriteResult(WriteOutcome.FAILED, error=str(exc) or type(exc).__name__)
        metrics.status_writes_total.inc()
        return WriteResult(WriteOutcome.WRITTEN, written)

    async def update_status(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        compute: Callable[[JSON], JSON | None],
        current: JSON | None = None,
        attempts: int = 5,
    ) -> WriteResult:
        """compute(fresh object) -> object to write, or None when nothing needs writing."""
        obj = current
        for _ in range(attempts):
            if obj is None:
                try:
                    obj = await self.rest.get(resource.path(namespace, name))
                except ApiError as exc:
                    if exc.not_found:
                        return WriteResult(WriteOutcome.NOT_FOUND, error=str(exc))
                    return WriteResult(WriteOutcome.FAILED, error=str(exc))
            desired = compute(obj)
            if desired is None:
                return WriteResult(WriteOutcome.WRITTEN, obj)
            result = await self.put_status(resource, desired)
            if result.outcome is not WriteOutcome.CONFLICT:
                return result
            obj = None  # recompute from fresh state, never resend the stale write
        return WriteResult(WriteOutcome.CONFLICT, error="still conflicting after retries")


_KEEP = object()


def merge_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> JSON:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`: changed keys with their new
    value (maps recursively), removed keys as null; lists are replaced whole."""
    patch: JSON = {}
    for k, v in new.items():
        was = old.get(k, _KEEP)
        if was == v:
            continue
        if isinstance(v, Mapping) and isinstance(was, Mapping):
            sub = merge_diff(was, v)
            if sub:
                patch[k] = sub
        else:
            patch[k] = v
    for k in old:
        if k not in new:
            patch[k] = None
    return patch


def status_patch(svc: JSON, desired: JSON) -> JSON:
    """The merge patch for `/status` that takes `svc` (a cached, possibly trimmed object) to
    `desired`: its status and annotation changes, under svc's resourceVersion as a
    precondition. Fields the cache does not hold are never mentioned, so the server keeps
    them; a trimmed cache never costs another writer's labels, annotations or owners."""
    meta = svc.get("metadata") or {}
    patch: JSON = {"metadata": {"resourceVersion": meta.get("resourceVersion")}}
    anns = merge_diff(
        meta.get("annotations") or {}, (desired.get("metadata") or {}).get("annotations") or {}
    )
    if anns:
        patch["metadata"]["annotations"] = anns
    status = merge_diff(svc.get("status") or {}, desired.get("status") or {})
    if status:
        patch["status"] = status
    return patch
