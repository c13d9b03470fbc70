"""BGP-4 messages (RFC 4271 §4, RFC 2918/7313): dataclasses, `encode` and `decode`.

    msg = decode(wire_bytes, ctx)  # Open | Update | Notification | Keepalive | RouteRefresh
    wire = encode(msg, ctx)
    for raw in iter_messages(buffer, ctx.max_message_size): ...   # stream splitter

`decode` validates everything RFC 4271 §6 asks for and raises `BGPError` (code, subcode,
data) for the NOTIFICATION to send.  For UPDATEs, RFC 7606 problems that do not reset the
session are returned in `Update.problems` instead of raised; `Update.treat_as_withdraw`
tells whether the UPDATE's announcements must be handled as withdrawals.

Fast paths for the packer: `encode_update_raw(withdrawn, attributes, nlri)` wraps pre-encoded
fields in a header without building objects, `KEEPALIVE_BYTES` is constant, and
`end_of_rib(afi, safi)` returns the marker (RFC 4724 §2).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from bgp.attributes import (
    ORIGIN,
    Attribute,
    DecodedAttributes,
    MpReachNlri,
    MpUnreachNlri,
    decode_attributes,
    encode_attributes,
    encode_mp_unreach,
    split_mp_attributes,
)
from bgp.capabilities import Capability, FourOctetAS, decode_capabilities, encode_capability
from bgp.context import AFI_IPV4, DEFAULT_CONTEXT, SAFI_UNICAST, CodecContext
from bgp.errors import (
    BAD_BGP_IDENTIFIER,
    BAD_MESSAGE_LENGTH,
    BAD_MESSAGE_TYPE,
    BAD_PEER_AS,
    CEASE,
    CEASE_ADMIN_RESET,
    CEASE_ADMIN_SHUTDOWN,
    CEASE_HARD_RESET,
    CONNECTION_NOT_SYNCHRONIZED,
    INVALID_ROUTE_REFRESH_LENGTH,
    MALFORMED_ATTRIBUTE_LIST,
    MESSAGE_HEADER_ERROR,
    MISSING_WELL_KNOWN_ATTRIBUTE,
    OPEN_MESSAGE_ERROR,
    ROUTE_REFRESH_MESSAGE_ERROR,
    UNACCEPTABLE_HOLD_TIME,
    UNSUPPORTED_OPTIONAL_PARAMETER,
    UNSUPPORTED_VERSION_NUMBER,
    UPDATE_MESSAGE_ERROR,
    BGPError,
    ErrorAction,
)
from bgp.nlri import Prefix, decode_prefixes, encode_prefixes

_A = TypeVar("_A", MpReachNlri, MpUnreachNlri)

MARKER = b"\xff" * 16
HEADER_LEN = 19

OPEN = 1
UPDATE = 2
NOTIFICATION = 3
KEEPALIVE = 4
ROUTE_REFRESH = 5
MESSAGE_NAMES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}

# Smallest legal total length per type (RFC 4271 §4, RFC 2918 §3).
# ROUTE-REFRESH: any other length is 7/1 (RFC 7313 §5), checked when decoding the body.
_MIN_LENGTH = {OPEN: 29, UPDATE: 23, NOTIFICATION: 21, KEEPALIVE: 19, ROUTE_REFRESH: 19}
OPEN_MAX_LENGTH = 4096  # RFC 8654: OPEN and KEEPALIVE never exceed 4096

BGP_VERSION = 4
OPT_PARAM_CAPABILITIES = 2
OPT_PARAM_EXTENDED = 255  # RFC 9072

ROUTE_REFRESH_NORMAL = 0
ROUTE_REFRESH_BORR = 1
ROUTE_REFRESH_EORR = 2

SHUTDOWN_MESSAGE_MAX = 255  # RFC 9003


def _header(msg_type: int, body_len: int) -> bytes:
    return MARKER + struct.pack("!HB", HEADER_LEN + body_len, msg_type)


@dataclass(frozen=True, slots=True)
class Open:
    asn: int  # the real AS (4-octet capability value when present)
    hold_time: int
    router_id: ipaddress.IPv4Address
    capabilities: tuple[Capability, ...] = ()
    version: int = BGP_VERSION
    my_as_field: int | None = field(default=None, compare=False)  # 2-octet field as received
    msg_type: ClassVar[int] = OPEN

    def capability(self, code: int) -> Capability | None:
        for cap in self.capabilities:
            if cap.code == code:
                return cap
        return None


@dataclass(frozen=True, slots=True)
class Update:
    withdrawn: tuple[Prefix, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    nlri: tuple[Prefix, ...] = ()
    problems: tuple[BGPError, ...] = field(default=(), compare=False)
    msg_type: ClassVar[int] = UPDATE

    def attribute(self, type_code: int) -> Attribute | None:
        for a in self.attributes:
            if a.type_code == type_code:
                return a
        return None

    def _first(self, kind: type[_A]) -> _A | None:
        for a in self.attributes:
            if isinstance(a, kind):
                return a
        return None

    @property
    def mp_reach(self) -> MpReachNlri | None:
        return self._first(MpReachNlri)

    @property
    def mp_unreach(self) -> MpUnreachNlri | None:
        return self._first(MpUnreachNlri)

    @property
    def treat_as_withdraw(self) -> bool:
        return any(p.action == ErrorAction.TREAT_AS_WITHDRAW for p in self.problems)

    def end_of_rib(self) -> tuple[int, int] | None:
        """The (AFI, SAFI) this UPDATE marks End-of-RIB for, else None (RFC 4724 §2)."""
        if not self.withdrawn and not self.nlri:
            if not self.attributes:
                return (AFI_IPV4, SAFI_UNICAST)
            if len(self.attributes) == 1:
                a = self.attributes[0]
                if isinstance(a, MpUnreachNlri) and not a.withdrawn and not a.raw_withdrawn:
                    return (a.afi, a.safi)
        return None


@dataclass(frozen=True, slots=True)
class Notification:
    code: int
    subcode: int
    data: bytes = b""
    msg_type: ClassVar[int] = NOTIFICATION

    @classmethod
    def from_error(cls, err: BGPError) -> Notification:
        return cls(err.code, err.subcode, err.data)

    @classmethod
    def cease(cls, subcode: int, message: str = "") -> Notification:
        """Cease; for Administrative Shutdown/Reset a RFC 9003 shutdown communication."""
        data = b""
        if message and subcode in (CEASE_ADMIN_SHUTDOWN, CEASE_ADMIN_RESET):
            data = encode_shutdown_message(message)
        return cls(CEASE, subcode, data)

    def hard_reset(self) -> Notification:
        """This NOTIFICATION wrapped in a RFC 8538 Hard Reset (Cease 6/9)."""
        return Notification(CEASE, CEASE_HARD_RESET, bytes((self.code, self.subcode)) + self.data)

    @property
    def inner(self) -> Notification | None:
        """The wrapped NOTIFICATION of a Hard Reset."""
        if self.code == CEASE and self.subcode == CEASE_HARD_RESET and len(self.data) >= 2:
            return Notification(self.data[0], self.data[1], self.data[2:])
        return None

    @property
    def shutdown_message(self) -> str | None:
        """The RFC 9003 shutdown communication, if well-formed."""
        n = self.inner or self
        if n.code != CEASE or n.subcode not in (CEASE_ADMIN_SHUTDOWN, CEASE_ADMIN_RESET):
            return None
        if not n.data or n.data[0] + 1 > len(n.data):
            return None
        try:
            return n.data[1 : 1 + n.data[0]].decode("utf-8")
        except UnicodeDecodeError:
            return None


def encode_shutdown_message(message: str) -> bytes:
    """Length-prefixed UTF-8, cut at a character boundary to at most 255 octets."""
    raw = message.encode("utf-8")[:SHUTDOWN_MESSAGE_MAX]
    raw = raw.decode("utf-8", "ignore").encode("utf-8")
    return bytes((len(raw),)) + raw


@dataclass(frozen=True, slots=True)
class Keepalive:
    msg_type: ClassVar[int] = KEEPALIVE


@dataclass(frozen=True, slots=True)
class RouteRefresh:
    afi: int
    safi: int
    subtype: int = ROUTE_REFRESH_NORMAL
    msg_type: ClassVar[int] = ROUTE_REFRESH


Message = Open | Update | Notification | Keepalive | RouteRefresh

KEEPALIVE_BYTES = _header(KEEPALIVE, 0)


# ----------------------------------------------------------------------------- encoding


def encode_open_body(msg: Open) -> bytes:
    """OPEN body; capabilities go in one optional parameter when they fit in 255 octets,
    otherwise in the RFC 9072 extended optional parameters format."""
    caps = b"".join(encode_capability(c) for c in msg.capabilities)
    my_as = msg.my_as_field if msg.my_as_field is not None else msg.asn
    if my_as > 0xFFFF:
        my_as = 23456
    head = struct.pack("!BHH4s", msg.version, my_as, msg.hold_time, msg.router_id.packed)
    if not caps:
        return head + b"\x00"
    if len(caps) + 2 <= 255:
        params = bytes((OPT_PARAM_CAPABILITIES, len(caps))) + caps
        return head + bytes((len(params),)) + params
    params = struct.pack("!BH", OPT_PARAM_CAPABILITIES, len(caps)) + caps
    return head + struct.pack("!BBH", 255, OPT_PARAM_EXTENDED, len(params)) + params


def encode_update_raw(withdrawn: bytes, attributes: bytes, nlri: bytes) -> bytes:
    """An UPDATE from pre-encoded withdrawn routes, attribute block and NLRI."""
    body_len = 4 + len(withdrawn) + len(attributes) + len(nlri)
    return b"".join(
        (
            MARKER,
            struct.pack("!HBH", HEADER_LEN + body_len, UPDATE, len(withdrawn)),
            withdrawn,
            struct.pack("!H", len(attributes)),
            attributes,
            nlri,
        )
    )


UPDATE_OVERHEAD = HEADER_LEN + 4  # header + the two length fields


def end_of_rib(afi: int = AFI_IPV4, safi: int = SAFI_UNICAST) -> bytes:
    """End-of-RIB marker: empty UPDATE for IPv4 unicast, empty MP_UNREACH otherwise."""
    if (afi, safi) == (AFI_IPV4, SAFI_UNICAST):
        return encode_update_raw(b"", b"", b"")
    return encode_update_raw(b"", encode_mp_unreach(afi, safi, b""), b"")


def encode(msg: Message, ctx: CodecContext = DEFAULT_CONTEXT) -> bytes:
    """Wire bytes of one message; ValueError if it exceeds the context's maximum size."""
    if isinstance(msg, Keepalive):
        return KEEPALIVE_BYTES
    if isinstance(msg, Update):
        add_path = ctx.has_add_path(AFI_IPV4, SAFI_UNICAST)
        out = encode_update_raw(
            encode_prefixes(msg.withdrawn, add_path),
            encode_attributes(msg.attributes, ctx),
            encode_prefixes(msg.nlri, add_path),
        )
        limit = ctx.max_message_size
    elif isinstance(msg, Open):
        body = encode_open_body(msg)
        out = _header(OPEN, len(body)) + body
        limit = OPEN_MAX_LENGTH
    elif isinstance(msg, Notification):
        body = bytes((msg.code, msg.subcode)) + msg.data
        out = _header(NOTIFICATION, len(body)) + body
        limit = ctx.max_message_size
    else:
        out = _header(ROUTE_REFRESH, 4) + struct.pack("!HBB", msg.afi, msg.subtype, msg.safi)
        limit = ctx.max_message_size
    if len(out) > limit:
        raise ValueError(f"{MESSAGE_NAMES[msg.msg_type]} of {len(out)} octets exceeds {limit}")
    return out


