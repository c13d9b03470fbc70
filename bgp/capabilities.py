"""BGP capabilities (RFC 5492) carried in the OPEN message.

Each capability is an immutable dataclass with `code` and `encode_value()`; capabilities
we do not interpret (long-lived GR, hostname, ...) are `UnknownCapability` with raw bytes,
so nothing a peer says is lost in logs or in `python -m bgp decode`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from bgp.errors import OPEN_MESSAGE_ERROR, BGPError

CAP_MULTIPROTOCOL = 1
CAP_ROUTE_REFRESH = 2
CAP_EXTENDED_NEXT_HOP = 5
CAP_EXTENDED_MESSAGE = 6
CAP_ROLE = 9
CAP_GRACEFUL_RESTART = 64
CAP_FOUR_OCTET_AS = 65
CAP_ADD_PATH = 69
CAP_ENHANCED_ROUTE_REFRESH = 70
CAP_LONG_LIVED_GR = 71
CAP_FQDN = 73
CAP_ROUTE_REFRESH_CISCO = 128

CAPABILITY_NAMES = {
    1: "multiprotocol",
    2: "route-refresh",
    3: "outbound-route-filtering",
    5: "extended-next-hop",
    6: "extended-message",
    8: "multiple-labels",
    9: "bgp-role",
    64: "graceful-restart",
    65: "four-octet-as",
    67: "dynamic-capability",
    69: "add-path",
    70: "enhanced-route-refresh",
    71: "long-lived-graceful-restart",
    73: "fqdn",
    74: "software-version",
    128: "route-refresh-cisco",
    131: "multisession-cisco",
}

GR_RESTART_STATE = 0x8
GR_NOTIFICATION = 0x4  # RFC 8538 "N" bit
GR_FORWARDING = 0x80

ADD_PATH_RECEIVE = 1
ADD_PATH_SEND = 2
ADD_PATH_BOTH = 3


def _malformed(reason: str) -> BGPError:
    return BGPError(OPEN_MESSAGE_ERROR, 0, reason=reason)


@dataclass(frozen=True, slots=True)
class Multiprotocol:
    """RFC 4760: the peer can exchange routes of this AFI/SAFI."""

    afi: int
    safi: int
    code: ClassVar[int] = CAP_MULTIPROTOCOL

    def encode_value(self) -> bytes:
        return struct.pack("!HBB", self.afi, 0, self.safi)


@dataclass(frozen=True, slots=True)
class RouteRefresh:
    """RFC 2918."""

    code: ClassVar[int] = CAP_ROUTE_REFRESH

    def encode_value(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class EnhancedRouteRefresh:
    """RFC 7313: BoRR/EoRR demarcation of a route refresh."""

    code: ClassVar[int] = CAP_ENHANCED_ROUTE_REFRESH

    def encode_value(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class ExtendedMessage:
    """RFC 8654: UPDATEs (and other messages except OPEN/KEEPALIVE) up to 65535 octets."""

    code: ClassVar[int] = CAP_EXTENDED_MESSAGE

    def encode_value(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class FourOctetAS:
    """RFC 6793: the speaker's real AS number."""

    asn: int
    code: ClassVar[int] = CAP_FOUR_OCTET_AS

    def encode_value(self) -> bytes:
        return struct.pack("!I", self.asn)


@dataclass(frozen=True, slots=True)
class _Triples:
    """A capability whose value is a list of fixed-size (AFI, SAFI, X) entries."""

    entries: tuple[tuple[int, int, int], ...]
    entry_format: ClassVar[str]

    def encode_value(self) -> bytes:
        return b"".join(struct.pack(self.entry_format, *e) for e in self.entries)


@dataclass(frozen=True, slots=True)
class ExtendedNextHop(_Triples):
    """RFC 8950: (NLRI AFI, NLRI SAFI, next-hop AFI) triples, e.g. (1, 1, 2)."""

    code: ClassVar[int] = CAP_EXTENDED_NEXT_HOP
    entry_format: ClassVar[str] = "!HHH"


@dataclass(frozen=True, slots=True)
class GracefulRestartFamily:
    afi: int
    safi: int
    forwarding_preserved: bool = False


@dataclass(frozen=True, slots=True)
class GracefulRestart:
    """RFC 4724 (+ RFC 8538 N bit): restart flags, restart time and per-family F bit."""

    restart_time: int = 120
    restart_state: bool = False
    notification: bool = False
    families: tuple[GracefulRestartFamily, ...] = ()
    code: ClassVar[int] = CAP_GRACEFUL_RESTART

    def encode_value(self) -> bytes:
        flags = (GR_RESTART_STATE if self.restart_state else 0) | (
            GR_NOTIFICATION if self.notification else 0
        )
        head = struct.pack("!H", (flags << 12) | (self.restart_time & 0x0FFF))
        return head + b"".join(
            struct.pack("!HBB", f.afi, f.safi, GR_FORWARDING if f.forwarding_preserved else 0)
            for f in self.families
        )


