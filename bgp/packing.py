"""UPDATE packing: prefixes with identical attributes share UPDATEs filled to the negotiated size.

Prefixes travel through the speaker in their NLRI wire form (`bytes((length,)) + significant
octets`), kept per address family: it is compact (a /32 is a 5-byte object), hashable, and
needs no encoding when an UPDATE is built. `prefix_key()` parses text straight into that form.

`RouteAttrs` holds what may differ between prefixes of one speaker: communities, large
communities, LOCAL_PREF and MED. ORIGIN, AS_PATH and NEXT_HOP are per session and are added
by the `Packer`, which encodes each distinct attribute block once per session and caches it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from bgp.attributes import (
    AsPath,
    Attribute,
    Communities,
    LargeCommunities,
    LocalPref,
    MultiExitDisc,
    NextHop,
    Origin,
    encode_attributes,
    encode_mp_reach,
    encode_mp_unreach,
    mp_reach_overhead,
)
from bgp.context import AFI_IPV4, AFI_IPV6, SAFI_UNICAST, CodecContext
from bgp.messages import UPDATE_OVERHEAD, encode_update_raw, end_of_rib

DEFAULT_LOCAL_PREF = 100
MP_REACH_CODE = 14
_MP_UNREACH_OVERHEAD = 4 + 3  # extended-length TLV header + AFI + SAFI


class PrefixError(ValueError):
    """Text that is not an IP prefix with zero host bits."""


@dataclass(frozen=True, slots=True)
class RouteAttrs:
    """Per-prefix attributes. Build with `normalized()` so equal sets compare equal."""

    communities: tuple[int, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    local_pref: int | None = None
    med: int | None = None

    def normalized(self) -> RouteAttrs:
        """Sorted and de-duplicated, so equal sets compare (and group) equal."""
        return RouteAttrs(
            tuple(sorted(set(self.communities))),
            tuple(sorted(set(self.large_communities))),
            self.local_pref,
            self.med,
        )


DEFAULT_ATTRS = RouteAttrs()


# -- prefixes in wire form ---------------------------------------------------------------------


_FULL_V4 = bytes((32,))
_FULL_V6 = bytes((128,))


def prefix_key(text: str) -> tuple[int, bytes]:
    """`203.0.113.7`, `203.0.113.0/24`, `2001:db8::/64` -> (AFI, NLRI wire bytes).

    Hot path of route loading (100 000 lines per cold start): host routes take a short cut.
    """
    addr_text, slash, len_text = text.partition("/")
    if ":" in addr_text:
        afi, family, width, full = AFI_IPV6, socket.AF_INET6, 128, _FULL_V6
    else:
        afi, family, width, full = AFI_IPV4, socket.AF_INET, 32, _FULL_V4
    try:
        raw = socket.inet_pton(family, addr_text)
    except OSError:
        if addr_text.strip() != addr_text or len_text.strip() != len_text:
            return prefix_key(text.strip().replace(" ", ""))
        raise PrefixError(f"bad prefix {text!r}: not an IP address") from None
    if not slash or len_text == ("32" if width == 32 else "128"):
        return afi, full + raw
    if not len_text.isdigit() or int(len_text) > width:
        raise PrefixError(f"bad prefix {text!r}: length must be 0..{width}")
    length = int(len_text)
    if length < width and int.from_bytes(raw, "big") & ((1 << (width - length)) - 1):
        raise PrefixError(f"bad prefix {text!r}: host bits set")
    return afi, bytes((length,)) + raw[: (length + 7) >> 3]


def key_from_network(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, bytes]:
    afi = AFI_IPV4 if net.version == 4 else AFI_IPV6
    return afi, bytes((net.prefixlen,)) + net.network_address.packed[: (net.prefixlen + 7) >> 3]


def key_to_network(afi: int, key: bytes) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    width = 4 if afi == AFI_IPV4 else 16
    return ipaddress.ip_network((key[1:].ljust(width, b"\0"), key[0]))


def key_to_str(afi: int, key: bytes) -> str:
    return str(key_to_network(afi, key))


# -- per-session encoding ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionEncoding:
    """What the attribute block of one session depends on.

    `next_hop4` is the IPv4 NEXT_HOP (4 octets); `next_hop6` the MP next hop for IPv6 routes
    (16 octets, or 32 with a link-local address). With `v4_over_v6` (RFC 8950 negotiated),
    IPv4 routes go in MP_REACH_NLRI with `next_hop6` instead.
    """

    local_as: int
    ibgp: bool
    ctx: CodecContext
    next_hop4: bytes | None = None
    next_hop6: bytes | None = None
    v4_over_v6: bool = False
    default_local_pref: int = DEFAULT_LOCAL_PREF


class Packer:
    """Turns groups of prefixes into UPDATE messages for one session (see the module doc)."""

    def __init__(self, enc: SessionEncoding) -> None:
        self.enc = enc
        self.max_size = enc.ctx.max_message_size
        self._cache: dict[tuple[int, RouteAttrs], tuple[bytes, bytes]] = {}

    def uses_mp(self, afi: int) -> bool:
        return afi != AFI_IPV4 or self.enc.v4_over_v6

    def can_send(self, afi: int) -> bool:
        """Whether this session has a next hop for the family."""
        if afi == AFI_IPV4:
            return self.enc.next_hop4 is not None or (
                self.enc.v4_over_v6 and self.enc.next_hop6 is not None
            )
        return self.enc.next_hop6 is not None

    def attribute_list(self, afi: int, attrs: RouteAttrs) -> list[Attribute]:
        """The path attributes (without MP_REACH_NLRI) a route of `attrs` carries."""
        enc = self.enc
        out: list[Attribute] = [
            Origin(),
            AsPath() if enc.ibgp else AsPath.sequence(enc.local_as),
        ]
        if not self.uses_mp(afi):
            if enc.next_hop4 is None:
                raise ValueError("no IPv4 next hop for this session")
            out.append(NextHop(ipaddress.IPv4Address(enc.next_hop4)))
        if attrs.med is not None:
            out.append(MultiExitDisc(attrs.med))
        if enc.ibgp:  # LOCAL_PREF on every iBGP UPDATE, never on eBGP (RFC 4271 §5.1.5)
            lp = attrs.local_pref if attrs.local_pref is not None else enc.default_local_pref
            out.append(LocalPref(lp))
        if attrs.communities:
            out.append(Communities(attrs.communities))
        if attrs.large_communities:
            out.append(LargeCommunities(attrs.large_communities))
        return out

    def blocks(self, afi: int, attrs: RouteAttrs) -> tuple[bytes, bytes]:
        """Encoded attributes before and after MP_REACH_NLRI's place (type code order), cached."""
        hit = self._cache.get((afi, attrs))
        if hit is not None:
            return hit
        before: list[bytes] = []
        after: list[bytes] = []
        for attr in self.attribute_list(afi, attrs):
            tlv = encode_attributes([attr], self.enc.ctx)
            (before if attr.type_code < MP_REACH_CODE else after).append(tlv)
        # encode_attributes may append AS4_PATH (type 17) for a 2-octet peer: it sorts after.
        result = (b"".join(before), b"".join(after))
        self._cache[(afi, attrs)] = result
        return result

    def _next_hop_mp(self, afi: int) -> bytes:
        nh = self.enc.next_hop6
        if nh is None:
            raise ValueError(f"no IPv6 next hop for AFI {afi} on this session")
        return nh

    def announce(
        self, afi: int, groups: Iterable[tuple[RouteAttrs, Sequence[bytes]]]
    ) -> Iterator[tuple[bytes, int]]:
        """(UPDATE, prefix count) for every group, each UPDATE filled up to the maximum size."""
        for attrs, keys in groups:
            if not keys:
                continue
            before, after = self.blocks(afi, attrs)
            if self.uses_mp(afi):
                nh = self._next_hop_mp(afi)
                room = self.max_size - UPDATE_OVERHEAD - len(before) - len(after)
                room -= mp_reach_overhead(len(nh))
                for nlri, count in _chunks(keys, room):
                    mp = encode_mp_reach(afi, SAFI_UNICAST, nh, nlri)
                    yield encode_update_raw(b"", before + mp + after, b""), count
            else:
                block = before + after
                room = self.max_size - UPDATE_OVERHEAD - len(block)
                for nlri, count in _chunks(keys, room):
                    yield encode_update_raw(b"", block, nlri), count

    def withdraw(self, afi: int, keys: Sequence[bytes]) -> Iterator[tuple[bytes, int]]:
        """(UPDATE, prefix count): withdrawals batched up to the maximum size."""
        if not keys:
            return
        if self.uses_mp(afi):
            room = self.max_size - UPDATE_OVERHEAD - _MP_UNREACH_OVERHEAD
            for nlri, count in _chunks(keys, room):
                yield encode_update_raw(b"", encode_mp_unreach(afi, SAFI_UNICAST, nlri), b""), count
        else:
            for nlri, count in _chunks(keys, self.max_size - UPDATE_OVERHEAD):
                yield encode_update_raw(nlri, b"", b""), count

    @staticmethod
    def end_of_rib(afi: int) -> bytes:
        return end_of_rib(afi, SAFI_UNICAST)