# ----------------------------------------------------------------------------- decoding


def _bad_length(length: int, reason: str) -> BGPError:
    return BGPError(
        MESSAGE_HEADER_ERROR, BAD_MESSAGE_LENGTH, struct.pack("!H", length & 0xFFFF), reason
    )


def check_header(buf: bytes | bytearray, pos: int, max_size: int) -> tuple[int, int]:
    """Validate the header at `pos` (marker, length bounds, type); return (length, type)."""
    if buf[pos : pos + 16] != MARKER:
        raise BGPError(
            MESSAGE_HEADER_ERROR, CONNECTION_NOT_SYNCHRONIZED, reason="marker is not all ones"
        )
    length = (buf[pos + 16] << 8) | buf[pos + 17]
    msg_type = buf[pos + 18]
    if msg_type not in _MIN_LENGTH:
        if length < HEADER_LEN or length > max_size:
            raise _bad_length(length, f"length {length} outside {HEADER_LEN}..{max_size}")
        raise BGPError(
            MESSAGE_HEADER_ERROR,
            BAD_MESSAGE_TYPE,
            bytes((msg_type,)),
            f"unknown message type {msg_type}",
        )
    minimum = _MIN_LENGTH[msg_type]
    maximum = max_size
    if msg_type == KEEPALIVE:
        maximum = HEADER_LEN
    elif msg_type == OPEN:
        maximum = OPEN_MAX_LENGTH
    if length < minimum or length > maximum:
        raise _bad_length(
            length, f"{MESSAGE_NAMES[msg_type]} length {length} outside {minimum}..{maximum}"
        )
    return length, msg_type


