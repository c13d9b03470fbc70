"""Informer transforms: what the speaker's caches keep of Services, EndpointSlices and Nodes.

A speaker runs on every node and caches every Service and EndpointSlice of the cluster; most of
each object (ports, selectors, managedFields, endpoint addresses beyond the first, targetRefs,
node images and capacity) is never read. Trimming at ingest, as MetalLB does with client-go's
`SetTransform`, keeps the cache to the fields these readers use:

* `desired.py` (the announcement rules): Service labels, the metallb annotations, `spec.type`,
  `spec.loadBalancerClass`, `spec.externalTrafficPolicy`, `status.loadBalancer.ingress[].ip`;
  EndpointSlice endpoints' `addresses` (only whether there is one), `conditions.ready`,
  `conditions.serving`, `nodeName`; Node labels and the `Ready`/`NetworkUnavailable` conditions.
* the reconciler: the slice's `kubernetes.io/service-name` label (its index) and the Node
  signature (labels, conditions).
* events (`kube/events.py`): `kind`, `apiVersion`, `metadata.name/namespace/uid/resourceVersion`.
* the cache: `metadata.name/namespace/resourceVersion`.

Strings that repeat across thousands of objects (namespaces, label keys, condition values) are
interned, and identical endpoint conditions share one dict. Cached objects are read-only.
"""

from __future__ import annotations

from typing import Any

from metallb_py.allocator.service import LEGACY, STABLE
from metallb_py.kube.transform import head as _head
from metallb_py.kube.transform import intern as _s
from metallb_py.kube.transform import metadata as _metadata
from metallb_py.objects import JSON
from metallb_py.speaker.desired import SERVICE_NAME_LABEL

_CONDITIONS: dict[tuple[Any, Any], JSON] = {}  # (ready, serving) -> one shared dict


def service(obj: JSON) -> JSON:
    """A Service as the speaker reads it."""
    out = _head(obj)
    meta = out["metadata"] = _metadata(obj, labels=True)
    anns = (obj.get("metadata") or {}).get("annotations")
    if isinstance(anns, dict):
        kept = {_s(k): v for k, v in anns.items() if k.startswith(STABLE) or k.startswith(LEGACY)}
        if kept:
            meta["annotations"] = kept
    spec = obj.get("spec") or {}
    out["spec"] = {
        k: _s(spec[k])
        for k in ("type", "loadBalancerClass", "externalTrafficPolicy")
        if spec.get(k) is not None
    }
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ips = [{"ip": e["ip"]} for e in ingress if isinstance(e, dict) and e.get("ip")]
    out["status"] = {"loadBalancer": {"ingress": ips}} if ips else {}
    return out


def _conditions(cond: Any) -> JSON:
    if not isinstance(cond, dict):
        cond = {}
    key = (cond.get("ready"), cond.get("serving"))
    shared = _CONDITIONS.get(key)
    if shared is None:
        shared = {k: v for k, v in zip(("ready", "serving"), key, strict=True) if v is not None}
        if len(_CONDITIONS) < 64:  # only a handful of combinations exist (None/True/False)
            _CONDITIONS[key] = shared
    return shared


def endpoint_slice(obj: JSON) -> JSON:
    """An EndpointSlice as the speaker reads it: per endpoint, whether it has an address, its
    readiness and its node."""
    out = _head(obj)
    meta = out["metadata"] = _metadata(obj, labels=False)
    raw_labels = (obj.get("metadata") or {}).get("labels") or {}
    name = raw_labels.get(SERVICE_NAME_LABEL) if isinstance(raw_labels, dict) else None
    if name:
        meta["labels"] = {SERVICE_NAME_LABEL: _s(name)}
    endpoints = []
    for ep in obj.get("endpoints") or []:
        if not isinstance(ep, dict):
            continue
        slim: JSON = {"conditions": _conditions(ep.get("conditions"))}
        addrs = ep.get("addresses")
        if addrs:
            slim["addresses"] = list(addrs[:1])
        if ep.get("nodeName"):
            slim["nodeName"] = _s(ep["nodeName"])
        endpoints.append(slim)
    out["endpoints"] = endpoints
    return out


def node(obj: JSON) -> JSON:
    """A Node as the speaker reads it: labels and the type/status of its conditions."""
    out = _head(obj)
    out["metadata"] = _metadata(obj, labels=True)
    conds = (obj.get("status") or {}).get("conditions") or []
    out["status"] = {
        "conditions": [
            {"type": _s(c.get("type")), "status": _s(c.get("status"))}
            for c in conds
            if isinstance(c, dict)
        ]
    }
    return out
