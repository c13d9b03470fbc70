"""Pool address entries: CIDRs, `start-end` ranges and single addresses, IPv4 and IPv6.

Every entry becomes one inclusive range of integers; overlap tests and containment work on those,
and the minimal CIDR list (what BGP aggregation is checked against) is derived from it.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressError(ValueError):
    pass


@dataclass(frozen=True)
class AddressRange:
    """One pool entry as written (`entry`) and the inclusive range it covers."""

    entry: str
    first: IPAddress
    last: IPAddress
    host_bits_set: bool = False

    @property
    def family(self) -> int:
        return self.first.version

    @cached_property
    def cidrs(self) -> tuple[IPNetwork, ...]:
        return tuple(ipaddress.summarize_address_range(self.first, self.last))

    @property
    def widest_prefix(self) -> int:
        """Mask length of the least specific CIDR of this entry (the aggregation floor)."""
        return min(c.prefixlen for c in self.cidrs)

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def __contains__(self, ip: object) -> bool:
        if not isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        return ip.version == self.family and int(self.first) <= int(ip) <= int(self.last)

    def overlaps(self, other: AddressRange) -> bool:
        return (
            self.family == other.family
            and int(self.first) <= int(other.last)
            and int(other.first) <= int(self.last)
        )

    def __str__(self) -> str:
        return self.entry


def _parse_ip(text: str, what: str, entry: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise AddressError(f"invalid {what} {text.strip()!r} in {entry!r}") from None


def parse_entry(text: str) -> AddressRange:
    """Parse `10.0.0.0/24`, `10.0.0.1-10.0.0.9`, `2001:db8::1` (a single address) and friends."""
    entry = text.strip()
    if not entry:
        raise AddressError("empty address entry")
    if "/" in entry:
        try:
            net = ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            raise AddressError(f"invalid CIDR {entry!r}: {exc}") from None
        exact = ipaddress.ip_network(
            entry.split("/", 1)[0] + "/" + str(net.prefixlen), strict=False
        )
        host_bits = str(exact.network_address) != entry.split("/", 1)[0].strip()
        return AddressRange(entry, net.network_address, net.broadcast_address, host_bits)
    if "-" in entry:
        start_text, _, end_text = entry.partition("-")
        start = _parse_ip(start_text, "start IP", entry)
        end = _parse_ip(end_text, "end IP", entry)
        if start.version != end.version:
            raise AddressError(
                f"invalid IP range {entry!r}: start and end are of different families"
            )
        if int(start) > int(end):
            raise AddressError(
                f"invalid IP range {entry!r}: start IP {start} is after the end IP {end}"
            )
        return AddressRange(entry, start, end)
    ip = _parse_ip(entry, "address", entry)
    return AddressRange(entry, ip, ip)


class RangeIndex:
    """Accepted ranges of every family, sorted, to find overlaps in O(log n)."""

    def __init__(self) -> None:
        self._starts: dict[int, list[int]] = {4: [], 6: []}
        self._items: dict[int, list[tuple[int, int, object, AddressRange]]] = {4: [], 6: []}

    def add(self, rng: AddressRange, owner: object) -> None:
        fam = rng.family
        lo, hi = int(rng.first), int(rng.last)
        i = bisect.bisect_left(self._starts[fam], lo)
        self._starts[fam].insert(i, lo)
        self._items[fam].insert(i, (lo, hi, owner, rng))

    def overlapping(self, rng: AddressRange) -> list[tuple[object, AddressRange]]:
        """Accepted ranges overlapping `rng` (accepted ranges never overlap each other)."""
        fam = rng.family
        lo, hi = int(rng.first), int(rng.last)
        items = self._items[fam]
        i = bisect.bisect_right(self._starts[fam], hi)
        out: list[tuple[object, AddressRange]] = []
        j = i - 1
        while j >= 0:
            _, a_hi, owner, other = items[j]
            if a_hi < lo:
                break
            out.append((owner, other))
            j -= 1
        out.reverse()
        return out


def find_overlaps(ranges: Iterable[AddressRange]) -> list[tuple[AddressRange, AddressRange]]:
    """Every overlapping pair, each reported once (a sweep over sorted ranges)."""
    out: list[tuple[AddressRange, AddressRange]] = []
    by_family: dict[int, list[AddressRange]] = {4: [], 6: []}
    for r in ranges:
        by_family[r.family].append(r)
    for items in by_family.values():
        items.sort(key=lambda r: (int(r.first), int(r.last)))
        active: list[AddressRange] = []
        for r in items:
            active = [a for a in active if int(a.last) >= int(r.first)]
            out.extend((a, r) for a in active)
            active.append(r)
    return out