def iter_messages(buf: bytearray, max_size: int = 4096) -> Generator[bytes, None, None]:
    """Yield each complete message in `buf` and remove it; a partial tail stays for later.

    Raises `BGPError` (1/1, 1/2, 1/3) at the first bad header; messages yielded before it
    are consumed.  Safe to stop iterating early: what was yielded is removed.
    """
    pos = 0
    try:
        while len(buf) - pos >= HEADER_LEN:
            length, _ = check_header(buf, pos, max_size)
            if len(buf) - pos < length:
                break
            raw = bytes(buf[pos : pos + length])
            pos += length  # before yielding: a consumer that stops here has consumed it
            yield raw
    finally:
        del buf[:pos]


def _decode_open(body: bytes) -> Open:
    version, my_as, hold, rid, opt_len = struct.unpack_from("!BHH4sB", body)
    if version != BGP_VERSION:
        raise BGPError(
            OPEN_MESSAGE_ERROR,
            UNSUPPORTED_VERSION_NUMBER,
            struct.pack("!H", BGP_VERSION),
            f"version {version}",
        )
    if hold in (1, 2):
        raise BGPError(OPEN_MESSAGE_ERROR, UNACCEPTABLE_HOLD_TIME, reason=f"hold time {hold}")
    router_id = ipaddress.IPv4Address(rid)
    if int(router_id) == 0:
        raise BGPError(OPEN_MESSAGE_ERROR, BAD_BGP_IDENTIFIER, reason="BGP identifier 0.0.0.0")
    params = body[10:]
    extended = False
    if len(params) >= 3 and opt_len == 255 and params[0] == OPT_PARAM_EXTENDED:
        # RFC 9072 extended optional parameters length.
        extended = True
        opt_len = int.from_bytes(params[1:3], "big")
        params = params[3:]
    if opt_len != len(params):
        raise BGPError(
            OPEN_MESSAGE_ERROR,
            0,
            reason=f"optional parameters length {opt_len} but {len(params)} octets follow",
        )
    caps: list[Capability] = []
    pos = 0
    head = 3 if extended else 2
    while pos < len(params):
        if len(params) - pos < head:
            raise BGPError(OPEN_MESSAGE_ERROR, 0, reason="truncated optional parameter")
        ptype = params[pos]
        plen = int.from_bytes(params[pos + 1 : pos + 3], "big") if extended else params[pos + 1]
        pos += head
        if pos + plen > len(params):
            raise BGPError(OPEN_MESSAGE_ERROR, 0, reason="optional parameter overruns OPEN")
        if ptype != OPT_PARAM_CAPABILITIES:
            raise BGPError(
                OPEN_MESSAGE_ERROR,
                UNSUPPORTED_OPTIONAL_PARAMETER,
                reason=f"optional parameter type {ptype}",
            )
        caps.extend(decode_capabilities(params[pos : pos + plen]))
        pos += plen
    asn = my_as
    for cap in caps:
        if isinstance(cap, FourOctetAS):
            asn = cap.asn
            break
    if asn == 0:
        raise BGPError(OPEN_MESSAGE_ERROR, BAD_PEER_AS, reason="AS 0 (RFC 7607)")
    return Open(asn, hold, router_id, tuple(caps), version, my_as)