def _chunks(keys: Sequence[bytes], room: int) -> Iterator[tuple[bytes, int]]:
    """Join NLRI encodings into runs of at most `room` octets."""
    if room < 17:
        raise ValueError("attributes leave no room for NLRI in one UPDATE")
    lengths = set(map(len, keys))
    if len(lengths) == 1:  # all prefixes the same length (e.g. /32s): slice directly
        step = room // lengths.pop()
        seq = keys if isinstance(keys, list) else list(keys)
        for i in range(0, len(seq), step):
            part = seq[i : i + step]
            yield b"".join(part), len(part)
        return
    chunk: list[bytes] = []
    size = 0
    for k in keys:
        n = len(k)
        if size + n > room:
            yield b"".join(chunk), len(chunk)
            chunk = []
            size = 0
        chunk.append(k)
        size += n
    if chunk:
        yield b"".join(chunk), len(chunk)


def group_by_attrs(
    routes: Iterable[tuple[bytes, RouteAttrs]],
) -> list[tuple[RouteAttrs, list[bytes]]]:
    """Group (key, attrs) pairs by attributes, keeping first-seen order."""
    groups: dict[RouteAttrs, list[bytes]] = {}
    for key, attrs in routes:
        lst = groups.get(attrs)
        if lst is None:
            groups[attrs] = [key]
        else:
            lst.append(key)
    return list(groups.items())
