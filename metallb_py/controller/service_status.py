"""What a Service's status should say after allocation: pure, so the diff is easy to trust.

The write is a JSON merge patch of `/status` carrying the resourceVersion of the object it was
computed from (the server answers 409 if the Service changed since). It holds only what the
controller changes: `status` and the `metallb.io/ip-allocated-from-pool` annotation (the
Service status strategy keeps metadata edits, so the annotation travels in the same write, as in
MetalLB). Never a PUT of the cached object: the cache is trimmed (`controller/ingest.py`), and a
Service `/status` PUT replaces labels, annotations, finalizers and ownerReferences with the ones
sent (only `spec` is reset from the stored object), so it would erase what the cache dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from metallb_py.allocator.service import ANN_ALLOCATED_FROM
from metallb_py.objects import JSON, rfc3339

ORPHAN_CONDITION = "metallb-py.io/AddressOrphaned"
_KEEP = object()


def current_ips(svc: JSON) -> list[str]:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [e["ip"] for e in ingress if isinstance(e, dict) and e.get("ip")]


def orphan_condition(svc: JSON) -> JSON | None:
    for cond in (svc.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ORPHAN_CONDITION:
            return dict(cond)
    return None


def desired_service(
    svc: JSON,
    ips: Sequence[str],
    pool: str | object | None = _KEEP,
    orphan_reason: str | None = None,
    now: str | None = None,
) -> JSON | None:
    """The object to PUT to /status, or None when the Service already says all this.

    `pool`: the pool name for the annotation, None to remove it, or leave it as it is (orphans).
    """
    meta = svc.get("metadata") or {}
    annotations = dict(meta.get("annotations") or {})
    status = dict(svc.get("status") or {})
    changed = False

    if list(ips) != current_ips(svc):
        status["loadBalancer"] = {"ingress": [{"ip": ip} for ip in ips]} if ips else {}
        changed = True

    if pool is not _KEEP:
        if pool is None and ANN_ALLOCATED_FROM in annotations:
            del annotations[ANN_ALLOCATED_FROM]
            changed = True
        elif isinstance(pool, str) and annotations.get(ANN_ALLOCATED_FROM) != pool:
            annotations[ANN_ALLOCATED_FROM] = pool
            changed = True

    existing = orphan_condition(svc)
    conditions = [c for c in (status.get("conditions") or []) if c.get("type") != ORPHAN_CONDITION]
    if orphan_reason:
        message = f"IPs {list(ips)} are no longer allowed by the configuration: {orphan_reason}"
        if existing is None or existing.get("message") != message:
            conditions.append(
                {
                    "type": ORPHAN_CONDITION,
                    "status": "True",
                    "reason": "NotAllowedByConfig",
                    "message": message,
                    "lastTransitionTime": (existing or {}).get("lastTransitionTime")
                    or now
                    or rfc3339(),
                    "observedGeneration": int(meta.get("generation") or 0),
                }
            )
            changed = True
        else:
            conditions.append(existing)
    elif existing is not None:
        changed = True
    if not changed:
        return None
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)
    new = dict(svc)
    new_meta = dict(meta)
    if annotations:
        new_meta["annotations"] = annotations
    else:
        new_meta.pop("annotations", None)
        # An empty map must still reach the server to delete the last annotation.
        if meta.get("annotations"):
            new_meta["annotations"] = {}
    new["metadata"] = new_meta
    new["status"] = status
    new.setdefault("apiVersion", "v1")
    new.setdefault("kind", "Service")
    return new