def _decode_update(body: bytes, ctx: CodecContext, cache: AttributeCache | None) -> Update:
    end = len(body)
    wlen = (body[0] << 8) | body[1]
    if 2 + wlen + 2 > end:
        raise BGPError(
            UPDATE_MESSAGE_ERROR,
            MALFORMED_ATTRIBUTE_LIST,
            reason=f"withdrawn routes length {wlen} overruns the message",
        )
    alen_pos = 2 + wlen
    alen = (body[alen_pos] << 8) | body[alen_pos + 1]
    attr_start = alen_pos + 2
    if attr_start + alen > end:
        raise BGPError(
            UPDATE_MESSAGE_ERROR,
            MALFORMED_ATTRIBUTE_LIST,
            reason=f"total path attribute length {alen} overruns the message",
        )
    add_path = ctx.has_add_path(AFI_IPV4, SAFI_UNICAST)
    withdrawn = decode_prefixes(body[2:alen_pos], AFI_IPV4, add_path) if wlen else ()
    nlri_raw = body[attr_start + alen :]
    nlri = decode_prefixes(nlri_raw, AFI_IPV4, add_path) if nlri_raw else ()
    if not alen:
        if nlri:
            return _missing_update(withdrawn, nlri)
        return Update(withdrawn, (), nlri)
    block = body[attr_start : attr_start + alen]
    if cache is not None:
        decoded = cache.decode(block, ctx, bool(nlri))
    else:
        decoded = decode_attributes(block, ctx, bool(nlri))
    return Update(withdrawn, decoded.attributes, nlri, decoded.problems)


