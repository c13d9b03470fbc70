"""Which node announces a layer-2 service: MetalLB's rule, as a pure function.

Among the candidate nodes, the highest preference weight (the summed `preferredNodeSelectors`
weights of the L2Advertisements selecting the node) wins; ties are broken by the lowest SHA-256 of
the UTF-8 string "<node>#<first IP>", compared bytewise, where <first IP> is the first address of
the service in status order, written as Go writes it (dotted quad; RFC 5952 for IPv6). Every address
of the service goes to that one node, so a dual-stack service never splits across nodes. Being
stateless, it moves an address only when the winner itself leaves or a better node arrives.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence


def canonical_ip(ip: str) -> str:
    """The address as Go's net.IP.String() prints it (an IPv4-mapped IPv6 address as IPv4)."""
    addr = ipaddress.ip_address(ip.strip())
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)  # Python already follows RFC 5952: lowercase, longest zero run compressed


def hash_key(node: str, first_ip: str) -> bytes:
    return hashlib.sha256(f"{node}#{canonical_ip(first_ip)}".encode()).digest()


def rank(
    candidates: Iterable[str], first_ip: str, weights: Mapping[str, int] | None = None
) -> list[str]:
    """Candidates best first: weight descending, then hash ascending (duplicates removed)."""
    w = weights or {}
    ip = canonical_ip(first_ip)
    return sorted(set(candidates), key=lambda n: (-w.get(n, 0), hash_key(n, ip)))


def winner(
    candidates: Iterable[str], first_ip: str, weights: Mapping[str, int] | None = None
) -> str | None:
    ranked = rank(candidates, first_ip, weights)
    return ranked[0] if ranked else None


def assign(
    service_ips: Sequence[str], candidates: Iterable[str], weights: Mapping[str, int] | None = None
) -> dict[str, str]:
    """Every IP of one service -> the single node that announces them all ({} if none can)."""
    if not service_ips:
        return {}
    node = winner(candidates, service_ips[0], weights)
    if node is None:
        return {}
    return {canonical_ip(ip): node for ip in service_ips}


def should_announce(
    my_node: str,
    service_ips: Sequence[str],
    candidates: Iterable[str],
    weights: Mapping[str, int] | None = None,
) -> bool:
    return bool(service_ips) and winner(candidates, service_ips[0], weights) == my_node
