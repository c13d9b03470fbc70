"""Where a speaker looks for the other members: the speaker Pods, or else the Nodes.

In a cluster the speakers are the Pods matching `--ml-labels` (MetalLB's rule: their pod IP is
the host IP, since speakers run on the host network). Where no such Pod exists — speakers run by
systemd beside the embedded API server, or the demo — every Node's internal address is tried
instead, on the same port: a node without a speaker simply does not answer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

JSON = Mapping[str, Any]


def _family(addr: str) -> int:
    return ipaddress.ip_address(addr).version


def pod_addresses(pods: Iterable[JSON]) -> list[str]:
    """IPs of speaker Pods that are not finished (a Succeeded/Failed Pod's IP may be reused)."""
    out: list[str] = []
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        ips = [i.get("ip") for i in status.get("podIPs") or [] if i.get("ip")]
        if not ips and status.get("podIP"):
            ips = [status["podIP"]]
        out.extend(str(ip) for ip in ips)
    return out


def node_addresses(nodes: Iterable[JSON]) -> list[str]:
    """Each Node's InternalIP addresses, or its ExternalIP ones when it has no internal one."""
    out: list[str] = []
    for node in nodes:
        addrs = (node.get("status") or {}).get("addresses") or []
        internal = [a.get("address") for a in addrs if a.get("type") == "InternalIP"]
        external = [a.get("address") for a in addrs if a.get("type") == "ExternalIP"]
        out.extend(str(a) for a in (internal or external) if a)
    return out


def seed_addresses(
    candidates: Iterable[str], *, bind_addr: str, exclude: Iterable[str] = ()
) -> list[str]:
    """The candidates worth joining: valid, of the bind address's family (a member only speaks
    one), not ourselves, not already known; sorted and without duplicates."""
    try:
        family = _family(bind_addr)
    except ValueError:
        family = 0
    skip = {bind_addr, *exclude}
    out: set[str] = set()
    for addr in candidates:
        try:
            if family and _family(addr) != family:
                continue
        except ValueError:
            continue
        if addr not in skip:
            out.add(str(ipaddress.ip_address(addr)))
    return sorted(out, key=lambda a: ipaddress.ip_address(a).packed)
