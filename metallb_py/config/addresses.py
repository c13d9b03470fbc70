"""Pool address entries: CIDRs, `start-end` ranges and single addresses, IPv4 and IPv6.

Every entry becomes one inclusive range of integers; overlap tests and containment work on those,
and the minimal CIDR list (what BGP aggregation is checked against) is derived from it.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from metallb_py.config.problems import quote

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
        """Mask length of the least specific CIDR of this entry (the aggregation floor).
        Integer arithmetic: no network objects are built for an entry's CIDRs."""
        bits: int = self.first.max_prefixlen
        lo, hi = int(self.first), int(self.last)
        best = bits
        while lo <= hi:
            align = (lo & -lo).bit_length() - 1 if lo else bits
            block = min(align, (hi - lo + 1).bit_length() - 1)
            best = min(best, bits - block)
            lo += 1 << block
        return best

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    @property
    def key(self) -> tuple[int, int]:
        return int(self.first), int(self.last)

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
        raise AddressError(f"invalid {what} {quote(text.strip())} in {quote(entry)}") from None


def parse_entry(text: str) -> AddressRange:
    """Parse `10.0.0.0/24`, `10.0.0.1-10.0.0.9`, `2001:db8::1` (a single address) and friends."""
    entry = text.strip()
    if not entry:
        raise AddressError("empty address entry")
    if "/" in entry:
        try:
            net = ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            raise AddressError(f"invalid CIDR {quote(entry)}: {quote(str(exc))[1:-1]}") from None
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
                f"invalid IP range {quote(entry)}: start and end are of different families"
            )
        if int(start) > int(end):
            raise AddressError(
                f"invalid IP range {quote(entry)}: start IP {start} is after the end IP {end}"
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


def find_overlaps(ranges: Sequence[AddressRange]) -> list[tuple[int, int]]:
    """Entries that overlap another, as (entry index, index of one it overlaps), in entry order.

    Each entry is named at most once, so n entries give fewer than n pairs (3 000 copies of one
    address: 2 999 pairs, not 4.5 million); a sweep over the sorted ranges, O(n log n).
    """
    order = sorted(range(len(ranges)), key=lambda i: (ranges[i].family, ranges[i].key))
    named: set[int] = set()
    out: list[tuple[int, int]] = []
    holder = -1  # the swept entry reaching farthest, in the current family
    for i in order:
        r = ranges[i]
        if holder < 0 or ranges[holder].family != r.family:
            holder = i
            continue
        h = ranges[holder]
        if int(r.first) <= int(h.last):
            # Name the entry written later, unless it is named already.
            late, early = (i, holder) if i > holder else (holder, i)
            if late in named:
                late, early = early, late
            if late not in named:
                named.add(late)
                out.append((late, early))
        if int(r.last) > int(h.last):
            holder = i
    out.sort()
    return out