def _missing_update(withdrawn: tuple[Prefix, ...], nlri: tuple[Prefix, ...]) -> Update:
    problem = BGPError(
        UPDATE_MESSAGE_ERROR,
        MISSING_WELL_KNOWN_ATTRIBUTE,
        bytes((ORIGIN,)),
        "NLRI without path attributes",
        ErrorAction.TREAT_AS_WITHDRAW,
    )
    return Update(withdrawn, (), nlri, (problem,))


def _decode_route_refresh(buf: bytes) -> RouteRefresh:
    body = buf[HEADER_LEN:]
    if len(body) != 4:
        raise BGPError(
            ROUTE_REFRESH_MESSAGE_ERROR,
            INVALID_ROUTE_REFRESH_LENGTH,
            bytes(buf),  # RFC 7313: the complete message
            f"ROUTE-REFRESH body of {len(body)} octets",
        )
    afi, subtype, safi = struct.unpack("!HBB", body)
    return RouteRefresh(afi, safi, subtype)


class AttributeCache:
    """Decoded attribute blocks by their bytes, for one session's receive direction.

    Routers repeat the same attribute block across many UPDATEs (one per prefix in the
    worst case), so a full table mostly costs a dict lookup per UPDATE instead of a parse.
    MP_REACH/MP_UNREACH (which carry the per-UPDATE NLRI) are decoded each time and the
    rest of the block is cached; with a cache they come last in `Update.attributes`.
    Bounded (oldest entry evicted); blocks over `max_block` octets are not kept.
    """

    def __init__(self, max_entries: int = 1024, max_block: int = 512) -> None:
        self.max_entries = max_entries
        self.max_block = max_block
        self._ctx: CodecContext | None = None
        self._entries: dict[tuple[bytes, bool, bool], DecodedAttributes] = {}
        self.hits = 0
        self.misses = 0

    def decode(self, block: bytes, ctx: CodecContext, ipv4_nlri: bool) -> DecodedAttributes:
        if ctx != self._ctx:
            self._entries.clear()
            self._ctx = ctx
        found = self._entries.get((block, ipv4_nlri, False))
        if found is not None:  # the common case: a block seen before, no MP attributes
            self.hits += 1
            return found
        split = split_mp_attributes(block)
        if split is None:
            return self._cached(block, ctx, ipv4_nlri, False)
        rest, mp_block = split
        try:
            mp = decode_attributes(mp_block, ctx, ipv4_nlri, check_missing=False)
            mp_nlri = any(
                isinstance(a, MpReachNlri) and (a.nlri or a.raw_nlri) for a in mp.attributes
            )
            base = self._cached(rest, ctx, ipv4_nlri, mp_nlri)
        except BGPError:
            # Fatal: decode in received order so the NOTIFICATION names the first problem.
            return decode_attributes(block, ctx, ipv4_nlri)
        return DecodedAttributes(base.attributes + mp.attributes, base.problems + mp.problems)

    def _cached(
        self, block: bytes, ctx: CodecContext, ipv4_nlri: bool, mp_nlri: bool
    ) -> DecodedAttributes:
        if len(block) > self.max_block:
            return decode_attributes(block, ctx, ipv4_nlri, mp_nlri=mp_nlri)
        key = (block, ipv4_nlri, mp_nlri)
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        found = decode_attributes(block, ctx, ipv4_nlri, mp_nlri=mp_nlri)
        entries = self._entries
        if len(entries) >= self.max_entries:
            del entries[next(iter(entries))]
        entries[key] = found
        return found


