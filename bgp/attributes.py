"""BGP path attributes: immutable dataclasses, the encoder and the RFC 7606-aware decoder.

Encoding: `encode_attributes(attrs, ctx)` returns one path-attribute block (no length
prefix), sorted by type code, with AS4_PATH/AS4_AGGREGATOR added when a 4-octet AS must be
sent to a 2-octet peer.  A packer encodes the block once per attribute set and reuses it;
`encode_mp_reach` / `encode_mp_unreach` build the per-UPDATE MP attributes around
pre-encoded NLRI bytes.

Decoding: `decode_attributes(data, ctx, ipv4_nlri=...)` returns the attributes in the order
received plus the list of soft problems (RFC 7606 attribute-discard / treat-as-withdraw /
AFI-SAFI-disable), and raises `BGPError` only for the ones that reset the session.
Attributes we do not originate are still decoded (ORIGINATOR_ID, CLUSTER_LIST, extended
communities, MP_REACH of any family with raw NLRI); unknown ones are kept raw with flags.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from bgp.context import AFI_IPV4, AFI_IPV6, DEFAULT_CONTEXT, CodecContext
from bgp.errors import (
    ATTRIBUTE_FLAGS_ERROR,
    ATTRIBUTE_LENGTH_ERROR,
    INVALID_NEXT_HOP_ATTRIBUTE,
    INVALID_ORIGIN_ATTRIBUTE,
    MALFORMED_AS_PATH,
    MALFORMED_ATTRIBUTE_LIST,
    MISSING_WELL_KNOWN_ATTRIBUTE,
    OPTIONAL_ATTRIBUTE_ERROR,
    UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
    UPDATE_MESSAGE_ERROR,
    BGPError,
    ErrorAction,
)
from bgp.nlri import Prefix, decode_prefixes, encode_prefixes

FLAG_OPTIONAL = 0x80
FLAG_TRANSITIVE = 0x40
FLAG_PARTIAL = 0x20
FLAG_EXTENDED_LENGTH = 0x10

ORIGIN = 1
AS_PATH = 2
NEXT_HOP = 3
MULTI_EXIT_DISC = 4
LOCAL_PREF = 5
ATOMIC_AGGREGATE = 6
AGGREGATOR = 7
COMMUNITIES = 8
ORIGINATOR_ID = 9
CLUSTER_LIST = 10
MP_REACH_NLRI = 14
MP_UNREACH_NLRI = 15
EXTENDED_COMMUNITIES = 16
AS4_PATH = 17
AS4_AGGREGATOR = 18
LARGE_COMMUNITY = 32

ATTRIBUTE_NAMES = {
    1: "ORIGIN",
    2: "AS_PATH",
    3: "NEXT_HOP",
    4: "MULTI_EXIT_DISC",
    5: "LOCAL_PREF",
    6: "ATOMIC_AGGREGATE",
    7: "AGGREGATOR",
    8: "COMMUNITIES",
    9: "ORIGINATOR_ID",
    10: "CLUSTER_LIST",
    14: "MP_REACH_NLRI",
    15: "MP_UNREACH_NLRI",
    16: "EXTENDED_COMMUNITIES",
    17: "AS4_PATH",
    18: "AS4_AGGREGATOR",
    22: "PMSI_TUNNEL",
    23: "TUNNEL_ENCAPSULATION",
    25: "IPV6_EXTENDED_COMMUNITIES",
    26: "AIGP",
    29: "BGP_LS",
    32: "LARGE_COMMUNITY",
    33: "BGPSEC_PATH",
    35: "OTC",
    40: "PREFIX_SID",
    128: "ATTR_SET",
}

AS_TRANS = 23456

ORIGIN_IGP = 0
ORIGIN_EGP = 1
ORIGIN_INCOMPLETE = 2
ORIGIN_NAMES = {0: "igp", 1: "egp", 2: "incomplete"}

AS_SET = 1
AS_SEQUENCE = 2
AS_CONFED_SEQUENCE = 3
AS_CONFED_SET = 4
SEGMENT_NAMES = {1: "as-set", 2: "as-sequence", 3: "confed-sequence", 4: "confed-set"}

# RFC 1997, RFC 3765, RFC 7999, RFC 8326, RFC 7611, RFC 9494 well-known communities.
WELL_KNOWN_COMMUNITIES = {
    "graceful-shutdown": 0xFFFF0000,
    "accept-own": 0xFFFF0001,
    "llgr-stale": 0xFFFF0006,
    "no-llgr": 0xFFFF0007,
    "blackhole": 0xFFFF029A,
    "no-export": 0xFFFFFF01,
    "no-advertise": 0xFFFFFF02,
    "no-export-subconfed": 0xFFFFFF03,
    "no-peer": 0xFFFFFF04,
}
COMMUNITY_NAMES = {v: k for k, v in WELL_KNOWN_COMMUNITIES.items()}


def parse_community(text: str) -> int:
    """'65000:100' or a well-known name ('no-export') -> 32-bit value."""
    name = text.strip().lower().replace("_", "-")
    if name in WELL_KNOWN_COMMUNITIES:
        return WELL_KNOWN_COMMUNITIES[name]
    high, sep, low = name.partition(":")
    if not sep or not high.isdigit() or not low.isdigit():
        raise ValueError(f"invalid community {text!r}: expected ASN:VALUE or a well-known name")
    hi, lo = int(high), int(low)
    if hi > 0xFFFF or lo > 0xFFFF:
        raise ValueError(f"invalid community {text!r}: each half must be 0-65535")
    return (hi << 16) | lo


def format_community(value: int) -> str:
    return COMMUNITY_NAMES.get(value) or f"{value >> 16}:{value & 0xFFFF}"


def parse_large_community(text: str) -> tuple[int, int, int]:
    """'64512:1:2' -> (64512, 1, 2), each part 0-4294967295."""
    parts = text.strip().split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"invalid large community {text!r}: expected ASN:VALUE1:VALUE2")
    a, b, c = (int(p) for p in parts)
    if max(a, b, c) > 0xFFFFFFFF:
        raise ValueError(f"invalid large community {text!r}: each part must fit 32 bits")
    return (a, b, c)


def format_extended_community(value: int) -> str:
    """Readable form of the common extended communities (RFC 4360, 5668), else hex."""
    raw = value.to_bytes(8, "big")
    typ, sub = raw[0] & 0x3F, raw[1]
    kinds = {2: "rt", 3: "soo"}
    if sub in kinds and typ in (0, 1, 2):
        kind = kinds[sub]
        if typ == 0:
            return f"{kind}:{int.from_bytes(raw[2:4], 'big')}:{int.from_bytes(raw[4:], 'big')}"
        if typ == 1:
            return f"{kind}:{ipaddress.IPv4Address(raw[2:6])}:{int.from_bytes(raw[6:], 'big')}"
        return f"{kind}:{int.from_bytes(raw[2:6], 'big')}:{int.from_bytes(raw[6:], 'big')}"
    return f"0x{raw.hex()}"


# --------------------------------------------------------------------------- attributes


@dataclass(frozen=True, slots=True)
class Origin:
    value: int = ORIGIN_IGP
    type_code: ClassVar[int] = ORIGIN
    flags: ClassVar[int] = FLAG_TRANSITIVE

    def encode_value(self, ctx: CodecContext) -> bytes:
        return bytes((self.value,))


@dataclass(frozen=True, slots=True)
class AsPathSegment:
    type: int
    asns: tuple[int, ...]


def _encode_segments(segments: Iterable[AsPathSegment], four_octet: bool) -> bytes:
    out = []
    for seg in segments:
        asns = seg.asns
        # A segment holds at most 255 ASes; split longer sequences.
        for start in range(0, max(len(asns), 1), 255):
            chunk = asns[start : start + 255]
            if four_octet:
                body = struct.pack(f"!{len(chunk)}I", *chunk)
            else:
                body = struct.pack(
                    f"!{len(chunk)}H", *(a if a <= 0xFFFF else AS_TRANS for a in chunk)
                )
            out.append(bytes((seg.type, len(chunk))) + body)
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class AsPath:
    segments: tuple[AsPathSegment, ...] = ()
    type_code: ClassVar[int] = AS_PATH
    flags: ClassVar[int] = FLAG_TRANSITIVE

    @classmethod
    def sequence(cls, *asns: int) -> AsPath:
        return cls((AsPathSegment(AS_SEQUENCE, tuple(asns)),) if asns else ())

    def encode_value(self, ctx: CodecContext) -> bytes:
        return _encode_segments(self.segments, ctx.four_octet_as)

    def needs_as4(self) -> bool:
        return any(a > 0xFFFF for s in self.segments for a in s.asns)


@dataclass(frozen=True, slots=True)
class As4Path:
    segments: tuple[AsPathSegment, ...] = ()
    type_code: ClassVar[int] = AS4_PATH
    flags: ClassVar[int] = FLAG_OPTIONAL | FLAG_TRANSITIVE

    def encode_value(self, ctx: CodecContext) -> bytes:
        return _encode_segments(self.segments, True)


@dataclass(frozen=True, slots=True)
class _AddressValue:
    """The value is one IPv4 address (NEXT_HOP, ORIGINATOR_ID)."""

    address: ipaddress.IPv4Address

    def encode_value(self, ctx: CodecContext) -> bytes:
        return self.address.packed


@dataclass(frozen=True, slots=True)
class _U32Value:
    """The value is one 32-bit number (MULTI_EXIT_DISC, LOCAL_PREF)."""

    value: int

    def encode_value(self, ctx: CodecContext) -> bytes:
        return struct.pack("!I", self.value)


@dataclass(frozen=True, slots=True)
class _NumberList:
    """The value is a list of fixed-width numbers (COMMUNITIES, EXTENDED_COMMUNITIES)."""

    values: tuple[int, ...]
    struct_code: ClassVar[str]  # the width of one number: "I" 4 octets, "Q" 8

    def encode_value(self, ctx: CodecContext) -> bytes:
        return struct.pack(f"!{len(self.values)}{self.struct_code}", *self.values)


@dataclass(frozen=True, slots=True)
class NextHop(_AddressValue):
    type_code: ClassVar[int] = NEXT_HOP
    flags: ClassVar[int] = FLAG_TRANSITIVE


@dataclass(frozen=True, slots=True)
class MultiExitDisc(_U32Value):
    type_code: ClassVar[int] = MULTI_EXIT_DISC
    flags: ClassVar[int] = FLAG_OPTIONAL


@dataclass(frozen=True, slots=True)
class LocalPref(_U32Value):
    value: int = 100
    type_code: ClassVar[int] = LOCAL_PREF
    flags: ClassVar[int] = FLAG_TRANSITIVE


@dataclass(frozen=True, slots=True)
class AtomicAggregate:
    type_code: ClassVar[int] = ATOMIC_AGGREGATE
    flags: ClassVar[int] = FLAG_TRANSITIVE

    def encode_value(self, ctx: CodecContext) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class _AggregatorValue:
    """The AS number and router ID of the aggregating speaker (AGGREGATOR, AS4_AGGREGATOR)."""

    asn: int
    address: ipaddress.IPv4Address
    flags: ClassVar[int] = FLAG_OPTIONAL | FLAG_TRANSITIVE

    def encode_value(self, ctx: CodecContext) -> bytes:
        return struct.pack("!I", self.asn) + self.address.packed


@dataclass(frozen=True, slots=True)
class Aggregator(_AggregatorValue):
    type_code: ClassVar[int] = AGGREGATOR

    def encode_value(self, ctx: CodecContext) -> bytes:
        if ctx.four_octet_as:
            return _AggregatorValue.encode_value(self, ctx)
        asn = self.asn if self.asn <= 0xFFFF else AS_TRANS
        return struct.pack("!H", asn) + self.address.packed


@dataclass(frozen=True, slots=True)
class As4Aggregator(_AggregatorValue):
    """Always 4-octet: carries the true AS when AGGREGATOR says AS_TRANS (RFC 6793)."""

    type_code: ClassVar[int] = AS4_AGGREGATOR


@dataclass(frozen=True, slots=True)
class Communities(_NumberList):
    type_code: ClassVar[int] = COMMUNITIES
    flags: ClassVar[int] = FLAG_OPTIONAL | FLAG_TRANSITIVE
    struct_code: ClassVar[str] = "I"

    @classmethod
    def parse(cls, *texts: str) -> Communities:
        return cls(tuple(parse_community(t) for t in texts))


@dataclass(frozen=True, slots=True)
class ExtendedCommunities(_NumberList):
    type_code: ClassVar[int] = EXTENDED_COMMUNITIES
    flags: ClassVar[int] = FLAG_OPTIONAL | FLAG_TRANSITIVE
    struct_code: ClassVar[str] = "Q"


@dataclass(frozen=True, slots=True)
class LargeCommunities:
    values: tuple[tuple[int, int, int], ...]
    type_code: ClassVar[int] = LARGE_COMMUNITY
    flags: ClassVar[int] = FLAG_OPTIONAL | FLAG_TRANSITIVE

    @classmethod
    def parse(cls, *texts: str) -> LargeCommunities:
        return cls(tuple(parse_large_community(t) for t in texts))

    def encode_value(self, ctx: CodecContext) -> bytes:
        return b"".join(struct.pack("!III", *v) for v in self.values)


@dataclass(frozen=True, slots=True)
class OriginatorId(_AddressValue):
    type_code: ClassVar[int] = ORIGINATOR_ID
    flags: ClassVar[int] = FLAG_OPTIONAL


@dataclass(frozen=True, slots=True)
class ClusterList:
    ids: tuple[ipaddress.IPv4Address, ...]
    type_code: ClassVar[int] = CLUSTER_LIST
    flags: ClassVar[int] = FLAG_OPTIONAL

    def encode_value(self, ctx: CodecContext) -> bytes:
        return b"".join(a.packed for a in self.ids)


def _is_ip_family(afi: int, safi: int) -> bool:
    return afi in (AFI_IPV4, AFI_IPV6) and safi in (1, 2)


@dataclass(frozen=True, slots=True)
class MpReachNlri:
    """RFC 4760.  `next_hop` is raw (4/16/32 octets for IP families, RD-prefixed for VPN);
    `nlri` is parsed for IPv4/IPv6 unicast and multicast, otherwise kept in `raw_nlri`."""

    afi: int
    safi: int
    next_hop: bytes
    nlri: tuple[Prefix, ...] = ()
    raw_nlri: bytes = b""
    type_code: ClassVar[int] = MP_REACH_NLRI
    flags: ClassVar[int] = FLAG_OPTIONAL

    @classmethod
    def build(
        cls,
        afi: int,
        safi: int,
        next_hops: Sequence[str | ipaddress.IPv4Address | ipaddress.IPv6Address],
        nlri: Iterable[Prefix],
    ) -> MpReachNlri:
        """Next hops: one IPv4 or IPv6 address, or IPv6 global + link-local."""
        nh = b"".join(ipaddress.ip_address(a).packed for a in next_hops)
        return cls(afi, safi, nh, tuple(nlri))

    def next_hop_addresses(self) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
        nh = self.next_hop
        if len(nh) in (12, 24):  # VPN next hops carry an all-zero route distinguisher
            nh = nh[8:] if len(nh) == 12 else nh[8:24][:16]
        if len(nh) == 4:
            return (ipaddress.IPv4Address(nh),)
        if len(nh) == 16:
            return (ipaddress.IPv6Address(nh),)
        if len(nh) == 32:
            return (ipaddress.IPv6Address(nh[:16]), ipaddress.IPv6Address(nh[16:]))
        return ()

    def encode_value(self, ctx: CodecContext) -> bytes:
        nlri = (
            encode_prefixes(self.nlri, ctx.has_add_path(self.afi, self.safi))
            if self.nlri
            else self.raw_nlri
        )
        return (
            struct.pack("!HBB", self.afi, self.safi, len(self.next_hop))
            + self.next_hop
            + b"\x00"
            + nlri
        )


@dataclass(frozen=True, slots=True)
class MpUnreachNlri:
    """RFC 4760.  Empty (no withdrawn routes) is the End-of-RIB marker of its family."""

    afi: int
    safi: int
    withdrawn: tuple[Prefix, ...] = ()
    raw_withdrawn: bytes = b""
    type_code: ClassVar[int] = MP_UNREACH_NLRI
    flags: ClassVar[int] = FLAG_OPTIONAL

    def encode_value(self, ctx: CodecContext) -> bytes:
        nlri = (
            encode_prefixes(self.withdrawn, ctx.has_add_path(self.afi, self.safi))
            if self.withdrawn
            else self.raw_withdrawn
        )
        return struct.pack("!HB", self.afi, self.safi) + nlri


@dataclass(frozen=True, slots=True)
class UnknownAttribute:
    """An attribute we do not interpret, kept with its flags (minus Extended Length)."""

    type_code: int
    value: bytes
    flags: int = FLAG_OPTIONAL | FLAG_TRANSITIVE

    def encode_value(self, ctx: CodecContext) -> bytes:
        return self.value

    def for_forwarding(self) -> UnknownAttribute | None:
        """What passing this attribute on would send (RFC 4271 §5): optional transitive
        ones with the Partial bit set, optional non-transitive ones not at all."""
        if not self.flags & FLAG_TRANSITIVE:
            return None
        return UnknownAttribute(self.type_code, self.value, self.flags | FLAG_PARTIAL)


Attribute = (
    Origin
    | AsPath
    | NextHop
    | MultiExitDisc
    | LocalPref
    | AtomicAggregate
    | Aggregator
    | Communities
    | OriginatorId
    | ClusterList
    | MpReachNlri
    | MpUnreachNlri
    | ExtendedCommunities
    | As4Path
    | As4Aggregator
    | LargeCommunities
    | UnknownAttribute
)


# ----------------------------------------------------------------------------- encoding


def _tlv(flags: int, type_code: int, value: bytes) -> bytes:
    n = len(value)
    if n > 255:
        return struct.pack("!BBH", (flags | FLAG_EXTENDED_LENGTH) & 0xFF, type_code, n) + value
    return struct.pack("!BBB", flags & ~FLAG_EXTENDED_LENGTH & 0xFF, type_code, n) + value


def encode_attribute(attr: Attribute, ctx: CodecContext = DEFAULT_CONTEXT) -> bytes:
    """One attribute TLV (Extended Length chosen by the value size)."""
    return _tlv(attr.flags, attr.type_code, attr.encode_value(ctx))


def encode_attributes(attrs: Iterable[Attribute], ctx: CodecContext = DEFAULT_CONTEXT) -> bytes:
    """A path-attribute block, ordered by type code (RFC 4271 §5 recommends it).

    For a 2-octet peer, AS numbers above 65535 become AS_TRANS and the true values go in
    AS4_PATH / AS4_AGGREGATOR (RFC 6793 §4.2.2) unless the caller supplied them.
    """
    items = list(attrs)
    if not ctx.four_octet_as:
        codes = {a.type_code for a in items}
        extra: list[Attribute] = []
        for a in items:
            if isinstance(a, AsPath) and AS4_PATH not in codes and a.needs_as4():
                segs = tuple(
                    s for s in a.segments if s.type in (AS_SET, AS_SEQUENCE)
                )  # confed segments never go in AS4_PATH
                extra.append(As4Path(segs))
            elif isinstance(a, Aggregator) and AS4_AGGREGATOR not in codes and a.asn > 0xFFFF:
                extra.append(As4Aggregator(a.asn, a.address))
        items.extend(extra)
    items.sort(key=lambda a: a.type_code)
    return b"".join([_tlv(a.flags, a.type_code, a.encode_value(ctx)) for a in items])


def encode_mp_reach(afi: int, safi: int, next_hop: bytes, nlri: bytes) -> bytes:
    """An MP_REACH_NLRI TLV around already-encoded NLRI (the packer's fast path)."""
    return _tlv(
        FLAG_OPTIONAL,
        MP_REACH_NLRI,
        struct.pack("!HBB", afi, safi, len(next_hop)) + next_hop + b"\x00" + nlri,
    )


def encode_mp_unreach(afi: int, safi: int, withdrawn: bytes) -> bytes:
    """An MP_UNREACH_NLRI TLV around already-encoded NLRI."""
    return _tlv(FLAG_OPTIONAL, MP_UNREACH_NLRI, struct.pack("!HB", afi, safi) + withdrawn)


def mp_reach_overhead(next_hop_len: int) -> int:
    """Octets an MP_REACH_NLRI TLV adds around its NLRI (extended-length header)."""
    return 4 + 5 + next_hop_len


# ----------------------------------------------------------------------------- decoding

# Expected (optional, transitive) flag bits per known type code.
_EXPECTED_FLAGS: dict[int, int] = {
    ORIGIN: FLAG_TRANSITIVE,
    AS_PATH: FLAG_TRANSITIVE,
    NEXT_HOP: FLAG_TRANSITIVE,
    MULTI_EXIT_DISC: FLAG_OPTIONAL,
    LOCAL_PREF: FLAG_TRANSITIVE,
    ATOMIC_AGGREGATE: FLAG_TRANSITIVE,
    AGGREGATOR: FLAG_OPTIONAL | FLAG_TRANSITIVE,
    COMMUNITIES: FLAG_OPTIONAL | FLAG_TRANSITIVE,
    ORIGINATOR_ID: FLAG_OPTIONAL,
    CLUSTER_LIST: FLAG_OPTIONAL,
    MP_REACH_NLRI: FLAG_OPTIONAL,
    MP_UNREACH_NLRI: FLAG_OPTIONAL,
    EXTENDED_COMMUNITIES: FLAG_OPTIONAL | FLAG_TRANSITIVE,
    AS4_PATH: FLAG_OPTIONAL | FLAG_TRANSITIVE,
    AS4_AGGREGATOR: FLAG_OPTIONAL | FLAG_TRANSITIVE,
    LARGE_COMMUNITY: FLAG_OPTIONAL | FLAG_TRANSITIVE,
}

# RFC 7606 §7: what a malformed instance of each attribute costs.
_DISCARD = ErrorAction.ATTRIBUTE_DISCARD
_WITHDRAW = ErrorAction.TREAT_AS_WITHDRAW
_ACTION: dict[int, ErrorAction] = {
    ATOMIC_AGGREGATE: _DISCARD,
    AGGREGATOR: _DISCARD,
    AS4_PATH: _DISCARD,
    AS4_AGGREGATOR: _DISCARD,
    MP_REACH_NLRI: ErrorAction.AFISAFI_DISABLE,
    MP_UNREACH_NLRI: ErrorAction.AFISAFI_DISABLE,
}


class _Bad(Exception):
    """Internal: an attribute value is malformed (subcode, reason)."""

    def __init__(self, subcode: int, reason: str) -> None:
        self.subcode = subcode
        self.reason = reason


def _decode_segments(value: bytes, width: int) -> tuple[AsPathSegment, ...]:
    segs: list[AsPathSegment] = []
    pos = 0
    end = len(value)
    fmt = "!H" if width == 2 else "!I"
    while pos < end:
        if end - pos < 2:
            raise _Bad(MALFORMED_AS_PATH, "AS_PATH segment header truncated")
        seg_type, count = value[pos], value[pos + 1]
        if seg_type not in SEGMENT_NAMES:
            raise _Bad(MALFORMED_AS_PATH, f"unknown AS_PATH segment type {seg_type}")
        if count == 0:
            raise _Bad(MALFORMED_AS_PATH, "AS_PATH segment of length zero")
        pos += 2
        nbytes = count * width
        if pos + nbytes > end:
            raise _Bad(MALFORMED_AS_PATH, "AS_PATH segment overruns the attribute")
        asns = struct.unpack(f"!{count}{fmt[1]}", value[pos : pos + nbytes])
        if 0 in asns:
            raise _Bad(MALFORMED_AS_PATH, "AS 0 in the path (RFC 7607)")
        segs.append(AsPathSegment(seg_type, asns))
        pos += nbytes
    return tuple(segs)


def _ipv4(value: bytes) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(value)


def _fixed(value: bytes, n: int, name: str) -> None:
    if len(value) != n:
        raise _Bad(ATTRIBUTE_LENGTH_ERROR, f"{name} length {len(value)}, expected {n}")


def _multiple(value: bytes, n: int, name: str) -> None:
    if not value or len(value) % n:
        raise _Bad(ATTRIBUTE_LENGTH_ERROR, f"{name} length {len(value)}, not a multiple of {n}")


_Decoder = Callable[[bytes, CodecContext], Attribute]


def _d_origin(v: bytes, ctx: CodecContext) -> Attribute:
    _fixed(v, 1, "ORIGIN")
    if v[0] > ORIGIN_INCOMPLETE:
        raise _Bad(INVALID_ORIGIN_ATTRIBUTE, f"ORIGIN value {v[0]}")
    return Origin(v[0])


def _d_as_path(v: bytes, ctx: CodecContext) -> Attribute:
    return AsPath(_decode_segments(v, 4 if ctx.four_octet_as else 2))


def _d_as4_path(v: bytes, ctx: CodecContext) -> Attribute:
    segs = _decode_segments(v, 4)
    if any(s.type in (AS_CONFED_SEQUENCE, AS_CONFED_SET) for s in segs):
        raise _Bad(OPTIONAL_ATTRIBUTE_ERROR, "AS4_PATH carries confederation segments")
    return As4Path(segs)


_BAD_NEXT_HOPS = (0x00000000, 0xFFFFFFFF)


def _d_next_hop(v: bytes, ctx: CodecContext) -> Attribute:
    _fixed(v, 4, "NEXT_HOP")
    n = int.from_bytes(v, "big")
    if n in _BAD_NEXT_HOPS or n >> 28 >= 0xE:
        raise _Bad(INVALID_NEXT_HOP_ATTRIBUTE, f"NEXT_HOP {_ipv4(v)} is not a unicast address")
    return NextHop(_ipv4(v))


def _d_u32(cls: type[MultiExitDisc] | type[LocalPref]) -> _Decoder:
    name = ATTRIBUTE_NAMES[cls.type_code]

    def decode(v: bytes, ctx: CodecContext) -> Attribute:
        _fixed(v, 4, name)
        return cls(int.from_bytes(v, "big"))

    return decode


def _d_atomic(v: bytes, ctx: CodecContext) -> Attribute:
    _fixed(v, 0, "ATOMIC_AGGREGATE")
    return AtomicAggregate()


def _aggregator(cls: type[Aggregator] | type[As4Aggregator], v: bytes, asn_width: int) -> Attribute:
    name = ATTRIBUTE_NAMES[cls.type_code]
    _fixed(v, asn_width + 4, name)
    asn = int.from_bytes(v[:asn_width], "big")
    if asn == 0:
        raise _Bad(OPTIONAL_ATTRIBUTE_ERROR, f"{name} AS 0 (RFC 7607)")
    return cls(asn, _ipv4(v[asn_width:]))


def _d_aggregator(v: bytes, ctx: CodecContext) -> Attribute:
    return _aggregator(Aggregator, v, 4 if ctx.four_octet_as else 2)


def _d_as4_aggregator(v: bytes, ctx: CodecContext) -> Attribute:
    return _aggregator(As4Aggregator, v, 4)


def _d_number_list(cls: type[Communities] | type[ExtendedCommunities]) -> _Decoder:
    name = ATTRIBUTE_NAMES[cls.type_code]

    width = struct.calcsize("!" + cls.struct_code)

    def decode(v: bytes, ctx: CodecContext) -> Attribute:
        _multiple(v, width, name)
        return cls(struct.unpack(f"!{len(v) // width}{cls.struct_code}", v))

    return decode


def _d_large(v: bytes, ctx: CodecContext) -> Attribute:
    _multiple(v, 12, "LARGE_COMMUNITY")
    return LargeCommunities(tuple(struct.unpack_from("!III", v, i) for i in range(0, len(v), 12)))


def _d_originator(v: bytes, ctx: CodecContext) -> Attribute:
    _fixed(v, 4, "ORIGINATOR_ID")
    return OriginatorId(_ipv4(v))


def _d_cluster_list(v: bytes, ctx: CodecContext) -> Attribute:
    _multiple(v, 4, "CLUSTER_LIST")
    return ClusterList(tuple(_ipv4(v[i : i + 4]) for i in range(0, len(v), 4)))


# Valid next-hop lengths per (AFI, SAFI) we can check; others are accepted as they come.
_NEXT_HOP_LENGTHS: dict[tuple[int, int], tuple[int, ...]] = {
    (AFI_IPV4, 1): (4, 16, 32),  # 16/32: RFC 8950 IPv6 next hop for IPv4 NLRI
    (AFI_IPV4, 2): (4, 16, 32),
    (AFI_IPV6, 1): (16, 32),
    (AFI_IPV6, 2): (16, 32),
    (AFI_IPV4, 128): (12, 24, 48),
    (AFI_IPV6, 128): (24, 48),
}


def _d_mp_reach(v: bytes, ctx: CodecContext) -> Attribute:
    if len(v) < 5:
        raise _Bad(OPTIONAL_ATTRIBUTE_ERROR, f"MP_REACH_NLRI length {len(v)} too short")
    afi, safi, nh_len = struct.unpack_from("!HBB", v)
    if 4 + nh_len + 1 > len(v):
        raise _Bad(OPTIONAL_ATTRIBUTE_ERROR, "MP_REACH_NLRI next hop overruns the attribute")
    allowed = _NEXT_HOP_LENGTHS.get((afi, safi))
    if allowed is not None and nh_len not in allowed:
        raise _Bad(OPTIONAL_ATTRIBUTE_ERROR, f"MP_REACH_NLRI next hop length {nh_len}")
    next_hop = v[4 : 4 + nh_len]
    body = v[5 + nh_len :]
    if _is_ip_family(afi, safi):
        prefixes = decode_prefixes(
            body, afi, ctx.has_add_path(afi, safi), ErrorAction.AFISAFI_DISABLE
        )
        return MpReachNlri(afi, safi, next_hop, prefixes)
    return MpReachNlri(afi, safi, next_hop, (), body)


def _d_mp_unreach(v: bytes, ctx: CodecContext) -> Attribute:
    if len(v) < 3:
        raise _Bad(OPTIONAL_ATTRIBUTE_ERROR, f"MP_UNREACH_NLRI length {len(v)} too short")
    afi, safi = struct.unpack_from("!HB", v)
    body = v[3:]
    if _is_ip_family(afi, safi):
        prefixes = decode_prefixes(
            body, afi, ctx.has_add_path(afi, safi), ErrorAction.AFISAFI_DISABLE
        )
        return MpUnreachNlri(afi, safi, prefixes)
    return MpUnreachNlri(afi, safi, (), body)


_DECODERS: dict[int, _Decoder] = {
    ORIGIN: _d_origin,
    AS_PATH: _d_as_path,
    NEXT_HOP: _d_next_hop,
    MULTI_EXIT_DISC: _d_u32(MultiExitDisc),
    LOCAL_PREF: _d_u32(LocalPref),
    ATOMIC_AGGREGATE: _d_atomic,
    AGGREGATOR: _d_aggregator,
    COMMUNITIES: _d_number_list(Communities),
    ORIGINATOR_ID: _d_originator,
    CLUSTER_LIST: _d_cluster_list,
    MP_REACH_NLRI: _d_mp_reach,
    MP_UNREACH_NLRI: _d_mp_unreach,
    EXTENDED_COMMUNITIES: _d_number_list(ExtendedCommunities),
    AS4_PATH: _d_as4_path,
    AS4_AGGREGATOR: _d_as4_aggregator,
    LARGE_COMMUNITY: _d_large,
}


@dataclass(frozen=True, slots=True)
class DecodedAttributes:
    """Result of `decode_attributes`: attributes in received order and the soft problems
    (including missing well-known attributes).  Immutable, so it can be cached."""

    attributes: tuple[Attribute, ...]
    problems: tuple[BGPError, ...] = ()


def decode_attributes(
    data: bytes,
    ctx: CodecContext = DEFAULT_CONTEXT,
    ipv4_nlri: bool = False,
    *,
    mp_nlri: bool = False,
    check_missing: bool = True,
) -> DecodedAttributes:
    """Parse a path-attribute block.

    Raises `BGPError` (session reset) for what RFC 7606 still treats as fatal: a repeated
    MP_REACH/MP_UNREACH, an unrecognized well-known attribute, an MP attribute whose family
    cannot be read.  Everything else is reported in `problems` with its 7606 action; a
    discarded or malformed attribute is left out of `attributes`.  `ipv4_nlri` tells whether
    the UPDATE's own NLRI field is non-empty (a bad NEXT_HOP only matters then, and
    NEXT_HOP is then mandatory); ORIGIN and AS_PATH are mandatory whenever routes are
    announced (RFC 7606 §3 d: missing ones make the UPDATE treat-as-withdraw).
    `mp_nlri` says routes are announced in an MP_REACH_NLRI decoded separately;
    `check_missing=False` skips the mandatory-attribute check (for such a separate part).
    """
    attrs: list[Attribute] = []
    problems: list[BGPError] = []
    seen: set[int] = set()
    pos = 0
    end = len(data)
    decoders = _DECODERS
    expected_flags = _EXPECTED_FLAGS
    while pos < end:
        if end - pos < 3:
            problems.append(
                BGPError(
                    UPDATE_MESSAGE_ERROR,
                    MALFORMED_ATTRIBUTE_LIST,
                    reason="truncated attribute header",
                    action=_WITHDRAW,
                )
            )
            break
        flags = data[pos]
        type_code = data[pos + 1]
        if flags & FLAG_EXTENDED_LENGTH:
            if end - pos < 4:
                problems.append(
                    BGPError(
                        UPDATE_MESSAGE_ERROR,
                        MALFORMED_ATTRIBUTE_LIST,
                        reason="truncated extended-length attribute header",
                        action=_WITHDRAW,
                    )
                )
                break
            length = (data[pos + 2] << 8) | data[pos + 3]
            start = pos + 4
        else:
            length = data[pos + 2]
            start = pos + 3
        stop = start + length
        if stop > end:
            problem = BGPError(
                UPDATE_MESSAGE_ERROR,
                ATTRIBUTE_LENGTH_ERROR,
                data[pos:end],
                reason=f"attribute {type_code} length {length} overruns the attribute block",
                action=_WITHDRAW,
            )
            if type_code in (MP_REACH_NLRI, MP_UNREACH_NLRI):
                raise problem.with_action(ErrorAction.SESSION_RESET)
            problems.append(problem)
            break
        tlv = data[pos:stop]
        value = data[start:stop]
        pos = stop

        if type_code in seen:
            if type_code in (MP_REACH_NLRI, MP_UNREACH_NLRI):
                raise BGPError(
                    UPDATE_MESSAGE_ERROR,
                    MALFORMED_ATTRIBUTE_LIST,
                    reason=f"{ATTRIBUTE_NAMES[type_code]} appears more than once",
                )
            problems.append(
                BGPError(
                    UPDATE_MESSAGE_ERROR,
                    MALFORMED_ATTRIBUTE_LIST,
                    tlv,
                    reason=f"attribute {type_code} repeated; later copies discarded",
                    action=_DISCARD,
                )
            )
            continue
        seen.add(type_code)

        decoder = decoders.get(type_code)
        if decoder is None:
            if not flags & FLAG_OPTIONAL:
                raise BGPError(
                    UPDATE_MESSAGE_ERROR,
                    UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                    tlv,
                    reason=f"unrecognized well-known attribute {type_code}",
                )
            attrs.append(UnknownAttribute(type_code, value, flags & ~FLAG_EXTENDED_LENGTH))
            continue

        action = _ACTION.get(type_code, _WITHDRAW)
        if type_code == NEXT_HOP and not ipv4_nlri:
            action = _DISCARD
        want = expected_flags[type_code]
        partial_bad = flags & FLAG_PARTIAL and not (want & FLAG_OPTIONAL and want & FLAG_TRANSITIVE)
        if (flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE)) != want or partial_bad:
            err = BGPError(
                UPDATE_MESSAGE_ERROR,
                ATTRIBUTE_FLAGS_ERROR,
                tlv,
                reason=f"{ATTRIBUTE_NAMES[type_code]} flags 0x{flags:02x}",
                action=action,
            )
            if action == ErrorAction.AFISAFI_DISABLE and len(value) < 3:
                raise err.with_action(ErrorAction.SESSION_RESET)
            problems.append(err)
            continue
        try:
            attr = decoder(value, ctx)
            if isinstance(attr, MpReachNlri) and (attr.nlri or attr.raw_nlri):
                mp_nlri = True
            attrs.append(attr)
        except _Bad as bad:
            if action == ErrorAction.AFISAFI_DISABLE and len(value) < 3:
                raise BGPError(UPDATE_MESSAGE_ERROR, bad.subcode, tlv, bad.reason) from None
            problems.append(BGPError(UPDATE_MESSAGE_ERROR, bad.subcode, tlv, bad.reason, action))
        except BGPError as err:  # NLRI inside MP_(UN)REACH
            problems.append(
                BGPError(UPDATE_MESSAGE_ERROR, OPTIONAL_ATTRIBUTE_ERROR, tlv, err.reason, action)
            )
    if check_missing and (ipv4_nlri or mp_nlri):
        malformed = {p.data[1] for p in problems if len(p.data) >= 2}
        for code in (ORIGIN, AS_PATH, NEXT_HOP) if ipv4_nlri else (ORIGIN, AS_PATH):
            if code not in seen and code not in malformed:
                problems.append(
                    BGPError(
                        UPDATE_MESSAGE_ERROR,
                        MISSING_WELL_KNOWN_ATTRIBUTE,
                        bytes((code,)),
                        f"missing well-known attribute {ATTRIBUTE_NAMES[code]}",
                        _WITHDRAW,
                    )
                )
    return DecodedAttributes(tuple(attrs), tuple(problems))


