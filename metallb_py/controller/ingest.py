"""Informer transforms: what the controller's caches keep of Services and Namespaces.

The controller caches every Service of the cluster; most of each object (managedFields, most of
the annotations, node ports, session affinity, target ports, health-check settings, ingress
details) is never read. Trimming at ingest, as MetalLB does with client-go's `SetTransform`,
keeps the cache to the fields these readers use:

* the allocator's view (`allocator/service.py`, `request_from_service`): `metadata.labels`
  (pool `serviceSelectors`), the `metallb.io/`, `metallb.universe.tf/` and `metallb-py.io/`
  annotations (loadBalancerIPs, address-pool, allow-shared-ip, ip-allocated-from-pool,
  reallocate), `spec.loadBalancerIP`, `spec.clusterIPs` (or `spec.clusterIP` when there are no
  clusterIPs: the address families), `spec.ipFamilyPolicy`, `spec.ports[].protocol/port` (the
  sharing port-conflict check), `spec.externalTrafficPolicy`, and `spec.selector` only under
  `externalTrafficPolicy: Local` (the one case the sharing rule compares selectors);
* the reconciler: `spec.type`, `spec.loadBalancerClass`, `metadata.creationTimestamp` (oldest
  claim first at startup), `metadata.generation` (the orphan condition's observedGeneration),
  `status.loadBalancer.ingress[].ip` and the whole `status.conditions` list (a status write
  replaces that list, so conditions other writers set must be in it);
* the `metallb_allocator_layer2_address` metric: `metadata.labels`;
* events (`kube/events.py`): `kind`, `apiVersion`, `metadata.name/namespace/uid/resourceVersion`;
  the cache and the status write's precondition: `metadata.resourceVersion`.

Namespaces keep their labels (pool `namespaceSelectors`) and the envelope the configuration
parser reads (kind, apiVersion, name, creationTimestamp).

Status writes never send a cached object back: they are merge patches of `status` and of the
one annotation the controller owns (`kube.status.status_patch`), so what the cache drops is
never written. Cached objects are read-only; identical port lists are shared between Services.
"""

from __future__ import annotations

from typing import Any

from metallb_py.allocator.service import ANN_REALLOCATE, LEGACY, STABLE
from metallb_py.kube.transform import META_KEYS, head, intern, metadata
from metallb_py.objects import JSON

ANNOTATION_PREFIXES = (STABLE, LEGACY, ANN_REALLOCATE.split("/", 1)[0] + "/")
SERVICE_META_KEYS = (*META_KEYS, "creationTimestamp", "generation")
NAMESPACE_META_KEYS = (*META_KEYS, "creationTimestamp")
_SPEC_SCALARS = (
    "type",
    "loadBalancerClass",
    "loadBalancerIP",
    "ipFamilyPolicy",
    "externalTrafficPolicy",
)
# (protocol, port) tuples -> one shared tuple of port dicts: most Services expose 80 or 443.
_PORTS: dict[tuple[tuple[Any, Any], ...], tuple[JSON, ...]] = {}
_PORTS_MAX = 4096


def _ports(raw: Any) -> tuple[JSON, ...]:
    if not isinstance(raw, list):
        return ()
    key = tuple(
        (intern(p.get("protocol") or "TCP"), p.get("port")) for p in raw if isinstance(p, dict)
    )
    shared = _PORTS.get(key)
    if shared is None:
        shared = tuple({"protocol": proto, "port": port} for proto, port in key)
        if len(_PORTS) < _PORTS_MAX:
            _PORTS[key] = shared
    return shared


def service(obj: JSON) -> JSON:
    """A Service as the controller reads it (the fields listed in the module docstring)."""
    out = head(obj)
    meta = out["metadata"] = metadata(obj, labels=True, keys=SERVICE_META_KEYS)
    anns = (obj.get("metadata") or {}).get("annotations")
    if isinstance(anns, dict):
        kept = {intern(k): v for k, v in anns.items() if k.startswith(ANNOTATION_PREFIXES)}
        if kept:
            meta["annotations"] = kept
    spec = obj.get("spec") or {}
    slim: JSON = {k: intern(spec[k]) for k in _SPEC_SCALARS if spec.get(k) is not None}
    if spec.get("clusterIPs"):
        slim["clusterIPs"] = list(spec["clusterIPs"])
    elif spec.get("clusterIP") is not None:
        slim["clusterIP"] = spec["clusterIP"]
    if spec.get("ports"):
        slim["ports"] = _ports(spec["ports"])
    selector = spec.get("selector")
    if spec.get("externalTrafficPolicy") == "Local" and isinstance(selector, dict) and selector:
        slim["selector"] = {intern(k): intern(v) for k, v in selector.items()}
    out["spec"] = slim
    status = obj.get("status") or {}
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    ips = [{"ip": e["ip"]} for e in ingress if isinstance(e, dict) and e.get("ip")]
    out["status"] = slim_status = {"loadBalancer": {"ingress": ips} if ips else {}}
    if status.get("conditions"):
        slim_status["conditions"] = status["conditions"]
    return out


def namespace(obj: JSON) -> JSON:
    """A Namespace as the controller reads it: its labels and envelope."""
    out = head(obj)
    out["metadata"] = metadata(obj, labels=True, keys=NAMESPACE_META_KEYS)
    return out