@dataclass(frozen=True, slots=True)
class AddPath(_Triples):
    """RFC 7911: (AFI, SAFI, mode) with mode 1 receive, 2 send, 3 both."""

    code: ClassVar[int] = CAP_ADD_PATH
    entry_format: ClassVar[str] = "!HBB"


@dataclass(frozen=True, slots=True)
class UnknownCapability:
    """Any capability we do not interpret, kept byte for byte."""

    code: int
    value: bytes = b""

    def encode_value(self) -> bytes:
        return self.value


Capability = (
    Multiprotocol
    | RouteRefresh
    | EnhancedRouteRefresh
    | ExtendedMessage
    | FourOctetAS
    | ExtendedNextHop
    | GracefulRestart
    | AddPath
    | UnknownCapability
)


def encode_capability(cap: Capability) -> bytes:
    value = cap.encode_value()
    if len(value) > 255:
        raise ValueError(f"capability {cap.code} value too long ({len(value)} octets)")
    return bytes((cap.code, len(value))) + value


_FLAGS: dict[int, type[RouteRefresh | EnhancedRouteRefresh | ExtendedMessage]] = {
    cls.code: cls for cls in (RouteRefresh, EnhancedRouteRefresh, ExtendedMessage)
}


def _entries(value: bytes, cls: type[_Triples], name: str) -> tuple[tuple[int, int, int], ...]:
    size = struct.calcsize(cls.entry_format)
    if len(value) % size:
        raise _malformed(f"{name} capability length {len(value)}, not a multiple of {size}")
    return tuple(struct.iter_unpack(cls.entry_format, value))


def decode_capability(code: int, value: bytes) -> Capability:
    """One capability from its code and value; a bad length is OPEN error 2/0."""
    n = len(value)
    if code == CAP_MULTIPROTOCOL:
        if n != 4:
            raise _malformed(f"multiprotocol capability length {n}, expected 4")
        afi, _reserved, safi = struct.unpack("!HBB", value)
        return Multiprotocol(afi, safi)
    flag = _FLAGS.get(code)
    if flag is not None:
        if n:
            name = CAPABILITY_NAMES[code].replace("-", " ")
            raise _malformed(f"{name} capability length {n}, expected 0")
        return flag()
    if code == CAP_FOUR_OCTET_AS:
        if n != 4:
            raise _malformed(f"four-octet AS capability length {n}, expected 4")
        return FourOctetAS(int.from_bytes(value, "big"))
    if code == CAP_EXTENDED_NEXT_HOP:
        return ExtendedNextHop(_entries(value, ExtendedNextHop, "extended next hop"))
    if code == CAP_GRACEFUL_RESTART:
        if n < 2 or (n - 2) % 4:
            raise _malformed(f"graceful restart capability length {n}")
        head = int.from_bytes(value[:2], "big")
        flags = head >> 12
        fams = tuple(
            GracefulRestartFamily(
                int.from_bytes(value[i : i + 2], "big"),
                value[i + 2],
                bool(value[i + 3] & GR_FORWARDING),
            )
            for i in range(2, n, 4)
        )
        return GracefulRestart(
            restart_time=head & 0x0FFF,
            restart_state=bool(flags & GR_RESTART_STATE),
            notification=bool(flags & GR_NOTIFICATION),
            families=fams,
        )
    if code == CAP_ADD_PATH:
        entries = _entries(value, AddPath, "add-path")
        for _afi, _safi, mode in entries:
            if mode not in (ADD_PATH_RECEIVE, ADD_PATH_SEND, ADD_PATH_BOTH):
                raise _malformed(f"add-path send/receive value {mode}")
        return AddPath(entries)
    return UnknownCapability(code, bytes(value))


def decode_capabilities(data: bytes) -> list[Capability]:
    """The body of one Capabilities optional parameter (several TLVs)."""
    out: list[Capability] = []
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < 2:
            raise _malformed("truncated capability header")
        code = data[pos]
        length = data[pos + 1]
        pos += 2
        if pos + length > end:
            raise _malformed(f"capability {code} overruns its optional parameter")
        out.append(decode_capability(code, data[pos : pos + length]))
        pos += length
    return out