def decode(
    buf: bytes, ctx: CodecContext = DEFAULT_CONTEXT, cache: AttributeCache | None = None
) -> Message:
    """One whole message (header included) -> its dataclass, or `BGPError`.

    `cache` (optional, one per session) reuses decoded attribute blocks across UPDATEs."""
    try:
        return _decode(buf, ctx, cache)
    except BGPError:
        raise
    except (IndexError, struct.error, ValueError) as exc:  # defensive: never leak these
        raise BGPError(
            MESSAGE_HEADER_ERROR, BAD_MESSAGE_LENGTH, reason=f"malformed: {exc}"
        ) from None


def _decode(buf: bytes, ctx: CodecContext, cache: AttributeCache | None) -> Message:
    if len(buf) < HEADER_LEN:
        if buf[:16] != MARKER[: len(buf[:16])]:
            raise BGPError(
                MESSAGE_HEADER_ERROR, CONNECTION_NOT_SYNCHRONIZED, reason="marker is not all ones"
            )
        raise _bad_length(len(buf), f"only {len(buf)} octets, a header needs {HEADER_LEN}")
    length, msg_type = check_header(buf, 0, ctx.max_message_size)
    if length != len(buf):
        raise _bad_length(length, f"length field {length} but {len(buf)} octets given")
    body = bytes(buf[HEADER_LEN:])
    if msg_type == UPDATE:
        return _decode_update(body, ctx, cache)
    if msg_type == KEEPALIVE:
        return Keepalive()
    if msg_type == NOTIFICATION:
        return Notification(body[0], body[1], body[2:])
    if msg_type == OPEN:
        return _decode_open(body)
    return _decode_route_refresh(buf)
