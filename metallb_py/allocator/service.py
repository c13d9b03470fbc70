"""Read a Service (its raw JSON dict) into a ServiceRequest: the annotations and `spec` fields
MetalLB's controller consumes, stable `metallb.io/` keys first, deprecated `metallb.universe.tf/`
second."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from metallb_py.allocator.types import SINGLE_STACK, ServiceRequest

STABLE = "metallb.io/"
LEGACY = "metallb.universe.tf/"
ANN_LB_IPS = "loadBalancerIPs"
ANN_POOL = "address-pool"
ANN_SHARED = "allow-shared-ip"
ANN_ALLOCATED_FROM = STABLE + "ip-allocated-from-pool"
# Ours: ask the controller to drop an orphaned allocation and pick an allowed IP.
ANN_REALLOCATE = "metallb-py.io/reallocate"


def annotation(annotations: Mapping[str, str], suffix: str) -> tuple[str | None, bool]:
    """The value under the stable key, else the legacy key; and whether the legacy one was used."""
    if STABLE + suffix in annotations:
        return annotations[STABLE + suffix], False
    if LEGACY + suffix in annotations:
        return annotations[LEGACY + suffix], True
    return None, False


def uses_legacy_annotations(svc: Mapping[str, Any]) -> bool:
    anns = (svc.get("metadata") or {}).get("annotations") or {}
    return any(k.startswith(LEGACY) for k in anns)


def backend_key(spec: Mapping[str, Any]) -> str:
    """Cluster traffic policy shares freely; Local needs the same pods, i.e. the same selector."""
    if spec.get("externalTrafficPolicy") != "Local":
        return ""
    selector = spec.get("selector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def _families(spec: Mapping[str, Any]) -> tuple[int, ...]:
    ips = [ip for ip in (spec.get("clusterIPs") or []) if ip and ip != "None"]
    if not ips and spec.get("clusterIP") not in (None, "", "None"):
        ips = [spec["clusterIP"]]
    families: list[int] = []
    for ip in ips:
        families.append(ipaddress.ip_address(ip).version)
    return tuple(families)


def request_from_service(
    svc: Mapping[str, Any], namespace_labels: Mapping[str, str] | None = None
) -> ServiceRequest:
    meta = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    anns: Mapping[str, str] = meta.get("annotations") or {}
    namespace = meta.get("namespace") or "default"
    key = f"{namespace}/{meta.get('name', '')}"
    error: str | None = None

    requested: tuple[str, ...] = ()
    lb_ips, _ = annotation(anns, ANN_LB_IPS)
    spec_ip = spec.get("loadBalancerIP") or ""
    if lb_ips and spec_ip:
        error = "service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP"
    elif lb_ips:
        requested = tuple(p.strip() for p in lb_ips.split(",") if p.strip())
    elif spec_ip:
        requested = (spec_ip.strip(),)
    for ip in requested:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            error = error or f"invalid IP {ip!r} requested"
    pool, _ = annotation(anns, ANN_POOL)
    shared, _ = annotation(anns, ANN_SHARED)

    try:
        families = _families(spec)
    except ValueError:
        families = ()
        error = error or "service has an unparseable clusterIP"

    ports = frozenset(
        (str(p.get("protocol") or "TCP"), int(p.get("port") or 0)) for p in spec.get("ports") or []
    )
    return ServiceRequest(
        key=key,
        namespace=namespace,
        labels=tuple(sorted((meta.get("labels") or {}).items())),
        namespace_labels=tuple(sorted((namespace_labels or {}).items())),
        families=families,
        family_policy=spec.get("ipFamilyPolicy") or SINGLE_STACK,
        requested_ips=requested,
        requested_pool=pool or None,
        sharing_key=shared or "",
        backend_key=backend_key(spec),
        ports=ports,
        request_error=error,
        reallocate=str(anns.get(ANN_REALLOCATE, "")).lower() in ("true", "1", "yes"),
    )