def split_mp_attributes(data: bytes) -> tuple[bytes, bytes] | None:
    """(the block without MP_REACH/MP_UNREACH, those two TLVs) when the block frames
    cleanly and holds at most one of each; None otherwise (decode it whole).

    The rest of an attribute block repeats across UPDATEs even when the MP NLRI differ,
    so `bgp.messages.AttributeCache` caches it separately."""
    rest: list[bytes] = []
    mp: list[bytes] = []
    seen = 0
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < 3:
            return None
        flags, code = data[pos], data[pos + 1]
        if flags & FLAG_EXTENDED_LENGTH:
            if end - pos < 4:
                return None
            stop = pos + 4 + ((data[pos + 2] << 8) | data[pos + 3])
        else:
            stop = pos + 3 + data[pos + 2]
        if stop > end:
            return None
        if code in (MP_REACH_NLRI, MP_UNREACH_NLRI):
            bit = 1 if code == MP_REACH_NLRI else 2
            if seen & bit:
                return None
            seen |= bit
            mp.append(data[pos:stop])
        else:
            rest.append(data[pos:stop])
        pos = stop
    if not mp:
        return None
    return b"".join(rest), b"".join(mp)


def effective_as_path(attrs: Iterable[Attribute]) -> AsPath | None:
    """The AS path with AS4_PATH merged in (RFC 6793 §4.2.3), for 2-octet sessions."""
    as_path: AsPath | None = None
    as4: As4Path | None = None
    for a in attrs:
        if isinstance(a, AsPath):
            as_path = a
        elif isinstance(a, As4Path):
            as4 = a
    if as_path is None or as4 is None:
        return as_path

    def count(segs: tuple[AsPathSegment, ...]) -> int:
        return sum(
            len(s.asns) if s.type == AS_SEQUENCE else 1
            for s in segs
            if s.type in (AS_SEQUENCE, AS_SET)
        )

    n2, n4 = count(as_path.segments), count(as4.segments)
    if n4 > n2:
        return as_path
    # Keep the leading (n2 - n4) ASes of AS_PATH, then AS4_PATH.
    keep = n2 - n4
    head: list[AsPathSegment] = []
    for seg in as_path.segments:
        if keep <= 0:
            break
        if seg.type == AS_SEQUENCE:
            take = seg.asns[:keep]
            head.append(AsPathSegment(AS_SEQUENCE, take))
            keep -= len(take)
        elif seg.type == AS_SET:
            head.append(seg)
            keep -= 1
        else:
            head.append(seg)
    return AsPath(tuple(head) + as4.segments)
